"""Text recognition with RapidOCR on ONNX Runtime (task image.ocr).

Result per image: {"lines": [{"text", "score", "box": {"x", "y", "w", "h"}, "polygon": [[x, y] * 4]}]}
in reading order as RapidOCR returns it (top to bottom, left to right). `polygon` is the detected
quadrilateral (clockwise from top-left, pixels of the input image), `box` its axis-aligned bounding
box, `score` the recognition confidence (0-1). An image with no text gives {"lines": []}.
"""
from __future__ import annotations

import threading
from typing import Any

import cv2
import numpy as np


class Algorithm:
    def setup(self) -> None:
        """Create the engine and run it once on a drawn line of text: RapidOCR loads its three
        models lazily, so this moves the loading (~2 s) out of the first predict."""
        from rapidocr import RapidOCR
        self._engine = RapidOCR(params={"Global.log_level": "warning"})
        self._lock = threading.Lock()  # the engine keeps per-call params as state
        self._engine(warmup_image())

    def predict(self, inputs: list[np.ndarray], text_score: float = 0.5, box_thresh: float = 0.5,
                unclip_ratio: float = 1.6, use_cls: bool = True) -> list[dict[str, Any]]:
        """Text lines of each input image, in order."""
        results = []
        for image in inputs:
            with self._lock:
                output = self._engine(to_bgr(image), use_cls=use_cls, text_score=text_score,
                                      box_thresh=box_thresh, unclip_ratio=unclip_ratio)
            results.append({"lines": lines_of(output)})
        return results


def warmup_image() -> np.ndarray:
    """A white image with one line of black text."""
    image = np.full((64, 320, 3), 255, np.uint8)
    cv2.putText(image, "AlgoStage 2026", (10, 44), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 0), 2, cv2.LINE_AA)
    return image


def to_bgr(image: np.ndarray) -> np.ndarray:
    """3-channel BGR from grey, BGR or BGRA."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR) if image.shape[2] == 4 else image


def lines_of(output: Any) -> list[dict[str, Any]]:
    """Plain-JSON lines from a RapidOCROutput (boxes/txts/scores are None when nothing was found)."""
    boxes, texts, scores = getattr(output, "boxes", None), getattr(output, "txts", None), getattr(output, "scores", None)
    if boxes is None or texts is None or scores is None:
        return []
    return [line(polygon, text, score) for polygon, text, score in zip(boxes, texts, scores)]


def line(polygon: np.ndarray, text: str, score: float) -> dict[str, Any]:
    """One line: text, confidence, integer polygon and its bounding box."""
    points = [[int(round(float(x))), int(round(float(y)))] for x, y in np.asarray(polygon).reshape(-1, 2)]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    box = {"x": min(xs), "y": min(ys), "w": max(xs) - min(xs), "h": max(ys) - min(ys)}
    return {"text": str(text), "score": float(score), "box": box, "polygon": points}
