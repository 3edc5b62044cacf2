"""A service as a cluster engine runs it: one image, N replicas of one container, its limits, its
health check, its restart and update policies. The swarm runtime (orchestration/swarm.py) and the
exports (orchestration/export/: Compose, Kubernetes) render this one description, so what the
platform runs on a swarm and what it exports are the same service.

Inside a cluster every replica has a network namespace of its own, so it always listens on
`CONTAINER_PORT` on every address; the engine publishes it (swarm: a host port per task,
Kubernetes: a Service).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from orchestration.docker import CONTAINER_HOST, container_command, container_env, image_tag
from orchestration.runtime import ReplicaSpec, Resources

CONTAINER_PORT = 8000
HEALTH_PATH = "/health"
LABEL = "algostage"
# Reservations are a share of the limits: the scheduler places a task where that much is free.
RESERVED_SHARE = 0.25
# The runner answers /health 200 only when READY or BUSY (DESIGN §3); any other answer or none fails.
HEALTH_PROBE = ("import os, urllib.request as u; "
                "u.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=3)")


@dataclass(frozen=True)
class Probe:
    interval_s: int = 2
    timeout_s: int = 3
    retries: int = 3
    start_period_s: int = 120      # setup() may load a model: failures before then do not count


@dataclass(frozen=True)
class Policies:
    restart_condition: str = "on-failure"
    restart_delay_s: int = 5
    restart_attempts: int = 5
    restart_window_s: int = 120
    update_parallelism: int = 1
    update_delay_s: int = 2
    update_monitor_s: int = 15
    stop_grace_s: int = 20
    drain_s: int = 3               # a replaced task keeps serving this long after the stop signal


@dataclass(frozen=True)
class Workload:
    service: str                   # the platform's service (slug)
    version: str                   # tag, e.g. v3
    commit: str
    image: str                     # full reference, in the cluster's registry
    replicas: int
    command: tuple[str, ...] | None  # None: the image's own CMD
    env: Mapping[str, str]
    resources: Resources
    probe: Probe = Probe()
    policies: Policies = Policies()
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The cluster service's name: `algo-{slug}` (the platform's predictable external names)."""
        return f"algo-{self.service}"

    @property
    def health_command(self) -> list[str]:
        return ["CMD", "python", "-c", HEALTH_PROBE]

    @property
    def reserved(self) -> Resources:
        cpus = round(self.resources.cpus * RESERVED_SHARE, 3) if self.resources.cpus else None
        memory = max(16, int(self.resources.memory_mb * RESERVED_SHARE)) if self.resources.memory_mb else None
        return Resources(cpus, memory)


def image_ref(spec: ReplicaSpec, registry: str) -> str:
    """`<registry>/algostage/<service>:<version>-<commit>-<requirements hash>`: the docker runtime's tag in the registry."""
    return f"{registry.rstrip('/')}/{image_tag(spec)}" if registry else image_tag(spec)


def workload_of(spec: ReplicaSpec, replicas: int, registry: str, *, own_dockerfile: bool,
                probe: Probe = Probe()) -> Workload:
    """The cluster service of `spec`'s version with `replicas` tasks (the spec's index and port are
    the first replica's; inside the cluster every task listens on CONTAINER_PORT)."""
    inner = ReplicaSpec(spec.service, 1, spec.version, spec.commit, spec.package_dir, CONTAINER_PORT,
                        CONTAINER_HOST, spec.server, spec.env, spec.resources, spec.requirements_hash,
                        spec.autorestart)
    command = container_command(inner, own_dockerfile)
    env = container_env(inner, own_dockerfile)
    env.pop("ALGOSTAGE_REPLICA", None)   # one definition for every task
    labels = {f"{LABEL}.service": spec.service, f"{LABEL}.version": spec.version, f"{LABEL}.commit": spec.commit,
              f"{LABEL}.managed": "true"}
    policies = Policies(restart_condition="on-failure" if spec.autorestart else "none")
    return Workload(spec.service, spec.version, spec.commit, image_ref(inner, registry), replicas,
                    tuple(command) if command else None, env, spec.resources, probe, policies, labels)


def memory_text(mb: int) -> str:
    """Megabytes as Compose and Kubernetes write them: 512 → '512M' / '512Mi'."""
    return f"{mb}M"


def k8s_name(text: str) -> str:
    """A DNS-1123 label (Kubernetes object names)."""
    return re.sub(r"[^a-z0-9-]", "-", text.lower()).strip("-")[:63] or "algo"


def drained(workload: Workload) -> list[str] | None:
    """The command of a task that drains before it stops: the stop signal reaches the server
    `drain_s` later, so a gateway that still sends a few calls to a replaced task has them
    answered while it moves to the new one. None (the image's own CMD) cannot be wrapped."""
    if workload.command is None:
        return None
    script = (f'"$@" & pid=$!; trap "sleep {workload.policies.drain_s}; kill -TERM \\$pid 2>/dev/null" TERM INT; '
              'wait $pid; status=$?; if kill -0 $pid 2>/dev/null; then wait $pid; status=$?; fi; exit $status')
    return ["/bin/sh", "-c", script, "algostage-drain", *workload.command]
