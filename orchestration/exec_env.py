"""Exec a program with extra environment variables read from a JSON file.

supervisor's `environment=` cannot carry every value (it has no escape for quotes), so replica
programs run `python exec_env.py ENV.json -- ARGV…`, which replaces itself with ARGV (same pid,
so supervisord's signals reach the real program). Standard library only.
"""
import json
import os
import sys


def main(argv: list[str]) -> None:
    if len(argv) < 4 or argv[2] != "--":
        sys.exit("usage: exec_env.py ENV.json -- PROGRAM [ARGS…]")
    with open(argv[1], encoding="utf-8") as f:
        extra = json.load(f)
    os.execvpe(argv[3], argv[3:], {**os.environ, **{str(k): str(v) for k, v in extra.items()}})


if __name__ == "__main__":
    main(sys.argv)
