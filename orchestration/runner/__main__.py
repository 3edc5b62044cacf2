"""`python -m orchestration.runner --package DIR --port P [--host H]`: serve one algorithm package.

The port may also come from the PORT environment variable. The process changes into the package
directory (so an algorithm can open its files by relative path), serves with uvicorn (uvloop,
httptools, no access log) in ONE process and exits on SIGTERM/SIGINT. Exit status 2 on usage errors.
glibc malloc is tuned for per-request frame buffers (ALGOSTAGE_TUNE_MALLOC=0 turns that off).
"""
from __future__ import annotations

import argparse
import ctypes
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from orchestration.runner.asgi import build_app
from orchestration.runner.server import Runner


def env_flag(value: str) -> bool:
    return value.strip().lower() not in ("0", "false", "no", "off", "")


def parse_args(argv: Sequence[str] | None, env: dict[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m orchestration.runner",
                                     description="Serve an AlgoStage algorithm package over HTTP.")
    parser.add_argument("--package", required=True, type=Path, help="the package directory (with algorithm.yaml)")
    parser.add_argument("--port", type=int, help="port to listen on (default: $PORT)")
    parser.add_argument("--host", default=env.get("HOST", "127.0.0.1"), help="address to bind (default 127.0.0.1)")
    parser.add_argument("--log-level", default=env.get("ALGOSTAGE_LOG_LEVEL", "info"),
                        choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    if args.port is None:
        if not env.get("PORT", "").isdigit():
            parser.error("--port is required (or set PORT)")
        args.port = int(env["PORT"])
    if not args.package.is_dir():
        parser.error(f"--package {args.package}: not a directory")
    args.package = args.package.resolve()
    return args


def tune_malloc() -> bool:
    """Keep allocations under 16 MB (decoded frames) in the heap and reuse freed memory instead of
    returning it to the OS after every request. With glibc's defaults each decoded 640x480 frame
    came from fresh pages of a thread arena and was page-faulted in: decoding took ~2x longer
    (docs/BENCHMARKS.md, "Runner"). Returns False where there is no glibc mallopt (no-op)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 16 << 20) and libc.mallopt(m_trim_threshold, 64 << 20))
    except (OSError, AttributeError):
        return False


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv, dict(os.environ))
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if env_flag(os.environ.get("ALGOSTAGE_TUNE_MALLOC", "1")):
        tune_malloc()
    os.chdir(args.package)
    runner = Runner(args.package)
    name = runner.manifest.name if runner.manifest else args.package.name
    logging.getLogger("algostage.runner").info(
        "serving %s from %s on http://%s:%d (pid %d); log level %s: requests refused or failed are logged with "
        "their X-Request-Id%s", name, args.package, args.host, args.port, os.getpid(), args.log_level,
        ", and every request" if args.log_level == "debug" else " (every request at debug)")
    uvicorn.run(build_app(runner), host=args.host, port=args.port, loop="uvloop", http="httptools",
                access_log=False, log_level=args.log_level, server_header=False, timeout_graceful_shutdown=5)
    runner.close()
    return 0


if __name__ == "__main__":
    code = main()
    # Do not wait for a predict or setup that may never return: the server has already stopped.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
