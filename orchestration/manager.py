"""Managing deployed services: status of everything, start/stop/restart/remove one by one, in
bulk or by group, logs, and reconciling what the database says should run with what runs."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import psutil
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from app.auth import Action, Actor, require
from app.db import transaction
from app.errors import Problem, ValidationFailed
from app.models import AlgorithmService, Deployment, ServiceGroup, ServiceReplica
from orchestration.errors import BackendUnavailable, OrchestrationError
from orchestration.health import Health, probe
from orchestration.ports import PortAllocator
from orchestration.runtime import ReplicaStatus, Runtime, ServiceState, wait_settled

FAILED_STATES = (ServiceState.FATAL, ServiceState.BACKOFF, ServiceState.EXITED)
SETTLED_FAILED = (ServiceState.FATAL, ServiceState.EXITED, ServiceState.STOPPED)
SETTLE_TIMEOUT_S = 20.0   # supervisord gives up on a crashing program after startretries backoffs
LOG_TAIL_LINES = 5


@dataclass(frozen=True)
class ReplicaView:
    name: str
    index: int
    port: int
    state: ServiceState
    pid: int | None
    container_id: str | None
    uptime_s: float | None
    cpu_percent: float | None
    memory_mb: float | None
    message: str
    log_tail: str = ""  # last stderr lines of a replica that is FATAL, BACKOFF or EXITED; "" otherwise


@dataclass(frozen=True)
class ServiceView:
    name: str
    algorithm: str
    task: str
    version: str
    version_number: int | None
    runtime: str
    desired_state: str
    group: str | None
    last_error: str
    replicas: list[ReplicaView]

    @property
    def state(self) -> ServiceState:
        """RUNNING if every replica runs; otherwise the most telling replica state."""
        states = [r.state for r in self.replicas]
        if not states:
            return ServiceState.STOPPED
        if all(s is ServiceState.RUNNING for s in states):
            return ServiceState.RUNNING
        for s in (ServiceState.FATAL, ServiceState.BACKOFF, ServiceState.EXITED, ServiceState.STARTING,
                  ServiceState.STOPPING, ServiceState.UNKNOWN, ServiceState.RUNNING):
            if s in states:
                return s
        return ServiceState.STOPPED

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{r.port}" for r in self.replicas]


@dataclass
class ReconcileReport:
    started: list[str] = field(default_factory=list)      # should run, was not running: started
    stopped: list[str] = field(default_factory=list)      # should be stopped, was running: stopped
    unexpected: list[str] = field(default_factory=list)   # running, unknown to the database
    failed: dict[str, str] = field(default_factory=dict)  # could not be brought to the desired state

    @property
    def differences(self) -> bool:
        return bool(self.started or self.stopped or self.unexpected or self.failed)


class ProbeClients:
    """One small keep-alive httpx client per replica URL, for health probes.

    httpcore walks every connection of a pool (and polls each idle one) on every request, so one
    shared pool over N replicas makes a round of N probes cost O(N²): 100 runners took twice as
    long as with one pool per replica (docs/BENCHMARKS.md, Orchestration). Clients not used for
    `idle_s` seconds (removed replicas) are closed by `prune`."""

    def __init__(self, idle_s: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._idle_s = idle_s
        self._clock = clock
        self._clients: dict[str, tuple[httpx.Client, float]] = {}
        self._lock = threading.Lock()

    def get(self, base_url: str) -> httpx.Client:
        with self._lock:
            client = self._clients.get(base_url, (None, 0.0))[0]
            if client is None:  # plain HTTP on loopback: verify=False skips loading a CA bundle (~30 ms)
                client = httpx.Client(verify=False, limits=httpx.Limits(max_connections=4, max_keepalive_connections=1))
            self._clients[base_url] = (client, self._clock())
            return client

    def prune(self) -> None:
        with self._lock:
            stale = [url for url, (_, used) in self._clients.items() if self._clock() - used > self._idle_s]
            for url in stale:
                self._clients.pop(url)[0].close()


class ServiceManager:
    def __init__(self, sessions: sessionmaker[Session], runtimes: Mapping[str, Runtime], ports: PortAllocator,
                 http: httpx.Client | None = None) -> None:
        self._sessions = sessions
        self._runtimes = runtimes
        self._ports = ports
        self._http = http  # None: a small keep-alive client per replica (ProbeClients)
        self._probe_clients = ProbeClients()

    # --- reading --------------------------------------------------------------------------------

    def list(self, actor: Actor, *, resources: bool = True) -> list[ServiceView]:
        """Every service with its replicas' live state: one status call per runtime, not per replica."""
        require(actor, Action.VIEW_SERVICES)
        return self._views(self._load(), resources)

    def health(self, views: Iterable[ServiceView], timeout: float = 1.0) -> dict[str, Health]:
        """`/health` of every running replica of `views`, probed concurrently, by replica name.
        Replicas that are not running are not probed (they read as their runtime state)."""
        targets = [(r.name, f"http://127.0.0.1:{r.port}") for v in views for r in v.replicas
                   if r.state is ServiceState.RUNNING]
        if not targets:
            return {}
        clients = [self._http or self._probe_clients.get(url) for _, url in targets]
        with ThreadPoolExecutor(max_workers=min(16, len(targets))) as pool:
            results = list(pool.map(lambda t, c: probe(c, t[1], timeout), targets, clients))
        self._probe_clients.prune()
        return {name: h for (name, _), h in zip(targets, results)}

    def get(self, actor: Actor, name: str) -> ServiceView:
        """One service as `list` shows it (its resource usage read for its own replicas only)."""
        require(actor, Action.VIEW_SERVICES)
        found = self._views(self._load(name), resources=True)
        if not found:
            raise ValidationFailed([Problem("service", f"no service {name!r}")])
        return found[0]

    def logs(self, actor: Actor, name: str, *, replica: int | None = None, lines: int = 200,
             stream: str = "stdout") -> dict[str, str]:
        """Last `lines` lines per replica (all replicas, or the one with index `replica`)."""
        require(actor, Action.VIEW_SERVICES)
        svc = self._one(name)
        rows = [r for r in svc.replica_rows if replica is None or r.index == replica]
        if replica is not None and not rows:
            raise ValidationFailed([Problem("replica", f"{name} has no replica {replica}")])
        runtime = self._runtime(svc.runtime)
        return {r.backend_name: runtime.logs(r.backend_name, lines, stream) for r in rows}

    def deployments(self, actor: Actor, name: str | None = None, limit: int = 50) -> list[Deployment]:
        require(actor, Action.VIEW_SERVICES)
        q = select(Deployment).order_by(Deployment.id.desc()).limit(limit)
        if name:
            q = q.where(Deployment.service_name == name)
        with self._sessions() as s:
            return list(s.scalars(q))

    # --- actions (each name independently; one failure does not stop the others) -----------------

    def start(self, actor: Actor, names: Iterable[str]) -> dict[str, str | None]:
        """Start each service; returns name → None, or why it did not start (see `_settle`)."""
        return self._settle(self._each(actor, names, self._start_one))

    def stop(self, actor: Actor, names: Iterable[str]) -> dict[str, str | None]:
        return self._each(actor, names, self._stop_one)

    def restart(self, actor: Actor, names: Iterable[str]) -> dict[str, str | None]:
        return self._settle(self._each(actor, names, self._restart_one))

    def remove(self, actor: Actor, names: Iterable[str]) -> dict[str, str | None]:
        """Remove replicas, programs/containers, port reservations and the service row."""
        return self._each(actor, names, self._remove_one)

    def names_in_group(self, group: str) -> list[str]:
        with self._sessions() as s:
            g = s.scalar(select(ServiceGroup).where(ServiceGroup.name == group)
                         .options(selectinload(ServiceGroup.services)))
            if g is None:
                raise ValidationFailed([Problem("group", f"no group {group!r}")])
            return sorted(svc.name for svc in g.services)

    def all_names(self) -> list[str]:
        with self._sessions() as s:
            return sorted(s.scalars(select(AlgorithmService.name)))

    # --- groups ---------------------------------------------------------------------------------

    def create_group(self, actor: Actor, name: str, description: str = "") -> None:
        require(actor, Action.MANAGE_SERVICES)
        with self._sessions() as s:
            if s.scalar(select(ServiceGroup).where(ServiceGroup.name == name)):
                raise ValidationFailed([Problem("group", f"group {name!r} already exists")])
        with transaction(self._sessions) as s:
            s.add(ServiceGroup(name=name, description=description))

    def set_group(self, actor: Actor, service: str, group: str | None) -> None:
        require(actor, Action.MANAGE_SERVICES)
        with transaction(self._sessions) as s:
            svc = s.scalar(select(AlgorithmService).where(AlgorithmService.name == service))
            if svc is None:
                raise ValidationFailed([Problem("service", f"no service {service!r}")])
            gid = None
            if group:
                gid = s.scalar(select(ServiceGroup.id).where(ServiceGroup.name == group))
                if gid is None:
                    raise ValidationFailed([Problem("group", f"no group {group!r}")])
            svc.group_id = gid

    def groups(self) -> dict[str, list[str]]:
        with self._sessions() as s:
            return {g.name: sorted(x.name for x in g.services)
                    for g in s.scalars(select(ServiceGroup).options(selectinload(ServiceGroup.services))
                                       .order_by(ServiceGroup.name))}

    # --- reconciliation ---------------------------------------------------------------------------

    def reconcile(self) -> ReconcileReport:
        """Bring replicas to the database's desired state; report what runs unexpectedly."""
        report = ReconcileReport()
        known: set[str] = set()
        used: set[str] = set()
        for svc in self._load():
            runtime = self._runtimes.get(svc.runtime)
            used.add(svc.runtime)
            for r in svc.replica_rows:
                known.add(r.backend_name)
                if runtime is not None:
                    self._reconcile_replica(runtime, svc.desired_state, r.backend_name, report)
        for name, runtime in self._runtimes.items():
            try:
                report.unexpected += [st.name for st in runtime.list() if st.name not in known and st.state.is_up]
            except BackendUnavailable as e:
                if name in used:  # an engine no service uses (no Docker here) is not a failure
                    report.failed[name] = str(e)
            except OrchestrationError as e:
                report.failed[name] = str(e)
        return report

    @staticmethod
    def _reconcile_replica(runtime: Runtime, desired: str, name: str, report: ReconcileReport) -> None:
        try:
            state = runtime.status(name).state
            if desired == "running" and not state.is_up:
                runtime.start(name)
                report.started.append(name)
            elif desired == "stopped" and state.is_up:
                runtime.stop(name)
                report.stopped.append(name)
        except OrchestrationError as e:
            report.failed[name] = str(e)

    # --- internals ------------------------------------------------------------------------------

    def _each(self, actor: Actor, names: Iterable[str], fn) -> dict[str, str | None]:  # noqa: ANN001
        require(actor, Action.MANAGE_SERVICES)
        results: dict[str, str | None] = {}
        for name in names:
            try:
                fn(self._one(name))
                results[name] = None
            except (OrchestrationError, ValidationFailed) as e:
                results[name] = str(e)
        return results

    def _settle(self, results: dict[str, str | None], timeout: float = SETTLE_TIMEOUT_S) -> dict[str, str | None]:
        """Waits (all services together, at most `timeout`) until every replica just started has
        left STARTING and BACKOFF, so an action that returns reads RUNNING. A replica that ends
        FATAL, EXITED or STOPPED makes its service's result an error, and so does one still in
        BACKOFF at the deadline; one still STARTING then is left to the runtime."""
        started = [self._one(name) for name, error in results.items() if error is None]
        runtimes = {r.backend_name: self._runtime(svc.runtime) for svc in started for r in svc.replica_rows}
        states = wait_settled(lambda n: runtimes[n].status(n).state, runtimes, timeout)
        for svc in started:
            name, replicas = svc.name, svc.replica_rows
            problems = [f"{r.backend_name} is {states[r.backend_name].value} (see its log)" for r in replicas
                        if states[r.backend_name] in SETTLED_FAILED]
            problems += [f"{r.backend_name} keeps exiting and is being restarted (see its log)" for r in replicas
                         if states[r.backend_name] == ServiceState.BACKOFF]
            if problems:
                results[name] = "; ".join(problems)
        return results

    def _start_one(self, svc: AlgorithmService) -> None:
        runtime = self._runtime(svc.runtime)
        for r in svc.replica_rows:
            runtime.start(r.backend_name)
        self._set_desired(svc.name, "running")

    def _stop_one(self, svc: AlgorithmService) -> None:
        runtime = self._runtime(svc.runtime)
        for r in svc.replica_rows:
            runtime.stop(r.backend_name)
        self._set_desired(svc.name, "stopped")

    def _restart_one(self, svc: AlgorithmService) -> None:
        runtime = self._runtime(svc.runtime)
        for r in svc.replica_rows:
            runtime.restart(r.backend_name)
        self._set_desired(svc.name, "running")

    def _remove_one(self, svc: AlgorithmService) -> None:
        runtime = self._runtimes.get(svc.runtime)
        for r in svc.replica_rows:
            if runtime is not None:
                runtime.remove(r.backend_name)
            self._ports.release(r.backend_name)
        with transaction(self._sessions) as s:
            s.delete(s.get(AlgorithmService, svc.id))

    def _set_desired(self, name: str, state: str) -> None:
        with transaction(self._sessions) as s:
            svc = s.scalar(select(AlgorithmService).where(AlgorithmService.name == name))
            svc.desired_state = state

    def _runtime(self, name: str) -> Runtime:
        if name not in self._runtimes:
            raise OrchestrationError(f"runtime {name!r} is not available")
        return self._runtimes[name]

    def _one(self, name: str) -> AlgorithmService:
        with self._sessions() as s:
            svc = s.scalar(select(AlgorithmService).where(AlgorithmService.name == name)
                           .options(selectinload(AlgorithmService.replica_rows)))
        if svc is None:
            raise ValidationFailed([Problem("service", f"no service {name!r}")])
        return svc

    def _load(self, name: str | None = None) -> list[AlgorithmService]:
        """Every service (or the one called `name`) with what a view shows, loaded eagerly."""
        q = select(AlgorithmService).order_by(AlgorithmService.name).options(
            selectinload(AlgorithmService.replica_rows), selectinload(AlgorithmService.algorithm),
            selectinload(AlgorithmService.version), selectinload(AlgorithmService.group))
        if name is not None:
            q = q.where(AlgorithmService.name == name)
        with self._sessions() as s:
            return list(s.scalars(q))

    def _views(self, services: list[AlgorithmService], resources: bool) -> list[ServiceView]:
        statuses = self._statuses({svc.runtime for svc in services})
        return [self._view(svc, statuses, resources) for svc in services]

    def _statuses(self, runtime_names: set[str]) -> dict[str, ReplicaStatus]:
        out: dict[str, ReplicaStatus] = {}
        for name in runtime_names:
            runtime = self._runtimes.get(name)
            if runtime is None:
                continue
            try:
                out.update({s.name: s for s in runtime.list()})
            except OrchestrationError as e:
                out[f"__error__{name}"] = ReplicaStatus(name, ServiceState.UNKNOWN, message=str(e))
        return out

    def _view(self, svc: AlgorithmService, statuses: Mapping[str, ReplicaStatus], resources: bool) -> ServiceView:
        backend_error = statuses.get(f"__error__{svc.runtime}")
        runtime = self._runtimes.get(svc.runtime)
        replicas = [self._replica_view(r, statuses.get(r.backend_name), backend_error, resources, runtime)
                    for r in svc.replica_rows]
        version = svc.version
        return ServiceView(svc.name, svc.algorithm.name, svc.algorithm.task, version.tag if version else "?",
                           version.number if version else None, svc.runtime, svc.desired_state,
                           svc.group.name if svc.group else None, svc.last_error, replicas)

    @staticmethod
    def _replica_view(r: ServiceReplica, st: ReplicaStatus | None, backend_error: ReplicaStatus | None,
                      resources: bool, runtime: Runtime | None) -> ReplicaView:
        if st is None:
            state = ServiceState.UNKNOWN if backend_error else ServiceState.STOPPED
            message = backend_error.message if backend_error else "not known to the runtime"
            return ReplicaView(r.backend_name, r.index, r.port, state, None, None, None, None, None, message)
        cpu, mem = _process_usage(st.pid) if resources and st.pid else (None, None)
        uptime = time.time() - st.started_at if st.started_at else None
        log = _log_tail(runtime, r.backend_name) if runtime and st.state in FAILED_STATES else ""
        return ReplicaView(r.backend_name, r.index, r.port, st.state, st.pid, st.container_id, uptime, cpu, mem,
                           st.message, log)


def _log_tail(runtime: Runtime, name: str, lines: int = LOG_TAIL_LINES) -> str:
    """Why a replica failed, in its own words: the last stderr lines ("" if unreadable)."""
    try:
        return runtime.logs(name, lines, "stderr")
    except OrchestrationError:
        return ""


def _process_usage(pid: int) -> tuple[float | None, float | None]:
    """CPU percent since the previous call for this pid, and resident memory in MiB."""
    try:
        proc = _PROCS.get(pid) or _PROCS.setdefault(pid, psutil.Process(pid))
        with proc.oneshot():
            return proc.cpu_percent(None), proc.memory_info().rss / 2**20
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        _PROCS.pop(pid, None)
        return None, None


_PROCS: dict[int, psutil.Process] = {}
