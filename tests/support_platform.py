"""Running a real platform (supervisord + Streamlit) for integration and browser tests."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class RunningPlatform:
    home: Path
    port: int
    env: dict[str, str]
    up_output: str

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    def cli(self, *args: str, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
        return run_cli(self.env, *args, check=check, timeout=timeout)


def platform_env(home: Path, port: int, **extra: str) -> dict[str, str]:
    """The environment of a test platform: its own home, UI port and gateway port (a free one, so
    test platforms never meet on 8080 or 8001)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALGOSTAGE_", "DATABASE_URL"))}
    env.update(ALGOSTAGE_HOME=str(home), ALGOSTAGE_UI_PORT=str(port), ALGOSTAGE_ADMIN_PASSWORD="admin-password",
               ALGOSTAGE_GATEWAY_PORT=str(_free_port()), ALGOSTAGE_API_PORT=str(_free_port()), PYTHONPATH=str(ROOT))
    env.update(extra)
    return env


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(env: dict[str, str], *args: str, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "app", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"python -m app {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def processes_mentioning(*needles: str) -> list[str]:
    """Command lines of live processes containing any needle (zombies excluded)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(n in cmd for n in needles):
            found.append(f"{proc.name}: {cmd}")
    return found


def start_platform(home: Path, port: int, **extra: str) -> RunningPlatform:
    """`python -m app up` on a home of its own. When `up` fails or times out, `down` stops what it
    had started (its supervisord, nginx, replicas) before the error is raised: nothing of a failed
    start outlives the test."""
    env = platform_env(home, port, **extra)
    try:
        proc = run_cli(env, "up", check=True, timeout=180)
    except (AssertionError, subprocess.TimeoutExpired):
        try:
            run_cli(env, "down", timeout=120)
        except subprocess.TimeoutExpired:
            pass   # the error of `up` is the one to report
        raise
    return RunningPlatform(home, port, env, proc.stdout)


def stop_platform(p: RunningPlatform) -> None:
    run_cli(p.env, "down", timeout=120)
