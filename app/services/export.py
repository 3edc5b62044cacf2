"""Exports of deployed services for other cluster engines (DESIGN §11): a Compose file with the
`deploy:` sections that `docker stack deploy` runs, and Kubernetes manifests. Each service is
exported as it is deployed — its version, replica count, limits and environment — as the same
`Workload` the swarm runtime runs, its image named in the cluster's registry (the swarm runtime
builds and pushes it there when it deploys; `images` lists what an export needs present).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, selectinload, sessionmaker

from app.auth import Action, Actor, require
from app.models import AlgorithmService, AlgorithmVersion
from app.services.deployer import manifest_resources, replica_env
from app.services.rows import get_service
from orchestration.export import compose, kubernetes
from orchestration.runtime import ReplicaSpec, Resources
from orchestration.workload import CONTAINER_PORT, Workload, workload_of

FORMATS = ("compose", "kubernetes")


class Exporter:
    def __init__(self, sessions: sessionmaker[Session], settings: Callable[[str], Mapping[str, Any]],
                 export_package: Callable[[str, AlgorithmVersion], Path], registry: Callable[[], str]) -> None:
        """`settings(service)` are a service's settings; `export_package` the deployer's export phase
        (the package tree at a version); `registry()` the cluster registry images are named in."""
        self._sessions = sessions
        self._settings = settings
        self._export_package = export_package
        self._registry = registry

    def workloads(self, actor: Actor, names: Iterable[str]) -> list[Workload]:
        """Each named service as deployed; Missing for a name that is not a deployed service."""
        require(actor, Action.VIEW_SERVICES)
        return [self._workload(name) for name in names]

    def render(self, actor: Actor, fmt: str, names: Iterable[str]) -> str:
        """The export of `names` in `fmt` ("compose" or "kubernetes") as YAML text."""
        workloads = self.workloads(actor, names)
        return compose.render(workloads) if fmt == "compose" else kubernetes.render(workloads)

    def _workload(self, name: str) -> Workload:
        with self._sessions() as s:
            svc = get_service(s, name, selectinload(AlgorithmService.version))
        version = svc.version
        package = self._export_package(name, version)
        settings = self._settings(name)
        declared = svc.resources or {}
        resources = Resources(declared.get("cpus"), declared.get("memory_mb")) if declared \
            else manifest_resources(version.manifest)
        spec = ReplicaSpec(name, 1, version.tag, version.commit_sha, package, CONTAINER_PORT, "0.0.0.0",
                           version.manifest.get("server") or None,
                           replica_env(name, version, settings, dict(svc.environment or {})), resources,
                           version.requirements_hash, bool(settings["autorestart"]))
        return workload_of(spec, svc.replicas, self._registry(), own_dockerfile=(package / "Dockerfile").is_file())
