"""`up`, `down` and `status`: the platform's own supervisord running the Streamlit UI (and,
through the orchestration runtimes, every service)."""
from __future__ import annotations

import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import func, select

from app import db
from app.models import Algorithm, AlgorithmCall, AlgorithmService, User
from app.platform import Platform
from orchestration.errors import BackendUnavailable, OrchestrationError
from orchestration.manager import ReconcileReport
from orchestration.supervisord import Program, SupervisorDaemon

REPO_ROOT = Path(__file__).resolve().parent.parent
UI_PROGRAM = "algostage-ui"


@dataclass
class UpResult:
    url: str
    supervisord_started: bool
    admin_created: tuple[str, str] | None
    reconcile: ReconcileReport | None = None
    messages: list[str] = field(default_factory=list)


def ui_program(platform: Platform, port: int) -> Program:
    logs = platform.home / "logs"
    env = {"ALGOSTAGE_HOME": str(platform.home), "PYTHONPATH": str(REPO_ROOT),
           "ALGOSTAGE_UI_PORT": str(port)}
    command = (f"{sys.executable} -m streamlit run {REPO_ROOT / 'app' / 'main.py'} --server.port={port}"
               " --server.headless=true --browser.gatherUsageStats=false --server.fileWatcherType=none")
    return Program(UI_PROGRAM, command, REPO_ROOT, env, logs / "ui.out.log", logs / "ui.err.log",
                   startsecs=2)


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return True
    return False


def up(platform: Platform, *, wait: float = 60.0) -> UpResult:
    """Migrate, create the first admin, start supervisord and the UI; idempotent."""
    admin = platform.auth.bootstrap_admin(platform.environ.get("ALGOSTAGE_ADMIN_PASSWORD") or None)
    port = platform.settings.value("ALGOSTAGE_UI_PORT")
    daemon = SupervisorDaemon(platform.home)
    started = daemon.start()
    if not _program_running(daemon, UI_PROGRAM):
        if port_in_use(port):
            raise OrchestrationError(f"port {port} is already in use by another process; "
                                     "set ALGOSTAGE_UI_PORT to a free port")
        daemon.put_program(ui_program(platform, port))
        daemon.update()
        _start_program(daemon, UI_PROGRAM)
    url = f"http://localhost:{port}"
    _wait_http(f"{url}/_stcore/health", wait)
    _wait_running(daemon, UI_PROGRAM, wait)
    return UpResult(url, started, admin, reconcile=platform.services.reconcile())


def down(home: Path) -> bool:
    """Stop every program and the platform's supervisord. Returns True if anything was running."""
    return SupervisorDaemon(home).shutdown()


def _program_running(daemon: SupervisorDaemon, name: str) -> bool:
    try:
        return daemon.rpc().supervisor.getProcessInfo(name)["statename"] in {"RUNNING", "STARTING"}
    except Exception:  # noqa: BLE001 - a missing program is a Fault; treat as not running
        return False


def _start_program(daemon: SupervisorDaemon, name: str) -> None:
    try:
        daemon.rpc().supervisor.startProcess(name, True)
    except Exception as e:  # noqa: BLE001 - xmlrpc Fault ALREADY_STARTED is fine
        if "ALREADY_STARTED" not in str(e):
            raise OrchestrationError(f"{name} did not start: {e}. See {daemon.log_dir}") from e


def _wait_running(daemon: SupervisorDaemon, name: str, timeout: float) -> None:
    """Wait until supervisord counts the program as RUNNING (past its startsecs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = daemon.rpc().supervisor.getProcessInfo(name)["statename"]
        if state == "RUNNING":
            return
        if state in {"FATAL", "EXITED", "BACKOFF"}:
            raise OrchestrationError(f"{name} is {state}; see {daemon.log_dir}")
        time.sleep(0.2)
    raise OrchestrationError(f"{name} did not reach RUNNING within {timeout:.0f} s")


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise OrchestrationError(f"the UI did not answer at {url} within {timeout:.0f} s")


@dataclass
class Status:
    home: str
    supervisord: str
    ui: str
    url: str
    database: str
    schema_revision: str | None
    schema_head: str
    counts: dict[str, int]

    def to_dict(self) -> dict:
        return asdict(self)


def status(platform: Platform) -> Status:
    daemon = SupervisorDaemon(platform.home)
    running = daemon.is_running()
    ui = "STOPPED"
    if running:
        try:
            ui = daemon.rpc().supervisor.getProcessInfo(UI_PROGRAM)["statename"]
        except Exception:  # noqa: BLE001 - not configured yet
            ui = "STOPPED"
    return Status(str(platform.home), "RUNNING" if running else "STOPPED", ui,
                  f"http://localhost:{platform.settings.value('ALGOSTAGE_UI_PORT')}",
                  db.backend_name(platform.engine), db.schema_revision(platform.engine), db.head_revision(),
                  counts(platform))


def counts(platform: Platform) -> dict[str, int]:
    with platform.sessions() as s:
        return {name: s.scalar(select(func.count()).select_from(model)) or 0 for name, model in
                [("users", User), ("algorithms", Algorithm), ("services", AlgorithmService),
                 ("calls", AlgorithmCall)]}


__all__ = ["BackendUnavailable", "UpResult", "Status", "up", "down", "status", "counts"]
