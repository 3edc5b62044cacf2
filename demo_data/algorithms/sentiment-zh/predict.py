"""Chinese sentiment with SnowNLP (task text.classification).

Result per text: {"label": "positive"|"neutral"|"negative", "score": scores[label],
"scores": {"positive": p, "neutral": n, "negative": 1 - p}} where p is SnowNLP's probability that
the text is positive and n is 1 at the threshold falling to 0 at the edge of the neutral band
(0 outside it). A blank text has no evidence: p = 0.5.
"""
from __future__ import annotations

from typing import Any


class Algorithm:
    def setup(self) -> None:
        """Import snownlp (it loads its bundled models at import time, ~3 s)."""
        from snownlp import SnowNLP
        self._snownlp = SnowNLP

    def predict(self, inputs: list[str], threshold: float = 0.5, neutral_band: float = 0.1) -> list[dict[str, Any]]:
        """One classification per input text, in order."""
        return [classify(self.positive_probability(text), threshold, neutral_band) for text in inputs]

    def positive_probability(self, text: str) -> float:
        """SnowNLP's P(positive) for `text`; 0.5 for blank text (SnowNLP divides by zero on "")."""
        if not text.strip():
            return 0.5
        return float(self._snownlp(text).sentiments)


def classify(p: float, threshold: float, neutral_band: float) -> dict[str, Any]:
    """The label for probability `p`: neutral inside the band around `threshold`, else by side."""
    distance = abs(p - threshold)
    neutral = 1.0 - distance / neutral_band if neutral_band > 0 and distance < neutral_band else 0.0
    scores = {"positive": p, "neutral": neutral, "negative": 1.0 - p}
    if neutral > 0.0:
        label = "neutral"
    else:
        label = "positive" if p >= threshold else "negative"
    return {"label": label, "score": scores[label], "scores": scores}
