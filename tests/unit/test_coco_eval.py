"""app/experiments/coco.py gives faster-coco-eval's (pycocotools') numbers: the matches at every IoU
threshold and the interpolated precision, on random datasets made to hit COCO's corner cases —
several categories, a category no box of the truth has, more than 100 detections in one image,
equal scores across images and within one, equal IoUs, images with nothing, empty boxes."""
from __future__ import annotations

import numpy as np
import pytest

from app.experiments import coco, metrics


def oracle(truth: list[list[dict]], pred: list[list[dict]], names: list[str]):
    """(detections matched at some IoU threshold, as indices; precision (T, R, K)) from faster-coco-eval,
    whose eval["matched"] holds the pairs of every threshold (not only .5)."""
    from faster_coco_eval import COCO, COCOeval_faster
    cats = {name: i + 1 for i, name in enumerate(names)}
    anns = [{"id": n + 1, "image_id": i + 1, "category_id": cats[b["label"]], "iscrowd": 0,
             "bbox": [b["x"], b["y"], b["w"], b["h"]], "area": float(b["w"]) * float(b["h"])}
            for n, (i, b) in enumerate((i, b) for i, boxes in enumerate(truth) for b in boxes)]
    gt = COCO({"images": [{"id": i + 1} for i in range(len(truth))], "annotations": anns,
               "categories": [{"id": c, "name": name} for name, c in cats.items()]})
    dets = [{"image_id": i + 1, "category_id": cats[b["label"]], "bbox": [b["x"], b["y"], b["w"], b["h"]],
             "score": b["score"]} for i, boxes in enumerate(pred) for b in boxes]
    evaluation = COCOeval_faster(gt, gt.loadRes(dets), "bbox", print_function=lambda *a, **k: None)
    evaluation.evaluate()
    evaluation.accumulate()
    matched = {int(key.split("_", 1)[0]) - 1 for key in evaluation.eval["matched"]}
    return matched, evaluation.eval["precision"][:, :, :, 0, -1]


def iou(a: dict, b: dict) -> float:
    w = max(0.0, min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"]))
    h = max(0.0, min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"]))
    union = a["w"] * a["h"] + b["w"] * b["h"] - w * h
    return w * h / union if union > 0 else 0.0


def matched_at(truth: list[list[dict]], pred: list[list[dict]], threshold: float) -> set[int]:
    """pycocotools' evaluateImg for one threshold, written out plainly: per image and label, the
    detections by score (stable), at most 100; each takes the untaken truth of highest IoU >= threshold."""
    found, offset = set(), 0
    for gts, dets in zip(truth, pred):
        for label in {d["label"] for d in dets}:
            mine = sorted((j for j, d in enumerate(dets) if d["label"] == label), key=lambda j: -dets[j]["score"])[:100]
            theirs = [g for g in gts if g["label"] == label]
            taken = [False] * len(theirs)
            for j in mine:
                best, m = min(threshold, 1 - 1e-10), -1
                for k, g in enumerate(theirs):
                    if not taken[k] and iou(dets[j], g) >= best:
                        best, m = iou(dets[j], g), k
                if m >= 0:
                    taken[m] = True
                    found.add(offset + j)
        offset += len(dets)
    return found


def random_dataset(rng: np.random.Generator, images: int, names: list[str]):
    truth, pred = [], []
    for i in range(images):
        gts = [{"x": float(rng.integers(0, 80)), "y": float(rng.integers(0, 80)), "w": float(rng.integers(1, 30)),
                "h": float(rng.integers(1, 30)), "label": str(rng.choice(names[:-1]))}
               for _ in range(rng.integers(0, 4))]
        dets = []
        for g in gts:   # near copies of the truth, some shifted past every threshold
            for _ in range(rng.integers(0, 3)):
                shift = float(rng.integers(0, 6))
                dets.append({**g, "x": g["x"] + shift, "score": float(rng.choice([0.5, 0.7, 0.9, rng.random()]))})
        for _ in range(rng.integers(0, 4 if i % 17 else 130)):      # clutter; now and then > 100 in one image
            dets.append({"x": float(rng.integers(0, 90)), "y": float(rng.integers(0, 90)), "w": float(rng.integers(0, 30)),
                         "h": float(rng.integers(1, 30)), "label": str(rng.choice(names)),
                         "score": float(rng.choice([0.5, 0.9, rng.random()]))})
        truth.append(gts)
        pred.append(dets)
    return truth, pred


@pytest.mark.parametrize("seed", range(6))
def test_matches_and_precision_are_faster_coco_evals(seed):
    rng = np.random.default_rng(seed)
    names = ["face", "person", "cat", "unseen"]
    truth, pred = random_dataset(rng, 60, names)
    truth[0] = [{"x": 10.0, "y": 10.0, "w": 10.0, "h": 10.0, "label": "face"},     # equal IoUs: the last gt wins
                {"x": 10.0, "y": 10.0, "w": 10.0, "h": 10.0, "label": "face"}]
    pred[0] = [{"x": 10.0, "y": 10.0, "w": 10.0, "h": 10.0, "label": "face", "score": 0.9}] * 3
    cats = {name: i for i, name in enumerate(names)}
    gt, dt = metrics._boxes(truth, cats), metrics._boxes(pred, cats, scored=True)
    ours = coco.evaluate(gt, dt, len(names))
    matched, precision = oracle(truth, pred, names)
    assert set(np.flatnonzero(ours.matched.any(axis=0)).tolist()) == matched
    for t in (0, 3, 9):
        assert set(np.flatnonzero(ours.matched[t]).tolist()) == matched_at(truth, pred, coco.IOU_THRESHOLDS[t])
    np.testing.assert_allclose(ours.precision, precision, atol=1e-12)
    assert (ours.precision[:, :, 3] == -1).all() and ours.matched.sum() > 0


def test_the_experiment_metrics_are_those_of_the_library():
    rng = np.random.default_rng(42)
    truth, pred = random_dataset(rng, 200, ["face", "person"])
    s = metrics.detection([{"boxes": t} for t in truth], [{"boxes": p} for p in pred], ["face", "person"])
    _, precision = oracle(truth, pred, ["face", "person"])
    matched = matched_at(truth, pred, 0.5)
    maps = [a[a > -1].mean() for a in precision]
    assert s.metrics["map"] == pytest.approx(np.mean(maps), abs=1e-6)
    assert s.metrics["map_50"] == pytest.approx(maps[0], abs=1e-6)
    assert s.metrics["recall"] == pytest.approx(len(matched) / sum(map(len, truth)), abs=1e-6)
    assert s.metrics["precision"] == pytest.approx(len(matched) / sum(map(len, pred)), abs=1e-6)
