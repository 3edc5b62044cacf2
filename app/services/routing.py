"""The routing table: the one place that says where a call to a service goes.

A replica is known by its endpoint (where its runtime says it answers), stored with it in
`service_replicas`. The routing table holds which replicas are *in rotation* (`routed`): the
deployer publishes new replicas when it switches traffic and withdraws the old ones before it
retires them; removing a service withdraws all of its replicas. A `Router` turns the table into
where one call goes:

- `DirectRouter` (today): straight to the replicas, round-robin, the others in order as failover.
- the nginx gateway (DESIGN §8) is another `Router`: the same table rendered as upstreams, and
  every call sent to the gateway's stable address.

Contract of every Router:
- `publish(service, endpoints)` puts the named replicas in rotation (others are left as they are);
  replicas unknown to the table are ignored.
- `withdraw(service, replicas=None)` takes the named replicas (all when None) out of rotation;
  idempotent, a missing service or replica is not an error.
- `routes(service)` lists where to send one call, in the order to try: the first is the choice,
  the rest are failover. [] when nothing of the service is in rotation (or it does not exist).
- `url_for(service)` is the base URL of the first route; NotRouted when there is none.
- `forget(service)` drops anything cached about the service (after a refused connection).
"""
from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.auth import internal
from app.db import transaction
from app.models import AlgorithmService, ServiceReplica
from orchestration.errors import AlgoStageError, Message
from orchestration.runtime import Endpoint


WHY = "asked by the invoker, the deployer and the manager after their own checks"


class NotRouted(AlgoStageError):
    """No replica of the service is in rotation: it was never deployed, or it was removed."""
    code = "not_routed"


@dataclass(frozen=True)
class Route:
    replica: str    # the replica's backend name (or the gateway's)
    url: str        # base URL: POST {url}/predict


@runtime_checkable
class Router(Protocol):
    def publish(self, service: str, endpoints: Mapping[str, Endpoint]) -> None: ...
    def withdraw(self, service: str, replicas: Iterable[str] | None = None) -> None: ...
    def routes(self, service: str) -> list[Route]: ...
    def url_for(self, service: str) -> str: ...
    def forget(self, service: str) -> None: ...


class RoutingTable:
    """The persistent table behind every Router: replicas, their endpoints and whether they are
    in rotation, shared by every process of the platform through the database."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def set_routed(self, service: str, replicas: Iterable[str] | None, routed: bool) -> int:
        """Mark replicas of `service` (all when None) in or out of rotation; returns how many rows changed.
        Into rotation only while the service should run, checked in the same statement: a health
        round that probed a replica just before a stop cannot put it back once the stop began
        (the stop says "stopped" first, then withdraws)."""
        ids = select(AlgorithmService.id).where(AlgorithmService.name == service)
        if routed:
            ids = ids.where(AlgorithmService.desired_state == "running")
        ids = ids.scalar_subquery()
        q = update(ServiceReplica).where(ServiceReplica.service_id == ids).values(routed=routed)
        if replicas is not None:
            q = q.where(ServiceReplica.backend_name.in_(list(replicas)))
        with transaction(self._sessions) as s:
            return s.execute(q.execution_options(synchronize_session=False)).rowcount

    def routed(self, service: str) -> list[Route]:
        """The replicas of `service` in rotation, by replica index."""
        q = (select(ServiceReplica.backend_name, ServiceReplica.endpoint).join(AlgorithmService)
             .where(AlgorithmService.name == service, ServiceReplica.routed.is_(True))
             .order_by(ServiceReplica.index))
        with self._sessions() as s:
            return [Route(name, endpoint) for name, endpoint in s.execute(q)]

    def all_routed(self) -> dict[str, list[Route]]:
        """Every service with a replica in rotation (the gateway renders this)."""
        q = (select(AlgorithmService.name, ServiceReplica.backend_name, ServiceReplica.endpoint)
             .join(ServiceReplica).where(ServiceReplica.routed.is_(True))
             .order_by(AlgorithmService.name, ServiceReplica.index))
        out: dict[str, list[Route]] = {}
        with self._sessions() as s:
            for service, name, endpoint in s.execute(q):
                out.setdefault(service, []).append(Route(name, endpoint))
        return out


class DirectRouter:
    """Calls go straight to the replicas in rotation, round-robin; the routes of a service are
    read from the table at most every `ttl_s` seconds (calls per video frame do not each read the
    database), and again at once after `forget` or a change made through this router."""

    def __init__(self, table: RoutingTable, *, ttl_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._table = table
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, list[Route]]] = {}
        self._turns: dict[str, itertools.count] = {}
        self._lock = threading.Lock()

    @internal(WHY)
    def publish(self, service: str, endpoints: Mapping[str, Endpoint]) -> None:
        self._table.set_routed(service, list(endpoints), True)
        self.forget(service)

    @internal(WHY)
    def withdraw(self, service: str, replicas: Iterable[str] | None = None) -> None:
        self._table.set_routed(service, None if replicas is None else list(replicas), False)
        self.forget(service)

    @internal(WHY)
    def routes(self, service: str) -> list[Route]:
        found = self._current(service)
        if len(found) < 2:
            return found
        with self._lock:
            start = next(self._turns.setdefault(service, itertools.count())) % len(found)
        return found[start:] + found[:start]

    @internal(WHY)
    def url_for(self, service: str) -> str:
        found = self.routes(service)
        if not found:
            raise NotRouted(Message("route.none", "{name} has no replica in rotation", name=service),
                            hint=Message("route.none.hint", "deploy it, or start it if it is stopped"))
        return found[0].url

    @internal(WHY)
    def forget(self, service: str) -> None:
        with self._lock:
            self._cache.pop(service, None)

    def _current(self, service: str) -> list[Route]:
        now = self._clock()
        with self._lock:
            hit = self._cache.get(service)
        if hit is not None and now - hit[0] < self._ttl_s:
            return hit[1]
        found = self._table.routed(service)
        with self._lock:
            self._cache[service] = (now, found)
        return found
