"""Comparison metrics of the Showcase, history percentiles and buckets, input references: pure functions."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from app.errors import ValidationFailed
from app.history import CallRow, choose_bucket, latency_buckets, percentile, to_csv
from app.showcase.metrics import (entity_overlap, iou, label_agreement, line_overlap, match_boxes, pair_summary,
                                 result_count)
from app.showcase.inputs import InputRef, media_kind


def box(x: float, y: float, w: float, h: float, label: str = "face") -> dict:
    return {"x": x, "y": y, "w": w, "h": h, "label": label}


# --- iou ------------------------------------------------------------------------------------------

def test_iou_of_identical_disjoint_and_half_overlapping_boxes():
    assert iou(box(0, 0, 10, 10), box(0, 0, 10, 10)) == 1.0
    assert iou(box(0, 0, 10, 10), box(20, 20, 5, 5)) == 0.0
    assert iou(box(0, 0, 10, 10), box(5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_iou_touching_contained_and_degenerate_boxes():
    assert iou(box(0, 0, 10, 10), box(10, 0, 10, 10)) == 0.0          # shares an edge only
    assert iou(box(0, 0, 10, 10), box(2, 2, 5, 5)) == pytest.approx(25 / 100)
    assert iou(box(0, 0, 0, 10), box(0, 0, 0, 10)) == 0.0              # empty boxes
    assert iou({"x": 0, "y": 0}, box(0, 0, 1, 1)) == 0.0               # malformed
    assert iou(box(0, 0, -5, 10), box(0, 0, 10, 10)) == 0.0            # negative width reads as empty
    assert iou(box(0, 0, 10, 10), box(5, 0, 10, 10)) == iou(box(5, 0, 10, 10), box(0, 0, 10, 10))


# --- match_boxes ------------------------------------------------------------------------------------

def test_match_boxes_pairs_greedily_by_best_iou_first():
    a = [box(0, 0, 10, 10), box(100, 100, 10, 10)]
    b = [box(1, 0, 10, 10), box(0, 0, 10, 10), box(300, 300, 5, 5)]
    m = match_boxes(a, b)
    assert [(i, j) for i, j, _ in m.pairs] == [(0, 1)]   # a0 takes its exact twin, not b0
    assert m.unmatched_a == [1] and m.unmatched_b == [0, 2]
    assert m.mean_iou == 1.0


def test_match_boxes_is_one_to_one_and_respects_the_threshold():
    a = [box(0, 0, 10, 10)]
    b = [box(0, 0, 10, 10), box(0, 0, 10, 10)]
    m = match_boxes(a, b)
    assert len(m.pairs) == 1 and m.unmatched_b == [1]
    half = [box(5, 0, 10, 10)]   # IoU 1/3 with a[0]
    assert match_boxes(a, half).pairs == []
    assert match_boxes(a, half, threshold=0.3).pairs[0][2] == pytest.approx(1 / 3)
    assert match_boxes(a, half).mean_iou is None


def test_match_boxes_greedy_order_matters():
    """Greedy takes the best pair first even if that leaves another box unmatched."""
    a = [box(0, 0, 10, 10), box(4, 0, 10, 10)]
    b = [box(2, 0, 10, 10)]
    m = match_boxes(a, b)
    assert len(m.pairs) == 1 and m.pairs[0][0] in (0, 1) and len(m.unmatched_a) == 1
    assert m.pairs[0][2] == pytest.approx(iou(a[0], b[0]))


def test_match_boxes_of_empty_sets():
    m = match_boxes([], [box(0, 0, 1, 1)])
    assert m.pairs == [] and m.unmatched_a == [] and m.unmatched_b == [0]


# --- labels, entities, lines ---------------------------------------------------------------------------

def test_label_agreement():
    assert label_agreement(["pos", "neg", "neu"], ["pos", "pos", "neu"]) == pytest.approx(2 / 3)
    assert label_agreement([], []) is None
    with pytest.raises(ValueError):
        label_agreement(["a"], [])


def test_entity_overlap_is_jaccard_on_text_type_and_span():
    a = [{"text": "Paris", "type": "LOC", "start": 0, "end": 5}, {"text": "Tim", "type": "PER", "start": 10, "end": 13}]
    b = [{"text": "Paris", "type": "LOC", "start": 0, "end": 5, "score": 0.9},
         {"text": "Tim", "type": "ORG", "start": 10, "end": 13}]
    assert entity_overlap(a, b) == pytest.approx(1 / 3)
    assert entity_overlap(a, a) == 1.0
    assert entity_overlap([], []) == 1.0
    assert entity_overlap(a, []) == 0.0
    moved = [{"text": "Paris", "type": "LOC", "start": 1, "end": 6}]
    assert entity_overlap(a[:1], moved) == 0.0


def test_line_overlap():
    assert line_overlap([{"text": "STOP "}, {"text": "exit"}], [{"text": "STOP"}]) == 0.5
    assert line_overlap([], []) == 1.0


def test_pair_summary_by_task():
    det = pair_summary("image.detection", 0, 1, {"boxes": [box(0, 0, 10, 10, "face"), box(50, 50, 10, 10)]},
                       {"boxes": [box(0, 0, 10, 10, "person")]})
    assert det.boxes is not None and len(det.boxes.pairs) == 1 and det.boxes.unmatched_a == [1]
    assert det.box_label_agreement == 0.0
    assert pair_summary("text.classification", 0, 1, {"label": "pos"}, {"label": "pos"}).label_agrees is True
    assert pair_summary("image.classification", 0, 2, {"label": "cat"}, {"label": "dog"}).label_agrees is False
    ner = pair_summary("text.ner", 0, 1, {"entities": []}, {"entities": [{"text": "x", "type": "P", "start": 0, "end": 1}]})
    assert ner.entity_jaccard == 0.0
    assert pair_summary("image.ocr", 1, 2, {"lines": [{"text": "a"}]}, {"lines": [{"text": "a"}]}).line_jaccard == 1.0
    js = pair_summary("json", 0, 1, {}, {})
    assert (js.boxes, js.label_agrees, js.entity_jaccard) == (None, None, None)


def test_result_count():
    assert result_count("image.detection", {"boxes": [box(0, 0, 1, 1)] * 3}) == 3
    assert result_count("video.detection", {"boxes": []}) == 0
    assert result_count("text.ner", {"entities": [{}]}) == 1
    assert result_count("image.ocr", {"lines": "not a list"}) == 0
    assert result_count("text.classification", {"label": "x"}) is None
    assert result_count("image.detection", None) is None


# --- references -------------------------------------------------------------------------------------

def test_input_refs_round_trip_and_bad_ones_are_refused():
    ref = InputRef.parse("demo-media/text/news-en.txt#3")
    assert (ref.bucket, ref.key, ref.line, ref.kind) == ("demo-media", "text/news-en.txt", 3, "text")
    assert str(ref) == "demo-media/text/news-en.txt#3"
    assert InputRef.parse("demo-media/media/messi5.jpg").kind == "image"
    for bad in ("nokey", "/x", "b/k#0", "b/k#x", ""):
        with pytest.raises(ValidationFailed):
            InputRef.parse(bad)
    assert media_kind("a/B.AVI") == "video" and media_kind("x.pdf") is None


# --- history ----------------------------------------------------------------------------------------

def test_percentile_matches_numpy_linear():
    values = [12.0, 3.5, 7.0, 100.0, 55.5, 1.0, 9.0]
    for q in (0, 50, 95, 99, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert percentile([4.0], 99) == 4.0
    with pytest.raises(ValueError):
        percentile([], 50)


def _row(i: int, at: datetime, total: float, predict: float | None, status: str = "ok") -> CallRow:
    return CallRow(i, at, "svc", "v1", "u", status, total, predict, "r", "ref", {"a": 1, "é": "ü"}, "")


def test_latency_buckets_group_by_time_and_skip_errors():
    t0 = datetime(2026, 1, 1, 10, 0, tzinfo=timezone.utc)
    rows = [_row(1, t0, 10, 5), _row(2, t0 + timedelta(seconds=30), 20, 15), _row(3, t0 + timedelta(minutes=5), 40, None),
            _row(4, t0 + timedelta(seconds=10), 9999, None, "error")]
    buckets = latency_buckets(rows)
    assert [b.width for b in buckets] == [timedelta(minutes=1)] * 2
    first, second = buckets
    assert first.start == t0 and first.count == 2 and first.total_p50 == 15 and first.predict_p50 == 10
    assert first.total_p99 == pytest.approx(19.9)
    assert second.count == 1 and second.predict_p95 is None and second.total_p95 == 40
    assert latency_buckets([_row(1, t0, 1, 1, "error")]) == []
    naive = latency_buckets([_row(1, t0.replace(tzinfo=None), 1, 1)])
    assert naive[0].start == t0


def test_choose_bucket():
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert choose_bucket(t0, t0) == timedelta(minutes=1)
    assert choose_bucket(t0, t0 + timedelta(hours=3)) == timedelta(minutes=5)
    assert choose_bucket(t0, t0 + timedelta(days=2)) == timedelta(hours=1)
    assert choose_bucket(t0, t0 + timedelta(days=3650)) == timedelta(days=7)


def test_csv_export():
    t0 = datetime(2026, 1, 1, 10, 0, tzinfo=timezone.utc)
    text = to_csv([_row(7, t0, 12.5, None)])
    header, line = text.strip().splitlines()
    assert header.split(",")[:4] == ["id", "created_at", "service", "version"]
    assert line.startswith("7,2026-01-01T10:00:00+00:00,svc,v1,u,ok,12.5,,r,ref,")
    assert '"{""a"": 1, ""é"": ""ü""}"' in line
