"""app.history without a database: a video run's recorded output read back as a row, percentiles that
count a video run's frames as requests, and a CSV without the per-frame detail."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from app.history import CALL, CSV_FIELDS, VIDEO, CallRow, _row, frame_rows, latency_buckets, request_latencies, \
    to_csv, video_output

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=timezone.utc)
FRAMES = [{"frame": 0, "count": 2, "mean_score": 0.8123456, "latency_ms": 10.0, "predict_ms": 8.0},
          {"frame": 3, "count": 0, "mean_score": None, "latency_ms": 30.0, "predict_ms": None},
          {"frame": 6, "count": 1, "mean_score": 0.5, "latency_ms": 20.0, "predict_ms": 15.5, "label": "ignored"}]


def recorded(output: dict | None, *, total: float = 500.0, predict: float | None = 23.5, status: str = "ok",
             at: datetime = T0, ident: int = 1) -> SimpleNamespace:
    """What the database hands `_row`: an algorithm_calls row."""
    return SimpleNamespace(id=ident, created_at=at.replace(tzinfo=None), service_name="people", username="viewer",
                           status=status, total_ms=total, predict_ms=predict, replica="r1", input_ref="clip.avi",
                           params={"scale": 1.1}, error="", error_message=None, output=output)


def video_row(**kw: object) -> CallRow:
    output = video_output(FRAMES, video_key="video/1/abc/def-n3-m0.mp4", frames_total=3, every_nth=3, max_frames=None,
                          cancelled=False, wall_s=0.5004)
    return _row(recorded(output, **kw), "v2")


def test_a_video_run_reads_back_with_its_frames_and_video():
    row = video_row()
    assert (row.kind, row.frames, row.video_key, row.version) == (VIDEO, 3, "video/1/abc/def-n3-m0.mp4", "v2")
    assert row.frame_ms == (10.0, 30.0, 20.0) and row.frame_predict_ms == (8.0, None, 15.5)
    assert row.total_ms == 500.0 and row.created_at == T0
    assert list(row.requests()) == [(10.0, 8.0), (30.0, None), (20.0, 15.5)]
    rows = frame_rows(video_output(FRAMES, video_key=None, frames_total=3, every_nth=3, max_frames=None,
                                   cancelled=True, wall_s=1.0))
    assert [r["frame"] for r in rows] == [0, 3, 6] and rows[0]["mean_score"] == 0.812   # rounded, columns kept
    assert set(rows[2]) == {"frame", "count", "mean_score", "latency_ms", "predict_ms"}   # only the fields recorded


@pytest.mark.parametrize("output", [None, {"outputs": [{"boxes": []}]}, {"video": "not a dict"}, {}])
def test_anything_else_is_a_plain_call(output):
    row = _row(recorded(output), None)
    assert (row.kind, row.frames, row.video_key, row.frame_ms, row.version) == (CALL, None, None, (), "")
    assert list(row.requests()) == [(500.0, 23.5)] and frame_rows(output) == []


def test_a_video_run_without_frames_has_no_requests():
    output = video_output([], video_key=None, frames_total=10, every_nth=1, max_frames=None, cancelled=False,
                          wall_s=0.1)
    row = _row(recorded(output, status="error"), "v1")
    assert (row.kind, row.frames, list(row.requests())) == (VIDEO, 0, [])


def test_percentiles_count_each_frame_of_a_video_run_as_a_request():
    plain = _row(recorded({"outputs": []}, total=100.0, predict=None, at=T0 + timedelta(seconds=5), ident=2), "v1")
    failed = _row(recorded({"outputs": []}, total=9999.0, status="error", ident=3), "v1")
    empty = _row(recorded(video_output([], video_key=None, frames_total=1, every_nth=1, max_frames=None,
                                       cancelled=True, wall_s=0.0), at=T0 + timedelta(days=2), ident=4), "v1")
    rows = [video_row(), plain, failed, empty]
    assert request_latencies(rows) == ([10.0, 30.0, 20.0, 100.0], [8.0, 15.5])
    [bucket] = latency_buckets(rows, timedelta(hours=1))   # the empty run's day has no bucket
    assert bucket.count == 4 and bucket.total_p50 == pytest.approx(25.0) and bucket.total_p99 < 100.0
    assert bucket.predict_p50 == pytest.approx(11.75)


def test_the_csv_has_kind_frames_and_video_key_but_not_the_frames_themselves():
    text = to_csv([video_row(), _row(recorded({"outputs": []}, ident=2), "v1")])
    [video, plain] = list(csv.DictReader(io.StringIO(text)))
    assert list(video) == list(CSV_FIELDS) and "frame_ms" not in video and "frame_predict_ms" not in video
    assert (video["kind"], video["frames"], video["video_key"]) == ("video", "3", "video/1/abc/def-n3-m0.mp4")
    assert (plain["kind"], plain["frames"], plain["video_key"]) == ("call", "", "")
    assert video["params"] == '{"scale": 1.1}'
