"""The Runtime protocol: how one backend runs service replicas, and the service state enum.

A `ReplicaSpec` says *what* to run (the runner for a package, or the package's own server
command), where it binds and with which limits; each backend renders its own argv, environment
and image from it. Backends are found by name in `orchestration.registry`.

Contract (every backend, tested the same way by tests/integration/test_runtime_contract.py):
- `build(spec, log)` makes what the replicas of `spec`'s version run on (a virtual environment,
  an image), or finds it made; returns whether it built something. Shared by every replica of
  the version; build output goes to `log` line by line. Failure: DeployError(phase="build").
- `deploy(spec, log)` creates the replica from `spec` and starts it; it returns the replica's
  `Endpoint` (where it answers) once the backend has started it — not when it is healthy: health
  gating is the deployer's job. A replica of the same name is replaced. Failure: DeployError.
  It binds `spec.host`; a cluster backend's task publishes `spec.port` on every address of the
  node it runs on instead, and the endpoint is that node's address.
- `start(name)` starts a stopped replica (no-op if running); NotFound if it was never deployed.
- `stop(name)` and `remove(name)` are idempotent: stopping a stopped or missing replica, or
  removing a missing one, succeeds silently. `remove` leaves no process, container or config.
- `restart(name)` = stop + start; NotFound if it was never deployed.
- `status(name)` never raises for a missing replica: it reads as STOPPED with `exists=False`.
- `logs(name, lines, stream)` returns the last `lines` lines of stdout or stderr ("" if none).
- `list()` returns the status of every replica the backend holds whose name starts `algo-`.
- `usage(statuses)` returns CPU and memory of the running replicas among `statuses` (one call
  per backend for a whole page); replicas it cannot measure are left out.
- `check()` says in one line what the engine is ("supervisord pid 12", "Docker Engine 28.2");
  BackendUnavailable when it cannot be reached.
- Backend errors are translated to OrchestrationError subclasses (`raise … from e`);
  an unreachable engine is BackendUnavailable.
"""
from __future__ import annotations

import re
import shlex
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


def slot_of(name: str) -> tuple[str, int | None]:
    """A cluster replica's name `<cluster service>.<slot>` → (cluster service, slot); any other
    name → (name, None). A cluster service's name has no dot (Docker's rule for service names)."""
    service, dot, slot = name.rpartition(".")
    return (service, int(slot)) if dot and service and slot.isdigit() else (name, None)


def replica_name(service: str, index: int) -> str:
    """Predictable external name of a replica: supervisor program and container `algo-{slug}-{n}`."""
    return f"{NAME_PREFIX}{service}-{index}"


@dataclass(frozen=True)
class Resources:
    cpus: float | None = None
    memory_mb: int | None = None


LOOPBACK = "127.0.0.1"
ANY_ADDRESS = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class Endpoint:
    """Where a replica answers: the address and port a caller connects to."""
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """The endpoint of a base URL `http://host:port` (as `url` renders it)."""
        host, _, port = url.removeprefix("http://").rpartition(":")
        return cls(host.strip("[]"), int(port))

    @classmethod
    def bound(cls, bind_host: str, port: int) -> Endpoint:
        """The endpoint of a server bound to `bind_host`: every address (0.0.0.0) is reached on loopback."""
        return cls(LOOPBACK if bind_host in ANY_ADDRESS else bind_host, port)


@dataclass(frozen=True)
class ReplicaSpec:
    """What to run for one replica; each backend renders its argv, environment and image from it.

    `server` is the package's own server command (manifest `server:`), with `$PORT` and `$HOST`
    standing for the port and address it must serve on; None runs the runner on the package.
    `env` holds the platform's and the user's variables only (nothing host-specific)."""
    service: str
    index: int
    version: str                    # tag, e.g. v3
    commit: str                     # commit sha of that version
    package_dir: Path               # the package exported at that version (on the platform's host)
    port: int                       # port reserved for the replica on the host
    host: str = LOOPBACK            # address the replica is reachable on (0.0.0.0: every interface)
    server: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    resources: Resources = Resources()
    requirements_hash: str = ""
    autorestart: bool = True

    @property
    def name(self) -> str:
        return replica_name(self.service, self.index)


@dataclass(frozen=True)
class Usage:
    cpu_percent: float | None
    memory_mb: float | None


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

    def build(self, spec: ReplicaSpec, log: LogSink) -> bool: ...
    def deploy(self, spec: ReplicaSpec, log: LogSink) -> Endpoint: ...
    def start(self, name: str) -> None: ...
    def stop(self, name: str) -> None: ...
    def restart(self, name: str) -> None: ...
    def remove(self, name: str) -> None: ...
    def status(self, name: str) -> ReplicaStatus: ...
    def logs(self, name: str, lines: int = 200, stream: str = "stdout") -> str: ...
    def list(self) -> list[ReplicaStatus]: ...
    def usage(self, statuses: Iterable[ReplicaStatus]) -> dict[str, Usage]: ...
    def check(self) -> str: ...


@dataclass(frozen=True)
class TaskEndpoint:
    """Where one task of a cluster service answers, and the version it runs."""
    endpoint: Endpoint
    version: str
    node: str = ""


@dataclass(frozen=True)
class NodeStatus:
    id: str
    name: str                      # hostname
    role: str                      # manager | worker
    availability: str              # active | pause | drain
    state: str                     # ready | down | unknown | disconnected
    address: str
    cpus: float
    memory_mb: float
    tasks: int                     # running tasks of the platform's services on it
    leader: bool = False


@runtime_checkable
class ClusterRuntime(Runtime, Protocol):
    """A backend that runs a service's replicas as the N tasks of one cluster service (swarm).

    Its replicas are the service's task slots, named `<cluster service>.<slot>`; start, stop,
    restart and remove of any of them act on the whole cluster service (the cluster keeps N tasks,
    not one). Contract, besides Runtime's:
    - `deploy_service(name, spec, replicas, log, timeout, on_change)` creates the cluster service
      `name` running `spec`'s version with `replicas` tasks, or rolls it to that version (new
      tasks started first, each gated by its health check); returns the slots' endpoints once every
      task runs the version. `on_change` hears the running tasks' endpoints whenever they change
      meanwhile (a gateway follows the roll). DeployError(phase="start") when the cluster rolled
      the update back (the previous version serves again) or it did not converge within `timeout`.
    - `restart_service(name, timeout, on_change)`: every task replaced (new first, each health-gated),
      followed to its end as `deploy_service` is; RolledBack when the cluster rolled it back.
    - `scale(name, replicas)`; `endpoints(name)`: the running tasks now, by slot name ({} if none).
    - `rollback(name)`: back to the previous definition (after a deploy the platform refused).
    - `nodes()`, `set_availability(node, availability)`, `join_tokens()`: the cluster's machines.
    """

    def deploy_service(self, name: str, spec: ReplicaSpec, replicas: int, log: LogSink, *, timeout: float,
                       on_change: Callable[[dict[str, TaskEndpoint]], None] = ...) -> dict[str, TaskEndpoint]: ...
    def restart_service(self, name: str, *, timeout: float,
                        on_change: Callable[[dict[str, TaskEndpoint]], None] = ...) -> dict[str, TaskEndpoint]: ...
    def scale(self, name: str, replicas: int) -> None: ...
    def endpoints(self, name: str) -> dict[str, TaskEndpoint]: ...
    def rollback(self, name: str) -> None: ...
    def nodes(self) -> list[NodeStatus]: ...
    def set_availability(self, node: str, availability: str) -> None: ...
    def join_tokens(self) -> dict[str, str]: ...


def server_argv(command: str, port: int, host: str) -> list[str]:
    """A manifest `server:` command as argv, `$PORT`/`${PORT}` and `$HOST`/`${HOST}` filled in."""
    return [re.sub(r"\$\{?HOST\}?", host, re.sub(r"\$\{?PORT\}?", str(port), arg)) for arg in shlex.split(command)]
