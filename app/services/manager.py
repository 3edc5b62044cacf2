"""Managing deployed services: status of everything, start/stop/restart/remove one by one, in
bulk or by group, logs, and reconciling what the database says should run with what runs."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from app.auth import Action, Actor, audit, internal, require
from app.db import transaction
from app.errors import Message, Missing, Problem, ValidationFailed
from app.models import AlgorithmService, Deployment, ServiceGroup, ServiceReplica
from app.services.ports import PortAllocator
from app.services.routing import Router
from app.services.rows import follow_tasks, get_service, place
from app.shared import HealthBoard
from orchestration.errors import BackendUnavailable, OrchestrationError, restored
from orchestration.health import Health, probe, wait_ready
from orchestration.runtime import (ClusterRuntime, Endpoint, ReplicaStatus, Runtime, ServiceState, TaskEndpoint, Usage,
                                   slot_of, wait_settled)

FAILED_STATES = (ServiceState.FATAL, ServiceState.BACKOFF, ServiceState.EXITED)
SETTLED_FAILED = (ServiceState.FATAL, ServiceState.EXITED, ServiceState.STOPPED)
SETTLE_TIMEOUT_S = 20.0   # supervisord gives up on a crashing program after startretries backoffs
LOG_TAIL_LINES = 5


@dataclass(frozen=True)
class ReplicaView:
    name: str
    index: int
    port: int
    endpoint: str       # base URL the replica answers on
    routed: bool        # in rotation (receives calls)
    state: ServiceState
    pid: int | None
    container_id: str | None
    uptime_s: float | None
    cpu_percent: float | None
    memory_mb: float | None
    message: str
    log_tail: str = ""  # last stderr lines of a replica that is FATAL, BACKOFF or EXITED; "" otherwise
    version: str = ""   # the version it runs
    route_note: str = ""  # why it is in or out of rotation (the active health check's verdict)
    retiring: bool = False  # replaced by a deploy: out of rotation, runs a version the service no longer serves


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
    canary_version: str | None = None   # a version on trial beside `version`
    canary_percent: int = 0

    @property
    def state(self) -> ServiceState:
        """RUNNING if every replica runs; otherwise the most telling replica state. Replicas a deploy
        is retiring do not count (while they stop, the new version already serves), unless they are
        all there is."""
        states = [r.state for r in self.replicas if not r.retiring] or [r.state for r in self.replicas]
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
        """Where the replicas in rotation answer."""
        return [r.endpoint for r in self.replicas if r.routed]


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
                 router: Router, http: httpx.Client | None = None, *,
                 ready_timeout: Callable[[str], float] = lambda service: 120.0,
                 board: HealthBoard | None = None) -> None:
        self._board = board   # the agent's latest checks, shared by every process (app/shared.py)
        self._sessions = sessions
        self._runtimes = runtimes
        self._ports = ports
        self._router = router
        self._ready_timeout = ready_timeout
        self._http = http  # None: a small keep-alive client per replica (ProbeClients)
        self._probe_clients = ProbeClients()

    # --- reading --------------------------------------------------------------------------------

    def list(self, actor: Actor, *, resources: bool = True) -> list[ServiceView]:
        """Every service with its replicas' live state: one status call (and with `resources`,
        one usage call) per runtime, not per replica."""
        require(actor, Action.VIEW_SERVICES)
        return self._views(self._load(), resources)

    def health(self, actor: Actor, views: Iterable[ServiceView], timeout: float = 1.0) -> dict[str, Health]:
        """`/health` of every running replica of `views`, by replica name: the agent's latest
        check where the shared health board has one (so every UI and API process shows the same),
        else probed concurrently. Replicas that are not running are not probed (they read as their
        runtime state)."""
        require(actor, Action.VIEW_SERVICES)
        targets = [(r.name, r.endpoint) for v in views for r in v.replicas
                   if r.state is ServiceState.RUNNING and r.endpoint]
        known = self._board.read([name for name, _ in targets]) if self._board is not None and targets else {}
        targets = [t for t in targets if t[0] not in known]
        if not targets:
            return known
        clients = [self._http or self._probe_clients.get(url) for _, url in targets]
        with ThreadPoolExecutor(max_workers=min(16, len(targets))) as pool:
            results = list(pool.map(lambda t, c: probe(c, t[1], timeout), targets, clients))
        self._probe_clients.prune()
        return {**known, **{name: h for (name, _), h in zip(targets, results)}}

    def get(self, actor: Actor, name: str) -> ServiceView:
        """One service as `list` shows it (its resource usage read for its own replicas only)."""
        require(actor, Action.VIEW_SERVICES)
        found = self._views(self._load(name), resources=True)
        if not found:
            raise Missing([Problem("service", Message("service.missing", "no service {name!r}", name=name))])
        return found[0]

    def logs(self, actor: Actor, name: str, *, replica: int | None = None, lines: int = 200,
             stream: str = "stdout") -> dict[str, str]:
        """Last `lines` lines per replica (all replicas, or the one with index `replica`). Logs
        are an operator's right: a service's output may carry its inputs."""
        require(actor, Action.MANAGE_SERVICES)
        svc = self._one(name)
        rows = [r for r in svc.replica_rows if replica is None or r.index == replica]
        if replica is not None and not rows:
            raise ValidationFailed([Problem("replica", Message("service.no_replica", "{name} has no replica {replica}", name=name,
                                                                    replica=replica))])
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
        """Start each service; returns name → None, or why it did not start (see `_settle`).
        A service that started is put back in rotation. Every action is in the audit log."""
        return self._audit(actor, "start", self._publish(self._settle(self._each(actor, names, self._start_one))))

    def stop(self, actor: Actor, names: Iterable[str]) -> dict[str, str | None]:
        """Take each service out of rotation (the gateway answers 503 at once), then stop it."""
        return self._audit(actor, "stop", self._each(actor, names, self._stop_one))

    def restart(self, actor: Actor, names: Iterable[str]) -> dict[str, str | None]:
        return self._audit(actor, "restart", self._publish(self._settle(self._each(actor, names, self._restart_one))))

    def remove(self, actor: Actor, names: Iterable[str]) -> dict[str, str | None]:
        """Remove replicas, programs/containers, port reservations and the service row."""
        return self._audit(actor, "remove", self._each(actor, names, self._remove_one))

    def names_in_group(self, actor: Actor, group: str) -> list[str]:
        require(actor, Action.VIEW_SERVICES)
        with self._sessions() as s:
            g = s.scalar(select(ServiceGroup).where(ServiceGroup.name == group)
                         .options(selectinload(ServiceGroup.services)))
            if g is None:
                raise Missing([Problem("group", Message("group.missing", "no group {name!r}", name=group))])
            return sorted(svc.name for svc in g.services)

    def all_names(self, actor: Actor) -> list[str]:
        require(actor, Action.VIEW_SERVICES)
        with self._sessions() as s:
            return sorted(s.scalars(select(AlgorithmService.name)))

    # --- groups ---------------------------------------------------------------------------------

    def create_group(self, actor: Actor, name: str, description: str = "") -> None:
        require(actor, Action.MANAGE_SERVICES)
        with self._sessions() as s:
            if s.scalar(select(ServiceGroup).where(ServiceGroup.name == name)):
                raise ValidationFailed([Problem("group", Message("group.exists", "group {name!r} already exists", name=name))])
        with transaction(self._sessions) as s:
            s.add(ServiceGroup(name=name, description=description))

    def set_group(self, actor: Actor, service: str, group: str | None) -> None:
        require(actor, Action.MANAGE_SERVICES)
        with transaction(self._sessions) as s:
            svc = get_service(s, service)
            gid = None
            if group:
                gid = s.scalar(select(ServiceGroup.id).where(ServiceGroup.name == group))
                if gid is None:
                    raise Missing([Problem("group", Message("group.missing", "no group {name!r}", name=group))])
            svc.group_id = gid

    def groups(self, actor: Actor) -> dict[str, list[str]]:
        require(actor, Action.VIEW_SERVICES)
        with self._sessions() as s:
            return {g.name: sorted(x.name for x in g.services)
                    for g in s.scalars(select(ServiceGroup).options(selectinload(ServiceGroup.services))
                                       .order_by(ServiceGroup.name))}

    # --- reconciliation ---------------------------------------------------------------------------

    def ports(self, actor: Actor) -> dict[int, str]:
        """Every reserved port and the replica that holds it."""
        require(actor, Action.VIEW_SERVICES)
        return self._ports.reservations()

    @internal("run by `up` (launcher) as the platform starts, before any user acts")
    def reconcile(self) -> ReconcileReport:
        """Bring replicas to the database's desired state; report what runs unexpectedly. The
        services whose replicas it started are waited for like `start` waits (settled, READY) and
        put back in rotation; one that does not get there is in `failed` with the reason."""
        report = ReconcileReport()
        known: set[str] = set()
        used: set[str] = set()
        restarted: dict[str, str | None] = {}
        for svc in self._load():
            runtime = self._runtimes.get(svc.runtime)
            used.add(svc.runtime)
            for r in svc.replica_rows:
                known.add(r.backend_name)
                if runtime is not None:
                    self._reconcile_replica(runtime, svc.desired_state, r.backend_name, report)
            if any(r.backend_name in report.started for r in svc.replica_rows):
                restarted[svc.name] = None
        if restarted:
            report.failed.update({name: error for name, error in self._publish(self._settle(restarted)).items()
                                  if error})
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
                results[name] = e.message
        return results

    def _audit(self, actor: Actor, action: str, results: dict[str, str | None]) -> dict[str, str | None]:
        """One audit record per service acted on, with the outcome."""
        with transaction(self._sessions) as s:
            for name, error in results.items():
                audit(s, actor, action, name, f"failed: {error}" if error else "ok")
        return results

    def _settle(self, results: dict[str, str | None], timeout: float = SETTLE_TIMEOUT_S) -> dict[str, str | None]:
        """Waits (all services together, at most `timeout`) until every replica just started has
        left STARTING and BACKOFF, so an action that returns reads RUNNING. A replica that ends
        FATAL, EXITED or STOPPED makes its service's result an error, and so does one still in
        BACKOFF at the deadline; one still STARTING then is left to the runtime."""
        for name, error in results.items():
            if error is None:
                self._follow_cluster(self._one(name), wait_s=timeout)
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
        for name in acted_on(runtime, svc.replica_rows):
            runtime.start(name)
        self._set_desired(svc.name, "running")

    def _publish(self, results: dict[str, str | None]) -> dict[str, str | None]:
        """Put the replicas of the services that started back in rotation as each answers READY
        (within the service's `health_timeout_s`); one that does not stays out and is the
        service's error (the agent's health checks publish it once it is READY)."""
        for name, error in results.items():
            if error is None:
                self._follow_cluster(self._one(name))
        rows = [(name, r.backend_name, r.endpoint) for name, error in results.items() if error is None
                for r in self._one(name).replica_rows if r.endpoint]
        if not rows:
            return results
        with ThreadPoolExecutor(max_workers=min(16, len(rows))) as pool:
            healths = list(pool.map(lambda row: wait_ready(self._http or self._probe_clients.get(row[2]), row[2],
                                                           self._ready_timeout(row[0])), rows))
        ready: dict[str, dict[str, Endpoint]] = {}
        for (name, replica, url), health in zip(rows, healths):
            if health.ready:
                ready.setdefault(name, {})[replica] = Endpoint.parse(url)
            else:
                results[name] = f"{replica} is not READY: {health.error or health.status} (see its log)"
        for name, endpoints in ready.items():
            self._router.publish(name, endpoints)
        return results

    def _follow_cluster(self, svc: AlgorithmService, wait_s: float = 0.0) -> None:
        """A cluster started or restarted the service's tasks anew, each where it chose: the rows
        take the endpoints its running tasks answer on now (later moves: the health monitor). A
        cluster service started again from 0 tasks may number its slots anew: a row whose slot no
        longer runs takes a running slot's name. Waits up to `wait_s` for as many running tasks
        as there are rows."""
        runtime = self._runtimes.get(svc.runtime)
        if not isinstance(runtime, ClusterRuntime):
            return
        deadline = time.monotonic() + wait_s
        for cluster in {slot_of(r.backend_name)[0] for r in svc.replica_rows}:
            rows = sum(slot_of(r.backend_name)[0] == cluster for r in svc.replica_rows)
            while len(found := runtime.endpoints(cluster)) < rows and time.monotonic() < deadline:
                time.sleep(0.5)
            with transaction(self._sessions) as s:
                mine = [r for r in get_service(s, svc.name).replica_rows if slot_of(r.backend_name)[0] == cluster]
                names = {r.backend_name for r in mine}
                unplaced = sorted((r for r in mine if r.backend_name not in found), key=lambda r: r.index)
                free = sorted((n for n in found if n not in names), key=lambda n: slot_of(n)[1] or 0)
                for row, name in zip(unplaced, free):
                    row.backend_name, row.index = name, slot_of(name)[1] or row.index
                for row in mine:
                    if row.backend_name in found:
                        place(row, found[row.backend_name].endpoint)

    def _stop_one(self, svc: AlgorithmService) -> None:
        # "stopped" before the withdrawal: from then on no health round can publish it again
        # (RoutingTable.set_routed), so the gateway never routes to replicas being stopped
        self._set_desired(svc.name, "stopped")
        self._router.withdraw(svc.name)
        runtime = self._runtime(svc.runtime)
        for name in acted_on(runtime, svc.replica_rows):
            runtime.stop(name)

    def _restart_one(self, svc: AlgorithmService) -> None:
        """All replicas at once, out of rotation meanwhile (back in as each answers READY,
        `_publish`) — unless the service is serving: a cluster then replaces its tasks itself, new
        ones first, while the gateway follows them (`_roll_cluster`); on a runtime of this
        machine's kind, two or more replicas in rotation restart one at a time (`_roll`). Either
        way it keeps answering."""
        runtime = self._runtime(svc.runtime)
        serving = [r for r in svc.replica_rows if r.routed and r.endpoint]
        if isinstance(runtime, ClusterRuntime) and svc.desired_state == "running" and serving:
            self._roll_cluster(svc, runtime)
            return
        if not isinstance(runtime, ClusterRuntime) and svc.desired_state == "running" and len(serving) >= 2:
            self._roll(svc, runtime, serving)
            return
        self._router.withdraw(svc.name)
        for name in acted_on(runtime, svc.replica_rows):
            runtime.restart(name)
        self._set_desired(svc.name, "running")

    def _roll(self, svc: AlgorithmService, runtime: Runtime, serving: list[ServiceReplica]) -> None:
        """Restart the replicas not in rotation at once, then those in rotation one at a time:
        out of rotation, restarted, back in once READY, then the next. One that is not READY
        within the service's ready timeout stops the roll (OrchestrationError); the replicas not
        yet restarted keep serving."""
        names = {r.backend_name for r in serving}
        for r in svc.replica_rows:
            if r.backend_name not in names:
                runtime.restart(r.backend_name)
        timeout = self._ready_timeout(svc.name)
        for i, r in enumerate(serving):
            self._router.withdraw(svc.name, [r.backend_name])
            runtime.restart(r.backend_name)
            health = wait_ready(self._http or self._probe_clients.get(r.endpoint), r.endpoint, timeout)
            if not health.ready:
                raise OrchestrationError(Message(
                    "restart.roll_stopped", "{replica} is not READY after its restart: {error} (see its log); "
                    "{left} replica(s) not restarted yet keep serving", replica=r.backend_name,
                    error=health.error or health.status, left=len(serving) - i - 1))
            self._router.publish(svc.name, {r.backend_name: Endpoint.parse(r.endpoint)})

    def _roll_cluster(self, svc: AlgorithmService, runtime: ClusterRuntime) -> None:
        """The cluster's rolling restart of each of the service's cluster services, its replicas
        left in rotation: as a task is replaced, its row takes the new task's endpoint and the
        gateway is told (the replaced one is stopped only once the new one is healthy, and the
        gateway's failover covers the moment between). A restart the cluster rolled back raises."""
        def follow(found: dict[str, TaskEndpoint]) -> None:
            with transaction(self._sessions) as s:
                moved = follow_tasks(get_service(s, svc.name).replica_rows, found)
            if moved:
                self._router.publish(svc.name, moved)

        for name in acted_on(runtime, svc.replica_rows):
            runtime.restart_service(slot_of(name)[0], timeout=self._ready_timeout(svc.name), on_change=follow)

    def _remove_one(self, svc: AlgorithmService) -> None:
        self._router.withdraw(svc.name)
        runtime = self._runtimes.get(svc.runtime)
        for r in svc.replica_rows:
            if runtime is not None:
                runtime.remove(r.backend_name)
            self._ports.release(r.backend_name)
        with transaction(self._sessions) as s:
            s.delete(s.get(AlgorithmService, svc.id))

    def _set_desired(self, name: str, state: str) -> None:
        with transaction(self._sessions) as s:
            get_service(s, name).desired_state = state

    def _runtime(self, name: str) -> Runtime:
        if name not in self._runtimes:
            raise OrchestrationError(Message("runtime.unavailable", "runtime {name!r} is not available", name=name))
        return self._runtimes[name]

    def _one(self, name: str) -> AlgorithmService:
        with self._sessions() as s:
            return get_service(s, name, selectinload(AlgorithmService.replica_rows))

    def _load(self, name: str | None = None) -> list[AlgorithmService]:
        """Every service (or the one called `name`) with what a view shows, loaded eagerly."""
        q = select(AlgorithmService).order_by(AlgorithmService.name).options(
            selectinload(AlgorithmService.replica_rows).selectinload(ServiceReplica.version),
            selectinload(AlgorithmService.algorithm),
            selectinload(AlgorithmService.version), selectinload(AlgorithmService.group),
            selectinload(AlgorithmService.canary_version))
        if name is not None:
            q = q.where(AlgorithmService.name == name)
        with self._sessions() as s:
            return list(s.scalars(q))

    def _views(self, services: list[AlgorithmService], resources: bool) -> list[ServiceView]:
        by_runtime, errors = self._statuses({svc.runtime for svc in services})
        usage = self._usage(by_runtime) if resources else {}
        statuses = {st.name: st for found in by_runtime.values() for st in found}
        return [self._view(svc, statuses, errors.get(svc.runtime), usage) for svc in services]

    def _statuses(self, runtime_names: set[str]) -> tuple[dict[str, list[ReplicaStatus]], dict[str, str]]:
        """Every replica's status by runtime (one `list` per runtime) and why a runtime could not be read."""
        out: dict[str, list[ReplicaStatus]] = {}
        errors: dict[str, str] = {}
        for name in runtime_names:
            runtime = self._runtimes.get(name)
            if runtime is None:
                continue
            try:
                out[name] = runtime.list()
            except OrchestrationError as e:
                errors[name] = e.message
        return out, errors

    def _usage(self, by_runtime: Mapping[str, list[ReplicaStatus]]) -> dict[str, Usage]:
        """CPU and memory of every running replica: one `usage` call per runtime."""
        out: dict[str, Usage] = {}
        for name, statuses in by_runtime.items():
            try:
                out.update(self._runtimes[name].usage(statuses))
            except OrchestrationError:
                pass  # figures are optional; the state columns already say what is wrong
        return out

    def _view(self, svc: AlgorithmService, statuses: Mapping[str, ReplicaStatus], backend_error: str | None,
              usage: Mapping[str, Usage]) -> ServiceView:
        runtime = self._runtimes.get(svc.runtime)
        serving = {svc.version_id, svc.canary_version_id}
        replicas = [replace(self._replica_view(r, statuses.get(r.backend_name), backend_error,
                                               usage.get(r.backend_name), runtime),
                            version=r.version.tag if r.version is not None else "?",
                            route_note=restored(r.route_note_message, r.route_note),
                            retiring=not r.routed and r.version_id not in serving)
                    for r in svc.replica_rows]
        version, canary = svc.version, svc.canary_version
        return ServiceView(svc.name, svc.algorithm.name, svc.algorithm.task, version.tag if version else "?",
                           version.number if version else None, svc.runtime, svc.desired_state,
                           svc.group.name if svc.group else None,
                           restored(svc.last_error_message, svc.last_error), replicas,
                           canary.tag if canary else None, svc.canary_percent or 0)

    @staticmethod
    def _replica_view(r: ServiceReplica, st: ReplicaStatus | None, backend_error: str | None, usage: Usage | None,
                      runtime: Runtime | None) -> ReplicaView:
        if st is None:
            state = ServiceState.UNKNOWN if backend_error else ServiceState.STOPPED
            message = backend_error or "not known to the runtime"
            return ReplicaView(r.backend_name, r.index, r.port, r.endpoint, r.routed, state, None, None, None, None,
                               None, message)
        uptime = time.time() - st.started_at if st.started_at else None
        log = _log_tail(runtime, r.backend_name) if runtime and st.state in FAILED_STATES else ""
        return ReplicaView(r.backend_name, r.index, r.port, r.endpoint, r.routed, st.state, st.pid, st.container_id,
                           uptime, usage.cpu_percent if usage else None, usage.memory_mb if usage else None,
                           st.message, log)


def _log_tail(runtime: Runtime, name: str, lines: int = LOG_TAIL_LINES) -> str:
    """Why a replica failed, in its own words: the last stderr lines ("" if unreadable)."""
    try:
        return runtime.logs(name, lines, "stderr")
    except OrchestrationError:
        return ""


def acted_on(runtime: Runtime, rows: Iterable[ServiceReplica]) -> list[str]:
    """The replica names to start, stop or restart: every one; of a cluster runtime's, one per
    cluster service (any of its slots acts on all of its tasks: a rolling restart, not N of them)."""
    if not isinstance(runtime, ClusterRuntime):
        return [r.backend_name for r in rows]
    first: dict[str, str] = {}
    for r in rows:
        first.setdefault(slot_of(r.backend_name)[0], r.backend_name)
    return list(first.values())
