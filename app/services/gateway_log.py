"""What went through the gateway, from nginx's access log (one JSON object a line, written by
the `algostage` log format of orchestration/nginx.py): per service and per replica request
counts, errors and latency, as Prometheus series and as recent figures for the Manage page.

`AccessLog.new_entries()` reads only what was appended since the last call (a rotated or
truncated file is read from its start); lines that are not complete JSON are skipped.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.auth import Action, Actor, require
from app.models import AlgorithmVersion, ServiceReplica

BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60)
TAIL_BYTES = 8 * 1024 * 1024


class AccessLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._inode: int | None = None

    def new_entries(self) -> list[dict[str, Any]]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return []
        if stat.st_ino != self._inode or stat.st_size < self._offset:
            self._inode, self._offset = stat.st_ino, 0
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        return parse(complete.splitlines())


def parse(lines: Iterable[bytes]) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("service"):
            out.append(entry)
    return out


def recent(path: Path, since_s: float, *, now: float | None = None) -> list[dict[str, Any]]:
    """The entries of the last `since_s` seconds (from the file's last TAIL_BYTES)."""
    now = time.time() if now is None else now
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - TAIL_BYTES))
            data = f.read()
    except FileNotFoundError:
        return []
    if size > TAIL_BYTES:
        data = data[data.find(b"\n") + 1:]
    return [e for e in parse(data.splitlines()) if float(e.get("time", 0)) >= now - since_s]


@dataclass(frozen=True)
class Figures:
    requests: int
    errors: int            # answered 5xx by the gateway or a replica
    p50_ms: float | None
    p95_ms: float | None
    per_s: float

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


def figures(entries: list[dict[str, Any]], window_s: float) -> Figures:
    times = sorted(float(e.get("request_s") or 0) * 1000 for e in entries)
    errors = sum(1 for e in entries if int(e.get("status", 0)) >= 500)
    return Figures(len(entries), errors, _pct(times, 50), _pct(times, 95), len(entries) / window_s if window_s else 0)


def by(entries: Iterable[dict[str, Any]], key: str, names: Mapping[str, str] | None = None) -> dict[str, list]:
    """Entries grouped by a field (`service`, `replica`); `names` renames values (address → replica)."""
    out: dict[str, list] = {}
    for e in entries:
        value = str(e.get(key) or "")
        value = value.split(",")[-1].strip()   # after a retry nginx lists every upstream tried
        out.setdefault((names or {}).get(value, value), []).append(e)
    return out


def _pct(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    k = max(0, math.ceil(q / 100 * len(sorted_values)) - 1)
    return sorted_values[k]


class GatewayMetrics:
    """Prometheus series of the gateway, fed from the access log."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter("algostage_gateway_requests", "Requests through the gateway",
                                 ["service", "replica", "code"], registry=self.registry)
        self._errors = Counter("algostage_gateway_errors", "Requests answered 5xx", ["service", "replica"],
                               registry=self.registry)
        self._latency = Histogram("algostage_gateway_request_seconds", "Time from the gateway's view",
                                  ["service"], buckets=BUCKETS, registry=self.registry)

    def feed(self, entries: Iterable[dict[str, Any]]) -> None:
        for e in entries:
            service = str(e.get("service"))
            replica = str(e.get("replica") or "-").split(",")[-1].strip()
            code = str(e.get("status", 0))
            self._requests.labels(service, replica, code).inc()
            if code.startswith("5"):
                self._errors.labels(service, replica).inc()
            self._latency.labels(service).observe(float(e.get("request_s") or 0))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


@dataclass(frozen=True)
class ServiceTraffic:
    """A service's calls through the gateway in a recent window: in all, by version, by replica."""
    service: str
    total: Figures
    by_version: dict[str, Figures]
    by_replica: dict[str, Figures]


class Traffic:
    """Recent traffic through the gateway, from its access log, per service (Manage page)."""

    def __init__(self, sessions: sessionmaker[Session], log_path: Path) -> None:
        self._sessions = sessions
        self._path = log_path

    def recent(self, actor: Actor, window_s: float = 300.0) -> dict[str, ServiceTraffic]:
        require(actor, Action.VIEW_SERVICES)
        entries = recent(self._path, window_s)
        replicas = self._replicas()
        out = {}
        for service, calls in by(entries, "service").items():
            named = by(calls, "replica", {addr: name for addr, (name, _) in replicas.items()})
            versions: dict[str, list] = {}
            for e in calls:
                addr = str(e.get("replica") or "").split(",")[-1].strip()
                versions.setdefault(replicas.get(addr, ("", "?"))[1], []).append(e)
            out[service] = ServiceTraffic(service, figures(calls, window_s),
                                          {v: figures(c, window_s) for v, c in versions.items()},
                                          {r: figures(c, window_s) for r, c in named.items()})
        return out

    def _replicas(self) -> dict[str, tuple[str, str]]:
        """upstream address (host:port) → (replica, version tag), for every replica known."""
        q = select(ServiceReplica.endpoint, ServiceReplica.backend_name, AlgorithmVersion.tag).join(
            AlgorithmVersion, AlgorithmVersion.id == ServiceReplica.version_id, isouter=True)
        with self._sessions() as s:
            return {url.removeprefix("http://"): (name, tag or "?") for url, name, tag in s.execute(q)}
