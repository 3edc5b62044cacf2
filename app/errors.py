"""Errors shared by the core: a refused input carries every problem, each with field and reason."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class ValidationFailed(Exception):
    """Input was refused and nothing was changed. `problems` lists every reason at once."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


class PermissionDenied(Exception):
    """The actor's role does not allow the action."""
