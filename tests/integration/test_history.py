"""Call history over real calls (the fixtures `hello` and `hello-image` deployed on the supervisor
runtime, each database backend) plus rows placed in time: filters, visibility by role, percentiles,
CSV, and a video run recorded as one call with its frames inside."""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import delete

from app.auth import Actor, Role
from app.errors import Missing
from app.history import VIDEO, CallFilter, to_csv
from app.i18n import say
from app.invoke import InvokeError
from app.models import AlgorithmCall
from app.platform import Platform
from app.services.deployer import DeployRequest
from app.showcase.inputs import InputData
from app.storage import RESULTS_BUCKET
from tests.conftest import ADMIN, OPERATOR, ROOT, VIEWER, demo_media, service_platform

pytestmark = pytest.mark.timeout(900)
FIXTURES = ROOT / "tests" / "fixtures" / "algorithms"
OTHER_VIEWER = Actor("someone-else", Role.VIEWER)


@pytest.fixture(scope="module")
def deployed(migrated_db_url: str, tmp_path_factory: pytest.TempPathFactory, shared_envs: Path) -> Iterator[Platform]:
    p = service_platform(migrated_db_url, tmp_path_factory.mktemp("history-home"), shared_envs)
    for name in ("hello", "hello_image"):
        p.catalog.upload(ADMIN, str(FIXTURES / name))
        p.deployer.deploy(OPERATOR, DeployRequest(name.replace("_", "-"), runtime="supervisor"))
    yield p
    p.daemon.shutdown()
    p.close()


@pytest.fixture
def history(deployed: Platform) -> Platform:
    """The deployed platform with no call recorded yet."""
    with deployed.sessions.begin() as s:
        s.execute(delete(AlgorithmCall))
    return deployed


def place(p: Platform, at: datetime, total: float, predict: float | None, *, user: str = "viewer",
          service: str = "hello", status: str = "ok") -> None:
    """A recorded call at a chosen time (what the Invoker writes, with the time under our control)."""
    with p.sessions.begin() as s:
        s.add(AlgorithmCall(service_name=service, params={}, params_hash="", input_ref="placed", input_hash="",
                            status=status, error="" if status == "ok" else "boom", total_ms=total, predict_ms=predict,
                            replica="r", username=user, created_at=at))


def test_real_calls_are_listed_and_filtered(history: Platform) -> None:
    p = history
    for text in ("a", "bb", "ccc"):
        p.showcase.run(VIEWER, "hello", text)
    p.showcase.run(OPERATOR, "hello", "from the operator")
    with pytest.raises(InvokeError):
        p.invoker.invoke(VIEWER, "hello", ["x"], {"threshold": 7})   # refused by the service: an error call

    everything = p.history.calls(ADMIN)
    assert len(everything) == 5 and everything[0].status == "error"    # newest first
    assert [r.created_at for r in everything] == sorted((r.created_at for r in everything), reverse=True)
    assert all(r.service == "hello" and r.version == "v1" for r in everything)
    assert {r.user for r in everything} == {"viewer", "op"}
    assert [r.input_ref for r in p.history.calls(ADMIN, CallFilter(user="op"))] == ["typed text"]
    errors = p.history.calls(OPERATOR, CallFilter(status="error"))
    assert len(errors) == 1 and "threshold" in errors[0].error and errors[0].params == {"threshold": 7}
    # kept as the message it was: the History page says it in its reader's language, the CSV in English
    assert errors[0].error.startswith("bad parameters: threshold:")
    assert say(errors[0].error, "zh").startswith("参数错误：threshold:")
    assert list(csv.DictReader(io.StringIO(to_csv(errors))))[0]["error"] == str(errors[0].error)
    assert len(p.history.calls(ADMIN, CallFilter(status="ok", user="viewer"))) == 3
    assert p.history.calls(ADMIN, CallFilter(service="other")) == []
    ok = p.history.calls(ADMIN, CallFilter(status="ok"))
    assert all(r.predict_ms is not None and r.total_ms >= r.predict_ms for r in ok)


def test_viewers_see_only_their_own_calls(history: Platform) -> None:
    p = history
    p.showcase.run(VIEWER, "hello", "mine")
    p.showcase.run(OTHER_VIEWER, "hello", "theirs")
    p.showcase.run(OPERATOR, "hello", "ops")
    assert {r.user for r in p.history.calls(VIEWER)} == {"viewer"}
    assert {r.user for r in p.history.calls(VIEWER, CallFilter(user="op"))} == {"viewer"}   # the filter cannot widen it
    assert {r.user for r in p.history.calls(OPERATOR)} == {"viewer", "someone-else", "op"}
    assert p.history.choices(VIEWER) == (["hello"], ["viewer"])
    assert p.history.choices(ADMIN) == (["hello"], ["op", "someone-else", "viewer"])
    assert len(p.history.latency(VIEWER)) == 1 and p.history.latency(VIEWER)[0].count == 1


def test_time_range_and_percentiles_over_time(history: Platform) -> None:
    p = history
    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
    for i in range(1, 101):                       # hour 12: total 1..100, predict 0.5..50
        place(p, t0 + timedelta(seconds=30 * i), float(i), i / 2)
    for i in range(1, 11):                        # hour 14: total 1000..10000, no predict time
        place(p, t0 + timedelta(hours=2, minutes=i), 1000.0 * i, None)
    place(p, t0 + timedelta(hours=1), 99999.0, None, status="error")
    place(p, t0 - timedelta(days=3), 5.0, 1.0)

    window = CallFilter(since=t0, until=t0 + timedelta(hours=3))
    rows = p.history.calls(ADMIN, window)
    assert len(rows) == 111 and all(t0 <= r.created_at < t0 + timedelta(hours=3) for r in rows)
    buckets = p.history.latency(ADMIN, window, width=timedelta(hours=1))
    assert [(b.start.hour, b.count) for b in buckets] == [(12, 100), (14, 10)]   # the error call is left out
    first, second = buckets
    assert first.total_p50 == pytest.approx(50.5) and first.total_p95 == pytest.approx(95.05)
    assert first.total_p99 == pytest.approx(99.01) and first.predict_p50 == pytest.approx(25.25)
    assert second.total_p50 == pytest.approx(5500) and second.predict_p99 is None
    auto = p.history.latency(ADMIN, window)
    assert auto[0].width == timedelta(minutes=5) and sum(b.count for b in auto) == 110
    assert len(p.history.calls(ADMIN, CallFilter(until=t0))) == 1
    naive = CallFilter(since=t0.replace(tzinfo=None), until=(t0 + timedelta(hours=3)).replace(tzinfo=None))
    assert len(p.history.calls(ADMIN, naive)) == 111


def test_csv_export_of_the_filtered_calls(history: Platform) -> None:
    p = history
    p.showcase.run(VIEWER, "hello", "für das CSV, mit Komma")
    place(p, datetime(2026, 1, 1, tzinfo=timezone.utc), 3.0, None, status="error")
    from app.history import to_csv
    text = to_csv(p.history.calls(VIEWER))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 2 and rows[0]["service"] == "hello" and rows[0]["status"] == "ok"
    assert rows[0]["version"] == "v1" and float(rows[0]["total_ms"]) > 0
    assert rows[0]["params"].startswith('{"mode": "length"')
    assert rows[1]["created_at"] == "2026-01-01T00:00:00+00:00" and rows[1]["predict_ms"] == ""
    assert rows[1]["error"] == "boom"


def test_a_video_run_is_one_call_with_its_frames_inside(history: Platform) -> None:
    p = history
    clip = InputData("clip.avi", "video", data=demo_media("vtest.avi").read_bytes())
    result = p.showcase.run_video(VIEWER, "hello-image", clip, {"min_size": 2}, every_nth=10, max_frames=5)
    assert result.complete and not result.cached

    [row] = p.history.calls(ADMIN)
    assert (row.kind, row.frames, row.status, row.input_ref, row.params) == (VIDEO, 5, "ok", "clip.avi", {"min_size": 2})
    assert row.service == "hello-image" and row.version == "v1" and row.replica
    assert row.video_key == result.video_key and row.total_ms == pytest.approx(result.wall_s * 1000, abs=1)
    assert row.predict_ms == pytest.approx(sum(f["predict_ms"] for f in result.frames), abs=0.01)
    assert row.frame_ms == pytest.approx(tuple(f["latency_ms"] for f in result.frames), abs=0.001)
    frames = p.history.frames(VIEWER, row.id)
    assert [f["frame"] for f in frames] == [0, 10, 20, 30, 40] and all(f["count"] == 1 for f in frames)
    assert [f["latency_ms"] for f in frames] == list(row.frame_ms)
    assert p.history.video(VIEWER, row.id) == p.objects.get(RESULTS_BUCKET, result.video_key)
    [bucket] = p.history.latency(VIEWER)
    assert bucket.count == 5 and bucket.total_p99 <= max(row.frame_ms)   # the frames' requests, not the run
    with pytest.raises(Missing):
        p.history.frames(OTHER_VIEWER, row.id)
    with pytest.raises(Missing):
        p.history.video(OTHER_VIEWER, row.id)

    again = p.showcase.run_video(VIEWER, "hello-image", clip, {"min_size": 2}, every_nth=10, max_frames=5)
    assert again.cached and len(p.history.calls(ADMIN)) == 1   # a cached run records nothing
    p.showcase.run(VIEWER, "hello", "a plain call")
    plain = p.history.calls(ADMIN)[0]
    assert (plain.kind, plain.frames, plain.video_key) == ("call", None, None)
    assert p.history.frames(VIEWER, plain.id) == [] and p.history.video(VIEWER, plain.id) is None
    text = to_csv(p.history.calls(ADMIN))
    header = text.splitlines()[0].split(",")
    assert header[-3:] == ["kind", "frames", "video_key"] and "frame_ms" not in header

    p.services.stop(OPERATOR, ["hello-image"])
    try:
        down = p.showcase.run_video(VIEWER, "hello-image", clip, {"min_size": 2}, every_nth=10, max_frames=5, force=True)
    finally:
        p.services.start(OPERATOR, ["hello-image"])
    assert down.cached and down.error   # the cached run, with why it is shown
    failed = p.history.calls(ADMIN, CallFilter(status="error"))
    assert len(failed) == 1 and failed[0].kind == VIDEO and failed[0].frames == 0 and failed[0].error
    assert len(p.history.calls(ADMIN)) == 3
