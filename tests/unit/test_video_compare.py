"""Frame-by-frame comparison of video runs (app.showcase.video_compare), on hand-made results."""
from __future__ import annotations

import threading
from typing import Any

import pytest

from app.showcase.runs import Column
from app.showcase.video import VideoResult
from app.showcase.video_compare import compare_results, frames_by_index, run_columns, run_comparisons, video_pair_summary


def box(x: float, y: float, w: float = 10, h: float = 10, label: str = "face") -> dict[str, Any]:
    return {"x": x, "y": y, "w": w, "h": h, "label": label, "score": 0.9}


def video(frames: dict[int, dict[str, Any]], service: str = "face-detect", **kw: Any) -> VideoResult:
    rows = [{"frame": i, "count": len(o.get("boxes", [])), "latency_ms": 5.0, "predict_ms": 3.0} for i, o in frames.items()]
    return VideoResult(service, "v1", "image.detection", {}, "demo-media/media/x.avi", None, rows, len(rows),
                       outputs=list(frames.values()), **kw)


def test_boxes_are_matched_per_frame_and_summed() -> None:
    a = video({0: {"boxes": [box(0, 0), box(50, 50)]}, 5: {"boxes": [box(0, 0)]}, 10: {"boxes": []}})
    b = video({0: {"boxes": [box(1, 1)]}, 5: {"boxes": [box(0, 0), box(90, 90)]}, 10: {"boxes": []}})
    s = video_pair_summary("image.detection", 0, 1, a, b)
    assert (s.frames, s.matched, s.only_left, s.only_right) == (3, 2, 1, 1)
    assert s.frames_agreeing == 1   # only frame 10, where neither found anything
    assert s.mean_iou == pytest.approx((81 / 119 + 1.0) / 2)
    assert s.agreement == pytest.approx(4 / 6)


def test_only_frames_both_columns_did_are_compared() -> None:
    a = video({0: {"boxes": [box(0, 0)]}, 5: {"boxes": [box(0, 0)]}})
    b = video({0: {"boxes": [box(0, 0)]}}, cancelled=True)
    s = video_pair_summary("image.detection", 0, 1, a, b)
    assert (s.frames, s.matched, s.only_left, s.frames_agreeing, s.agreement) == (1, 1, 0, 1, 1.0)
    assert video_pair_summary("image.detection", 0, 1, video({}), video({})).agreement is None
    nothing = video_pair_summary("image.detection", 0, 1, video({0: {"boxes": []}}), video({0: {}}))
    assert nothing.agreement == 1.0 and nothing.mean_iou is None   # both found nothing: they agree


def test_classification_and_ocr_frames() -> None:
    a = video({0: {"label": "cat"}, 1: {"label": "dog"}})
    b = video({0: {"label": "cat"}, 1: {"label": "cat"}})
    assert video_pair_summary("image.classification", 0, 1, a, b).label_agreement == 0.5
    a = video({0: {"lines": [{"text": "STOP"}, {"text": "EXIT"}]}})
    b = video({0: {"lines": [{"text": "STOP "}]}})
    assert video_pair_summary("image.ocr", 0, 1, a, b).line_jaccard == 0.5


def test_frames_by_index_reads_malformed_outputs_as_empty() -> None:
    r = video({3: {"boxes": [box(0, 0)]}})
    r.outputs[0] = "not a dict"   # type: ignore[call-overload]
    assert frames_by_index(r) == {3: {}}


def test_compare_results_pairs_only_columns_with_frames() -> None:
    a, b, c = video({0: {"boxes": []}}), video({0: {"boxes": []}}), video({})
    cmp = compare_results("ref", "image.detection", [Column("a"), Column("b"), Column("c"), Column("d")],
                          [a, b, c, None], [None, None, "boom", "cancelled"])
    assert [(p.left, p.right) for p in cmp.pairs] == [(0, 1)]
    assert cmp.cancelled   # a column did not run


class FakePlan:
    def __init__(self, name: str, params: dict[str, Any]) -> None:
        self.target = type("T", (), {"name": name, "task": "image.detection"})()
        self.params = params
        self.data = type("D", (), {"ref": "demo-media/media/Megamind.avi"})()


def test_run_columns_runs_in_order_reports_progress_and_stops_after_a_cancel() -> None:
    plans = [FakePlan("face-detect", {"model": m}) for m in ("haar_default", "haar_alt2", "lbp")]
    cancel = threading.Event()
    ran: list[str] = []
    seen: list[tuple[int, int, int]] = []

    def execute(plan: FakePlan, *, force: bool, progress: Any, cancel: threading.Event) -> VideoResult:
        ran.append(plan.params["model"])
        progress(1, 1)
        if plan.params["model"] == "haar_alt2":
            cancel.set()
        return video({0: {"boxes": [box(0, 0)]}}, cancelled=cancel.is_set())

    cmp = run_columns(plans, execute, progress=lambda *a: seen.append(a), cancel=cancel)  # type: ignore[arg-type]
    assert ran == ["haar_default", "haar_alt2"] and seen == [(0, 0, 0), (0, 1, 1), (1, 0, 0), (1, 1, 1)]
    assert cmp.results[2] is None and cmp.errors[2] == "cancelled before it started"
    assert [c.params["model"] for c in cmp.columns] == ["haar_default", "haar_alt2", "lbp"]
    assert cmp.input_ref == "demo-media/media/Megamind.avi" and cmp.task == "image.detection"
    assert [(p.left, p.right, p.matched) for p in cmp.pairs] == [(0, 1, 1)]


def test_run_comparisons_counts_stages_over_every_set() -> None:
    sets = [[FakePlan("face-detect", {"model": "lbp"})] * 2, [FakePlan("person-detect", {})] * 3]
    seen: list[tuple[int, int, int, int]] = []

    def execute(plan: FakePlan, *, force: bool, progress: Any, cancel: Any) -> VideoResult:
        progress(1, 1)
        return video({0: {"boxes": []}})

    cmps = run_comparisons(sets, execute, progress=lambda *a: seen.append(a))  # type: ignore[arg-type]
    assert [len(c.results) for c in cmps] == [2, 3] and [c.columns[0].service for c in cmps] == ["face-detect",
                                                                                               "person-detect"]
    assert [s for s in seen if s[2] == 1] == [(1, 5, 1, 1), (2, 5, 1, 1), (3, 5, 1, 1), (4, 5, 1, 1), (5, 5, 1, 1)]
