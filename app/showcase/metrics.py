"""How the outputs of two columns differ, on the result shapes of DESIGN §2 (pure functions):
box IoU and one-to-one matching, label agreement, entity and OCR-line overlap, and the summary
of a pair of outputs of one task."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

IOU_MATCH = 0.5


def _xywh(box: Mapping[str, Any]) -> tuple[float, float, float, float]:
    try:
        x, y, w, h = (float(box[k]) for k in ("x", "y", "w", "h"))
    except (KeyError, TypeError, ValueError):
        return 0.0, 0.0, 0.0, 0.0
    return x, y, max(w, 0.0), max(h, 0.0)


def iou(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    """Intersection over union of two {x, y, w, h} boxes; 0.0 when either is empty or malformed."""
    ax, ay, aw, ah = _xywh(a)
    bx, by, bw, bh = _xywh(b)
    inter = max(0.0, min(ax + aw, bx + bw) - max(ax, bx)) * max(0.0, min(ay + ah, by + bh) - max(ay, by))
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class BoxMatch:
    """Greedy one-to-one matching of two box sets: `pairs` (index in a, index in b, IoU)."""
    pairs: list[tuple[int, int, float]]
    unmatched_a: list[int]
    unmatched_b: list[int]

    @property
    def mean_iou(self) -> float | None:
        """Mean IoU of the matched pairs; None when nothing matched."""
        return sum(p[2] for p in self.pairs) / len(self.pairs) if self.pairs else None


def match_boxes(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]],
                threshold: float = IOU_MATCH) -> BoxMatch:
    """Pairs boxes by decreasing IoU, each box at most once, keeping pairs with IoU >= threshold."""
    candidates = sorted(((iou(x, y), i, j) for i, x in enumerate(a) for j, y in enumerate(b)),
                        key=lambda c: (-c[0], c[1], c[2]))
    used_a: set[int] = set()
    used_b: set[int] = set()
    pairs = []
    for value, i, j in candidates:
        if value < threshold or value == 0.0:
            break
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            pairs.append((i, j, value))
    return BoxMatch(pairs, [i for i in range(len(a)) if i not in used_a], [j for j in range(len(b)) if j not in used_b])


def label_agreement(a: Sequence[Any], b: Sequence[Any]) -> float | None:
    """Share of positions where two aligned label sequences agree; None when they are empty.
    ValueError when their lengths differ."""
    if len(a) != len(b):
        raise ValueError(f"label sequences differ in length: {len(a)} and {len(b)}")
    return sum(x == y for x, y in zip(a, b)) / len(a) if a else None


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def entity_overlap(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> float:
    """Jaccard index of the two entity sets, an entity being (text, type, start, end); 1.0 when
    both are empty."""
    def key(e: Mapping[str, Any]) -> tuple:
        return e.get("text"), e.get("type"), e.get("start"), e.get("end")
    return _jaccard({key(e) for e in a}, {key(e) for e in b})


def line_overlap(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> float:
    """Jaccard index of the recognised line texts (stripped); 1.0 when both are empty."""
    return _jaccard({str(x.get("text", "")).strip() for x in a}, {str(x.get("text", "")).strip() for x in b})


def entries(output: Mapping[str, Any] | None, key: str) -> list[Mapping[str, Any]]:
    """The mappings in `output[key]` (a list); [] when it is missing or not a list."""
    items = (output or {}).get(key)
    return [e for e in items if isinstance(e, Mapping)] if isinstance(items, list) else []


def result_count(task: str, output: Mapping[str, Any] | None) -> int | None:
    """Boxes, entities or lines in one output; None for classification and json tasks."""
    key = {"detection": "boxes", "ner": "entities", "ocr": "lines"}.get(task.partition(".")[2])
    return len(entries(output, key)) if key and output is not None else None


@dataclass(frozen=True)
class PairSummary:
    """How columns `left` and `right` (indices) differ; the fields that apply to the task are set."""
    left: int
    right: int
    boxes: BoxMatch | None = None
    box_label_agreement: float | None = None
    label_agrees: bool | None = None
    entity_jaccard: float | None = None
    line_jaccard: float | None = None


def pair_summary(task: str, left: int, right: int, a: Mapping[str, Any], b: Mapping[str, Any]) -> PairSummary:
    """The metrics of two outputs of `task` (DESIGN §2 shapes)."""
    kind = task.partition(".")[2]
    if kind == "detection":
        ba, bb = entries(a, "boxes"), entries(b, "boxes")
        m = match_boxes(ba, bb)
        agreement = label_agreement([ba[i].get("label") for i, _, _ in m.pairs], [bb[j].get("label") for _, j, _ in m.pairs])
        return PairSummary(left, right, boxes=m, box_label_agreement=agreement)
    if kind == "ner":
        return PairSummary(left, right, entity_jaccard=entity_overlap(entries(a, "entities"), entries(b, "entities")))
    if kind == "ocr":
        return PairSummary(left, right, line_jaccard=line_overlap(entries(a, "lines"), entries(b, "lines")))
    if kind == "classification":
        return PairSummary(left, right, label_agrees=a.get("label") == b.get("label"))
    return PairSummary(left, right)
