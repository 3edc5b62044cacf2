"""Bounds on what one request may make the runner do, shared by the native API and V2.

- `loads(body)`: JSON parsed, or `TooDeep` (a ValueError) when lists and objects nest deeper than
  MAX_JSON_DEPTH — a deep enough document made `json.loads`, or the algorithm later, raise
  RecursionError, which reached the client as a 500. Malformed JSON raises json's ValueError.
- MAX_IMAGE_PIXELS (ALGOSTAGE_MAX_IMAGE_PIXELS): what one image's header may claim; checked
  before decoding (`images.dimensions`), so a decompression bomb allocates nothing.
"""
from __future__ import annotations

import json
import os
from typing import Any

MAX_JSON_DEPTH = 64   # the platform checks the same before a call (app/invoke.py)
# a 12000x5333 panorama passes; a PNG claiming 60000x60000 (10.8 GB as BGR) does not
MAX_IMAGE_PIXELS = int(os.environ.get("ALGOSTAGE_MAX_IMAGE_PIXELS", "64000000"))


class TooDeep(ValueError):
    pass


def loads(body: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`body` as JSON; TooDeep past `max_depth` levels, ValueError when malformed."""
    try:
        doc = json.loads(body)
    except RecursionError:
        raise TooDeep(f"JSON nested deeper than {max_depth} levels") from None
    if depth(doc, max_depth) > max_depth:
        raise TooDeep(f"JSON nested deeper than {max_depth} levels")
    return doc


def depth(doc: Any, limit: int) -> int:
    """How deeply lists and objects nest in `doc` (a scalar is 0), counted without recursion and
    no further than limit + 1."""
    deepest, stack = 0, [(doc, 1)] if isinstance(doc, (dict, list)) else []
    while stack:
        value, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        children = value.values() if isinstance(value, dict) else value
        stack.extend((c, level + 1) for c in children if isinstance(c, (dict, list)))
    return deepest
