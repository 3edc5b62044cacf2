"""Face detection with OpenCV cascade classifiers (task image.detection).

Result per image: {"boxes": [{"x", "y", "w", "h", "label": "face", "score"}]} in pixels of the
input image, highest score first. `score` is the box's neighbours: how many raw detections of the
cascade's sliding window were grouped into it (detectMultiScale2). It means the same for every
model — more neighbours, surer face — so the three models' scores can be compared; it is at least
`min_neighbors` + 1.

A cascade often puts a second, larger box on a face, half over the face and half over the
shoulder or hair: OpenCV groups only boxes of similar size and place. Boxes that overlap by more
than `nms_overlap` (intersection over the smaller box's area) are merged by non-maximum
suppression into the one with the most neighbours; 1.0 keeps every box. An image with no face
gives {"boxes": []}.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent


def cascade_files() -> dict[str, Path]:
    """Model name -> cascade XML: Haar cascades from the OpenCV wheel, LBP from this package."""
    haar = Path(cv2.data.haarcascades)
    return {"haar_default": haar / "haarcascade_frontalface_default.xml",
            "haar_alt2": haar / "haarcascade_frontalface_alt2.xml",
            "lbp": HERE / "lbpcascade_frontalface_improved.xml"}


def to_gray(image: np.ndarray) -> np.ndarray:
    """Grey image from a BGR, BGRA or already grey array."""
    if image.ndim == 2:
        return image
    code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
    return cv2.cvtColor(image, code)


class Algorithm:
    def setup(self) -> None:
        """Load all three cascades; fails loudly if a file is missing or unreadable."""
        self._cascades: dict[str, cv2.CascadeClassifier] = {}
        for name, path in cascade_files().items():
            cascade = cv2.CascadeClassifier(str(path))
            if cascade.empty():
                raise RuntimeError(f"cannot load cascade {name} from {path}")
            self._cascades[name] = cascade

    def predict(self, inputs: list[np.ndarray], model: str = "haar_default", scale_factor: float = 1.1,
                min_neighbors: int = 5, min_size: int = 30, equalize: bool = True,
                nms_overlap: float = 0.3) -> list[dict[str, Any]]:
        """Faces found in each input image, in order."""
        cascade = self._cascades[model]
        return [{"boxes": suppress(detect(cascade, image, scale_factor, min_neighbors, min_size, equalize),
                                   nms_overlap)} for image in inputs]


def detect(cascade: cv2.CascadeClassifier, image: np.ndarray, scale_factor: float, min_neighbors: int,
           min_size: int, equalize: bool) -> list[dict[str, Any]]:
    """Face boxes in `image` with their neighbours as score, most neighbours first."""
    gray = to_gray(image)
    if equalize:
        gray = cv2.equalizeHist(gray)
    rects, neighbours = cascade.detectMultiScale2(gray, scaleFactor=scale_factor, minNeighbors=min_neighbors,
                                                  minSize=(min_size, min_size))
    boxes = [{"x": int(x), "y": int(y), "w": int(w), "h": int(h), "label": "face", "score": int(n)}
             for (x, y, w, h), n in zip(rects, np.ravel(neighbours))]
    return sorted(boxes, key=lambda b: (-b["score"], -b["w"], b["y"], b["x"]))


def overlap(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Intersection of two boxes over the area of the smaller one (1.0 when one holds the other)."""
    w = min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"])
    h = min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"])
    if w <= 0 or h <= 0:
        return 0.0
    return w * h / min(a["w"] * a["h"], b["w"] * b["h"])


def suppress(boxes: list[dict[str, Any]], max_overlap: float) -> list[dict[str, Any]]:
    """Non-maximum suppression of `boxes` (best first): a box is dropped when it overlaps a box
    already kept by more than `max_overlap`."""
    kept: list[dict[str, Any]] = []
    for box in boxes:
        if all(overlap(k, box) <= max_overlap for k in kept):
            kept.append(box)
    return kept
