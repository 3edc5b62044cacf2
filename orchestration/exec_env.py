"""Exec a program of the platform's supervisord, leaving a pid file and adding environment variables.

    python exec_env.py [--pidfile PATH] [--env ENV.json] -- PROGRAM [ARGS…]
    python exec_env.py ENV.json -- PROGRAM [ARGS…]          (program files written before pid files)

The wrapper replaces itself with PROGRAM (same pid, so supervisord's signals reach the real
program). Before it does, it writes `PATH` as "<pid> <start time>\\n" (the start time in clock
ticks since boot, field 22 of /proc/<pid>/stat, which exec does not change): after supervisord
died, the platform finds its children by these files, and a pid that the kernel has since handed
to another process reads as stale because its start time differs. supervisor's `environment=`
cannot carry every value (it has no escape for quotes), so replicas' variables come in a JSON file.
Standard library only: it runs before any virtual environment is chosen.
"""
import json
import os
import sys

USAGE = "usage: exec_env.py [--pidfile PATH] [--env ENV.json] -- PROGRAM [ARGS…]"


def parse(argv: list[str]) -> tuple[str | None, str | None, list[str]]:
    """(pid file, env file, program argv) from the wrapper's arguments; exits with USAGE if wrong."""
    if "--" not in argv[1:]:
        sys.exit(USAGE)
    split = argv.index("--", 1)
    options, program = argv[1:split], argv[split + 1:]
    pidfile = env_file = None
    if len(options) == 1:            # the form before pid files: ENV.json --
        env_file = options[0]
        options = []
    while options:
        if len(options) < 2 or options[0] not in ("--pidfile", "--env"):
            sys.exit(USAGE)
        if options[0] == "--pidfile":
            pidfile = options[1]
        else:
            env_file = options[1]
        options = options[2:]
    if not program:
        sys.exit(USAGE)
    return pidfile, env_file, program


def start_time(pid: int | str = "self") -> int:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


def write_pidfile(path: str) -> None:
    """"<pid> <start time>" written atomically (a reader never sees half a file)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(f"{os.getpid()} {start_time()}\n")
    os.replace(tmp, path)


def main(argv: list[str]) -> None:
    pidfile, env_file, program = parse(argv)
    extra: dict[str, str] = {}
    if env_file:
        with open(env_file, encoding="utf-8") as f:
            extra = {str(k): str(v) for k, v in json.load(f).items()}
    if pidfile:
        write_pidfile(pidfile)
    os.execvpe(program[0], program, {**os.environ, **extra})


if __name__ == "__main__":
    main(sys.argv)
