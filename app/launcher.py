"""`up`, `down` and `status`: the platform's own supervisord running its programs — the Streamlit
UI, the agent (health checks, the gateway's key check, metrics) and the nginx gateway — and,
through the orchestration runtimes, every service."""
from __future__ import annotations

import sys
import time
import xmlrpc.client
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import psutil
from sqlalchemy import func, select
from supervisor.xmlrpc import Faults

from app import db
from app.agent import socket_path
from app.models import Algorithm, AlgorithmCall, AlgorithmService, User
from app.platform import Platform
from app.services.manager import ReconcileReport
from app.services.ports import host_port_free
from orchestration.errors import BackendUnavailable, OrchestrationError
from orchestration.processes import Owned, listening_pids
from orchestration.supervisord import Program, SupervisorDaemon

REPO_ROOT = Path(__file__).resolve().parent.parent
UI_PROGRAM = "algostage-ui"
AGENT_PROGRAM = "algostage-agent"
API_PROGRAM = "algostage-api"
GATEWAY_PROGRAM = "algostage-gateway"
PROGRAMS = (UI_PROGRAM, AGENT_PROGRAM, API_PROGRAM, GATEWAY_PROGRAM)
PORT_SETTINGS = ("ALGOSTAGE_UI_PORT", "ALGOSTAGE_API_PORT", "ALGOSTAGE_GATEWAY_PORT")
STOP_GRACE_S = 3.0   # SIGTERM → SIGKILL for processes no supervisord stops (an orphaned Streamlit ignores SIGTERM)


@dataclass
class UpResult:
    url: str
    supervisord_started: bool
    admin_created: tuple[str, str] | None
    reconcile: ReconcileReport | None = None
    messages: list[str] = field(default_factory=list)
    gateway_url: str = ""


def _env(platform: Platform, **extra: str) -> dict[str, str]:
    return {"ALGOSTAGE_HOME": str(platform.home), "PYTHONPATH": str(REPO_ROOT), **extra}


def ui_program(platform: Platform, port: int) -> Program:
    logs = platform.home / "logs"
    command = (f"{sys.executable} -m streamlit run {REPO_ROOT / 'components' / 'ui_server.py'} --server.port={port}"
               " --server.headless=true --browser.gatherUsageStats=false --server.fileWatcherType=none")
    return Program(UI_PROGRAM, command, REPO_ROOT, _env(platform, ALGOSTAGE_UI_PORT=str(port)),
                   logs / "ui.out.log", logs / "ui.err.log", startsecs=2)


def agent_program(platform: Platform) -> Program:
    logs = platform.home / "logs"
    return Program(AGENT_PROGRAM, f"{sys.executable} -m app agent", REPO_ROOT, _env(platform),
                   logs / "agent.out.log", logs / "agent.err.log", startsecs=1)


def api_program(platform: Platform) -> Program:
    logs = platform.home / "logs"
    return Program(API_PROGRAM, f"{sys.executable} -m app api", REPO_ROOT, _env(platform),
                   logs / "api.out.log", logs / "api.err.log", startsecs=1)


def gateway_program(platform: Platform) -> Program:
    logs = platform.home / "logs"
    engine = platform.gateway_engine
    return Program(GATEWAY_PROGRAM, " ".join(_quote(a) for a in engine.command()), engine.root, {},
                   logs / "gateway.out.log", logs / "gateway.err.log", startsecs=1, stopwaitsecs=30)


def _quote(arg: str) -> str:
    import shlex
    return shlex.quote(arg)


def port_in_use(port: int) -> bool:
    return not host_port_free(port)


def owned_ports(platform: Platform) -> set[int]:
    """The ports the platform's own processes listen on: the UI, the API, the gateway and every
    replica port reserved (a container engine's listener there is not ours and is left alone)."""
    return {int(platform.settings.value(key)) for key in PORT_SETTINGS} | set(platform.ports.reservations())


def up(platform: Platform, *, wait: float = 60.0) -> UpResult:
    """Migrate, create the first admin, end what an earlier supervisord left running, start
    supervisord, the UI, the agent, the API and the gateway, then bring every service to the state
    the database wants (those that should run RUNNING, READY and routed); idempotent."""
    admin = platform.auth.bootstrap_admin(platform.environ.get("ALGOSTAGE_ADMIN_PASSWORD") or None)
    daemon = SupervisorDaemon(platform.home)
    ended = daemon.recover(owned_ports(platform), grace_s=STOP_GRACE_S)
    # the gateway's configuration before supervisord starts: it autostarts the programs an earlier
    # `up` defined, and an nginx spawned before the new file was written (and before its pid file,
    # so no reload reaches it) kept serving the earlier settings (its port) — seen once in CI
    platform.router.sync()   # the gateway starts with the routing table as it is
    started = daemon.start()
    ui_port = platform.settings.value("ALGOSTAGE_UI_PORT")
    gateway_port = platform.settings.value("ALGOSTAGE_GATEWAY_PORT")
    api_port = platform.settings.value("ALGOSTAGE_API_PORT")
    for name, make, port, setting in ((UI_PROGRAM, lambda: ui_program(platform, ui_port), ui_port, "ALGOSTAGE_UI_PORT"),
                                      (AGENT_PROGRAM, lambda: agent_program(platform), None, ""),
                                      (API_PROGRAM, lambda: api_program(platform), api_port, "ALGOSTAGE_API_PORT"),
                                      (GATEWAY_PROGRAM, lambda: gateway_program(platform), gateway_port,
                                       "ALGOSTAGE_GATEWAY_PORT")):
        _ensure(daemon, name, make, port, setting)
    url = f"http://localhost:{ui_port}"
    gateway = platform.router.base_url()
    _wait_http(f"{gateway}/ai/-/health", wait, "the gateway", ok=(404, 401, 503))
    reconcile = platform.services.reconcile()   # replicas start and get READY while the UI boots
    _wait_http(f"{url}/_stcore/health", wait, "the UI")
    _wait_agent(platform.home, wait)
    _wait_http(f"{gateway}/api/v1/openapi.json", wait, "the management API")
    for name in PROGRAMS:
        _wait_running(daemon, name, wait)
    messages = [f"ended {len(ended)} process(es) an earlier supervisord left running: "
                + ", ".join(map(str, ended))] if ended else []
    return UpResult(url, started, admin, reconcile=reconcile, messages=messages, gateway_url=gateway)


@dataclass
class DownResult:
    was_running: bool            # supervisord answered and was shut down
    ended: list[Owned]           # processes it did not stop (left by an earlier supervisord), ended

    @property
    def stopped_anything(self) -> bool:
        return self.was_running or bool(self.ended)


def down(home: Path, ports: Iterable[int] = ()) -> DownResult:
    """Stop supervisord with every program, then end whatever of this home still runs — named by
    a pid file or listening on one of `ports` — and check that nothing does any more. Raises
    OrchestrationError naming what is left."""
    daemon = SupervisorDaemon(home)
    was_running = daemon.shutdown()
    ended = daemon.recover(ports, grace_s=STOP_GRACE_S)
    left = daemon.left_behind(ports)
    if left:
        raise OrchestrationError("still running after down: " + ", ".join(map(str, left)),
                                 hint="run `python -m app down` again, or end them by hand")
    return DownResult(was_running, ended)


def _ensure(daemon: SupervisorDaemon, name: str, make: Callable[[], Program], port: int | None, setting: str) -> None:
    """Start program `name` (written from `make()`) unless it runs; a port another process holds is refused."""
    if _program_running(daemon, name):
        return
    if port is not None and port_in_use(port):
        raise OrchestrationError(f"port {port} is already in use by another process{_holders(port)}",
                                 hint=f"set {setting} to a free port")
    daemon.put_program(make())
    daemon.update()
    _start_program(daemon, name)


def _holders(port: int) -> str:
    """" (pid 123: nginx -c …)" for whoever listens on `port`, as far as this user may see."""
    pids = sorted(listening_pids([port]).get(port, ()))
    if not pids:
        return ""
    try:
        command = " ".join(psutil.Process(pids[0]).cmdline())[:120]
    except psutil.Error:
        command = "?"
    return f" (pid {pids[0]}: {command})"


def _program_running(daemon: SupervisorDaemon, name: str) -> bool:
    try:
        return daemon.rpc().supervisor.getProcessInfo(name)["statename"] in {"RUNNING", "STARTING"}
    except xmlrpc.client.Fault:   # BAD_NAME: not configured yet
        return False


def _start_program(daemon: SupervisorDaemon, name: str) -> None:
    try:
        daemon.rpc().supervisor.startProcess(name, True)
    except xmlrpc.client.Fault as e:
        if e.faultCode != Faults.ALREADY_STARTED:
            raise OrchestrationError(f"{name} did not start: {e.faultString}",
                                     hint=f"see its log under {daemon.log_dir}") from e


def _wait_running(daemon: SupervisorDaemon, name: str, timeout: float) -> None:
    """Wait until supervisord counts the program as RUNNING (past its startsecs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = daemon.rpc().supervisor.getProcessInfo(name)["statename"]
        if state == "RUNNING":
            return
        if state in {"FATAL", "EXITED", "BACKOFF"}:
            raise OrchestrationError(f"{name} is {state}", hint=f"see its log under {daemon.log_dir}")
        time.sleep(0.2)
    raise OrchestrationError(f"{name} did not reach RUNNING within {timeout:.0f} s")


def _wait_http(url: str, timeout: float, what: str, ok: tuple[int, ...] = (200,)) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code in ok:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise OrchestrationError(f"{what} did not answer at {url} within {timeout:.0f} s")


def _wait_agent(home: Path, timeout: float) -> None:
    transport = httpx.HTTPTransport(uds=str(socket_path(home)))
    with httpx.Client(transport=transport, base_url="http://agent") as client:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if client.get("/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    raise OrchestrationError(f"the agent did not answer on {socket_path(home)} within {timeout:.0f} s")


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
    agent: str = "STOPPED"
    gateway: str = "STOPPED"
    gateway_url: str = ""
    api: str = "STOPPED"
    orphans: list[dict] = field(default_factory=list)   # {pid, name, port} run by no answering supervisord

    def to_dict(self) -> dict:
        return asdict(self)


def status(platform: Platform) -> Status:
    """The platform's programs as its supervisord sees them, and what runs without one: a program
    whose supervisord is gone but whose process lives on reads ORPHANED, and `orphans` lists every
    such process of this home (by pid file or port) that no answering supervisord runs."""
    daemon = SupervisorDaemon(platform.home)
    running = daemon.is_running()
    orphans = daemon.left_behind(owned_ports(platform))
    orphaned = {o.name for o in orphans}
    states = {name: _state(daemon, name) if running else "ORPHANED" if name in orphaned else "STOPPED"
              for name in PROGRAMS}
    return Status(str(platform.home), "RUNNING" if running else "STOPPED", states[UI_PROGRAM],
                  f"http://localhost:{platform.settings.value('ALGOSTAGE_UI_PORT')}",
                  db.backend_name(platform.engine), db.schema_revision(platform.engine), db.head_revision(),
                  counts(platform), states[AGENT_PROGRAM], states[GATEWAY_PROGRAM], platform.router.base_url(),
                  states[API_PROGRAM], [{"pid": o.pid, "name": o.name, "port": o.port} for o in orphans])


def _state(daemon: SupervisorDaemon, name: str) -> str:
    try:
        return daemon.rpc().supervisor.getProcessInfo(name)["statename"]
    except xmlrpc.client.Fault:
        return "STOPPED"


def counts(platform: Platform) -> dict[str, int]:
    with platform.sessions() as s:
        return {name: s.scalar(select(func.count()).select_from(model)) or 0 for name, model in
                [("users", User), ("algorithms", Algorithm), ("services", AlgorithmService),
                 ("calls", AlgorithmCall)]}


__all__ = ["BackendUnavailable", "UpResult", "DownResult", "Status", "up", "down", "status", "counts", "owned_ports"]
