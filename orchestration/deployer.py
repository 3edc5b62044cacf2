"""The deploy flow (DESIGN §4): export → build → start N new replicas → smoke test → switch →
retire the previous replicas. If any phase fails, the new replicas are removed, their ports
released, and the running version keeps serving; the deployment row says which phase failed,
why, and carries the build log or the service's log tail. Rollback is a deploy of an earlier
version. Every deployment is recorded with who, when, version, runtime and each phase's time.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.auth import Action, Actor, require
from app.codestore.base import CodeStore
from app.db import transaction
from app.errors import Problem, ValidationFailed
from app.locks import file_lock
from app.models import Algorithm, AlgorithmService, AlgorithmVersion, Deployment, ServiceReplica, utcnow
from orchestration.builder import EnvironmentBuilder
from orchestration.errors import DeployError, OrchestrationError
from orchestration.health import wait_ready
from orchestration.ports import PortAllocator
from orchestration.runner.contract import check_contract
from orchestration.runtime import ReplicaSpec, Resources, Runtime, ServiceState, replica_name, wait_settled

REPO_ROOT = Path(__file__).resolve().parent.parent
PHASES = ("export", "build", "start", "smoke", "switch", "retire")


@dataclass(frozen=True)
class DeployRequest:
    name: str
    version: int | None = None          # None: the latest
    runtime: str | None = None          # None: ALGOSTAGE_RUNTIME
    replicas: int | None = None         # None: the manifest's
    env: Mapping[str, str] = field(default_factory=dict)
    resources: Resources | None = None  # None: the manifest's
    host: str = "127.0.0.1"
    health_timeout: float = 120.0


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
class DeployEvent:
    phase: str
    message: str


class Deployer:
    def __init__(self, sessions: sessionmaker[Session], codestore: CodeStore, runtimes: Mapping[str, Runtime],
                 builder: EnvironmentBuilder, ports: PortAllocator, home: Path, *,
                 default_runtime: Callable[[], str] = lambda: "supervisor",
                 http: httpx.Client | None = None) -> None:
        self._sessions = sessions
        self._codestore = codestore
        self._runtimes = runtimes
        self._builder = builder
        self._ports = ports
        self._home = home
        self._default_runtime = default_runtime
        self._http = http or httpx.Client(timeout=30)

    def deploy(self, actor: Actor, req: DeployRequest,
               progress: Callable[[DeployEvent], None] = lambda e: None) -> DeployResult:
        """Run the whole flow; raises DeployError (with .phase and .log) when it fails."""
        require(actor, Action.DEPLOY)
        algo, version = self._resolve(req)
        runtime_name = req.runtime or self._default_runtime()
        runtime = self._runtime(runtime_name)
        replicas = req.replicas or int(version.manifest.get("replicas", 1))
        if not 1 <= replicas <= 16:
            raise ValidationFailed([Problem("replicas", f"must be between 1 and 16, got {replicas}")])
        with self._service_lock(algo.name):
            run = _Run(self, actor, algo, version, runtime_name, runtime, replicas, req, progress)
            return run.execute()

    # --- helpers used by _Run -------------------------------------------------------------------

    def _resolve(self, req: DeployRequest) -> tuple[Algorithm, AlgorithmVersion]:
        with self._sessions() as s:
            algo = s.scalar(select(Algorithm).where(Algorithm.name == req.name))
            if algo is None:
                raise ValidationFailed([Problem("algorithm", f"no algorithm {req.name!r}")])
            q = select(AlgorithmVersion).where(AlgorithmVersion.algorithm_id == algo.id)
            q = q.where(AlgorithmVersion.number == req.version) if req.version else \
                q.order_by(AlgorithmVersion.number.desc()).limit(1)
            version = s.scalar(q)
        if version is None:
            raise ValidationFailed([Problem("version", f"{req.name} has no version {req.version}")])
        return algo, version

    def _runtime(self, name: str) -> Runtime:
        if name not in self._runtimes:
            raise ValidationFailed([Problem("runtime", f"unknown runtime {name!r}; known: "
                                                       f"{', '.join(self._runtimes)}")])
        return self._runtimes[name]

    @contextmanager
    def _service_lock(self, name: str) -> Iterator[None]:
        """One deploy per service at a time on this host; a second one is refused, not queued."""
        try:
            with file_lock(self._home / "locks" / f"deploy-{name}.lock", wait=False):
                yield
        except BlockingIOError:
            raise OrchestrationError(f"another deploy of {name} is in progress") from None

    def export(self, name: str, version: AlgorithmVersion) -> Path:
        """The package tree at `version`, exported once under releases/ and reused."""
        target = self._home / "releases" / name / f"{version.tag}-{version.commit_sha[:10]}"
        if (target / ".complete").exists():
            return target
        tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self._codestore.export(name, version.tag, tmp)
        (tmp / ".complete").write_text(version.commit_sha)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
        return target


class _Run:
    """One deployment in progress: its phases, timings, log, and what to undo on failure."""

    def __init__(self, d: Deployer, actor: Actor, algo: Algorithm, version: AlgorithmVersion, runtime_name: str,
                 runtime: Runtime, replicas: int, req: DeployRequest, progress: Callable[[DeployEvent], None]) -> None:
        self.d, self.actor, self.algo, self.version = d, actor, algo, version
        self.runtime_name, self.runtime, self.replicas, self.req = runtime_name, runtime, replicas, req
        self.progress = progress
        self.phases: dict[str, float] = {}
        self.log_lines: list[str] = []
        self.new: list[ReplicaSpec] = []
        self.env_built = False
        self.deployment_id = self._record_start()

    def log(self, phase: str, line: str) -> None:
        self.log_lines.append(line)
        self.progress(DeployEvent(phase, line))

    def execute(self) -> DeployResult:
        phase = "export"
        try:
            package = self._timed("export", lambda: self.d.export(self.algo.name, self.version))
            phase = "build"
            python = self._timed("build", lambda: self._build(package))
            phase = "start"
            self._timed("start", lambda: self._start(package, python))
            phase = "smoke"
            self._timed("smoke", lambda: self._smoke(package))
            phase = "switch"
            old = self._timed("switch", self._switch)
            phase = "retire"
            self._timed("retire", lambda: self._retire(old))
        except (OrchestrationError, OSError) as e:
            self._fail(phase, e)
            raise self._as_deploy_error(phase, e) from e
        self._record_end("succeeded")
        urls = [f"http://{self.req.host}:{s.port}" for s in self.new]
        return DeployResult(self.deployment_id, self.algo.name, self.version.number, self.runtime_name, urls,
                            dict(self.phases), self.env_built)

    def _timed(self, phase: str, fn: Callable[[], object]):  # noqa: ANN202 - passes fn's result
        self.log(phase, f"— {phase}")
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            self.phases[phase] = round(time.perf_counter() - t0, 3)

    def _build(self, package: Path) -> Path | None:
        if self.runtime_name != "supervisor":
            return None  # container runtimes build their image in deploy()
        env = self.d._builder.ensure(package, lambda line: self.log("build", line))
        self.env_built = env.built
        return env.python

    def _start(self, package: Path, python: Path | None) -> None:
        for index in self._free_indices():
            name = replica_name(self.algo.name, index)
            port = self.d._ports.reserve(name)
            spec = self._spec(package, python, index, port)
            self.new.append(spec)
            self.runtime.deploy(spec, lambda line: self.log("start", line))

    def _free_indices(self) -> list[int]:
        with self.d._sessions() as s:
            used = set(s.scalars(select(ServiceReplica.index).join(AlgorithmService)
                                 .where(AlgorithmService.name == self.algo.name)))
        free = (i for i in range(1, 10_000) if i not in used)
        return [next(free) for _ in range(self.replicas)]

    def _spec(self, package: Path, python: Path | None, index: int, port: int) -> ReplicaSpec:
        manifest = self.version.manifest
        env = {**self.req.env, "ALGOSTAGE_SERVICE": self.algo.name, "ALGOSTAGE_REPLICA": str(index),
               "ALGOSTAGE_VERSION": self.version.tag, "ALGOSTAGE_COMMIT": self.version.commit_sha,
               "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO_ROOT)}
        if python is not None:
            env["PATH"] = f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}"
        res = self.req.resources or Resources(manifest.get("resources", {}).get("cpus"),
                                              parse_memory_mb(manifest.get("resources", {}).get("memory")))
        return ReplicaSpec(self.algo.name, index, self.version.tag, self.version.commit_sha, package, port,
                           self._command(manifest, python, package, port), env, res, python.parent.parent
                           if python else None, self.version.requirements_hash)

    def _command(self, manifest: dict, python: Path | None, package: Path, port: int) -> list[str]:
        if manifest.get("server"):
            return [re.sub(r"\$\{?PORT\}?", str(port), arg) for arg in shlex.split(manifest["server"])]
        return [str(python or "python"), "-m", "orchestration.runner", "--package", str(package),
                "--port", str(port), "--host", self.req.host]

    def _smoke(self, package: Path) -> None:
        for spec in self.new:
            url = f"http://{self.req.host}:{spec.port}"
            health = wait_ready(self.d._http, url, self.req.health_timeout, alive=lambda n=spec.name: self._gone(n))
            if not health.ready:
                what = "SETUP_FAILED (setup() raised) — " if health.status == "SETUP_FAILED" else ""
                raise DeployError(f"{spec.name} is not healthy: {what}{health.error}", phase="smoke",
                                  log=self.runtime.logs(spec.name, 60, "stderr"))
            self.log("smoke", f"{spec.name}: /health {health.status} at {url}")
        self._wait_running()
        problems = check_contract(f"http://{self.req.host}:{self.new[0].port}", self._sample(package),
                                  self.version.manifest.get("task", "json"))
        if problems:
            raise DeployError("smoke test failed: " + "; ".join(str(p) for p in problems), phase="smoke",
                              log=self.runtime.logs(self.new[0].name, 60, "stderr"))
        self.log("smoke", "smoke test passed: /health, /info, /predict on the first sample, /metrics")

    def _wait_running(self) -> None:
        """Until the runtime, too, counts the new replicas as started (supervisord's `startsecs`),
        so a finished deploy never shows STARTING; DeployError if one stops meanwhile."""
        states = wait_settled(lambda n: self.runtime.status(n).state, [s.name for s in self.new],
                              self.req.health_timeout, transient=(ServiceState.STARTING, ServiceState.UNKNOWN))
        for name, state in states.items():
            if state != ServiceState.RUNNING:
                raise DeployError(f"{name} is {state.value} after answering /health", phase="smoke",
                                  log=self.runtime.logs(name, 60, "stderr"))

    def _gone(self, name: str) -> str | None:
        state = self.runtime.status(name).state
        return state.value if state in (ServiceState.FATAL, ServiceState.EXITED, ServiceState.STOPPED) else None

    def _sample(self, package: Path) -> bytes | str | None:
        listed = self.version.manifest.get("samples") or []
        candidates = [package / p for p in listed] or sorted((package / "samples").glob("*"))
        files = [p for p in candidates if p.is_file()]
        if not files:
            return None
        return files[0].read_text() if files[0].suffix in (".txt", ".json") else files[0].read_bytes()

    def _switch(self) -> list[tuple[str, str]]:
        """Point the service at the new replicas in one transaction; returns the old (runtime, name)s."""
        with transaction(self.d._sessions) as s:
            svc = s.scalar(select(AlgorithmService).where(AlgorithmService.name == self.algo.name))
            if svc is None:
                svc = AlgorithmService(name=self.algo.name, algorithm_id=self.algo.id, runtime=self.runtime_name,
                                       created_by=self.actor.username)
                s.add(svc)
                s.flush()
            old = [(svc.runtime, r.backend_name) for r in svc.replica_rows]
            svc.replica_rows.clear()
            s.flush()
            svc.version_id, svc.runtime, svc.replicas = self.version.id, self.runtime_name, self.replicas
            svc.environment, svc.desired_state, svc.last_error = dict(self.req.env), "running", ""
            res = self.new[0].resources
            svc.resources = {"cpus": res.cpus, "memory_mb": res.memory_mb}
            for spec in self.new:
                svc.replica_rows.append(ServiceReplica(version_id=self.version.id, index=spec.index,
                                                       backend_name=spec.name, port=spec.port))
        self.log("switch", f"{self.algo.name} now serves {self.version.tag}")
        return old

    def _retire(self, old: list[tuple[str, str]]) -> None:
        for runtime_name, name in old:
            if runtime_name in self.d._runtimes:
                self.d._runtimes[runtime_name].remove(name)
            self.d._ports.release(name)
            self.log("retire", f"{name} removed")

    def _fail(self, phase: str, error: Exception) -> None:
        for spec in self.new:
            try:
                self.runtime.remove(spec.name)
            except OrchestrationError as e:
                self.log(phase, f"cleanup of {spec.name} failed: {e}")
            self.d._ports.release(spec.name)
        with transaction(self.d._sessions) as s:
            svc = s.scalar(select(AlgorithmService).where(AlgorithmService.name == self.algo.name))
            if svc is not None:
                svc.last_error = f"deploy of {self.version.tag} failed at {phase}: {error}"[:2000]
        self._record_end("failed", phase, str(error), getattr(error, "log", ""))

    def _as_deploy_error(self, phase: str, e: Exception) -> DeployError:
        if isinstance(e, DeployError):
            return DeployError(str(e), phase=e.phase or phase, log=e.log or "\n".join(self.log_lines[-80:]))
        return DeployError(str(e), phase=phase, log="\n".join(self.log_lines[-80:]))  # callers show the phase

    def _record_start(self) -> int:
        with transaction(self.d._sessions) as s:
            dep = Deployment(service_name=self.algo.name, algorithm_id=self.algo.id, version_id=self.version.id,
                             runtime=self.runtime_name, replicas=self.replicas, status="running",
                             actor=self.actor.username)
            s.add(dep)
            s.flush()
            return dep.id

    def _record_end(self, status: str, phase: str = "", error: str = "", log: str = "") -> None:
        with transaction(self.d._sessions) as s:
            dep = s.get(Deployment, self.deployment_id)
            dep.status, dep.failed_phase, dep.error = status, phase, error[:4000]
            dep.phases, dep.finished_at = dict(self.phases), utcnow()
            dep.build_log = (log or "\n".join(self.log_lines))[-200_000:]


def parse_memory_mb(value: object) -> int | None:
    """'512m' → 512, '1g' → 1024, 256 → 256, None → None."""
    if value is None:
        return None
    m = re.fullmatch(r"(\d+)\s*([mMgG]?)[bB]?", str(value))
    if not m:
        return None
    return int(m[1]) * (1024 if m[2].lower() == "g" else 1)
