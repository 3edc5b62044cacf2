"""Pedestrian detection with OpenCV's HOG + linear SVM people detector (task image.detection).

Result per image: {"boxes": [{"x", "y", "w", "h", "label": "person", "score"}]} in pixels of the
input image (boxes found on the resized image are scaled back and clipped to the image), highest
score first. `score` is the SVM decision value of the window (> hit_threshold; ~0-5).
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

class Algorithm:
    def setup(self) -> None:
        """Create the HOG descriptor with OpenCV's default 64x128 people detector."""
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def predict(self, inputs: list[np.ndarray], win_stride: int = 8, scale: float = 1.05, hit_threshold: float = 0.0,
                resize_width: int = 1024, nms_threshold: float = 0.45) -> list[dict[str, Any]]:
        """People found in each input image, in order."""
        return [{"boxes": self.detect(image, win_stride, scale, hit_threshold, resize_width, nms_threshold)}
                for image in inputs]

    def detect(self, image: np.ndarray, win_stride: int, scale: float, hit_threshold: float,
               resize_width: int, nms_threshold: float) -> list[dict[str, Any]]:
        """Boxes after NMS, in original image coordinates."""
        resized, factor = resize_to_width(to_bgr(image), resize_width)
        rects, weights = self._hog.detectMultiScale(
            resized, hitThreshold=hit_threshold, winStride=(win_stride, win_stride), padding=(8, 8), scale=scale)
        rects = [[int(v) for v in r] for r in rects]
        scores = [float(w) for w in np.ravel(weights)]
        keep = non_max_suppression(rects, scores, nms_threshold)
        boxes = [scale_box(rects[i], scores[i], factor, image.shape[1], image.shape[0]) for i in keep]
        return sorted(boxes, key=lambda b: (-b["score"], b["y"], b["x"]))


def non_max_suppression(rects: list[list[int]], scores: list[float], iou_threshold: float) -> list[int]:
    """Indices of the boxes NMS keeps. HOG already applied hit_threshold, and scores may be negative
    when it is, but NMSBoxes drops scores <= its (non-negative) floor: rank on scores shifted to >= 1."""
    if not rects:
        return []
    low = min(scores)
    shifted = [s - low + 1.0 for s in scores]
    return [int(i) for i in np.ravel(cv2.dnn.NMSBoxes(rects, shifted, 0.0, iou_threshold))]


def to_bgr(image: np.ndarray) -> np.ndarray:
    """3-channel BGR from grey, BGR or BGRA (the HOG descriptor wants 1 or 3 channels, 8-bit)."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR) if image.shape[2] == 4 else image


def resize_to_width(image: np.ndarray, width: int) -> tuple[np.ndarray, float]:
    """(image resized to `width`, original/resized factor); unchanged with factor 1 when width is 0."""
    h, w = image.shape[:2]
    if width <= 0 or width == w:
        return image, 1.0
    height = max(1, round(h * width / w))
    interpolation = cv2.INTER_AREA if width < w else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation), w / width


def scale_box(rect: list[int], score: float, factor: float, width: int, height: int) -> dict[str, Any]:
    """A detection box scaled by `factor` and clipped to a width x height image."""
    x0, y0 = max(0, round(rect[0] * factor)), max(0, round(rect[1] * factor))
    x1 = min(width, round((rect[0] + rect[2]) * factor))
    y1 = min(height, round((rect[1] + rect[3]) * factor))
    return {"x": int(x0), "y": int(y0), "w": int(x1 - x0), "h": int(y1 - y0), "label": "person", "score": score}
