"""Canny edges summarised as regions (task image.detection).

Result per image: {"boxes": [{"x", "y", "w", "h", "label": "contour", "area", "length"}],
"edge_ratio", "contours"}. The edge map is dilated by one pixel so touching edges join, then the
outer contours are ranked by enclosed area (pixels, largest first) and the first `max_boxes`
reported with their bounding boxes; `length` is the contour's perimeter in pixels.
`edge_ratio` is the fraction of pixels on an edge (before dilation), `contours` how many regions
were found in all. A flat image gives {"boxes": [], "edge_ratio": 0.0, "contours": 0}.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

JOIN_KERNEL = np.ones((3, 3), np.uint8)


class Algorithm:
    def setup(self) -> None:
        """Nothing to load: Canny has no model."""

    def predict(self, inputs: list[np.ndarray], threshold1: int = 100, threshold2: int = 200, aperture: int = 3,
                blur: int = 3, max_boxes: int = 20) -> list[dict[str, Any]]:
        """Edge regions of each input image, in order."""
        results = []
        for image in inputs:
            edges = edge_map(image, threshold1, threshold2, int(aperture), blur)
            boxes, total = largest_regions(edges, max_boxes)
            results.append({"boxes": boxes, "edge_ratio": float(np.count_nonzero(edges) / edges.size),
                            "contours": total})
        return results


def edge_map(image: np.ndarray, threshold1: int, threshold2: int, aperture: int, blur: int) -> np.ndarray:
    """Binary (0/255) Canny edge map of the grey image, blurred first when blur > 1."""
    gray = image if image.ndim == 2 else cv2.cvtColor(
        image, cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    if blur > 1:
        size = blur if blur % 2 else blur + 1
        gray = cv2.GaussianBlur(gray, (size, size), 0)
    return cv2.Canny(gray, threshold1, threshold2, apertureSize=aperture)


def largest_regions(edges: np.ndarray, max_boxes: int) -> tuple[list[dict[str, Any]], int]:
    """(the max_boxes largest edge regions as boxes, number of regions)."""
    joined = cv2.dilate(edges, JOIN_KERNEL)
    contours, _ = cv2.findContours(joined, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    boxes = [region(c) for c in contours]
    boxes.sort(key=lambda b: (-b["area"], b["y"], b["x"], b["w"], b["h"]))
    return boxes[:max_boxes], len(contours)


def region(contour: np.ndarray) -> dict[str, Any]:
    """Bounding box, enclosed area and perimeter of one contour."""
    x, y, w, h = cv2.boundingRect(contour)
    return {"x": int(x), "y": int(y), "w": int(w), "h": int(h), "label": "contour",
            "area": float(cv2.contourArea(contour)), "length": float(cv2.arcLength(contour, True))}
