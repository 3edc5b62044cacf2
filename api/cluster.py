"""The cluster (DESIGN §11): its nodes (list, drain, activate), the join token (admins), and scaling
a service. Shapes follow `python -m app node list --json` and `node join-token --json`; the core
checks the rights (viewers read nodes, operators drain, activate and scale, admins read tokens);
no swarm manager answering is a 503 like every unavailable engine."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import Field

from api.deps import P, Who
from app.schemas import Shape
from app.services.deployer import MAX_REPLICAS, ScaleResult
from orchestration.runtime import NodeStatus

router = APIRouter(prefix="/api/v1", tags=["cluster"])


class NodeOut(Shape):
    id: str
    name: str
    role: str
    availability: str
    state: str
    address: str
    cpus: float
    memory_mb: float
    tasks: int = Field(description="running tasks of the platform's services on the node")
    leader: bool

    @classmethod
    def of(cls, n: NodeStatus) -> NodeOut:
        return cls(id=n.id, name=n.name, role=n.role, availability=n.availability, state=n.state, address=n.address,
                   cpus=round(n.cpus, 2), memory_mb=round(n.memory_mb), tasks=n.tasks, leader=n.leader)


class AvailabilityOut(Shape):
    node: str
    availability: Literal["active", "drain"]


class JoinTokenOut(Shape):
    worker: str
    manager: str
    address: str = Field(description="the manager's host:port for `docker swarm join`")


class ScaleIn(Shape):
    replicas: int = Field(ge=1, le=MAX_REPLICAS)


class ScaleOut(Shape):
    service: str
    replicas: int = Field(description="how many replicas the service runs now")
    added: list[str]
    removed: list[str]

    @classmethod
    def of(cls, r: ScaleResult) -> ScaleOut:
        return cls(service=r.service, replicas=r.replicas, added=r.added, removed=r.removed)


@router.get("/nodes", response_model=list[NodeOut])
def nodes(p: P, who: Who) -> list[NodeOut]:
    """Every node of the cluster by hostname: role, availability, state, resources, the platform's tasks."""
    return [NodeOut.of(n) for n in p.cluster.nodes(who)]


@router.post("/nodes/{node}/drain", response_model=AvailabilityOut)
def drain(node: str, p: P, who: Who) -> AvailabilityOut:
    """The node (hostname or id) gets no tasks, and its tasks move to the other nodes."""
    p.cluster.set_availability(who, node, "drain")
    return AvailabilityOut(node=node, availability="drain")


@router.post("/nodes/{node}/activate", response_model=AvailabilityOut)
def activate(node: str, p: P, who: Who) -> AvailabilityOut:
    """The node takes tasks again."""
    p.cluster.set_availability(who, node, "active")
    return AvailabilityOut(node=node, availability="active")


@router.get("/cluster/join-token", response_model=JoinTokenOut)
def join_token(p: P, who: Who) -> JoinTokenOut:
    """What `docker swarm join` needs on another machine (an admin's right: the tokens admit machines)."""
    return JoinTokenOut(**p.cluster.join_tokens(who))


@router.post("/services/{name}/scale", response_model=ScaleOut)
def scale(name: str, body: ScaleIn, p: P, who: Who) -> ScaleOut:
    """Run `replicas` replicas of the version the service serves, on its runtime: new ones health-gated
    beside the running ones, surplus ones out of rotation first, then removed. Answers when done."""
    return ScaleOut.of(p.deployer.scale(who, name, body.replicas))
