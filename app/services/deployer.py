"""The deploy flow (DESIGN §4): export → build → start N new replicas → smoke test → switch →
retire the previous replicas. If any phase fails — an engine, the code store, the disk, a bug —
the new replicas are removed, their ports released, and the running version keeps serving; the
deployment row says which phase failed, why, and carries the build log or the service's log
tail. Rollback is a deploy of an earlier version. Every deployment is recorded with who, when,
version, runtime and each phase's time.

Traffic moves through the routing table: `switch` records the new replicas with the endpoints
their runtime returned and publishes them, then withdraws the old ones; `retire` removes the old
replicas only after that. What a replica runs is said by a ReplicaSpec; the runtime renders it.

On a cluster runtime (`ClusterRuntime`: the swarm) the version runs as one cluster service of N
tasks, `algo-{slug}` (a canary's beside it: `algo-{slug}-{tag}`), and its replicas are the task
slots `algo-{slug}.{n}`. **start** creates it, or rolls it to the version: the cluster starts each
new task first, gates it on its health check and rolls the update back itself when one fails
(RolledBack: the old version serves on). While it rolls, the serving slots' rows follow their
tasks (`_follow`), so the gateway sends calls where a task answers. **switch** then records the
slots; **retire** removes only replicas of other names (a trial's service, another runtime's).
A failure before the switch removes a service this run created, or rolls back one it updated.
"""
from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from app.auth import Action, Actor, internal, require
from app.catalog.codestore.base import CodeStore
from app.db import transaction
from app.errors import AlgoStageError, Message, Missing, Problem, ValidationFailed
from app.models import Algorithm, AlgorithmService, AlgorithmVersion, Deployment, ServiceReplica, utcnow
from app.services.config import ServiceConfigStore
from app.services.ports import PortAllocator
from app.services.routing import Router
from app.services.rows import find_service, follow_tasks, get_service, note_error, note_route
from orchestration.errors import Conflict, DeployError, OrchestrationError, RolledBack, kept
from orchestration.health import Health, wait_ready
from orchestration.locks import file_lock
from orchestration.runtime import (NAME_PREFIX, ClusterRuntime, Endpoint, ReplicaSpec, Resources, Runtime,
                                   ServiceState, TaskEndpoint, slot_of, wait_settled)
from orchestration.smoke import check_contract
from orchestration.workload import LABEL

PHASES = ("export", "build", "start", "smoke", "switch", "retire")
MAX_REPLICAS = 16
PORT_RETRIES = 2     # a replica whose port another process took after the free-port check: other ports
PORT_TAKEN = ("address already in use", "port is already allocated")   # the runner's bind; Docker's


@dataclass(frozen=True)
class DeployRequest:
    name: str
    version: int | None = None          # None: the latest
    runtime: str | None = None          # None: ALGOSTAGE_RUNTIME
    replicas: int | None = None         # None: the service's current count, else the manifest's
    env: Mapping[str, str] = field(default_factory=dict)
    resources: Resources | None = None  # None: the manifest's
    host: str | None = None             # None: the service's `host` setting
    health_timeout: float | None = None  # None: the service's `health_timeout_s` setting
    canary: int | None = None           # a share in % (1-99): run beside the serving version, on trial


@dataclass(frozen=True)
class DeployResult:
    deployment_id: int
    service: str
    version: int
    runtime: str
    urls: list[str]
    phases: dict[str, float]
    environment_built: bool


@dataclass(frozen=True)
class ScaleResult:
    service: str
    replicas: int                       # how many the service runs now
    added: list[str]                    # replicas started (health-gated) and put in rotation
    removed: list[str]                  # replicas taken out of rotation, then removed


@dataclass(frozen=True)
class DeployEvent:
    phase: str
    message: str


@dataclass(frozen=True)
class _New:
    """A replica this run started: its name, index and port, and where it answers once started."""
    name: str
    index: int
    port: int
    endpoint: Endpoint | None = None
    spec: ReplicaSpec | None = None     # what the runtime was given (not for a cluster's tasks)


@dataclass(frozen=True)
class _Plan:
    """Everything decided before the first phase: what runs where, with which limits."""
    algo: Algorithm
    version: AlgorithmVersion
    runtime_name: str
    runtime: Runtime
    replicas: int
    host: str
    health_timeout: float
    settings: Mapping[str, Any]
    canary: int | None = None


class Deployer:
    def __init__(self, sessions: sessionmaker[Session], codestore: CodeStore, runtimes: Mapping[str, Runtime],
                 ports: PortAllocator, router: Router, configs: ServiceConfigStore, home: Path, *,
                 default_runtime: Callable[[], str] = lambda: "supervisor",
                 http: httpx.Client | None = None) -> None:
        self._sessions = sessions
        self._codestore = codestore
        self._runtimes = runtimes
        self._ports = ports
        self._router = router
        self._configs = configs
        self._home = home
        self._default_runtime = default_runtime
        self._http = http or httpx.Client(timeout=30)

    def deploy(self, actor: Actor, req: DeployRequest,
               progress: Callable[[DeployEvent], None] = lambda e: None) -> DeployResult:
        """Run the whole flow; raises DeployError (with .phase and .log) when it fails."""
        require(actor, Action.DEPLOY)
        plan = self._plan(req)
        with self._service_lock(plan.algo.name):
            return _Run(self, actor, plan, req, progress).execute()

    # --- helpers used by _Run -------------------------------------------------------------------

    def _plan(self, req: DeployRequest) -> _Plan:
        algo, version = self._resolve(req)
        current, current_runtime = self._current(algo.name)
        runtime_name = req.runtime or current_runtime or self._default_runtime()
        runtime = self._runtime(runtime_name)
        settings = self._configs.values(algo.name)
        if req.canary is not None:
            self._check_canary(req, current)
            replicas = req.replicas or 1
        else:
            replicas = req.replicas or current or int(version.manifest.get("replicas", 1))
        if not 1 <= replicas <= MAX_REPLICAS:
            raise ValidationFailed([Problem("replicas", _replicas_between(replicas))])
        return _Plan(algo, version, runtime_name, runtime, replicas, req.host or settings["host"],
                     req.health_timeout or settings["health_timeout_s"], settings, req.canary)

    def scale(self, actor: Actor, name: str, replicas: int,
              progress: Callable[[DeployEvent], None] = lambda e: None) -> ScaleResult:
        """Run `replicas` replicas of the version `name` serves, on its runtime. More: the new ones
        go through the deploy flow (build reused, start, smoke) and join the rotation beside the
        running ones, which are untouched (a deployment of the same version is recorded); a failed
        one leaves the service as it was. Fewer: the highest-numbered leave the rotation, then are
        removed. Refused while a version is on trial or the service is stopped."""
        require(actor, Action.DEPLOY)
        if not 1 <= replicas <= MAX_REPLICAS:
            raise ValidationFailed([Problem("replicas", _replicas_between(replicas))])
        with self._service_lock(name):
            svc = self._scalable(name)
            serving = sorted((r for r in svc.replica_rows if r.version_id == svc.version_id), key=lambda r: r.index)
            runtime = self._runtime(svc.runtime)
            if isinstance(runtime, ClusterRuntime) and serving and slot_of(serving[0].backend_name)[1] is not None:
                return self._scale_cluster(svc, runtime, slot_of(serving[0].backend_name)[0], serving, replicas,
                                           progress)
            if replicas > len(serving):
                req = DeployRequest(name, svc.version.number, svc.runtime, replicas - len(serving),
                                    dict(svc.environment or {}), _resources(svc.resources))
                run = _Run(self, actor, self._plan(req), req, progress, adding=True)
                run.execute()
                return ScaleResult(name, replicas, [n.name for n in run.new], [])
            removed = self._shrink(svc, serving[replicas:])
            return ScaleResult(name, replicas if removed else len(serving), [], removed)

    def _scale_cluster(self, svc: AlgorithmService, runtime: ClusterRuntime, cluster: str,
                       serving: list[ServiceReplica], replicas: int,
                       progress: Callable[[DeployEvent], None]) -> ScaleResult:
        """The cluster runs `replicas` tasks of the service's one cluster service: new tasks join the
        rotation once the cluster counts them running (healthy); tasks it ends leave it at once (they
        drain meanwhile). If the cluster does not run them healthy in time, it is scaled back."""
        before = len(serving)
        runtime.scale(cluster, replicas)
        progress(DeployEvent("start", f"{cluster}: {before} → {replicas} task(s)"))
        timeout = float(self._configs.values(svc.name)["health_timeout_s"]) + 60
        deadline = time.monotonic() + timeout
        while True:
            found = runtime.endpoints(cluster)
            if len(found) == replicas and all(t.version == svc.version.tag for t in found.values()):
                break
            if time.monotonic() > deadline:
                runtime.scale(cluster, before)
                raise DeployError(Message("scale.not_healthy", "{cluster} did not run {replicas} healthy task(s) "
                                          "within {seconds:g} s; scaled back to {before}", cluster=cluster,
                                          replicas=replicas, seconds=timeout, before=before),
                                  phase="start", log=runtime.logs(cluster, 60, "stderr"))
            time.sleep(0.5)
        known = {r.backend_name for r in serving}
        added = sorted(set(found) - known, key=lambda n: slot_of(n)[1] or 0)
        removed = sorted(known - set(found), key=lambda n: slot_of(n)[1] or 0)
        if removed:
            self._router.withdraw(svc.name, removed)
        with transaction(self._sessions) as s:
            row = get_service(s, svc.name)
            for r in [r for r in row.replica_rows if r.backend_name in removed]:
                row.replica_rows.remove(r)
            for name in added:
                task = found[name]
                row.replica_rows.append(ServiceReplica(version_id=row.version_id, index=slot_of(name)[1] or 0,
                                                       backend_name=name, port=task.endpoint.port,
                                                       endpoint=task.endpoint.url, routed=True,
                                                       route_note="in rotation"))
            row.replicas = replicas
        if added:
            self._router.publish(svc.name, {name: found[name].endpoint for name in added})
        return ScaleResult(svc.name, replicas, added, removed)

    def _scalable(self, name: str) -> AlgorithmService:
        with self._sessions() as s:
            svc = get_service(s, name, selectinload(AlgorithmService.replica_rows),
                              selectinload(AlgorithmService.version))
        problems = []
        if svc.canary_version_id is not None:
            problems.append(Problem("canary", Message("canary.on_trial_first", "{name} has a version on trial: promote or abort it first",
                                                    name=name)))
        if svc.desired_state != "running" or svc.version is None:
            problems.append(Problem("service", Message("service.stopped_first", "{name} is stopped: start it first", name=name)))
        if problems:
            raise ValidationFailed(problems)
        return svc

    def _shrink(self, svc: AlgorithmService, rows: list[ServiceReplica]) -> list[str]:
        """Out of rotation first (the gateway stops sending them calls), then removed."""
        names = [r.backend_name for r in rows]
        if not names:
            return []
        self._router.withdraw(svc.name, names)
        runtime = self._runtime(svc.runtime)
        for name in names:
            runtime.remove(name)
            self._ports.release(name)
        with transaction(self._sessions) as s:
            row = get_service(s, svc.name)
            for r in [r for r in row.replica_rows if r.backend_name in names]:
                row.replica_rows.remove(r)
            row.replicas = len([r for r in row.replica_rows if r.version_id == row.version_id])
        return names

    def _check_canary(self, req: DeployRequest, current: int | None) -> None:
        problems = []
        if not 1 <= (req.canary or 0) <= 99:
            problems.append(Problem("canary", Message("canary.share", "a share between 1 and 99 %, got {share}", share=req.canary)))
        with self._sessions() as s:
            svc = find_service(s, req.name)
            on_trial, runtime = (svc.canary_version_id, svc.runtime) if svc else (None, None)
        if not current:
            problems.append(Problem("canary", Message("canary.nothing_served", "{name} serves no version yet: deploy one before a canary",
                                                    name=req.name)))
        if on_trial:
            problems.append(Problem("canary", Message("canary.on_trial", "{name} already has a version on trial: promote or abort it",
                                                    name=req.name)))
        if runtime and req.runtime and req.runtime != runtime:
            problems.append(Problem("runtime", Message("canary.same_runtime", "a canary runs on the service's runtime ({runtime})",
                                                     runtime=runtime)))
        if problems:
            raise ValidationFailed(problems)

    def promote(self, actor: Actor, name: str,
                progress: Callable[[DeployEvent], None] = lambda e: None) -> DeployResult:
        """The version on trial becomes the served one: a health-gated deploy of it on as many
        replicas as the service runs, which retires the trial's and the previous version's replicas."""
        require(actor, Action.DEPLOY)
        svc = self._on_trial(name)
        return self.deploy(actor, DeployRequest(name, version=svc.canary_version.number, runtime=svc.runtime,
                                                replicas=svc.replicas, env=dict(svc.environment or {})), progress)

    def abort(self, actor: Actor, name: str) -> list[str]:
        """End the trial: its replicas leave rotation, then are removed; the served version is
        untouched. Returns the replicas removed."""
        require(actor, Action.DEPLOY)
        svc = self._on_trial(name)
        trial = [r.backend_name for r in svc.replica_rows if r.version_id == svc.canary_version_id]
        self._router.withdraw(name, trial)
        runtime = self._runtimes.get(svc.runtime)
        for replica in trial:
            if runtime is not None:
                runtime.remove(replica)
            self._ports.release(replica)
        with transaction(self._sessions) as s:
            row = get_service(s, name)
            for r in [r for r in row.replica_rows if r.backend_name in trial]:
                row.replica_rows.remove(r)
            row.canary_version_id, row.canary_percent = None, 0
        self._router.withdraw(name, [])   # the gateway drops the trial's share
        return trial

    def _on_trial(self, name: str) -> AlgorithmService:
        with self._sessions() as s:
            svc = get_service(s, name, selectinload(AlgorithmService.replica_rows),
                              selectinload(AlgorithmService.canary_version))
        if svc.canary_version_id is None:
            raise ValidationFailed([Problem("canary", Message("canary.none", "{name} has no version on trial", name=name))])
        return svc

    def _resolve(self, req: DeployRequest) -> tuple[Algorithm, AlgorithmVersion]:
        with self._sessions() as s:
            algo = s.scalar(select(Algorithm).where(Algorithm.name == req.name))
            if algo is None:
                raise Missing([Problem("algorithm", Message("algorithm.missing", "no algorithm {name!r}", name=req.name))])
            q = select(AlgorithmVersion).where(AlgorithmVersion.algorithm_id == algo.id)
            q = q.where(AlgorithmVersion.number == req.version) if req.version else \
                q.order_by(AlgorithmVersion.number.desc()).limit(1)
            version = s.scalar(q)
        if version is None:
            raise Missing([Problem("version", Message("version.missing", "{name} has no version {version}", name=req.name,
                                                           version=req.version))])
        return algo, version

    def _current(self, name: str) -> tuple[int | None, str | None]:
        """How many replicas the service runs now and on which runtime (a redeploy keeps both unless
        told otherwise); (None, None) if it is not deployed."""
        with self._sessions() as s:
            svc = find_service(s, name)
            return (svc.replicas, svc.runtime) if svc else (None, None)

    def _runtime(self, name: str) -> Runtime:
        if name not in self._runtimes:
            raise ValidationFailed([Problem("runtime", Message("runtime.unknown", "unknown runtime {name!r}; known: {known}",
                                                               name=name, known=", ".join(self._runtimes)))])
        return self._runtimes[name]

    @contextmanager
    def _service_lock(self, name: str) -> Iterator[None]:
        """One deploy per service at a time on this host; a second one is refused, not queued."""
        try:
            with file_lock(self._home / "locks" / f"deploy-{name}.lock", wait=False):
                yield
        except BlockingIOError:
            raise Conflict(Message("deploy.in_progress", "another deploy of {name} is in progress", name=name),
                           hint=Message("deploy.in_progress.hint", "wait for it to end")) from None

    @internal("the deploy flow's first phase, run inside `deploy` after its check")
    def export(self, name: str, version: AlgorithmVersion) -> Path:
        """The package tree at `version`, exported once under releases/ and reused."""
        target = self._home / "releases" / name / f"{version.tag}-{version.commit_sha[:10]}"
        if (target / ".complete").exists():
            return target
        tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            self._codestore.export(name, version.tag, tmp)
            (tmp / ".complete").write_text(version.commit_sha)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
        return target


class _Run:
    """One deployment in progress: its phases, timings, log, and what to undo on failure."""

    def __init__(self, d: Deployer, actor: Actor, plan: _Plan, req: DeployRequest,
                 progress: Callable[[DeployEvent], None], *, adding: bool = False) -> None:
        """`adding`: the new replicas join the serving version's (a scale-up) instead of replacing them."""
        self.d, self.actor, self.plan, self.req = d, actor, plan, req
        self.adding = adding
        self.algo, self.version, self.runtime = plan.algo, plan.version, plan.runtime
        self.progress = progress
        self.phases: dict[str, float] = {}
        self.log_lines: list[str] = []
        self.new: list[_New] = []
        self.resources = Resources()
        self.env_built = False
        # a cluster runtime runs the version as one cluster service of N tasks, which it rolls itself
        self.cluster = isinstance(self.runtime, ClusterRuntime) and not adding
        self.cluster_name = f"{NAME_PREFIX}{self.algo.name}" + (f"-{self.version.tag}" if plan.canary else "")
        self.cluster_existed = False
        self.switched = False          # the new replicas are recorded: from then on they serve and are kept
        self.deployment_id = self._record_start()

    def log(self, phase: str, line: str) -> None:
        self.log_lines.append(line)
        self.progress(DeployEvent(phase, line))

    def execute(self) -> DeployResult:
        phase = "export"
        try:
            package = self._timed("export", lambda: self.d.export(self.algo.name, self.version))
            specs = self._specs(package)
            phase = "build"
            self._timed("build", lambda: self._build(specs[0]))
            phase = "start"
            self._timed("start", lambda: self._start_cluster(specs[0]) if self.cluster else self._start(specs))
            phase = "smoke"
            self._timed("smoke", lambda: self._smoke(package))
            phase = "switch"
            old = self._timed("switch", self._switch)
            phase = "retire"
            self._timed("retire", lambda: self._retire(old))   # nothing for a canary: both versions serve
        except Exception as e:  # noqa: BLE001 - whatever failed, nothing may be left half-done
            self._fail(phase, e)
            if isinstance(e, (AlgoStageError, OSError)):
                raise self._as_deploy_error(phase, e) from e
            raise
        self._record_end("succeeded")
        return DeployResult(self.deployment_id, self.algo.name, self.version.number, self.plan.runtime_name,
                            [n.endpoint.url for n in self.new if n.endpoint], dict(self.phases), self.env_built)

    def _timed(self, phase: str, fn: Callable[[], Any]) -> Any:
        self.log(phase, f"— {phase}")
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            self.phases[phase] = round(time.perf_counter() - t0, 3)

    def _build(self, spec: ReplicaSpec) -> None:
        self.env_built = self.runtime.build(spec, lambda line: self.log("build", line))

    # --- what runs --------------------------------------------------------------------------------

    def _specs(self, package: Path) -> list[ReplicaSpec]:
        """One spec per new replica (ports are reserved in `_start`, one at a time)."""
        manifest, settings = self.version.manifest, self.plan.settings
        res = self.resources = self.req.resources or manifest_resources(manifest)
        env = replica_env(self.algo.name, self.version, settings, self.req.env)
        return [ReplicaSpec(self.algo.name, index, self.version.tag, self.version.commit_sha, package, 0,
                            self.plan.host, manifest.get("server") or None,
                            {**env, "ALGOSTAGE_REPLICA": str(index)}, res, self.version.requirements_hash,
                            bool(settings["autorestart"]))
                for index in self._free_indices()]

    def _free_indices(self) -> list[int]:
        with self.d._sessions() as s:
            used = set(s.scalars(select(ServiceReplica.index).join(AlgorithmService)
                                 .where(AlgorithmService.name == self.algo.name)))
        free = (i for i in range(1, 10_000) if i not in used)
        return [next(free) for _ in range(self.plan.replicas)]

    def _start(self, specs: list[ReplicaSpec]) -> None:
        for spec in specs:
            spec = ReplicaSpec(**{**spec.__dict__, "port": self.d._ports.reserve(spec.name)})
            self.new.append(_New(spec.name, spec.index, spec.port, spec=spec))
            for attempt in range(PORT_RETRIES + 1):
                try:
                    self.new[-1] = self._deploy(self.new[-1].spec)
                    break
                except DeployError as e:
                    if attempt == PORT_RETRIES or not _port_taken(str(e) + e.log):
                        raise
                    self._move(len(self.new) - 1)

    def _deploy(self, spec: ReplicaSpec) -> _New:
        endpoint = self.runtime.deploy(spec, lambda line: self.log("start", line))
        return _New(spec.name, spec.index, spec.port, endpoint, spec)

    def _move(self, i: int) -> None:
        """Replica `i` could not bind its port: another process took it after the free-port check
        (a client's outgoing connection may take any port). It gets another port; the taken one's
        reservation is dropped once the new one is held, so the allocator does not hand it back."""
        new = self.new[i]
        port = self.d._ports.reserve(new.name)
        self.d._ports.release(new.name, new.port)
        self.log("start", f"{new.name}: port {new.port} was taken by another process; on port {port} instead")
        self.new[i] = _New(new.name, new.index, port, None, ReplicaSpec(**{**new.spec.__dict__, "port": port}))

    def _start_cluster(self, spec: ReplicaSpec) -> None:
        """The cluster service created with N tasks of the version, or rolled to it (new tasks first,
        each gated by its health check; the cluster rolls back itself when one fails). Meanwhile the
        serving rows follow their tasks (`_follow`); its task slots are the new replicas."""
        runtime: ClusterRuntime = self.runtime  # type: ignore[assignment]
        self.cluster_existed = runtime.status(f"{self.cluster_name}.1").exists
        found = runtime.deploy_service(self.cluster_name, spec, self.plan.replicas,
                                       lambda line: self.log("start", line), timeout=self.plan.health_timeout,
                                       on_change=self._follow)
        self.new = [_New(name, slot_of(name)[1] or 0, task.endpoint.port, task.endpoint)
                    for name, task in sorted(found.items(), key=lambda item: slot_of(item[0])[1] or 0)]

    def _follow(self, found: dict[str, TaskEndpoint]) -> None:
        """While the cluster rolls the serving service, each serving slot's row follows its running
        task (old or new version) and the gateway is told, so calls go where a task answers now."""
        if not self.cluster_existed or self.plan.canary:
            return
        with transaction(self.d._sessions) as s:
            versions = dict(s.execute(select(AlgorithmVersion.tag, AlgorithmVersion.id)
                                      .where(AlgorithmVersion.algorithm_id == self.algo.id)).all())
            moved = follow_tasks(s.scalars(select(ServiceReplica).where(ServiceReplica.backend_name.in_(list(found)))),
                                 found, versions)
        if moved:
            self.d._router.publish(self.algo.name, moved)
            self.log("start", "the gateway follows the roll: " + ", ".join(f"{n} at {e.url}" for n, e in moved.items()))

    # --- health gate ------------------------------------------------------------------------------

    def _smoke(self, package: Path) -> None:
        for i in range(len(self.new)):
            health = self._healthy(i)
            new = self.new[i]
            if not health.ready:
                raise DeployError(Message("deploy.setup_failed", "{name} is not healthy: SETUP_FAILED (setup() raised) — {error}",
                                          name=new.name, error=health.error)
                                  if health.status == "SETUP_FAILED" else
                                  Message("deploy.not_healthy", "{name} is not healthy: {error}", name=new.name,
                                          error=health.error), phase="smoke",
                                  log=self.runtime.logs(new.name, 60, "stderr"))
            self.log("smoke", f"{new.name}: /health {health.status} at {new.endpoint.url}")
        self._wait_running()
        first, endpoint = self.new[0], self.new[0].endpoint
        problems = check_contract(endpoint.url, self._sample(package), self.version.manifest.get("task", "json"))
        if problems:
            raise DeployError(Message("deploy.smoke_failed", "smoke test failed: {problems}", problems=problems), phase="smoke",
                              log=self.runtime.logs(first.name, 60, "stderr"))
        self.log("smoke", "smoke test passed: /health, /info, /predict on the first sample, /metrics")

    def _healthy(self, i: int) -> Health:
        """/health of replica `i` once READY, or the last one read; a replica that stopped because
        another process took its port after the free-port check is moved to another port first."""
        for attempt in range(PORT_RETRIES + 1):
            new = self.new[i]
            watch = _Exits(self.runtime, new.name)
            health = wait_ready(self.d._http, new.endpoint.url, self.plan.health_timeout, alive=watch)
            if health.ready or self.cluster or attempt == PORT_RETRIES or not watch.reason or \
                    not _port_taken(self.runtime.logs(new.name, 60, "stderr")):
                return health
            self._move(i)
            self.new[i] = self._deploy(self.new[i].spec)
        return health

    def _wait_running(self) -> None:
        """Until the runtime, too, counts the new replicas as started (supervisord's `startsecs`),
        so a finished deploy never shows STARTING; DeployError if one stops meanwhile."""
        states = wait_settled(lambda n: self.runtime.status(n).state, [n.name for n in self.new],
                              self.plan.health_timeout, transient=(ServiceState.STARTING, ServiceState.UNKNOWN))
        for name, state in states.items():
            if state != ServiceState.RUNNING:
                raise DeployError(Message("deploy.stopped_after_health", "{name} is {state} after answering /health",
                                          name=name, state=state.value), phase="smoke",
                                  log=self.runtime.logs(name, 60, "stderr"))

    def _sample(self, package: Path) -> bytes | str | None:
        listed = self.version.manifest.get("samples") or []
        candidates = [package / p for p in listed] or sorted((package / "samples").glob("*"))
        files = [p for p in candidates if p.is_file()]
        if not files:
            return None
        return files[0].read_text() if files[0].suffix in (".txt", ".json") else files[0].read_bytes()

    # --- traffic ----------------------------------------------------------------------------------

    def _switch(self) -> list[tuple[str, str]]:
        """In one transaction: the new replicas recorded with their endpoints and in rotation, the
        old ones out of it — or, for a canary, the new ones beside them with their share; then the
        router told (it reloads what it serves from). Returns the replicas to retire, still running."""
        names = {n.name for n in self.new}
        with transaction(self.d._sessions) as s:
            svc = self._service_row(s)
            old = [] if self.plan.canary or self.adding else \
                [(svc.runtime, r.backend_name) for r in svc.replica_rows if r.backend_name not in names]
            kept = {r.backend_name: r for r in svc.replica_rows if r.backend_name in names}   # a cluster's slots
            if self.plan.canary:
                self._record_canary(svc)
            elif self.adding:
                svc.replicas = len([r for r in svc.replica_rows if r.version_id == svc.version_id]) + len(self.new)
            else:
                self._record_version(svc)
            for n in self.new:
                row = kept.get(n.name)
                if row is None:
                    svc.replica_rows.append(row := ServiceReplica(backend_name=n.name))
                row.version_id, row.index, row.port, row.endpoint = self.version.id, n.index, n.port, n.endpoint.url
                row.routed = True
                note_route(row, "in rotation")
        self.switched = True
        self.d._router.publish(self.algo.name, {n.name: n.endpoint for n in self.new})
        if old:
            self.d._router.withdraw(self.algo.name, [name for _, name in old])
        what = f"{self.version.tag} on trial for {self.plan.canary}% of the calls" if self.plan.canary \
            else f"{self.version.tag} on {len(self.new)} more replica(s)" if self.adding else self.version.tag
        self.log("switch", f"{self.algo.name} now serves {what}")
        return old

    def _record_version(self, svc: AlgorithmService) -> None:
        for r in svc.replica_rows:
            r.routed = False
            note_route(r, "out: retired by a deploy")
        svc.version_id, svc.runtime, svc.replicas = self.version.id, self.plan.runtime_name, self.plan.replicas
        svc.environment, svc.desired_state = dict(self.req.env), "running"
        note_error(svc, "")
        svc.canary_version_id, svc.canary_percent = None, 0
        svc.resources = {"cpus": self.resources.cpus, "memory_mb": self.resources.memory_mb}

    def _record_canary(self, svc: AlgorithmService) -> None:
        svc.canary_version_id, svc.canary_percent = self.version.id, self.plan.canary
        note_error(svc, "")

    def _service_row(self, s: Session) -> AlgorithmService:
        svc = find_service(s, self.algo.name)
        if svc is None:
            svc = AlgorithmService(name=self.algo.name, algorithm_id=self.algo.id, runtime=self.plan.runtime_name,
                                   created_by=self.actor.username)
            s.add(svc)
            s.flush()
        return svc

    def _retire(self, old: list[tuple[str, str]]) -> None:
        """Remove the old replicas (out of rotation since the switch). One that cannot be removed
        is logged and left in the table, withdrawn, for the manager to remove later."""
        for runtime_name, name in old:
            if self.cluster and slot_of(name)[0] == self.cluster_name:
                how = "ended by the cluster"   # a slot the roll dropped (fewer replicas): its task is gone
            else:
                try:
                    if runtime_name in self.d._runtimes:
                        self.d._runtimes[runtime_name].remove(name)
                except OrchestrationError as e:
                    self.log("retire", f"{name} could not be removed ({e}); it no longer receives calls")
                    continue
                how = "removed"
            self.d._ports.release(name)
            with transaction(self.d._sessions) as s:
                row = s.scalar(select(ServiceReplica).where(ServiceReplica.backend_name == name))
                if row is not None:
                    s.delete(row)
            self.log("retire", f"{name} {how}")

    # --- failure ----------------------------------------------------------------------------------

    def _fail(self, phase: str, error: Exception) -> None:
        """Undo what this run started (nothing of it is in the routing table before `switch`)."""
        reason = error.message if isinstance(error, AlgoStageError) else str(error)
        if phase in ("switch", "retire") and self.switched:
            self._record_end("failed", phase, reason, getattr(error, "log", ""))
            return
        if self.cluster and phase in ("start", "smoke"):
            self._undo_cluster(phase, error)
        for new in [] if self.cluster else self.new:
            try:
                self.runtime.remove(new.name)
            except OrchestrationError as e:
                self.log(phase, f"cleanup of {new.name} failed: {e}")
            self.d._ports.release(new.name)
        with transaction(self.d._sessions) as s:
            svc = find_service(s, self.algo.name)
            if svc is not None:
                note_error(svc, Message("deploy.failed_at", "deploy of {version} failed at {phase}: {error}",
                                        version=self.version.tag, phase=Message(f"phase.{phase}", phase), error=reason))
        self._record_end("failed", phase, reason, getattr(error, "log", ""))

    def _undo_cluster(self, phase: str, error: Exception) -> None:
        """A cluster service this run created is removed; one it rolled to the new version is rolled
        back (unless the cluster did that itself), the serving rows following the tasks back."""
        runtime: ClusterRuntime = self.runtime  # type: ignore[assignment]
        try:
            if not self.cluster_existed:
                runtime.remove(self.cluster_name)
            elif isinstance(error, RolledBack):
                self.log(phase, f"the cluster rolled {self.cluster_name} back to the serving version")
            elif runtime.status(f"{self.cluster_name}.1").labels.get(f"{LABEL}.version") == self.version.tag:
                runtime.rollback(self.cluster_name)
                self.log(phase, f"{self.cluster_name} rolled back to the serving version")
            self._follow(runtime.endpoints(self.cluster_name))
        except OrchestrationError as e:
            self.log(phase, f"cleanup of {self.cluster_name} failed: {e}")

    def _as_deploy_error(self, phase: str, e: Exception) -> DeployError:
        if isinstance(e, DeployError):
            return DeployError(e.message, phase=e.phase or phase, log=e.log or "\n".join(self.log_lines[-80:]))
        hint = getattr(e, "hint", "")
        return DeployError(e.message if isinstance(e, AlgoStageError) else str(e), phase=phase, log="\n".join(self.log_lines[-80:]), hint=hint)

    def _record_start(self) -> int:
        with transaction(self.d._sessions) as s:
            dep = Deployment(service_name=self.algo.name, algorithm_id=self.algo.id, version_id=self.version.id,
                             runtime=self.plan.runtime_name, replicas=self.plan.replicas, status="running",
                             actor=self.actor.username)
            s.add(dep)
            s.flush()
            return dep.id

    def _record_end(self, status: str, phase: str = "", error: str = "", log: str = "") -> None:
        with transaction(self.d._sessions) as s:
            dep = s.get(Deployment, self.deployment_id)
            dep.status, dep.failed_phase = status, phase
            dep.error, dep.error_message = kept(error, 4000)
            dep.phases, dep.finished_at = dict(self.phases), utcnow()
            dep.build_log = (log or "\n".join(self.log_lines))[-200_000:]


class _Exits:
    """Called while a new replica is awaited: why it is not coming up, or None. Either the runtime
    holds it stopped (supervisord gave up on it: FATAL; EXITED; STOPPED), or its process has been
    started again since the first one seen and its log says its port was taken: a runner that
    exits only after supervisord's `startsecs` (a slow start on a busy machine) counted as started,
    so `autorestart` starts it again and again and it is never seen stopped. `reason` keeps the
    answer given."""

    def __init__(self, runtime: Runtime, name: str) -> None:
        self.runtime, self.name = runtime, name
        self.pid: int | None = None
        self.reason: str | None = None

    def __call__(self) -> str | None:
        status = self.runtime.status(self.name)
        if status.state in (ServiceState.FATAL, ServiceState.EXITED, ServiceState.STOPPED):
            self.reason = status.state.value
        elif status.pid and self.pid and status.pid != self.pid and \
                _port_taken(self.runtime.logs(self.name, 60, "stderr")):
            self.reason = "started again after its port was taken"
        self.pid = self.pid or status.pid
        return self.reason


def _port_taken(text: str) -> bool:
    return any(words in text.lower() for words in PORT_TAKEN)


def _replicas_between(replicas: int) -> Message:
    return Message("replicas.between", "must be between 1 and {max}, got {replicas}", max=MAX_REPLICAS,
                   replicas=replicas)


def replica_env(service: str, version: AlgorithmVersion, settings: Mapping[str, Any],
                extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of every replica of `version`: the user's `extra`, then the platform's."""
    return {**extra, "ALGOSTAGE_SERVICE": service, "ALGOSTAGE_VERSION": version.tag,
            "ALGOSTAGE_COMMIT": version.commit_sha, "ALGOSTAGE_MAX_BODY_MB": str(settings["max_body_mb"]),
            "ALGOSTAGE_MAX_BATCH": str(settings["max_batch"])}


def _resources(stored: Mapping[str, Any] | None) -> Resources | None:
    """A service's recorded limits ({"cpus", "memory_mb"}); None when none were recorded."""
    return Resources(stored.get("cpus"), stored.get("memory_mb")) if stored else None


def manifest_resources(manifest: Mapping[str, Any]) -> Resources:
    """The manifest's `resources:` as limits."""
    declared = manifest.get("resources", {}) or {}
    return Resources(declared.get("cpus"), parse_memory_mb(declared.get("memory")))


def parse_memory_mb(value: object) -> int | None:
    """'512m' → 512, '1g' → 1024, 256 → 256, None → None."""
    if value is None:
        return None
    m = re.fullmatch(r"(\d+)\s*([mMgG]?)[bB]?", str(value))
    if not m:
        return None
    return int(m[1]) * (1024 if m[2].lower() == "g" else 1)
