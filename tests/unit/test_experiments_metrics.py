"""Metrics against ground truth, each checked against a value worked out by hand
(app.experiments.metrics, app.experiments.results)."""
from __future__ import annotations

import pytest

from app.experiments import metrics
from app.experiments.results import best, item_results, summarise


def test_classification_accuracy_macro_f1_confusion_and_pr_curves():
    truth = ["a", "a", "b", "b", "c"]
    outputs = [{"label": "a", "scores": {"a": .9, "b": .1, "c": 0}}, {"label": "b", "scores": {"a": .4, "b": .6, "c": 0}},
               {"label": "b", "scores": {"a": .2, "b": .8, "c": 0}}, {"label": "b", "scores": {"a": .3, "b": .7, "c": 0}},
               None]
    s = metrics.classification(truth, outputs, ["a", "b", "c"])
    assert s.metrics["accuracy"] == pytest.approx(0.6)
    # F1 a = 2/3, b = 0.8, c = 0, "(failed)" = 0 (a failed call is a wrong answer)
    assert s.metrics["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 4, abs=1e-6)
    assert s.extras["confusion"] == {"labels": ["a", "b", "c", "(failed)"],
                                     "matrix": [[1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]]}
    assert s.items == [1.0, 0.0, 1.0, 1.0, 0.0]
    assert s.extras["pr"] == {}                       # the failed call has no scores
    s = metrics.classification(truth[:4], outputs[:4], ["a", "b"])
    assert s.extras["pr"]["a"]["ap"] == pytest.approx(1.0) and s.extras["pr"]["b"]["ap"] == pytest.approx(1.0)


def test_detection_precision_recall_f1_at_iou_half_and_map():
    truth = [{"boxes": [{"x": 0, "y": 0, "w": 10, "h": 10, "label": "face"}]},
             {"boxes": [{"x": 0, "y": 0, "w": 10, "h": 10, "label": "face"}]}]
    outputs = [{"boxes": [{"x": 0, "y": 0, "w": 10, "h": 10, "label": "face", "score": .9},
                          {"x": 50, "y": 50, "w": 10, "h": 10, "label": "face", "score": .8}]},
               {"boxes": [{"x": 5, "y": 0, "w": 10, "h": 10, "label": "face", "score": .7}]}]   # IoU 1/3
    s = metrics.detection(truth, outputs, ["face"])
    assert s.metrics["precision"] == pytest.approx(1 / 3, abs=1e-6)
    assert s.metrics["recall"] == pytest.approx(0.5)
    assert s.metrics["f1"] == pytest.approx(0.4)
    # one true positive first, then two false ones: precision 1 up to recall 0.5 -> 51 of 101 points
    assert s.metrics["map"] == pytest.approx(51 / 101, abs=1e-6)
    assert s.metrics["map_50"] == pytest.approx(51 / 101, abs=1e-6)
    assert s.items == [pytest.approx(2 / 3), 0.0]
    assert len(s.extras["pr"]["recall"]) == 101


def test_detection_without_detections_or_truth():
    truth = [{"boxes": [{"x": 0, "y": 0, "w": 10, "h": 10, "label": "face"}]}, {"boxes": []}]
    s = metrics.detection(truth, [{"boxes": []}, None], ["face"])
    assert s.metrics["recall"] == 0.0 and s.metrics["map"] == 0.0 and s.items == [0.0, 1.0]
    s = metrics.detection([{"boxes": []}], [{"boxes": [{"x": 1, "y": 1, "w": 2, "h": 2, "label": "face"}]}], ["face"])
    assert s.metrics["map"] is None and s.items == [0.0]


def test_ner_exact_and_overlap_scores():
    text = "Alice visited New York"
    truth = [{"entities": [{"start": 0, "end": 5, "type": "PER"}, {"start": 14, "end": 22, "type": "LOC"}]}]
    pred = [{"entities": [{"start": 0, "end": 5, "type": "PER", "text": text[:5]}, {"start": 14, "end": 17, "type": "LOC"},
                          {"start": 18, "end": 22, "type": "LOC"}]}]
    s = metrics.ner(truth, pred)
    # exact: Alice right, "New" overlaps New York (incorrect), "York" spurious: P 1/3, R 1/2
    assert (s.metrics["exact_precision"], s.metrics["exact_recall"], s.metrics["exact_f1"]) == \
        pytest.approx((1 / 3, 1 / 2, 0.4), abs=1e-6)
    # overlap: "New" counts for New York, "York" is spurious: P 2/3, R 1
    assert (s.metrics["overlap_precision"], s.metrics["overlap_recall"], s.metrics["overlap_f1"]) == \
        pytest.approx((2 / 3, 1.0, 0.8), abs=1e-6)
    assert s.items == [pytest.approx(2 * 1 / 5)]


def test_ocr_character_and_word_error_rates():
    s = metrics.ocr(["HELLO WORLD", "AB"], [{"lines": [{"text": "HELL0"}, {"text": " WORLD "}]},
                                            {"lines": [{"text": "AB"}]}])
    assert s.metrics["cer"] == pytest.approx(1 / 13, abs=1e-6)
    assert s.metrics["wer"] == pytest.approx(1 / 3, abs=1e-6)
    assert s.metrics["exact_match"] == 0.5
    assert s.items == [pytest.approx(1 - 1 / 11, abs=1e-6), 1.0]


def test_latency_percentiles_and_throughput():
    lat = metrics.latency([10, 20, 30, 40, None], [(0.0, 1.0), (0.5, 2.0)])
    assert lat == {"p50": 25.0, "p95": 38.5, "throughput_per_s": 1.0}
    assert metrics.latency([]) == {"p50": None, "p95": None, "throughput_per_s": None}


def rows(config: int, outputs: list, ms: float = 5.0) -> list[dict]:
    return [{"config": config, "item": i, "status": "ok" if o is not None else "error", "output": o, "error": "" if o
             else "boom", "total_ms": ms if o is not None else None, "cached": False, "started": float(i),
             "ended": i + 0.5} for i, o in enumerate(outputs)]


def test_runs_best_and_items_worst_first():
    targets = ["a", "b", "a"]
    configs = [{"t": 1}, {"t": 2}]
    data = rows(0, [{"label": "a"}, {"label": "a"}, {"label": "a"}]) + \
        rows(1, [{"label": "a"}, {"label": "b"}, None], ms=9.0)
    runs, extras = summarise("text.classification", ["a", "b"], configs, targets, data)
    assert [r.metrics["accuracy"] for r in runs] == [pytest.approx(2 / 3), pytest.approx(2 / 3)]
    assert runs[1].errors == 1 and runs[1].items == 3 and runs[1].latency_ms["p50"] == 9.0
    assert runs[0].metrics["throughput_per_s"] == pytest.approx(3 / 2.5)
    assert best(runs, "text.classification").index == 1          # macro F1: 0.4 vs 0.56
    assert extras[0]["confusion"]["matrix"] == [[2, 0], [1, 0]]
    worst = item_results("text.classification", ["a", "b"], targets, ["r0", "r1", "r2"],
                         [r for r in data if r["config"] == 1])
    assert [(i.index, i.score, i.error) for i in worst] == [(2, 0.0, "boom"), (0, 1.0, ""), (1, 1.0, "")]
    assert best([], "image.ocr") is None
