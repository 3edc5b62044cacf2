"""A template algorithm (task text.classification): setup() once, predict(inputs, **params) per batch.

predict receives a list of inputs (str for text tasks, a dict for json, a BGR numpy array for
image tasks) and the parameters of algorithm.yaml as keyword arguments, defaults filled in and
checked; it returns one result per input in the task's shape:
{"label", "score", "scores": {label: score}} for a classification.
"""
from __future__ import annotations

import re
from typing import Any

POSITIVE = {"good", "great", "excellent", "wonderful", "friendly", "love", "spotless", "fast"}
NEGATIVE = {"bad", "late", "broken", "damaged", "slow", "rude", "dirty", "never"}


class Algorithm:
    def setup(self) -> None:
        """Load models here (once, before the first call); this template has none."""
        self._word = re.compile(r"[a-z']+")

    def predict(self, inputs: list[str], margin: int = 1) -> list[dict[str, Any]]:
        return [self.classify(text, margin) for text in inputs]

    def classify(self, text: str, margin: int) -> dict[str, Any]:
        words = self._word.findall(text.lower())
        pos, neg = sum(w in POSITIVE for w in words), sum(w in NEGATIVE for w in words)
        label = "positive" if pos - neg >= margin else "negative"
        total = pos + neg
        scores = {"positive": pos / total, "negative": neg / total} if total else {"positive": 0.5, "negative": 0.5}
        scores[label] = max(scores.values())   # the label is the top class, also on a tie
        return {"label": label, "score": scores[label], "scores": scores}
