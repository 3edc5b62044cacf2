"""The one error root of AlgoStage and the errors of the engines.

Every error the platform raises on purpose is an `AlgoStageError`: a stable `code` (tools and the
API match on it, never on the message), a `message` fit to show a user, and an optional `hint`
(what to do about it). It lives here, in the lowest layer, so that engines and platform services
share it while imports keep pointing down; `app.errors` adds the core's own errors under it.
Backends translate their native errors into these (`raise NotFound(...) from e`); pages, the CLI
and the API show `message` and `hint`, never a traceback.

A message, a hint or a problem's reason may be a `Message`: the English text (a `str`, so the CLI,
the API and the logs read it as before) that also carries a stable key and the values it was made
of, so an interface can say it in its own language (app/i18n.py `say`) without losing a value.

The runner (orchestration/runner) is copied into every replica and depends on nothing here.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class Message(str):
    """English text that knows how it was made: `key` names the sentence (a catalogue of another
    language translates it by that key), `template` is its English form (`str.format` fields) and
    `values` fill it. It *is* the English string, so it passes through every place that takes a
    `str`; any string operation on it (slicing, concatenation, an f-string) gives a plain `str`,
    which an interface shows as it is.

        Message("service.missing", "no service {name!r}", name="ocr")  ==  "no service 'ocr'"

    A value may itself be a Message, a Problem or a list of them (joined with "; "): each is said
    in the interface's language too."""

    key: str
    template: str
    values: Mapping[str, Any]

    def __new__(cls, key: str, template: str, /, **values: Any) -> Message:
        self = super().__new__(cls, template.format(**{k: _english(v) for k, v in values.items()}))
        self.key, self.template, self.values = key, template, values
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return _message, (self.key, self.template, dict(self.values))


def reason_of(error: BaseException) -> str:
    """The reason an exception was raised with, kept a `Message` when it was one (`str(error)`
    would give plain text): for `raise ValueError(Message(...))` turned into a Problem."""
    first = error.args[0] if len(error.args) == 1 else None
    return first if isinstance(first, Message) else str(error)


def _message(key: str, template: str, values: dict[str, Any]) -> Message:
    return Message(key, template, **values)


def _english(value: Any) -> Any:
    """A value as the English text shows it: messages and problems as text, lists of them joined."""
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, Problem)) for v in value):
        return "; ".join(str(v) for v in value)
    return str(value) if isinstance(value, Problem) else value


def stored(text: str) -> Any:
    """`text` in a JSON-able form that keeps what a `Message` knows (key, template, values, nested
    messages and problems), for a database column; `restored` turns it back. Plain text stays text;
    no text is None."""
    if isinstance(text, Message):
        return {"message": [text.key, text.template, {k: _stored_value(v) for k, v in text.values.items()}]}
    return str(text) if text else None


def kept(text: str, limit: int) -> tuple[str, Any]:
    """What a row keeps of `text`: (its English text cut to `limit` characters, for the text column
    the API and the CLI show; `stored(text)`, whole, for the column beside it that a page reads)."""
    return text[:limit], stored(text)


def restored(doc: Any, text: str = "") -> str:
    """The text `stored` kept: a `Message` again when it was one; a document of another shape as
    text; `text` (the English column beside it) when nothing was kept (a row written before)."""
    if isinstance(doc, Mapping) and isinstance(doc.get("message"), list) and len(doc["message"]) == 3:
        key, template, values = doc["message"]
        try:
            return Message(str(key), str(template), **{str(k): _restored_value(v) for k, v in dict(values).items()})
        except (KeyError, IndexError, ValueError, TypeError):
            return str(template)
    return text if doc is None else str(doc)


def _stored_value(value: Any) -> Any:
    if isinstance(value, Message):
        return stored(value)
    if isinstance(value, Problem):
        return {"problem": [value.field, _stored_value(value.reason)]}
    if isinstance(value, (list, tuple)):
        return [_stored_value(v) for v in value]
    return value if value is None or isinstance(value, (bool, int, float)) else str(value)


def _restored_value(value: Any) -> Any:
    if isinstance(value, Mapping) and "message" in value:
        return restored(value)
    if isinstance(value, Mapping) and isinstance(value.get("problem"), list) and len(value["problem"]) == 2:
        return Problem(str(value["problem"][0]), _restored_value(value["problem"][1]))
    if isinstance(value, list):
        return [_restored_value(v) for v in value]
    return value


class AlgoStageError(Exception):
    """Root of every AlgoStage error. Subclasses set `code`; an instance may override it."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if code is not None:
            self.code = code

    @property
    def key(self) -> str:
        """The key of the message (see `Message`); "" when the message is plain text."""
        return getattr(self.message, "key", "")

    @property
    def values(self) -> Mapping[str, Any]:
        """The values the message was made of; empty when the message is plain text."""
        return getattr(self.message, "values", {})

    def to_dict(self) -> dict[str, object]:
        """The JSON shape of an error (API bodies, `--json` failures)."""
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.hint:
            body["hint"] = self.hint
        return body


@dataclass(frozen=True)
class Problem:
    """One reason an input was refused: the field it concerns and why (a `Message` when an
    interface may translate it)."""
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class OrchestrationError(AlgoStageError):
    """Base of every error about running services; its message is fit to show a user."""
    code = "orchestration"


class NotFound(OrchestrationError):
    """The service, replica or image does not exist."""
    code = "not_found"


class DeployError(OrchestrationError):
    """A deploy failed at `phase`; `log` holds the build log or the service's log tail."""
    code = "deploy_failed"

    def __init__(self, message: str, *, phase: str = "", log: str = "", hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.phase = phase
        self.log = log



class RolledBack(DeployError):
    """A cluster rolled an update back on its own (a new task failed): the previous version serves again."""


class Conflict(OrchestrationError):
    """The action collides with one in progress (a second deploy of the same service)."""
    code = "conflict"


class BackendUnavailable(OrchestrationError):
    """The engine (supervisord, the container engine) cannot be reached."""
    code = "backend_unavailable"


class PortUnavailable(OrchestrationError):
    """No free port is left in the configured range, or a requested port is taken."""
    code = "port_unavailable"
