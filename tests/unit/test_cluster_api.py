"""The cluster's API routes (api/cluster.py) in-process over a platform whose cluster is the real
swarm runtime on a fake two-node manager (tests/fake_swarm.py): the shapes are the CLI's --json
ones, who may do what, errors as every router maps them (404, 422, 403, 503), and the scale route
reaching `Deployer.scale` (not the `/services/{name}/{action}` route beside it)."""
from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from app import cli_cluster
from app.auth import Role
from app.cli import Context
from app.platform import Platform
from app.services.cluster import Cluster
from orchestration.swarm import SwarmRuntime
from tests.conftest import ADMIN
from tests.fake_swarm import (
    MANAGER_ID,
    WORKER_ID,
    WORKER_TOKEN,
    FakeSwarmEngine,
    fake_swarm,
)

USERS = {"ada": Role.ADMIN, "otto": Role.OPERATOR, "vera": Role.VIEWER}


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    home = tmp_path / "home"
    p = Platform.open(home, {"ALGOSTAGE_HOME": str(home)})
    for name, role in USERS.items():
        p.auth.create_user(ADMIN, name, "a-long-password", role)
    yield p
    p.close()


@pytest.fixture
def engine(platform: Platform) -> FakeSwarmEngine:
    runtime, engine = fake_swarm()
    platform.cluster = Cluster({"supervisor": platform.runtimes["supervisor"], "swarm": runtime})
    return engine


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform), raise_server_exceptions=False) as c:
        yield c


def key(platform: Platform, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {platform.keys.create(ADMIN, f'k-{user}', user=user).key}"}


def cli_json(platform: Platform, *argv: str) -> object:
    """What `python -m app node … --json` prints for this platform (the command run in-process)."""
    ctx = Context(out=io.StringIO(), err=io.StringIO())
    ctx._platform = platform
    args = argparse.Namespace(action=argv[0], node=None, json=True)
    assert cli_cluster.COMMANDS[f"node {argv[0]}"](args, ctx) == 0
    return json.loads(ctx.out.getvalue())


def test_nodes_are_the_clis_json_rows_for_every_role(platform: Platform, engine: FakeSwarmEngine,
                                                     client: TestClient) -> None:
    for user in USERS:
        reply = client.get("/api/v1/nodes", headers=key(platform, user))
        assert reply.status_code == 200, reply.text
        assert reply.json() == cli_json(platform, "list")
    alpha, beta = reply.json()
    assert alpha == {"id": MANAGER_ID, "name": "alpha", "role": "manager", "availability": "active", "state": "ready",
                     "address": "10.9.0.1", "cpus": 4.0, "memory_mb": 8192, "tasks": 1, "leader": True}
    assert (beta["name"], beta["role"], beta["tasks"], beta["leader"], beta["memory_mb"]) == \
        ("beta", "worker", 2, False, 4096)


def test_operators_drain_and_activate_a_node_and_viewers_may_not(platform: Platform, engine: FakeSwarmEngine,
                                                                  client: TestClient) -> None:
    operator, viewer = key(platform, "otto"), key(platform, "vera")
    denied = client.post("/api/v1/nodes/beta/drain", headers=viewer)
    assert denied.status_code == 403 and denied.json()["code"] == "forbidden"
    assert engine.availability("beta") == "active" and not [c for c in engine.api.calls if c[0] == "update_node"]

    drained = client.post("/api/v1/nodes/beta/drain", headers=operator)
    assert drained.status_code == 200 and drained.json() == {"node": "beta", "availability": "drain"}
    assert engine.availability("beta") == "drain" and engine.availability("alpha") == "active"
    assert {n["name"]: n["availability"] for n in client.get("/api/v1/nodes", headers=viewer).json()} == \
        {"alpha": "active", "beta": "drain"}
    activated = client.post(f"/api/v1/nodes/{WORKER_ID}/activate", headers=operator)   # by id too
    assert activated.status_code == 200 and activated.json() == {"node": WORKER_ID, "availability": "active"}
    assert engine.availability("beta") == "active"

    unknown = client.post("/api/v1/nodes/gamma/drain", headers=operator)
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found" and "gamma" in unknown.json()["message"]


def test_only_admins_read_the_join_token(platform: Platform, engine: FakeSwarmEngine, client: TestClient) -> None:
    reply = client.get("/api/v1/cluster/join-token", headers=key(platform, "ada"))
    assert reply.status_code == 200
    assert reply.json() == cli_json(platform, "join-token") == {"worker": WORKER_TOKEN, "manager": "SWMTKN-1-fake-manager",
                                                                "address": "10.9.0.1:2377"}
    for user in ("otto", "vera"):
        refused = client.get("/api/v1/cluster/join-token", headers=key(platform, user))
        assert refused.status_code == 403 and WORKER_TOKEN not in refused.text


def test_no_swarm_manager_is_a_503_in_words(platform: Platform, client: TestClient, tmp_path: Path) -> None:
    gone = SwarmRuntime(docker_host=f"unix://{tmp_path}/none.sock")
    platform.cluster = Cluster({"swarm": gone})
    admin = key(platform, "ada")
    for method, path in (("GET", "/api/v1/nodes"), ("POST", "/api/v1/nodes/beta/drain"),
                         ("GET", "/api/v1/cluster/join-token")):
        reply = client.request(method, path, headers=admin)
        assert reply.status_code == 503, (path, reply.text)
        body = reply.json()
        assert body["code"] == "backend_unavailable" and "nothing listens at that socket" in body["message"]
        assert "Traceback" not in reply.text
    platform.cluster = Cluster({"supervisor": platform.runtimes["supervisor"]})   # no cluster runtime at all
    assert client.get("/api/v1/nodes", headers=admin).json()["code"] == "backend_unavailable"


def test_scale_reaches_the_deployer_with_its_checks(platform: Platform, client: TestClient) -> None:
    operator = key(platform, "otto")
    missing = client.post("/api/v1/services/nope/scale", headers=operator, json={"replicas": 2})
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"   # the service lookup, not the
    assert "nope" in missing.json()["message"]                                    # start/stop/restart route
    for bad in (0, 17, "two"):
        refused = client.post("/api/v1/services/nope/scale", headers=operator, json={"replicas": bad})
        assert refused.status_code == 422 and refused.json()["problems"][0]["field"] == "replicas"
    assert client.post("/api/v1/services/nope/scale", headers=operator, json={}).status_code == 422
    viewer = client.post("/api/v1/services/nope/scale", headers=key(platform, "vera"), json={"replicas": 2})
    assert viewer.status_code == 403


def test_the_routes_are_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert set(paths["/api/v1/nodes"]) == {"get"} and set(paths["/api/v1/cluster/join-token"]) == {"get"}
    for path in ("/api/v1/nodes/{node}/drain", "/api/v1/nodes/{node}/activate", "/api/v1/services/{name}/scale"):
        assert set(paths[path]) == {"post"}, path
    body = paths["/api/v1/services/{name}/scale"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("/ScaleIn")
