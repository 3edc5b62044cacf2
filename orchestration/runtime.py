"""The Runtime protocol: how one backend runs service replicas, and the service state enum.

Contract (every backend, tested the same way):
- `deploy(spec, log)` creates the replica from `spec` and starts it; it returns when the backend
  has started it (not when it is healthy: health gating is the deployer's job). A replica of the
  same name is replaced. Build output goes to `log` line by line. Failure: DeployError.
- `start(name)` starts a stopped replica (no-op if running); NotFound if it was never deployed.
- `stop(name)` and `remove(name)` are idempotent: stopping a stopped or missing replica, or
  removing a missing one, succeeds silently. `remove` leaves no process, container or config.
- `restart(name)` = stop + start; NotFound if it was never deployed.
- `status(name)` never raises for a missing replica: it reads as STOPPED with `exists=False`.
- `logs(name, lines, stream)` returns the last `lines` lines of stdout or stderr ("" if none).
- `list()` returns the status of every replica the backend holds whose name starts `algo-`.
- Backend errors are translated to OrchestrationError subclasses (`raise … from e`);
  an unreachable engine is BackendUnavailable.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol, runtime_checkable

NAME_PREFIX = "algo-"


class ServiceState(StrEnum):
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    BACKOFF = "BACKOFF"      # exited too quickly; the backend will retry
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"      # stopped on purpose, or not deployed
    EXITED = "EXITED"        # exited and will not be restarted
    FATAL = "FATAL"          # could not be started (gave up retrying)
    UNKNOWN = "UNKNOWN"

    @property
    def is_up(self) -> bool:
        return self in {ServiceState.STARTING, ServiceState.RUNNING}


def wait_settled(status: Callable[[str], ServiceState], names: Iterable[str], timeout: float, *,
                 transient: Iterable[ServiceState] = (ServiceState.STARTING, ServiceState.BACKOFF),
                 poll_s: float = 0.1) -> dict[str, ServiceState]:
    """Polls `status(name)` until no replica is in a `transient` state (by default: until
    supervisord's `startsecs` and retries are over), or `timeout` seconds pass; returns the last
    state read of each replica."""
    transient = frozenset(transient)
    pending, states = set(names), {}
    deadline = time.monotonic() + timeout
    while True:
        for name in list(pending):
            states[name] = status(name)
            if states[name] not in transient:
                pending.discard(name)
        if not pending or time.monotonic() > deadline:
            return states
        time.sleep(poll_s)


def replica_name(service: str, index: int) -> str:
    """Predictable external name of a replica: supervisor program and container `algo-{slug}-{n}`."""
    return f"{NAME_PREFIX}{service}-{index}"


@dataclass(frozen=True)
class Resources:
    cpus: float | None = None
    memory_mb: int | None = None


@dataclass(frozen=True)
class ReplicaSpec:
    """Everything a backend needs to run one replica."""
    service: str
    index: int
    version: str                    # tag, e.g. v3
    commit: str                     # commit sha of that version
    package_dir: Path               # the package exported at that version
    port: int                       # host port the replica answers on
    command: list[str]              # argv run inside the environment (runner or the package's own server)
    env: Mapping[str, str] = field(default_factory=dict)
    resources: Resources = Resources()
    python_env: Path | None = None  # venv for process backends; None for images
    requirements_hash: str = ""
    autorestart: bool = True

    @property
    def name(self) -> str:
        return replica_name(self.service, self.index)


@dataclass(frozen=True)
class ReplicaStatus:
    name: str
    state: ServiceState
    exists: bool = True
    pid: int | None = None          # process backends
    container_id: str | None = None  # container backends
    started_at: float | None = None  # epoch seconds
    message: str = ""               # backend's description, exit status, last error
    labels: Mapping[str, str] = field(default_factory=dict)


LogSink = Callable[[str], None]


@runtime_checkable
class Runtime(Protocol):
    name: str

    def deploy(self, spec: ReplicaSpec, log: LogSink) -> None: ...
    def start(self, name: str) -> None: ...
    def stop(self, name: str) -> None: ...
    def restart(self, name: str) -> None: ...
    def remove(self, name: str) -> None: ...
    def status(self, name: str) -> ReplicaStatus: ...
    def logs(self, name: str, lines: int = 200, stream: str = "stdout") -> str: ...
    def list(self) -> list[ReplicaStatus]: ...


RUNTIMES: dict[str, Callable[..., Runtime]] = {}


def register(name: str) -> Callable[[Callable[..., Runtime]], Callable[..., Runtime]]:
    """Class decorator: make a backend available by name (`RUNTIMES['docker']`)."""
    def wrap(factory: Callable[..., Runtime]) -> Callable[..., Runtime]:
        RUNTIMES[name] = factory
        return factory
    return wrap
