"""Active health checks (DESIGN §8): every replica of every service that should run is probed on
`/health` each interval; one that fails or hangs (no answer within the probe timeout) is taken
out of rotation with the reason, and put back when it answers READY (or BUSY) again. Changes go
through the Router, so the gateway reloads once per round that changed something.

A replica its runtime may move (a swarm task rescheduled on another node) is located first, each
round: when it answers somewhere else now, its endpoint in the routing table is updated, it is
probed there, and — still in rotation — published again so the gateway follows it.

It runs in the platform's long-lived agent process (app/agent.py), never in a page. Contract of
`HealthMonitor.round()`: locates the replicas that can move, probes every replica concurrently,
writes each one's `route_note` and `checked_at`, withdraws and publishes as above, and returns what
changed; an unreachable database or a refused gateway config is raised (the agent logs it and
tries again next round).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.auth import internal
from app.db import transaction
from app.models import AlgorithmService, ServiceReplica, utcnow
from app.services.routing import Router
from app.services.rows import note_route
from app.shared import HealthBoard
from orchestration.errors import Message
from orchestration.health import Health, probe
from orchestration.runtime import Endpoint

log = logging.getLogger("algostage.monitor")
IN = "in rotation"


@dataclass(frozen=True)
class Probed:
    service: str
    replica: str
    url: str
    routed: bool
    health: Health


@dataclass
class RoundReport:
    withdrawn: dict[str, str] = field(default_factory=dict)   # replica -> why
    published: list[str] = field(default_factory=list)
    probed: int = 0
    moved: dict[str, str] = field(default_factory=dict)        # replica -> the URL it answers on now


# (runtime, replicas) -> where those of them that it may move run now (absent: unknown, or not moved)
Locate = Callable[[str, "Sequence[str]"], "Mapping[str, Endpoint]"]


def verdict(health: Health, timeout_s: float) -> str:
    """IN for a replica that may take calls, else why not (shown on the Manage page): a `Message`,
    so the page says it in its reader's language (the probe's own error stays as it came)."""
    if health.ready:
        return IN
    if health.status == "UNREACHABLE":
        if "Timeout" in health.error:
            return Message("route.no_answer", "out: no answer within the probe timeout of {seconds:g} s",
                           seconds=timeout_s)
        return Message("route.not_reachable", "out: not reachable ({error})", error=health.error[:120])
    if health.error:
        return Message("route.health_says_why", "out: /health says {status} ({error})", status=health.status,
                       error=health.error[:120])
    return Message("route.health_says", "out: /health says {status}", status=health.status)


class HealthMonitor:
    """Probes replicas and keeps the routing table to what answers. `probe_fn` is a seam for tests."""

    def __init__(self, sessions: sessionmaker[Session], router: Router, *, timeout_s: float = 1.0,
                 probe_fn: Callable[[str, float], Health] | None = None, workers: int = 16,
                 board: HealthBoard | None = None, locate: Locate | None = None) -> None:
        """`locate(runtime, replicas)` says where those replicas its runtime may move run now, in
        one call per runtime and round (a replica it does not name: not moved, or not known)."""
        self._locate = locate
        self._sessions = sessions
        self._router = router
        self._timeout_s = timeout_s
        self._probe = probe_fn or _probe_once
        self._workers = workers
        self._board = board          # where every process reads the latest checks (app/shared.py)
        self._board_ttl_s = 6.0      # three intervals: a board older than that is not believed

    @internal("the agent's active health checks: the platform acting on its own, not for a user")
    def round(self) -> RoundReport:
        report = RoundReport()
        targets = self._moved(self._targets(), report)
        report.probed = len(targets)
        if not targets:
            return report
        with ThreadPoolExecutor(max_workers=min(self._workers, len(targets))) as pool:
            results = list(pool.map(lambda t: self._probe(t[2], self._timeout_s), targets))
        probed = [Probed(svc, name, url, routed, h) for (svc, name, url, routed), h in zip(targets, results)]
        if self._board is not None:
            self._board.publish({p.replica: p.health for p in probed}, self._board_ttl_s)
        self._record(probed)
        self._apply(probed, report)
        return report

    @internal("the agent's loop of health rounds")
    def run(self, stop: threading.Event, interval_s: Callable[[], float]) -> None:
        """Rounds until `stop` is set, one every `interval_s()` seconds; a failed round is logged."""
        while not stop.is_set():
            self._board_ttl_s = 3 * interval_s()
            try:
                changed = self.round()
                if changed.withdrawn or changed.published:
                    log.info("withdrawn %s, published %s", changed.withdrawn, changed.published)
            except Exception:  # noqa: BLE001 - the agent must outlive a bad round (database restarting, …)
                log.exception("health round failed")
            stop.wait(interval_s())

    # --- internals ------------------------------------------------------------------------------

    def _targets(self) -> list[tuple[str, str, str, bool, str]]:
        """(service, replica, url, routed, runtime) of every replica of the services that should run."""
        q = (select(AlgorithmService.name, ServiceReplica.backend_name, ServiceReplica.endpoint, ServiceReplica.routed,
                    AlgorithmService.runtime)
             .join(ServiceReplica).where(AlgorithmService.desired_state == "running", ServiceReplica.endpoint != "")
             .order_by(AlgorithmService.name, ServiceReplica.index))
        with self._sessions() as s:
            return [tuple(row) for row in s.execute(q)]

    def _moved(self, targets: list[tuple[str, str, str, bool, str]],
               report: RoundReport) -> list[tuple[str, str, str, bool]]:
        """The targets at the endpoints their runtimes locate them on now; a moved one's endpoint
        is updated in the table (and `report.moved`)."""
        out, moved = [], {}
        by_runtime: dict[str, list[str]] = {}
        for _, replica, _, _, runtime in targets:
            by_runtime.setdefault(runtime, []).append(replica)
        where = {runtime: self._where(runtime, replicas) for runtime, replicas in by_runtime.items()}
        for service, replica, url, routed, runtime in targets:
            now = where[runtime].get(replica)
            if now is not None and now.url != url:
                moved[replica] = url = now.url
            out.append((service, replica, url, routed))
        if moved:
            with transaction(self._sessions) as s:
                for row in s.scalars(select(ServiceReplica).where(ServiceReplica.backend_name.in_(list(moved)))):
                    row.endpoint = moved[row.backend_name]
            log.info("moved by their runtime: %s", moved)
            report.moved.update(moved)
        return out

    def _where(self, runtime: str, replicas: list[str]) -> Mapping[str, Endpoint]:
        if self._locate is None:
            return {}
        try:
            return self._locate(runtime, replicas)
        except Exception as e:  # noqa: BLE001 - an engine that cannot say leaves the endpoints as they are
            log.warning("could not locate %s: %s", ", ".join(replicas), e)
            return {}

    def _record(self, probed: Iterable[Probed]) -> None:
        now = utcnow()
        with transaction(self._sessions) as s:
            rows = {r.backend_name: r for r in s.scalars(select(ServiceReplica).where(
                ServiceReplica.backend_name.in_([p.replica for p in probed])))}
            for p in probed:
                row = rows.get(p.replica)
                if row is not None:
                    note_route(row, verdict(p.health, self._timeout_s))
                    row.checked_at = now

    def _apply(self, probed: list[Probed], report: RoundReport) -> None:
        by_service: dict[str, list[Probed]] = {}
        for p in probed:
            by_service.setdefault(p.service, []).append(p)
        for service, replicas in by_service.items():
            out = [p for p in replicas if p.routed and not p.health.ready]
            back = [p for p in replicas if p.health.ready and (not p.routed or p.replica in report.moved)]
            if out:
                self._router.withdraw(service, [p.replica for p in out])
                report.withdrawn.update({p.replica: verdict(p.health, self._timeout_s) for p in out})
            if back:
                self._router.publish(service, {p.replica: Endpoint.parse(p.url) for p in back})
                report.published += [p.replica for p in back]


def _probe_once(url: str, timeout_s: float) -> Health:
    import httpx
    with httpx.Client(verify=False) as client:
        return probe(client, url, timeout_s)

