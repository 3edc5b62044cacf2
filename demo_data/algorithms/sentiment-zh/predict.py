"""Chinese sentiment with SnowNLP (task text.classification).

Result per text: {"label": "positive"|"neutral"|"negative", "score": scores[label], "scores",
"probability"}. `probability` is SnowNLP's probability p that the text is positive (a blank text
has no evidence: p = 0.5). The label: neutral when p lies within `neutral_band` of the threshold,
else positive at or above the threshold and negative below it.

`scores` says how strongly the evidence points to each label, so that the label is always the
top one: how far p lies past the threshold for its side (0 for the other) against the band's
width for neutral, normalised to sum to 1 (exactly at the threshold with no band: 1 for the label).
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


def label_of(p: float, threshold: float, neutral_band: float) -> str:
    """Neutral inside the band around `threshold`, else by the side of it `p` lies on."""
    if abs(p - threshold) < neutral_band:
        return "neutral"
    return "positive" if p >= threshold else "negative"


def classify(p: float, threshold: float, neutral_band: float) -> dict[str, Any]:
    """The label for probability `p`, with scores whose top is that label."""
    label = label_of(p, threshold, neutral_band)
    past = p - threshold
    raw = {"positive": max(past, 0.0), "neutral": neutral_band, "negative": max(-past, 0.0)}
    total = sum(raw.values())
    scores = {k: v / total for k, v in raw.items()} if total > 0 else {k: float(k == label) for k in raw}
    return {"label": label, "score": scores[label], "scores": scores, "probability": p}
