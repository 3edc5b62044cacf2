"""English sentiment with VADER (task text.classification).

Result per text: {"label": "positive"|"neutral"|"negative", "score", "scores", "compound"}.
`scores` are VADER's proportions of positive, neutral and negative text (they sum to ~1);
`compound` is VADER's normalised overall score in [-1, 1]. The label comes from the compound
score and the threshold (VADER's recommended 0.05 by default); `score` is the confidence of that
label: |compound| for positive/negative, 1 - |compound| / threshold for neutral.
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


def classify(polarity: dict[str, float], threshold: float) -> dict[str, Any]:
    """Label and scores from VADER's polarity dict {"neg", "neu", "pos", "compound"}."""
    compound = float(polarity["compound"])
    if compound >= threshold and compound != 0.0:
        label, score = "positive", abs(compound)
    elif compound <= -threshold and compound != 0.0:
        label, score = "negative", abs(compound)
    else:
        label, score = "neutral", 1.0 - abs(compound) / threshold if threshold > 0 else 1.0
    scores = {"positive": float(polarity["pos"]), "neutral": float(polarity["neu"]),
              "negative": float(polarity["neg"])}
    return {"label": label, "score": float(score), "scores": scores, "compound": compound}
