"""Metrics of one configuration against ground truth, by task, computed with well-kept libraries:
scikit-learn (classification), COCO's bounding-box evaluation (app/experiments/coco.py: pycocotools'
numbers, vectorised; checked against faster-coco-eval) (detection), nervaluate (NER, the SemEval-2013 schemes), RapidFuzz (OCR edit distances).

Contract: `score(task, targets, outputs, labels)` returns a `Scores`: `metrics` (flat, snake_case
names; None where undefined), `extras` for charts (confusion matrix, PR curves) and `items`, one
score per item in [0, 1] (1 = right) for the worst-first drill-down. An output of None is a failed
call: it counts as a wrong answer (no label, no boxes, no entities, no text).

- classification: `accuracy`, `macro_f1` (over the labels of the dataset and of the predictions,
  scikit-learn's default); extras: `confusion` {labels, matrix} (rows: truth), `pr` one-vs-rest
  curves per label when the outputs carry `scores`.
- detection: `precision`, `recall`, `f1` at IoU 0.5 (COCO matching: greedy by score, every
  detection, at most 100 per image), `map` (mean AP over IoU .50:.05:.95, COCO's 101-point
  interpolation) and `map_50`; predicted labels that no ground-truth category has are ignored, as
  COCO does. extras: `pr` the precision-recall curve at IoU 0.5.
- NER: `exact_*` (SemEval "strict": same span and type) and `overlap_*` (SemEval "type": any overlap
  and the same type) precision, recall and F1; each true entity is matched at most once.
- OCR: `cer` and `wer` (edit distance over the whole dataset / reference length; the lines of an
  output joined by spaces, whitespace collapsed), `exact_match` (share of items read exactly).
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from nervaluate.entities import Entity, EvaluationResult
from nervaluate.strategies import EntityTypeEvaluation, StrictEvaluation

from app.experiments import coco

FAILED = "(failed)"
PRIMARY = {"text.classification": ("macro_f1", True), "image.classification": ("macro_f1", True),
           "image.detection": ("map", True), "text.ner": ("exact_f1", True), "image.ocr": ("cer", False)}
MAX_CURVE_POINTS = 200


@dataclass
class Scores:
    metrics: dict[str, float | None]
    items: list[float]
    extras: dict[str, Any] = field(default_factory=dict)


def primary_metric(task: str) -> tuple[str, bool]:
    """(the metric that ranks configurations of `task`, whether higher is better)."""
    return PRIMARY.get(task, ("accuracy", True))


def score(task: str, targets: Sequence[Any], outputs: Sequence[Any], labels: Sequence[str] = ()) -> Scores:
    """See the module contract."""
    kind = task.partition(".")[2]
    if kind == "classification":
        return classification(targets, outputs, labels)
    if kind == "detection":
        return detection(targets, outputs, labels)
    if kind == "ner":
        return ner(targets, outputs)
    if kind == "ocr":
        return ocr(targets, outputs)
    raise ValueError(f"no metrics for task {task!r}")


def _r(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 6)


# --- classification ------------------------------------------------------------------------------------

def classification(targets: Sequence[str], outputs: Sequence[Any], labels: Sequence[str] = ()) -> Scores:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
    truth = [str(t) for t in targets]
    pred = [str(o.get("label")) if isinstance(o, dict) and o.get("label") is not None else FAILED for o in outputs]
    seen = list(dict.fromkeys([*labels, *sorted(set(truth)), *sorted(set(pred) - set(truth) - set(labels))]))
    with warnings.catch_warnings():     # one label in all: right, and said by a warning we do not need
        warnings.filterwarnings("ignore", "A single label was found", UserWarning)
        metrics = {"accuracy": _r(accuracy_score(truth, pred)),
                   "macro_f1": _r(f1_score(truth, pred, labels=sorted(set(truth) | set(pred)), average="macro",
                                           zero_division=0))}
        matrix = confusion_matrix(truth, pred, labels=seen).tolist()
    extras = {"confusion": {"labels": seen, "matrix": matrix},
              "pr": _classification_curves(truth, outputs, list(dict.fromkeys([*labels, *sorted(set(truth))])))}
    return Scores(metrics, [1.0 if t == p else 0.0 for t, p in zip(truth, pred)], extras)


def _classification_curves(truth: list[str], outputs: Sequence[Any], labels: list[str]) -> dict[str, Any]:
    """One-vs-rest precision-recall curves per label from the outputs' `scores`; {} without scores."""
    from sklearn.metrics import average_precision_score, precision_recall_curve
    if not outputs or not all(isinstance(o, dict) and isinstance(o.get("scores"), dict) for o in outputs):
        return {}
    curves = {}
    for label in labels:
        y = np.array([t == label for t in truth])
        s = np.array([float(o["scores"].get(label) or 0.0) for o in outputs])
        if y.any() and not y.all():
            precision, recall, _ = precision_recall_curve(y, s)
            keep = _thin(len(recall))
            curves[label] = {"precision": precision[keep].round(4).tolist(), "recall": recall[keep].round(4).tolist(),
                             "ap": _r(average_precision_score(y, s))}
    return curves


def _thin(n: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, MAX_CURVE_POINTS)).round().astype(int))


# --- detection -------------------------------------------------------------------------------------------

def detection(targets: Sequence[Mapping[str, Any]], outputs: Sequence[Any], labels: Sequence[str] = ()) -> Scores:
    truth = [t.get("boxes") or () for t in targets]
    pred = [o.get("boxes") or () if isinstance(o, dict) else () for o in outputs]
    names = list(dict.fromkeys([*labels, *sorted({b["label"] for boxes in truth for b in boxes})]))
    gt_total = sum(map(len, truth))
    if not names or gt_total == 0:
        metrics = {"precision": None, "recall": None, "f1": None, "map": None, "map_50": None}
        return Scores(metrics, [1.0 if not p else 0.0 for p in pred])
    cats = {name: i for i, name in enumerate(names)}
    gt, dt = _boxes(truth, cats), _boxes(pred, cats, scored=True)
    if not len(dt):
        metrics = {"precision": None, "recall": 0.0, "f1": 0.0, "map": 0.0, "map_50": 0.0}
        return Scores(metrics, [1.0 if not t else 0.0 for t in truth])
    return _detection_scores(coco.evaluate(gt, dt, len(cats)), gt, dt, len(truth))


def _boxes(per_item: Sequence[Sequence[Mapping[str, Any]]], cats: Mapping[str, int], scored: bool = False) -> coco.Boxes:
    """The boxes of every item whose label is one of `cats`, as arrays (one pass: this is the hot
    part of scoring 10,000 images); a detection without a numeric score counts as 1."""
    image: list[int] = []
    category: list[int] = []
    coords: list[Any] = []
    scores: list[Any] = []
    for i, boxes in enumerate(per_item):
        for b in boxes:
            c = cats.get(b.get("label"))
            if c is None:
                continue
            image.append(i)
            category.append(c)
            coords += (b["x"], b["y"], b["w"], b["h"])
            if scored:
                s = b.get("score")
                scores.append(s if isinstance(s, (int, float)) else 1.0)
    return coco.Boxes(np.array(image, np.int64), np.array(category, np.int64),
                      np.array(coords, float).reshape(-1, 4), np.array(scores, float) if scored else None)


def _detection_scores(evaluation: coco.Evaluation, gt: coco.Boxes, dt: coco.Boxes, images: int) -> Scores:
    at_50 = evaluation.matched[0]                              # IoU .5
    tp = int(at_50.sum())
    precision, recall = tp / len(dt), tp / len(gt)
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    p = evaluation.precision                                   # [iou, recall, category]
    maps = [a[a > -1].mean() if (a > -1).any() else np.nan for a in p]
    metrics = {"precision": _r(precision), "recall": _r(recall), "f1": _r(f1), "map": _r(np.nanmean(maps)),
               "map_50": _r(maps[0])}
    curve = np.where(p[0] > -1, p[0], np.nan)
    pr = {"recall": coco.RECALL_THRESHOLDS.round(4).tolist(),
          "precision": [_r(v) for v in np.nanmean(curve, axis=1)]} if np.isfinite(curve).any() else {}
    # F1 at IoU .5 of each image (1 for an image with nothing to find and nothing found)
    tps = np.bincount(dt.image[at_50], minlength=images)
    found = np.bincount(dt.image, minlength=images) + np.bincount(gt.image, minlength=images)
    items = [1.0 if d == 0 else round(float(2 * t / d), 6) for t, d in zip(tps.tolist(), found.tolist())]
    return Scores(metrics, items, {"pr": pr})


# --- NER -------------------------------------------------------------------------------------------------

def ner(targets: Sequence[Mapping[str, Any]], outputs: Sequence[Any]) -> Scores:
    """nervaluate's two schemes we report (its Evaluator runs all four, per type too: 6x the work),
    summed over the texts as its Evaluator sums them. A text whose entities were all found as they
    are is counted without matching: every entity correct under both schemes."""
    truth = [_spans(t.get("entities")) for t in targets]
    pred = [_spans(o.get("entities")) if isinstance(o, dict) else [] for o in outputs]
    schemes = {"exact": (StrictEvaluation(), False), "overlap": (EntityTypeEvaluation(), True)}
    totals = {name: EvaluationResult() for name in schemes}
    per_doc: list[float] = []
    for i, (gold, found) in enumerate(zip(truth, pred)):
        if len(gold) == len(found) and sorted(gold) == sorted(found):
            for total in totals.values():
                total.correct += len(gold)
            per_doc.append(1.0)
            continue
        gold_e, found_e = [Entity(*e) for e in gold], [Entity(*e) for e in found]
        for name, (scheme, _) in schemes.items():
            r, _ = scheme.evaluate(gold_e, found_e, [], i)
            _add(totals[name], r)
            if name == "exact":
                per_doc.append(1.0 if not (gold or found) else round(2 * r.correct / (len(gold) + len(found)), 6))
    metrics: dict[str, float | None] = {}
    for name, (_, partial_or_type) in schemes.items():
        r = totals[name]
        r.compute_metrics(partial_or_type=partial_or_type)
        defined = bool(r.actual or r.possible)
        metrics.update({f"{name}_{k}": _r(getattr(r, k)) if defined else None for k in ("precision", "recall", "f1")})
    return Scores(metrics, per_doc)


def _add(total: Any, one: Any) -> None:
    for k in ("correct", "incorrect", "partial", "missed", "spurious"):
        setattr(total, k, getattr(total, k) + getattr(one, k))


def _spans(entities: Any) -> list[tuple[str, int, int]]:
    """(type, start, end inclusive) of each well-formed entity: nervaluate's Entity fields."""
    return [(str(e.get("type")), e["start"], e["end"] - 1) for e in entities or []
            if type(e) is dict and type(e.get("start")) is int and type(e.get("end")) is int and e["end"] > e["start"]]


# --- OCR -------------------------------------------------------------------------------------------------

def ocr(targets: Sequence[str], outputs: Sequence[Any]) -> Scores:
    from rapidfuzz.distance import Levenshtein
    truth = [_norm(t) for t in targets]
    read = [_norm(" ".join(str(line.get("text", "")) for line in o.get("lines") or [] if isinstance(line, dict)))
            if isinstance(o, dict) else "" for o in outputs]
    chars = [Levenshtein.distance(p, t) for p, t in zip(read, truth)]
    words = [Levenshtein.distance(p.split(), t.split()) for p, t in zip(read, truth)]
    n_chars, n_words = sum(len(t) for t in truth), sum(len(t.split()) for t in truth)
    metrics = {"cer": _r(sum(chars) / n_chars) if n_chars else None,
               "wer": _r(sum(words) / n_words) if n_words else None,
               "exact_match": _r(float(np.mean([p == t for p, t in zip(read, truth)]))) if truth else None}
    items = [1.0 - min(1.0, d / len(t)) if t else float(p == t) for d, p, t in zip(chars, read, truth)]
    return Scores(metrics, [round(v, 6) for v in items])


def _norm(text: Any) -> str:
    return " ".join(str(text or "").split())


# --- latency ---------------------------------------------------------------------------------------------

def latency(total_ms: Sequence[float | None], spans: Sequence[tuple[float, float]] = ()) -> dict[str, float | None]:
    """p50 and p95 of the items' total times (ms), and `throughput_per_s`: items called per second
    of wall time from the first call's start to the last call's end (None when nothing was called)."""
    times = np.array([t for t in total_ms if t is not None], dtype=float)
    out: dict[str, float | None] = {"p50": None, "p95": None, "throughput_per_s": None}
    if times.size:
        out["p50"], out["p95"] = (_r(v) for v in np.percentile(times, [50, 95]))
    if spans:
        wall = max(e for _, e in spans) - min(s for s, _ in spans)
        out["throughput_per_s"] = _r(len(spans) / wall) if wall > 0 else None
    return out
