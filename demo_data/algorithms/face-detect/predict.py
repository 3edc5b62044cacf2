"""Face detection with OpenCV cascade classifiers (task image.detection).

Result per image: {"boxes": [{"x", "y", "w", "h", "label": "face", "score"}]} in pixels of the
input image, highest score first. `score` is the cascade's level weight (detectMultiScale3 with
outputRejectLevels): larger is surer, but its scale differs between models, so compare scores
only within one model. An image with no face gives {"boxes": []}.
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
                min_neighbors: int = 5, min_size: int = 30, equalize: bool = True) -> list[dict[str, Any]]:
        """Faces found in each input image, in order."""
        cascade = self._cascades[model]
        return [{"boxes": detect(cascade, image, scale_factor, min_neighbors, min_size, equalize)}
                for image in inputs]


def detect(cascade: cv2.CascadeClassifier, image: np.ndarray, scale_factor: float, min_neighbors: int,
           min_size: int, equalize: bool) -> list[dict[str, Any]]:
    """Face boxes in `image`, highest level weight first."""
    gray = to_gray(image)
    if equalize:
        gray = cv2.equalizeHist(gray)
    rects, _levels, weights = cascade.detectMultiScale3(
        gray, scaleFactor=scale_factor, minNeighbors=min_neighbors, minSize=(min_size, min_size),
        outputRejectLevels=True)
    boxes = [{"x": int(x), "y": int(y), "w": int(w), "h": int(h), "label": "face", "score": float(s)}
             for (x, y, w, h), s in zip(rects, np.ravel(weights))]
    return sorted(boxes, key=lambda b: (-b["score"], b["y"], b["x"]))
