"""A fake swarm manager for the node reads and changes of `SwarmRuntime` (through its `client`
constructor seam): the part of the Docker API that `nodes()`, `set_availability()` and
`join_tokens()` use, over two nodes — a leader manager and a worker — with tasks of the platform's
services on each. `update_node` changes the node's availability as the engine would (and checks
the version index like it, so a stale spec is refused), and every call is recorded."""
from __future__ import annotations

import copy
from typing import Any

import docker

from orchestration.swarm import SwarmRuntime

MANAGER_ID, WORKER_ID = "n1manager0000000000000000", "n2worker00000000000000000"
WORKER_TOKEN, MANAGER_TOKEN = "SWMTKN-1-fake-worker", "SWMTKN-1-fake-manager"


def _node(node_id: str, hostname: str, role: str, addr: str, cpus: int, memory_gb: int, leader: bool) -> dict:
    node = {"ID": node_id, "Version": {"Index": 10},
            "Spec": {"Role": role, "Availability": "active", "Labels": {}},
            "Description": {"Hostname": hostname, "Resources": {"NanoCPUs": cpus * 10**9,
                                                                 "MemoryBytes": memory_gb * 2**30}},
            "Status": {"State": "ready", "Addr": addr}}
    if role == "manager":
        node["ManagerStatus"] = {"Leader": leader, "Reachability": "reachable", "Addr": f"{addr}:2377"}
    return node


class FakeAPI:
    def __init__(self) -> None:
        self.node_list = [_node(MANAGER_ID, "alpha", "manager", "10.9.0.1", 4, 8, True),
                          _node(WORKER_ID, "beta", "worker", "10.9.0.2", 2, 4, False)]
        running = {"Status": {"State": "running"}, "DesiredState": "running"}
        self.task_list = [{**running, "NodeID": MANAGER_ID}, {**running, "NodeID": WORKER_ID},
                          {**running, "NodeID": WORKER_ID},
                          {"Status": {"State": "shutdown"}, "DesiredState": "shutdown", "NodeID": MANAGER_ID}]
        self.calls: list[tuple[str, Any]] = []

    def nodes(self, filters: dict | None = None) -> list[dict]:
        self.calls.append(("nodes", filters))
        return copy.deepcopy(self.node_list)

    def tasks(self, filters: dict | None = None) -> list[dict]:
        self.calls.append(("tasks", filters))
        assert filters and filters.get("label") == "algostage.managed=true", filters   # only the platform's
        return copy.deepcopy(self.task_list)

    def update_node(self, node_id: str, version: int, node_spec: dict) -> bool:
        self.calls.append(("update_node", (node_id, node_spec.get("Availability"))))
        node = next(n for n in self.node_list if n["ID"] == node_id)
        if version != node["Version"]["Index"]:
            raise docker.errors.APIError("update out of sequence")
        node["Spec"] = dict(node_spec)
        node["Version"]["Index"] += 1
        return True

    def inspect_swarm(self) -> dict:
        return {"JoinTokens": {"Worker": WORKER_TOKEN, "Manager": MANAGER_TOKEN}}


class FakeSwarmEngine:
    """Stands for `docker.DockerClient` of a swarm manager."""

    def __init__(self) -> None:
        self.api = FakeAPI()

    def info(self) -> dict:
        return {"Name": "alpha", "ServerVersion": "20.10-fake",
                "Swarm": {"LocalNodeState": "active", "ControlAvailable": True, "Nodes": 2,
                          "RemoteManagers": [{"NodeID": MANAGER_ID, "Addr": "10.9.0.1:2377"}]}}

    def availability(self, hostname: str) -> str:
        return next(n["Spec"]["Availability"] for n in self.api.node_list if n["Description"]["Hostname"] == hostname)


def fake_swarm() -> tuple[SwarmRuntime, FakeSwarmEngine]:
    """The real swarm runtime over a fake two-node manager."""
    engine = FakeSwarmEngine()
    return SwarmRuntime(engine, docker_host="tcp://fake-manager:2375"), engine  # type: ignore[arg-type]
