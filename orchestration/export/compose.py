"""A Compose file (version 3.8, the original deployment plan's format) whose `deploy:` sections are
what the swarm runtime runs: `docker stack deploy -c stack.yml NAME` starts the same services.

No IPVS is assumed: `endpoint_mode: dnsrr` (tasks are found as `tasks.<service>` on the overlay
network) and each task publishes its port in `host` mode on its node; nothing uses the routing mesh.
"""
from __future__ import annotations

from collections.abc import Iterable

import yaml

from orchestration.workload import CONTAINER_PORT, Workload, drained, memory_text

NETWORK = "algostage"


def render(workloads: Iterable[Workload], network: str = NETWORK) -> str:
    services = {w.service: service(w, network) for w in workloads}
    doc = {"version": "3.8", "services": services,
           "networks": {network: {"driver": "overlay", "attachable": True}}}
    return "# AlgoStage export: docker stack deploy -c stack.yml NAME\n" + yaml.safe_dump(doc, sort_keys=False)


def service(w: Workload, network: str = NETWORK) -> dict:
    out: dict = {"image": w.image}
    command = drained(w)
    if command:
        out["command"] = [_literal(arg) for arg in command]
    out["environment"] = {k: _literal(v) for k, v in sorted(w.env.items())}
    out["init"] = True
    out["stop_grace_period"] = f"{w.policies.stop_grace_s}s"
    out["healthcheck"] = {"test": w.health_command, "interval": f"{w.probe.interval_s}s",
                          "timeout": f"{w.probe.timeout_s}s", "retries": w.probe.retries,
                          "start_period": f"{w.probe.start_period_s}s"}
    out["ports"] = [{"target": CONTAINER_PORT, "protocol": "tcp", "mode": "host"}]
    out["networks"] = [network]
    out["deploy"] = deploy(w)
    return out


def deploy(w: Workload) -> dict:
    p = w.policies
    section: dict = {"mode": "replicated", "replicas": w.replicas, "endpoint_mode": "dnsrr",
                     "labels": dict(w.labels)}
    limits, reservations = _resources(w.resources), _resources(w.reserved)
    if limits:
        section["resources"] = {"limits": limits, "reservations": reservations}
    section["restart_policy"] = {"condition": p.restart_condition, "delay": f"{p.restart_delay_s}s",
                                 "max_attempts": p.restart_attempts, "window": f"{p.restart_window_s}s"}
    section["update_config"] = {"parallelism": p.update_parallelism, "delay": f"{p.update_delay_s}s",
                                "order": "start-first", "failure_action": "rollback",
                                "monitor": f"{p.update_monitor_s}s"}
    section["rollback_config"] = {"parallelism": p.update_parallelism, "order": "start-first"}
    section["placement"] = {"preferences": [{"spread": "node.id"}]}
    return section


def _literal(text: str) -> str:
    """`text` as itself: Compose replaces `$NAME` with the deploying shell's variables; `$$` is a `$`."""
    return str(text).replace("$", "$$")


def _resources(r) -> dict:  # noqa: ANN001 - a Resources
    out = {}
    if r.cpus:
        out["cpus"] = f"{r.cpus:g}"
    if r.memory_mb:
        out["memory"] = memory_text(r.memory_mb)
    return out
