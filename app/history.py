"""Call history: the calls recorded in `algorithm_calls`, filtered; latency percentiles over time;
CSV export.

A row is one call (`kind` "call": one request, or one batch) or one video run (`kind` "video"):
the frames of a video go to the service with one request each, and the run is recorded once, with
every frame's detail inside the row (`video_output` writes it, `frame_rows` reads it) and the key
of its annotated MP4 in the results bucket. Percentiles count requests: a video run counts each
of its frames.

Visibility: an actor with VIEW_ALL_HISTORY (operators, admins) sees everyone's calls and may
filter by user; anyone else with VIEW_HISTORY sees only their own calls, whatever `user` the
filter names. Times are UTC; naive datetimes (SQLite returns them) are read as UTC.
"""
from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, sessionmaker

from app.auth import Action, Actor, can, require
from app.errors import Message, Missing, Problem
from app.models import AlgorithmCall, AlgorithmVersion
from app.storage import RESULTS_BUCKET, ObjectNotFound, ObjectStore
from orchestration.errors import restored

DEFAULT_LIMIT = 10_000
BUCKETS = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1),
           timedelta(hours=6), timedelta(days=1), timedelta(days=7))
MAX_BUCKETS = 60
PERCENTILES = (50, 95, 99)
CALL, VIDEO = "call", "video"
FRAME_FIELDS = ("frame", "count", "mean_score", "latency_ms", "predict_ms")


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
    """A recorded call. For a video run (`kind` VIDEO): `total_ms` is the whole run (decoding,
    frames, drawing, encoding), `predict_ms` the sum of its frames' predict times, `frames` the
    frames done, `video_key` its annotated MP4 in the results bucket (None when no frame was done),
    `frame_ms`/`frame_predict_ms` each frame's request latency and predict time (not in the CSV)."""
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
    kind: str = CALL
    frames: int | None = None
    video_key: str | None = None
    frame_ms: tuple[float, ...] = field(default=(), repr=False)
    frame_predict_ms: tuple[float | None, ...] = field(default=(), repr=False)

    def requests(self) -> Iterator[tuple[float, float | None]]:
        """(latency ms, predict ms or None) of each request the call made: one for a call, one per
        frame for a video run."""
        if self.kind == VIDEO:
            yield from zip(self.frame_ms, self.frame_predict_ms)
        else:
            yield self.total_ms, self.predict_ms


@dataclass(frozen=True)
class LatencyBucket:
    """Percentiles of the requests of the ok calls that started in [start, start + width) (`count`
    requests: a video run counts each frame); predict ones are None when no request in the bucket
    reported a predict time."""
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
    """p50/p95/p99 of the latency and predict ms of the requests of the ok rows (see
    `request_latencies`), per time bucket (oldest first); a row without requests (a video run that
    did no frame) is left out."""
    ok = [r for r in rows if r.status == "ok" and (r.kind == CALL or r.frame_ms)]
    if not ok:
        return []
    times = [utc(r.created_at) for r in ok]
    width = width or choose_bucket(min(times), max(times))
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    groups: dict[datetime, list[CallRow]] = {}
    for row, at in zip(ok, times):
        groups.setdefault(epoch + (at - epoch) // width * width, []).append(row)
    return [_bucket(start, width, groups[start]) for start in sorted(groups)]


def request_latencies(rows: Sequence[CallRow]) -> tuple[list[float], list[float]]:
    """(latency ms of every request, predict ms of those that reported one) of the ok rows: what
    percentiles are taken of (a video run gives one request per frame)."""
    total: list[float] = []
    predict: list[float] = []
    for row in rows:
        if row.status == "ok":
            for ms, predict_ms in row.requests():
                total.append(ms)
                if predict_ms is not None:
                    predict.append(predict_ms)
    return total, predict


def _bucket(start: datetime, width: timedelta, rows: list[CallRow]) -> LatencyBucket:
    total, predict = request_latencies(rows)
    tp = [percentile(total, q) for q in PERCENTILES]
    pp: list[float | None] = [percentile(predict, q) for q in PERCENTILES] if predict else [None] * 3
    return LatencyBucket(start, width, len(total), *tp, *pp)


CSV_FIELDS = tuple(f.name for f in fields(CallRow) if f.name not in ("frame_ms", "frame_predict_ms"))


def to_csv(rows: list[CallRow]) -> str:
    """The rows as CSV with a header line (CSV_FIELDS: a video run's per-frame detail is left
    out); params as JSON, times in ISO 8601 UTC, None as an empty cell."""
    out = io.StringIO()
    names = CSV_FIELDS
    writer = csv.writer(out)
    writer.writerow(names)
    for row in rows:
        values = [getattr(row, n) for n in names]
        writer.writerow([utc(v).isoformat() if isinstance(v, datetime) else
                         json.dumps(v, ensure_ascii=False, sort_keys=True) if isinstance(v, dict) else
                         "" if v is None else v for v in values])
    return out.getvalue()


class History:
    """`objects` holds the annotated videos of video runs (`video`); without it `video` is None."""

    def __init__(self, sessions: sessionmaker[Session], objects: ObjectStore | None = None) -> None:
        self._sessions = sessions
        self._objects = objects

    def calls(self, actor: Actor, filt: CallFilter | None = None, *, limit: int = DEFAULT_LIMIT) -> list[CallRow]:
        """The newest `limit` calls matching `filt` that `actor` may see, newest first."""
        q = self._query(actor, filt or CallFilter()).order_by(AlgorithmCall.created_at.desc(), AlgorithmCall.id.desc())
        with self._sessions() as s:
            return [_row(call, tag) for call, tag in s.execute(q.limit(limit))]

    def latency(self, actor: Actor, filt: CallFilter | None = None, *, width: timedelta | None = None,
                limit: int = DEFAULT_LIMIT) -> list[LatencyBucket]:
        """Percentiles over time of the calls `calls` would return (see `latency_buckets`)."""
        return latency_buckets(self.calls(actor, filt, limit=limit), width)

    def frames(self, actor: Actor, call_id: int) -> list[dict[str, Any]]:
        """The per-frame detail of the video run recorded as call `call_id`, in frame order: dicts
        of FRAME_FIELDS (frame = the source frame's index). [] for a call that is not a video run.
        Missing when there is no such call or `actor` may not see it."""
        return frame_rows(self._visible_call(actor, call_id).output)

    def video(self, actor: Actor, call_id: int) -> bytes | None:
        """The annotated MP4 of the video run recorded as call `call_id`; None for a call that is
        not a video run, a run without a frame done, or a video no longer in the results bucket.
        Missing when there is no such call or `actor` may not see it."""
        key = _video(self._visible_call(actor, call_id).output).get("key")
        if not key or self._objects is None:
            return None
        try:
            return self._objects.get(RESULTS_BUCKET, key)
        except ObjectNotFound:
            return None

    def _visible_call(self, actor: Actor, call_id: int) -> AlgorithmCall:
        q = self._query(actor, CallFilter()).where(AlgorithmCall.id == call_id)
        with self._sessions() as s:
            found = s.execute(q).first()
        if found is None:
            raise Missing([Problem("call", Message("call.missing", "no call #{id} that you may see", id=call_id))])
        return found[0]

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
    row = CallRow(call.id, utc(call.created_at), call.service_name, tag or "", call.username, call.status,
                  call.total_ms, call.predict_ms, call.replica, call.input_ref, call.params or {},
                  restored(call.error_message, call.error))
    video = _video(call.output)
    if not video:
        return row
    frames = frame_rows(call.output)
    return replace(row, kind=VIDEO, frames=len(frames), video_key=video.get("key"),
                   frame_ms=tuple(f["latency_ms"] for f in frames), frame_predict_ms=tuple(f["predict_ms"] for f in frames))


# --- a video run's row ---------------------------------------------------------------------------

def video_output(frames: Sequence[Mapping[str, Any]], *, video_key: str | None, frames_total: int, every_nth: int,
                 max_frames: int | None, cancelled: bool, wall_s: float) -> dict[str, Any]:
    """The `output` recorded for a video run: {"video": {key, frames_total, every_nth, max_frames,
    cancelled, wall_s}, "frames": {field: [one value per frame]}} (FRAME_FIELDS, in columns: a
    795-frame run is ~30 KB of JSON). `frames` are rows with FRAME_FIELDS (missing ones read None)."""
    return {"video": {"key": video_key, "frames_total": frames_total, "every_nth": every_nth,
                      "max_frames": max_frames, "cancelled": cancelled, "wall_s": round(wall_s, 3)},
            "frames": {name: [_rounded(f.get(name)) for f in frames] for name in FRAME_FIELDS}}


def frame_rows(output: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The per-frame rows (dicts of FRAME_FIELDS) of a video run's `output`; [] for any other output."""
    if not _video(output):
        return []
    columns = output.get("frames") or {}
    count = len(columns.get("frame") or [])
    return [{name: (columns.get(name) or [None] * count)[i] for name in FRAME_FIELDS} for i in range(count)]


def _video(output: Mapping[str, Any] | None) -> dict[str, Any]:
    video = output.get("video") if isinstance(output, Mapping) else None
    return video if isinstance(video, dict) else {}


def _rounded(value: Any) -> Any:
    return round(value, 3) if isinstance(value, float) else value
