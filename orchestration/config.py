"""Declared settings: a key, how its raw text is parsed and checked, its default and help.

The vocabulary in which the platform (app.settings) and each engine backend (its module's
`SETTINGS`) declare what they read. Resolving a value (environment > database > default) is
the platform's job; a backend only declares, and receives the resolved values.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from orchestration.errors import Message


# --- value parsers: str -> typed value, ValueError(reason) when invalid ----------------------

def parse_int_in(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(Message("value.not_whole", "must be a whole number, got {raw!r}", raw=raw)) from None
        if not lo <= value <= hi:
            raise ValueError(Message("value.between", "must be between {lo} and {hi}, got {value}", lo=lo, hi=hi,
                                     value=value))
        return value
    return parse


def parse_float_in(lo: float, hi: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(Message("value.not_number", "must be a number, got {raw!r}", raw=raw)) from None
        if not lo <= value <= hi:
            raise ValueError(Message("value.between_g", "must be between {lo:g} and {hi:g}, got {value:g}", lo=lo, hi=hi,
                                     value=value))
        return value
    return parse


def parse_port_range(raw: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", raw)
    if not m:
        raise ValueError(Message("value.port_range", "must look like 18000-18999, got {raw!r}", raw=raw))
    lo, hi = int(m[1]), int(m[2])
    if not 1024 <= lo < hi <= 65535:
        raise ValueError(Message("value.port_range_bounds", "needs 1024 <= start < end <= 65535, got {lo}-{hi}", lo=lo, hi=hi))
    return lo, hi


def parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.strip() not in choices:
            raise ValueError(Message("value.choice", "must be one of {choices}, got {raw!r}", choices=", ".join(choices),
                                     raw=raw))
        return raw.strip()
    return parse


def parse_bool(raw: str) -> bool:
    low = raw.strip().lower()
    if low in {"1", "true", "yes", "on"}:
        return True
    if low in {"0", "false", "no", "off"}:
        return False
    raise ValueError(Message("value.not_bool", "must be true or false, got {raw!r}", raw=raw))


def parse_url(*schemes: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        parts = urlsplit(raw.strip())
        if parts.scheme not in schemes or not (parts.netloc or parts.path):
            raise ValueError(Message("value.url", "must be a URL starting with {schemes}, got {raw!r}",
                                     schemes=" or ".join(s + "://" for s in schemes), raw=raw))
        return raw.strip().rstrip("/")
    return parse


def parse_host_port(raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9.\-]+:\d{1,5}", raw.strip()):
        raise ValueError(Message("value.host_port", "must be host:port without a scheme, e.g. 127.0.0.1:9000, got {raw!r}",
                                 raw=raw))
    return raw.strip()


def parse_text(max_len: int = 300, pattern: str | None = None) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip()
        if len(value) > max_len:
            raise ValueError(Message("value.too_long", "must be at most {count} characters", count=max_len))
        if pattern and value and not re.fullmatch(pattern, value):
            raise ValueError(Message("value.pattern", "must match {pattern}", pattern=pattern))
        return value
    return parse


def parse_existing_file(raw: str) -> str:
    if raw.strip() and not Path(raw.strip()).is_file():
        raise ValueError(Message("value.no_file", "file does not exist: {path}", path=raw.strip()))
    return raw.strip()


def parse_size_mb(raw: str) -> int:
    return parse_int_in(1, 100_000)(raw)


@dataclass(frozen=True)
class SettingSpec:
    key: str
    parse: Callable[[str], Any]
    default: str
    help: str
    group: str = "platform"
    env_only: bool = False
    secret: bool = False
