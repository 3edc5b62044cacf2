"""One error hierarchy for services. Backends translate their native errors into these
(`raise NotFound(...) from e`); pages show the message, never a traceback."""
from __future__ import annotations


class OrchestrationError(Exception):
    """Base of every error about running services; its message is fit to show a user."""


class NotFound(OrchestrationError):
    """The service, replica or image does not exist."""


class DeployError(OrchestrationError):
    """A deploy failed at `phase`; `log` holds the build log or the service's log tail."""

    def __init__(self, message: str, *, phase: str = "", log: str = "") -> None:
        super().__init__(message)
        self.phase = phase
        self.log = log


class BackendUnavailable(OrchestrationError):
    """The engine (supervisord, the container engine) cannot be reached."""


class PortUnavailable(OrchestrationError):
    """No free port is left in the configured range, or a requested port is taken."""
