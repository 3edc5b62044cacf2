"""Chinese named entities from jieba's part-of-speech tags (task text.ner).

Result per text: {"entities": [{"text", "type", "start", "end", "tag"}]} in reading order, where
text[start:end] == entity["text"] (Python string indices, i.e. characters), type is PERSON,
LOCATION or ORGANIZATION and tag is jieba's tag. No score: the tagger gives none.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

TAG_TYPES = {"nr": "PERSON", "nrfg": "PERSON", "nrt": "PERSON", "ns": "LOCATION", "nt": "ORGANIZATION"}


class Algorithm:
    def setup(self) -> None:
        """Load jieba's dictionary. jieba caches the built prefix dictionary in a file, so point
        it at a writable temp dir (shared between restarts, so later starts load faster)."""
        import jieba
        import jieba.posseg
        jieba.setLogLevel(logging.WARNING)
        cache_dir = Path(tempfile.gettempdir()) / "algostage-jieba"
        cache_dir.mkdir(parents=True, exist_ok=True)
        jieba.dt.tmp_dir = str(cache_dir)
        jieba.initialize()
        self._posseg = jieba.posseg

    def predict(self, inputs: list[str], include_person: bool = True, include_location: bool = True,
                include_org: bool = True, hmm: bool = True, min_length: int = 2) -> list[dict[str, Any]]:
        """Entities of each input text, in order."""
        wanted = {t for t, on in (("PERSON", include_person), ("LOCATION", include_location),
                                  ("ORGANIZATION", include_org)) if on}
        return [{"entities": self.entities(text, wanted, hmm, min_length)} for text in inputs]

    def entities(self, text: str, wanted: set[str], hmm: bool, min_length: int) -> list[dict[str, Any]]:
        """Tagged words of `text` whose type is wanted and that are at least min_length long."""
        found: list[dict[str, Any]] = []
        pos = 0
        for pair in self._posseg.cut(text, HMM=hmm):
            start = text.find(pair.word, pos)
            if start < 0:  # jieba yields the text's own characters in order; never expected
                continue
            pos = start + len(pair.word)
            kind = TAG_TYPES.get(pair.flag)
            if kind in wanted and len(pair.word.strip()) >= min_length:
                found.append({"text": pair.word, "type": kind, "start": start, "end": pos, "tag": pair.flag})
        return found
