"""The cluster's machines (DESIGN §11): the nodes of the cluster runtime's engine, their state and
tasks, the tokens another machine joins with, and draining a node before maintenance.

The cluster runtime is the registered backend that is a `ClusterRuntime` (the swarm); no backend
is named here. It is contacted only when one of these is called.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from app.auth import Action, Actor, internal, require
from app.errors import Message, Problem, ValidationFailed
from orchestration.errors import BackendUnavailable
from orchestration.runtime import ClusterRuntime, Endpoint, NodeStatus, Runtime, slot_of

AVAILABILITIES = ("active", "pause", "drain")


class Cluster:
    def __init__(self, runtimes: Mapping[str, Runtime]) -> None:
        self._runtimes = runtimes

    def nodes(self, actor: Actor) -> list[NodeStatus]:
        """Every node, by hostname: role, availability, state, address, CPUs, memory, running tasks
        of the platform's services. BackendUnavailable when no cluster engine answers."""
        require(actor, Action.VIEW_SERVICES)
        return self._runtime().nodes()

    def join_tokens(self, actor: Actor) -> dict[str, str]:
        """{"worker", "manager", "address"}: what `docker swarm join` needs on another machine. The
        tokens admit machines to the cluster: an admin's right."""
        require(actor, Action.MANAGE_SETTINGS)
        return self._runtime().join_tokens()

    def set_availability(self, actor: Actor, node: str, availability: str) -> None:
        """`drain`: the node's tasks move to other nodes and it gets no new ones; `active`: it takes
        tasks again; `pause`: it keeps its tasks and gets no new ones. NotFound for an unknown node."""
        require(actor, Action.MANAGE_SERVICES)
        if availability not in AVAILABILITIES:
            raise ValidationFailed([Problem("availability", Message("node.availability", "one of {known}, not {value!r}",
                                                                    known=", ".join(AVAILABILITIES), value=availability))])
        self._runtime().set_availability(node, availability)

    @internal("the health monitor following replicas a cluster moved: the platform acting on its own")
    def locate(self, runtime: str, replicas: Sequence[str]) -> dict[str, Endpoint]:
        """Where those of `replicas` (task slots, `algo-x.2`, or a one-task service's own name) of
        services on `runtime` answer now, if that runtime is a cluster that may move them: each one's
        running task's endpoint, one task listing per cluster service. One that runs nowhere now,
        and every replica of another runtime, is left out."""
        backend = self._runtimes.get(runtime)
        if not isinstance(backend, ClusterRuntime):
            return {}
        groups: dict[str, list[str]] = {}
        for r in replicas:
            groups.setdefault(slot_of(r)[0], []).append(r)
        out: dict[str, Endpoint] = {}
        for service, names in groups.items():
            found = backend.endpoints(service)
            for r in names:
                if r in found:
                    out[r] = found[r].endpoint
                elif r == service and len(found) == 1:   # a one-task service named by its own name
                    out[r] = next(iter(found.values())).endpoint
        return out

    def _runtime(self) -> ClusterRuntime:
        for name in self._runtimes:
            runtime = self._runtimes[name]
            if isinstance(runtime, ClusterRuntime):
                return runtime
        raise BackendUnavailable(Message("cluster.none", "no cluster runtime is registered"))
