"""COCO's bounding-box evaluation (pycocotools' `COCOeval`, iouType "bbox", area "all", at most 100
detections per image and category) in numpy, vectorised over images: the same matches and the same
101-point interpolated precision, for the experiments' detection metrics.

Why not the library: faster-coco-eval gives these numbers too, but builds Python dicts per box and
computes IoUs one image at a time: ~0.8 s per configuration of 10,000 images, where a sweep page
scores 8 at once (docs/BENCHMARKS.md, "Experiments"). Here every image is matched at once, one
detection rank at a time (greedy by score, as COCO: each detection takes the unmatched ground-truth
box of highest IoU at or above the threshold, the last of equal ones), and the accumulation is one
sort per category. tests/unit/test_coco_eval.py checks it against faster-coco-eval on random data.

Contract: `evaluate(gt, dt)` with `Boxes` (image index, category index, x, y, w, h, and for
detections a score) returns `Evaluation`: `matched[t, d]` (detection d matched at IoU threshold t;
False for detections past the 100 of their image and category), `precision[t, r, k]` (COCO's
`eval["precision"][t, r, k, area all, maxDets 100]`: -1 for a category without ground truth).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
MAX_DETS = 100


@dataclass(frozen=True)
class Boxes:
    image: np.ndarray        # int, per box
    category: np.ndarray     # int, per box
    xywh: np.ndarray         # float (n, 4)
    score: np.ndarray | None = None   # detections only

    def __len__(self) -> int:
        return len(self.image)


@dataclass(frozen=True)
class Evaluation:
    matched: np.ndarray      # bool (T, n detections)
    precision: np.ndarray    # float (T, R, K)


def evaluate(gt: Boxes, dt: Boxes, categories: int) -> Evaluation:
    """See the module contract. `categories`: how many category indices there are (0..K-1)."""
    t_count = len(IOU_THRESHOLDS)
    matched = np.zeros((t_count, len(dt)), bool)
    gt_key = gt.image.astype(np.int64) * categories + gt.category
    dt_key = dt.image.astype(np.int64) * categories + dt.category
    # detections by (image, category), then score descending, then their order (pycocotools' mergesort)
    dt_order = np.lexsort((np.arange(len(dt)), -dt.score, dt_key))
    dt_rank = _rank_in_group(dt_key[dt_order])
    evaluated = dt_order[dt_rank < MAX_DETS]
    if len(gt) and len(evaluated):
        _match(gt, gt_key, dt, dt_key, dt_order, dt_rank, matched)
    return Evaluation(matched, _accumulate(gt, dt, evaluated, matched, categories))


def _rank_in_group(sorted_keys: np.ndarray) -> np.ndarray:
    """0, 1, 2… within each run of equal keys of a sorted array."""
    if not len(sorted_keys):
        return np.zeros(0, np.int64)
    starts = np.r_[0, np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1]
    lengths = np.diff(np.r_[starts, len(sorted_keys)])
    return np.arange(len(sorted_keys)) - np.repeat(starts, lengths)


def _match(gt: Boxes, gt_key: np.ndarray, dt: Boxes, dt_key: np.ndarray, dt_order: np.ndarray,
           dt_rank: np.ndarray, matched: np.ndarray) -> None:
    """COCO's greedy matching of every (image, category) at once, one detection rank at a time."""
    gt_order = np.argsort(gt_key, kind="stable")
    keys, gt_start, gt_count = np.unique(gt_key[gt_order], return_index=True, return_counts=True)
    width = int(gt_count.max())
    slot = _rank_in_group(gt_key[gt_order])
    group_of_gt = np.repeat(np.arange(len(keys)), gt_count)
    boxes = np.zeros((len(keys), width, 4))
    valid = np.zeros((len(keys), width), bool)
    boxes[group_of_gt, slot] = gt.xywh[gt_order]
    valid[group_of_gt, slot] = True
    taken = np.zeros((len(keys), len(IOU_THRESHOLDS), width), bool)
    thresholds = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)[None, :, None]
    found = np.searchsorted(keys, dt_key[dt_order])
    found = np.minimum(found, len(keys) - 1)
    has_gt = keys[found] == dt_key[dt_order]
    for rank in range(min(int(dt_rank.max()) + 1, MAX_DETS)):
        pick = (dt_rank == rank) & has_gt
        if not pick.any():
            continue
        dets, groups = dt_order[pick], found[pick]
        iou = _iou(dt.xywh[dets], boxes[groups])                               # (n, G)
        candidate = (iou[:, None, :] >= thresholds) & valid[groups][:, None, :] & ~taken[groups]
        best = np.where(candidate, iou[:, None, :], -1.0)
        last_best = width - 1 - np.argmax(best[..., ::-1], axis=-1)             # (n, T): ties go to the last
        hit = candidate.any(axis=-1)
        rows, thresholds_hit = np.nonzero(hit)
        taken[groups[rows], thresholds_hit, last_best[rows, thresholds_hit]] = True
        matched[:, dets] = hit.T


def _iou(det: np.ndarray, gts: np.ndarray) -> np.ndarray:
    """IoU of each detection (n, 4) with each box of its group (n, G, 4), xywh (pycocotools' bbox IoU)."""
    x1 = np.maximum(det[:, None, 0], gts[..., 0])
    y1 = np.maximum(det[:, None, 1], gts[..., 1])
    x2 = np.minimum(det[:, None, 0] + det[:, None, 2], gts[..., 0] + gts[..., 2])
    y2 = np.minimum(det[:, None, 1] + det[:, None, 3], gts[..., 1] + gts[..., 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = det[:, None, 2] * det[:, None, 3] + gts[..., 2] * gts[..., 3] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def _accumulate(gt: Boxes, dt: Boxes, evaluated: np.ndarray, matched: np.ndarray, categories: int) -> np.ndarray:
    """COCO's `accumulate` for area "all" and maxDets 100: precision (T, R, K), -1 where a category has
    no ground truth."""
    t_count, r_count = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS)
    precision = -np.ones((t_count, r_count, categories))
    gt_per_category = np.bincount(gt.category, minlength=categories)
    for k in range(categories):
        if gt_per_category[k] == 0:
            continue
        mine = evaluated[dt.category[evaluated] == k]        # by image, then score: COCO's concatenation
        if not len(mine):
            precision[:, :, k] = 0.0
            continue
        mine = mine[np.argsort(-dt.score[mine], kind="mergesort")]
        tp = np.cumsum(matched[:, mine], axis=1, dtype=float)
        fp = np.cumsum(~matched[:, mine], axis=1, dtype=float)
        recall = tp / gt_per_category[k]
        prec = tp / (fp + tp + np.spacing(1))
        prec = np.maximum.accumulate(prec[:, ::-1], axis=1)[:, ::-1]          # COCO's envelope
        for t in range(t_count):
            at = np.searchsorted(recall[t], RECALL_THRESHOLDS, side="left")
            precision[t, :, k] = np.where(at < len(mine), prec[t, np.minimum(at, len(mine) - 1)], 0.0)
    return precision
