"""Background jobs: long work (a video run, a video comparison; deploys next) runs in a thread of
the core and is known by an id, so that any interface — a page, the command line, the API — can
follow it, cancel it and read its result without holding the thread.

Contracts:
- `submit` starts the work at once in a daemon thread and returns the job's id. The work gets a
  `JobContext`: `progress(done, total, stage)` to report, and `cancelled` / `cancel_event` to
  stop early. What it returns is the job's `result`.
- States: RUNNING until the work returns; then DONE, or CANCELLED when a cancel was asked before
  it returned (the result it returned is kept: a cancelled video run keeps its frames), or FAILED
  when it raised: `error` is an AlgoStageError's message (a ValidationFailed's problems joined),
  any other exception "Type: message" (and it is logged with its traceback).
- Only the owner (who submitted) sees, waits for and cancels a job, or an actor who may view
  everyone's history (Action.VIEW_ALL_HISTORY); seeing one's own needs Action.VIEW_HISTORY.
  Anyone else gets PermissionDenied; an unknown (or dropped) id is ValidationFailed ("job").
- Finished jobs are kept `keep_for` after they ended, and at most the `keep` most recent
  finished ones; older ones are dropped. Running jobs are never dropped.
"""
from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

from app.auth import Action, Actor, can, internal, require
from app.errors import AlgoStageError, Message, Missing, PermissionDenied, Problem

log = logging.getLogger(__name__)
LOG_LINES = 500


class JobState(StrEnum):
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True)
class Stage:
    """Which step of a job is running: `index` (from 1) of `count`, and its `name`
    (a video comparison: the column running and its service; a deploy: its phase)."""
    index: int
    count: int
    name: str = ""


@dataclass(frozen=True)
class JobView:
    """A job as its owner sees it. `progress` is (done, total) of the current stage; `result` is
    what the work returned (None while running or when it failed)."""
    id: str
    kind: str
    owner: str
    state: JobState
    progress: tuple[int, int]
    stage: Stage | None
    result: Any
    error: str | None
    submitted_at: datetime
    finished_at: datetime | None
    log: tuple[str, ...] = ()   # the last LOG_LINES lines the work wrote (a deploy's phases and build)

    @property
    def finished(self) -> bool:
        return self.state is not JobState.RUNNING


class JobContext:
    """What the work of a job sees: where to report progress and whether to stop."""

    def __init__(self, job: _Job) -> None:
        self._job = job

    def progress(self, done: int, total: int, stage: Stage | None = None) -> None:
        """`done` of `total` (of the stage, when given; a stage stays until another is reported)."""
        self._job.report(done, total, stage)

    def log(self, line: str) -> None:
        """One line of the job's log (the last LOG_LINES are kept)."""
        self._job.write(line)

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    @property
    def cancel_event(self) -> threading.Event:
        """Set when a cancel is asked; pass it to work that waits on events (media.run_video)."""
        return self._job.cancel_event


Work = Callable[[JobContext], Any]


class _Job:
    """The mutable record behind a JobView: `view` is replaced whole, so a reader always gets a
    consistent snapshot."""

    def __init__(self, job_id: str, kind: str, owner: str, submitted_at: datetime) -> None:
        self.view = JobView(job_id, kind, owner, JobState.RUNNING, (0, 0), None, None, None, submitted_at, None)
        self.cancel_event = threading.Event()
        self.ended = threading.Event()
        self._lock = threading.Lock()

    def report(self, done: int, total: int, stage: Stage | None) -> None:
        with self._lock:
            self.view = replace(self.view, progress=(done, total), stage=stage or self.view.stage)

    def write(self, line: str) -> None:
        with self._lock:
            self.view = replace(self.view, log=(*self.view.log, line)[-LOG_LINES:])

    def finish(self, state: JobState, result: Any, error: str | None, at: datetime) -> None:
        with self._lock:
            self.view = replace(self.view, state=state, result=result, error=error, finished_at=at)
        self.ended.set()


def error_message(error: Exception) -> str:
    """How a failed job reads: an AlgoStageError's message (a ValidationFailed's problems joined);
    any other exception as "Type: message"."""
    if isinstance(error, AlgoStageError):
        return error.message
    return f"{type(error).__name__}: {error}"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Jobs:
    """The registry of background jobs of one platform. `clock` (aware UTC datetimes) is the
    seam for the expiry of finished jobs."""

    def __init__(self, *, keep: int = 200, keep_for: timedelta = timedelta(hours=1),
                 clock: Callable[[], datetime] = _utcnow) -> None:
        self._keep = keep
        self._keep_for = keep_for
        self._clock = clock
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()

    @internal("called by core services after their own permission check; `actor` becomes the owner")
    def submit(self, actor: Actor, kind: str, work: Work) -> str:
        """Start `work` in a background thread now; returns the job's id."""
        job_id = uuid.uuid4().hex
        job = _Job(job_id, kind, actor.username, self._clock())
        with self._lock:
            self._prune()
            self._jobs[job_id] = job
        threading.Thread(target=self._run, args=(job, work), name=f"job-{kind}-{job_id[:8]}", daemon=True).start()
        return job_id

    def get(self, actor: Actor, job_id: str) -> JobView:
        """The job as it is now (see the module contract for who may see it)."""
        return self._visible(actor, job_id).view

    def wait(self, actor: Actor, job_id: str, timeout: float | None = None) -> JobView:
        """The job once it has finished, or as it is after `timeout` seconds (check `finished`)."""
        job = self._visible(actor, job_id)
        job.ended.wait(timeout)
        return job.view

    def cancel(self, actor: Actor, job_id: str) -> JobView:
        """Ask the job to stop; it ends CANCELLED once its work returns. A finished job is left as it is."""
        job = self._visible(actor, job_id)
        job.cancel_event.set()
        return job.view

    def list(self, actor: Actor) -> list[JobView]:
        """The actor's jobs (everyone's with VIEW_ALL_HISTORY), newest first."""
        require(actor, Action.VIEW_HISTORY)
        everyone = can(actor, Action.VIEW_ALL_HISTORY)
        with self._lock:
            self._prune()
            views = [j.view for j in self._jobs.values() if everyone or j.view.owner == actor.username]
        return sorted(views, key=lambda v: v.submitted_at, reverse=True)

    # --- internals ------------------------------------------------------------------------------

    def _visible(self, actor: Actor, job_id: str) -> _Job:
        require(actor, Action.VIEW_HISTORY)
        with self._lock:
            self._prune()
            job = self._jobs.get(job_id)
        if job is None:
            raise Missing([Problem("job", Message("job.missing", "no job {id!r} (unknown, or finished long ago)", id=job_id))])
        owner = job.view.owner
        if owner != actor.username and not can(actor, Action.VIEW_ALL_HISTORY):
            raise PermissionDenied(Message("job.not_yours", "{who} may not see {owner}'s job", who=actor.username,
                                           owner=owner))
        return job

    def _run(self, job: _Job, work: Work) -> None:
        try:
            result = work(JobContext(job))
        except Exception as e:  # noqa: BLE001 - a job's failure is its state, read by whoever follows it
            if not isinstance(e, AlgoStageError):
                log.exception("job %s (%s) failed", job.view.id, job.view.kind)
            job.finish(JobState.FAILED, None, error_message(e), self._clock())
            return
        state = JobState.CANCELLED if job.cancel_event.is_set() else JobState.DONE
        job.finish(state, result, None, self._clock())

    def _prune(self) -> None:
        """Drop finished jobs older than `keep_for`, and all but the `keep` most recent finished ones.
        The caller holds the lock."""
        cutoff = self._clock() - self._keep_for
        finished = sorted((j for j in self._jobs.values() if j.view.finished_at is not None),
                          key=lambda j: j.view.finished_at, reverse=True)   # type: ignore[arg-type,return-value]
        for i, job in enumerate(finished):
            if i >= self._keep or job.view.finished_at < cutoff:   # type: ignore[operator]
                del self._jobs[job.view.id]
