"""Call history: the calls recorded in `algorithm_calls`, filtered; latency percentiles over time;
CSV export.

Visibility: an actor with VIEW_ALL_HISTORY (operators, admins) sees everyone's calls and may
filter by user; anyone else with VIEW_HISTORY sees only their own calls, whatever `user` the
filter names. Times are UTC; naive datetimes (SQLite returns them) are read as UTC.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, sessionmaker

from app.auth import Action, Actor, can, require
from app.models import AlgorithmCall, AlgorithmVersion

DEFAULT_LIMIT = 10_000
BUCKETS = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1),
           timedelta(hours=6), timedelta(days=1), timedelta(days=7))
MAX_BUCKETS = 60
PERCENTILES = (50, 95, 99)


@dataclass(frozen=True)
class CallFilter:
    """Calls of `service`, by `user`, with `status` ("ok" | "error"), created in [since, until).
    None means any."""
    service: str | None = None
    user: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class CallRow:
    id: int
    created_at: datetime
    service: str
    version: str
    user: str
    status: str
    total_ms: float
    predict_ms: float | None
    replica: str
    input_ref: str
    params: dict[str, Any]
    error: str


@dataclass(frozen=True)
class LatencyBucket:
    """Percentiles of the ok calls that started in [start, start + width); predict ones are None
    when no call in the bucket reported a predict time."""
    start: datetime
    width: timedelta
    count: int
    total_p50: float
    total_p95: float
    total_p99: float
    predict_p50: float | None
    predict_p95: float | None
    predict_p99: float | None


def utc(value: datetime) -> datetime:
    """`value` as an aware UTC datetime (naive values are taken to be UTC)."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between closest ranks (numpy's
    default). ValueError for an empty list."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def choose_bucket(first: datetime, last: datetime) -> timedelta:
    """The smallest of BUCKETS that splits [first, last] into at most MAX_BUCKETS buckets."""
    span = last - first
    return next((b for b in BUCKETS if span / b <= MAX_BUCKETS), BUCKETS[-1])


def latency_buckets(rows: list[CallRow], width: timedelta | None = None) -> list[LatencyBucket]:
    """p50/p95/p99 of total and predict ms of the ok rows, per time bucket (oldest first)."""
    ok = [r for r in rows if r.status == "ok"]
    if not ok:
        return []
    times = [utc(r.created_at) for r in ok]
    width = width or choose_bucket(min(times), max(times))
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    groups: dict[datetime, list[CallRow]] = {}
    for row, at in zip(ok, times):
        groups.setdefault(epoch + (at - epoch) // width * width, []).append(row)
    return [_bucket(start, width, groups[start]) for start in sorted(groups)]


def _bucket(start: datetime, width: timedelta, rows: list[CallRow]) -> LatencyBucket:
    total = [r.total_ms for r in rows]
    predict = [r.predict_ms for r in rows if r.predict_ms is not None]
    tp = [percentile(total, q) for q in PERCENTILES]
    pp: list[float | None] = [percentile(predict, q) for q in PERCENTILES] if predict else [None] * 3
    return LatencyBucket(start, width, len(rows), *tp, *pp)


def to_csv(rows: list[CallRow]) -> str:
    """The rows as CSV with a header line; params as JSON, times in ISO 8601 UTC."""
    out = io.StringIO()
    names = [f.name for f in fields(CallRow)]
    writer = csv.writer(out)
    writer.writerow(names)
    for row in rows:
        values = [getattr(row, n) for n in names]
        writer.writerow([utc(v).isoformat() if isinstance(v, datetime) else
                         json.dumps(v, ensure_ascii=False, sort_keys=True) if isinstance(v, dict) else
                         "" if v is None else v for v in values])
    return out.getvalue()


class History:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def calls(self, actor: Actor, filt: CallFilter | None = None, *, limit: int = DEFAULT_LIMIT) -> list[CallRow]:
        """The newest `limit` calls matching `filt` that `actor` may see, newest first."""
        q = self._query(actor, filt or CallFilter()).order_by(AlgorithmCall.created_at.desc(), AlgorithmCall.id.desc())
        with self._sessions() as s:
            return [_row(call, tag) for call, tag in s.execute(q.limit(limit))]

    def latency(self, actor: Actor, filt: CallFilter | None = None, *, width: timedelta | None = None,
                limit: int = DEFAULT_LIMIT) -> list[LatencyBucket]:
        """Percentiles over time of the calls `calls` would return (see `latency_buckets`)."""
        return latency_buckets(self.calls(actor, filt, limit=limit), width)

    def choices(self, actor: Actor) -> tuple[list[str], list[str]]:
        """(services, users) that appear in the calls `actor` may see, sorted."""
        visible = self._query(actor, CallFilter()).subquery()
        with self._sessions() as s:
            services = s.scalars(select(visible.c.service_name).distinct().order_by(visible.c.service_name))
            users = s.scalars(select(visible.c.username).distinct().order_by(visible.c.username))
            return list(services), list(users)

    def _query(self, actor: Actor, filt: CallFilter) -> Select:
        require(actor, Action.VIEW_HISTORY)
        q = select(AlgorithmCall, AlgorithmVersion.tag).outerjoin(
            AlgorithmVersion, AlgorithmVersion.id == AlgorithmCall.version_id)
        user = filt.user if can(actor, Action.VIEW_ALL_HISTORY) else actor.username
        if user:
            q = q.where(AlgorithmCall.username == user)
        if filt.service:
            q = q.where(AlgorithmCall.service_name == filt.service)
        if filt.status:
            q = q.where(AlgorithmCall.status == filt.status)
        if filt.since:
            q = q.where(AlgorithmCall.created_at >= utc(filt.since))
        if filt.until:
            q = q.where(AlgorithmCall.created_at < utc(filt.until))
        return q


def _row(call: AlgorithmCall, tag: str | None) -> CallRow:
    return CallRow(call.id, utc(call.created_at), call.service_name, tag or "", call.username, call.status,
                   call.total_ms, call.predict_ms, call.replica, call.input_ref, call.params or {}, call.error)
