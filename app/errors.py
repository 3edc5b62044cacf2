"""The core's errors, all under the one root `AlgoStageError` (defined in orchestration.errors,
the lowest layer, and re-exported here). A refused input carries every problem, each with field
and reason; `describe` is the one way an interface turns any AlgoStage error into text."""
from __future__ import annotations

from orchestration.errors import AlgoStageError, Message, Problem

__all__ = ["AlgoStageError", "Message", "Problem", "ValidationFailed", "Missing", "TooLarge", "PermissionDenied", "describe"]


class ValidationFailed(AlgoStageError):
    """Input was refused and nothing was changed. `problems` lists every reason at once."""
    code = "invalid"

    def __init__(self, problems: list[Problem], *, hint: str = "") -> None:
        self.problems = list(problems)
        super().__init__(Message("problems", "{problems}", problems=self.problems), hint=hint)

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "problems": [{"field": p.field, "reason": p.reason} for p in self.problems]}


class Missing(ValidationFailed):
    """What the request names does not exist (a service, an algorithm or version, a user, a job…)."""
    code = "not_found"


class TooLarge(ValidationFailed):
    """An input is over a size limit (an upload, a body, an output)."""
    code = "too_large"


class PermissionDenied(AlgoStageError):
    """The actor's role does not allow the action."""
    code = "forbidden"


def describe(error: AlgoStageError) -> str:
    """One line for a terminal or a message box: the message, then the hint if there is one."""
    return f"{error.message} ({error.hint})" if error.hint else error.message
