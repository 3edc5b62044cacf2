"""Background jobs of the core (app.jobs): ids, progress, results, cancel, errors, who may see a
job, and the expiry of finished jobs (with an injected clock)."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from app.auth import Actor, Role
from app.errors import PermissionDenied, Problem, ValidationFailed
from app.jobs import JobContext, Jobs, JobState, Stage, error_message
from orchestration.errors import DeployError

ALICE = Actor("alice", Role.VIEWER, 1)
BOB = Actor("bob", Role.VIEWER, 2)
OPERATOR = Actor("op", Role.OPERATOR, 3)
NOBODY = Actor("nobody", "nobody")  # type: ignore[arg-type]  # a role with no permission at all
WAIT = 10


class Clock:
    """An aware UTC clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def gated(gate: threading.Event, result: object = "done"):
    """Work that reports 1/2 on stage "first", waits for `gate` (or a cancel), then returns."""
    def work(job: JobContext) -> object:
        job.progress(1, 2, Stage(1, 2, "first"))
        while not gate.wait(0.01):
            if job.cancelled:
                return "stopped early"
        return result
    return work


def test_a_job_has_an_id_runs_in_the_background_and_keeps_its_result() -> None:
    jobs, gate = Jobs(), threading.Event()
    first, second = jobs.submit(ALICE, "video", gated(gate, 42)), jobs.submit(ALICE, "video", gated(gate))
    assert first != second and len(first) == 32
    running = jobs.get(ALICE, first)
    assert running.state is JobState.RUNNING and not running.finished and running.result is None
    assert (running.id, running.kind, running.owner) == (first, "video", "alice")
    gate.set()
    done = jobs.wait(ALICE, first, WAIT)
    assert done.state is JobState.DONE and done.result == 42 and done.error is None
    assert done.finished and done.finished_at is not None and done.finished_at >= done.submitted_at


def test_progress_and_stage_are_read_while_the_job_runs() -> None:
    jobs, reported, gate = Jobs(), threading.Event(), threading.Event()

    def work(job: JobContext) -> str:
        job.progress(3, 10, Stage(2, 3, "face-detect"))
        job.progress(4, 10)   # the stage stays until another is reported
        reported.set()
        gate.wait(WAIT)
        return "ok"

    job_id = jobs.submit(ALICE, "video-compare", work)
    assert reported.wait(WAIT)
    view = jobs.get(ALICE, job_id)
    assert view.progress == (4, 10) and view.stage == Stage(2, 3, "face-detect")
    gate.set()
    assert jobs.wait(ALICE, job_id, WAIT).progress == (4, 10)


def test_wait_with_a_timeout_returns_the_running_job() -> None:
    jobs, gate = Jobs(), threading.Event()
    job_id = jobs.submit(ALICE, "video", gated(gate))
    assert jobs.wait(ALICE, job_id, 0.05).state is JobState.RUNNING
    gate.set()
    assert jobs.wait(ALICE, job_id, WAIT).state is JobState.DONE


def test_cancel_sets_the_event_the_work_watches_and_keeps_what_it_returned() -> None:
    jobs, gate = Jobs(), threading.Event()
    job_id = jobs.submit(ALICE, "video", gated(gate))
    cancelled = jobs.cancel(ALICE, job_id)
    assert cancelled.id == job_id
    view = jobs.wait(ALICE, job_id, WAIT)
    assert view.state is JobState.CANCELLED and view.result == "stopped early" and view.error is None


def test_cancelling_a_finished_job_changes_nothing() -> None:
    jobs = Jobs()
    job_id = jobs.submit(ALICE, "video", lambda job: "early")
    assert jobs.wait(ALICE, job_id, WAIT).state is JobState.DONE
    assert jobs.cancel(ALICE, job_id).state is JobState.DONE
    assert jobs.get(ALICE, job_id).state is JobState.DONE


@pytest.mark.parametrize("error, message", [
    (ValidationFailed([Problem("input", "not a video"), Problem("frames", "n >= 1")]), "input: not a video; frames: n >= 1"),
    (DeployError("the smoke test failed", phase="smoke"), "the smoke test failed"),
    (ZeroDivisionError("division by zero"), "ZeroDivisionError: division by zero"),
])
def test_a_failing_job_says_why(error: Exception, message: str) -> None:
    def work(job: JobContext) -> None:
        raise error

    jobs = Jobs()
    view = jobs.wait(ALICE, jobs.submit(ALICE, "deploy", work), WAIT)
    assert view.state is JobState.FAILED and view.error == message and view.result is None
    assert error_message(error) == message


def test_only_the_owner_or_who_may_view_all_history_sees_and_cancels_a_job() -> None:
    jobs, gate = Jobs(), threading.Event()
    job_id = jobs.submit(ALICE, "video", gated(gate))
    with pytest.raises(PermissionDenied):
        jobs.get(BOB, job_id)
    with pytest.raises(PermissionDenied):
        jobs.cancel(BOB, job_id)
    with pytest.raises(PermissionDenied):
        jobs.wait(BOB, job_id, 0)
    for who in (NOBODY, None):
        with pytest.raises(PermissionDenied):
            jobs.get(who, job_id)  # type: ignore[arg-type]
        with pytest.raises(PermissionDenied):
            jobs.list(who)  # type: ignore[arg-type]
    assert jobs.get(ALICE, job_id).state is JobState.RUNNING
    assert jobs.get(OPERATOR, job_id).owner == "alice"
    assert jobs.cancel(OPERATOR, job_id).id == job_id
    assert jobs.wait(ALICE, job_id, WAIT).state is JobState.CANCELLED


def test_list_shows_own_jobs_newest_first_and_everyones_to_an_operator() -> None:
    clock = Clock()
    jobs = Jobs(clock=clock)
    ids = []
    for who in (ALICE, BOB, ALICE):
        ids.append(jobs.submit(who, "video", lambda job: None))
        clock.advance(seconds=1)
    assert [v.id for v in jobs.list(ALICE)] == [ids[2], ids[0]]
    assert [v.id for v in jobs.list(BOB)] == [ids[1]]
    assert [v.id for v in jobs.list(OPERATOR)] == ids[::-1]


def test_an_unknown_id_is_refused_with_the_field_job() -> None:
    with pytest.raises(ValidationFailed) as e:
        Jobs().get(ALICE, "0" * 32)
    assert [p.field for p in e.value.problems] == ["job"]


def test_finished_jobs_are_dropped_an_hour_after_they_ended_running_ones_never() -> None:
    clock, gate = Clock(), threading.Event()
    jobs = Jobs(clock=clock, keep_for=timedelta(hours=1))
    finished = jobs.submit(ALICE, "video", lambda job: "result")
    running = jobs.submit(ALICE, "video", gated(gate))
    assert jobs.wait(ALICE, finished, WAIT).state is JobState.DONE
    clock.advance(minutes=59)
    assert jobs.get(ALICE, finished).result == "result"
    clock.advance(minutes=2)
    with pytest.raises(ValidationFailed, match="no job"):
        jobs.get(ALICE, finished)
    assert [v.id for v in jobs.list(ALICE)] == [running]
    clock.advance(hours=5)
    assert jobs.get(ALICE, running).state is JobState.RUNNING
    gate.set()
    assert jobs.wait(ALICE, running, WAIT).state is JobState.DONE


def test_only_the_most_recent_finished_jobs_are_kept() -> None:
    clock = Clock()
    jobs = Jobs(clock=clock, keep=3)
    ids = []
    for n in range(5):
        ids.append(jobs.submit(ALICE, "video", lambda job, n=n: n))
        jobs.wait(ALICE, ids[-1], WAIT)
        clock.advance(seconds=1)
    assert [v.result for v in jobs.list(ALICE)] == [4, 3, 2]
    with pytest.raises(ValidationFailed):
        jobs.get(ALICE, ids[0])
