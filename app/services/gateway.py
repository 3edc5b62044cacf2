"""The nginx gateway as a Router: the routing table rendered as nginx upstreams and routes.

`GatewayRouter` is the platform's Router when the gateway runs. It keeps the table (through the
DirectRouter it wraps, which the platform's own invoker still uses to call replicas directly —
both paths share the table) and, after every change, renders the whole table into a GatewaySpec
and applies it (orchestration/nginx.py: `nginx -t`, atomic, graceful reload). Rendering reads the
table, never what one process remembers, so any process (UI, CLI, agent) may publish and the
result is the same; a file lock keeps two processes from applying at once.

Routes (DESIGN §8): `/ai/<service>/…` → one upstream of the service's replicas in rotation, a
canary version weighted to its share; `/ai/<service>@<version>/…` → only that version's replicas,
while it runs. A service with no replica in rotation keeps its route, which answers a JSON 503.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from math import gcd
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from app.auth import internal
from app.models import AlgorithmService, AlgorithmVersion
from app.services.routing import WHY, DirectRouter, Route
from orchestration.locks import file_lock
from orchestration.nginx import Backend, GatewayRoute, GatewaySpec, NginxGateway
from orchestration.runtime import Endpoint


VERSION_TAG = re.compile(r"v[0-9]+")   # a replica whose version row is gone gets no pinned route


@dataclass(frozen=True)
class RoutedReplica:
    name: str
    url: str
    version: str


@dataclass(frozen=True)
class ServiceRoutes:
    """What the gateway serves of one service: its replicas in rotation and the canary split."""
    service: str
    version: str                       # the stable version's tag
    canary_version: str | None
    canary_percent: int
    replicas: tuple[RoutedReplica, ...]
    max_body_mb: int = 32
    timeout_s: float = 30.0


@dataclass(frozen=True)
class GatewaySettings:
    host: str
    port: int
    auth: bool                  # API keys required
    agent: str                  # where nginx asks the agent (auth, the route list): "unix:/…sock"
    rate_per_s: int
    burst: int
    api: str | None = None      # the management API behind /api/ and /git/ ("host:port")
    api_body_mb: int = 200


def weights(replicas: Iterable[RoutedReplica], canary: str | None, percent: int) -> dict[str, int]:
    """Each replica's weight in its service's upstream so that the canary version's replicas get
    `percent`% of the calls together and the stable ones the rest (smooth weighted round-robin)."""
    replicas = list(replicas)
    trial = [r for r in replicas if canary and r.version == canary]
    stable = [r for r in replicas if r not in trial]
    if not trial or not stable or not 0 < percent < 100:
        return {r.name: 1 for r in (stable or trial)}
    w_trial, w_stable = percent * len(stable), (100 - percent) * len(trial)
    d = gcd(w_trial, w_stable)
    return {**{r.name: w_trial // d for r in trial}, **{r.name: w_stable // d for r in stable}}


def build_spec(views: Iterable[ServiceRoutes], settings: GatewaySettings) -> GatewaySpec:
    """The gateway configuration of the whole routing table (pure)."""
    routes: list[GatewayRoute] = []
    for v in views:
        share = weights(v.replicas, v.canary_version, v.canary_percent)
        backends = tuple(_backend(r, share.get(r.name, 0)) for r in v.replicas if share.get(r.name))
        routes.append(GatewayRoute(v.service, v.service, backends, v.max_body_mb, v.timeout_s))
        for version in sorted({r.version for r in v.replicas if VERSION_TAG.fullmatch(r.version)}):
            pinned = tuple(_backend(r, 1) for r in v.replicas if r.version == version)
            routes.append(GatewayRoute(f"{v.service}@{version}", v.service, pinned, v.max_body_mb, v.timeout_s))
    return GatewaySpec(settings.host, settings.port, tuple(routes),
                       auth=settings.agent if settings.auth else None, index=settings.agent,
                       rate_per_s=settings.rate_per_s, burst=settings.burst, api=settings.api,
                       api_body_mb=settings.api_body_mb)


def _backend(r: RoutedReplica, weight: int) -> Backend:
    endpoint = Endpoint.parse(r.url)
    return Backend(endpoint.host, endpoint.port, weight, r.name)


class GatewayTable:
    """Reads the routing table as the gateway serves it (every service, its routed replicas with
    their versions, its canary split and the limits the gateway applies for it)."""

    def __init__(self, sessions: sessionmaker[Session], service_settings: Callable[[str], Mapping[str, Any]]) -> None:
        self._sessions = sessions
        self._settings = service_settings

    @internal("what the gateway serves: rendered into nginx, listed to keys by the agent")
    def views(self) -> list[ServiceRoutes]:
        q = select(AlgorithmService).order_by(AlgorithmService.name).options(
            selectinload(AlgorithmService.replica_rows), selectinload(AlgorithmService.version),
            selectinload(AlgorithmService.canary_version))
        with self._sessions() as s:
            rows = list(s.scalars(q))
            tags = self._tags(s, rows)
        return [self._view(svc, tags) for svc in rows]

    @staticmethod
    def _tags(s: Session, rows: list[AlgorithmService]) -> dict[int, str]:
        ids = {r.version_id for svc in rows for r in svc.replica_rows if r.version_id}
        found = s.execute(select(AlgorithmVersion.id, AlgorithmVersion.tag).where(AlgorithmVersion.id.in_(ids)))
        return {version_id: tag for version_id, tag in found}

    def _view(self, svc: AlgorithmService, tags: Mapping[int, str]) -> ServiceRoutes:
        settings = self._settings(svc.name)
        replicas = tuple(RoutedReplica(r.backend_name, r.endpoint, tags.get(r.version_id, "?"))
                         for r in svc.replica_rows if r.routed and r.endpoint)
        canary = svc.canary_version.tag if svc.canary_version else None
        return ServiceRoutes(svc.name, svc.version.tag if svc.version else "?", canary, svc.canary_percent or 0,
                             replicas, settings["max_body_mb"], settings["timeout_s"])


class GatewayRouter:
    """A Router that keeps nginx in step with the routing table (see the module docstring)."""

    def __init__(self, direct: DirectRouter, table: GatewayTable, engine: NginxGateway,
                 settings: Callable[[], GatewaySettings], lock_dir: Path) -> None:
        self._direct = direct
        self._table = table
        self._engine = engine
        self._settings = settings
        self._lock = lock_dir / "gateway.lock"

    @internal(WHY)
    def publish(self, service: str, endpoints: Mapping[str, Endpoint]) -> None:
        self._direct.publish(service, endpoints)
        self.sync()

    @internal(WHY)
    def withdraw(self, service: str, replicas: Iterable[str] | None = None) -> None:
        self._direct.withdraw(service, replicas)
        self.sync()

    @internal(WHY)
    def routes(self, service: str) -> list[Route]:
        return self._direct.routes(service)

    @internal(WHY)
    def url_for(self, service: str) -> str:
        return self._direct.url_for(service)

    @internal(WHY)
    def forget(self, service: str) -> None:
        self._direct.forget(service)

    @internal("renders the routing table into nginx; run after every change and by `up`")
    def sync(self) -> bool:
        """Apply the whole table to nginx; True when its configuration changed. GatewayConfigError
        when nginx refuses it (the previous configuration keeps serving)."""
        with file_lock(self._lock):
            return self._engine.apply(build_spec(self._table.views(), self._settings()))

    @internal("where the gateway answers: shown by `up`, `status` and the pages")
    def base_url(self) -> str:
        s = self._settings()
        host = "127.0.0.1" if s.host in ("0.0.0.0", "") else s.host
        return f"http://{host}:{s.port}"
