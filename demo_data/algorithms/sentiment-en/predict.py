"""English sentiment with VADER (task text.classification).

Result per text: {"label": "positive"|"neutral"|"negative", "score": scores[label], "scores",
"compound", "proportions"}. `compound` is VADER's normalised overall polarity in [-1, 1]; the label
comes from it and the threshold (VADER's recommended 0.05 by default): positive at or above the
threshold, negative at or below minus it, neutral in between.

`scores` says how strongly the evidence points to each label, so that the label is always the
top one: the polarity for its side (|compound| for positive or negative, 0 for the other) against
the threshold for neutral, normalised to sum to 1 (a text with no polarity at all is neutral, 1).
`proportions` are VADER's shares of positive, neutral and negative words (they sum to ~1): most
words of any sentence are neutral, so they are not class scores and do not decide the label.
"""
from __future__ import annotations

from typing import Any


class Algorithm:
    def setup(self) -> None:
        """Load VADER's lexicon (bundled with the package)."""
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        self._analyzer = SentimentIntensityAnalyzer()

    def predict(self, inputs: list[str], threshold: float = 0.05) -> list[dict[str, Any]]:
        """One classification per input text, in order."""
        return [classify(self._analyzer.polarity_scores(text), threshold) for text in inputs]


def label_of(compound: float, threshold: float) -> str:
    """VADER's rule: positive at or above the threshold, negative at or below minus it."""
    if compound != 0.0 and compound >= threshold:
        return "positive"
    if compound != 0.0 and compound <= -threshold:
        return "negative"
    return "neutral"


def evidence(compound: float, threshold: float, label: str) -> dict[str, float]:
    """Per label, the polarity for its side against the threshold for neutral, summing to 1."""
    raw = {"positive": max(compound, 0.0), "neutral": threshold, "negative": max(-compound, 0.0)}
    total = sum(raw.values())
    if total == 0.0:
        return {k: float(k == label) for k in raw}
    return {k: v / total for k, v in raw.items()}


def classify(polarity: dict[str, float], threshold: float) -> dict[str, Any]:
    """Label, scores and VADER's own figures from its polarity dict {"neg", "neu", "pos", "compound"}."""
    compound = float(polarity["compound"])
    label = label_of(compound, threshold)
    scores = evidence(compound, threshold, label)
    proportions = {"positive": float(polarity["pos"]), "neutral": float(polarity["neu"]),
                   "negative": float(polarity["neg"])}
    return {"label": label, "score": scores[label], "scores": scores, "compound": compound,
            "proportions": proportions}
