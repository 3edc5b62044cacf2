"""The cluster's API routes and the Manage page's Cluster section against Docker Engine's real
single-node swarm (tests/engines.py `docker_engine`; FAILS, never skips, when it cannot be reached):
a platform deploys the `hello` fixture with `python -m app deploy --runtime swarm` (2 replicas),
then its API (in-process, over the same home) scales its one swarm service 2 → 3 → 1 — each new
task answers, the removed ones leave the table and the swarm — and reads the node; the Manage page shows that node and
scales the service one up from its Scale button."""
from __future__ import annotations

import time
from collections.abc import Iterator

import docker
import httpx
import pytest
from fastapi.testclient import TestClient
from streamlit.testing.v1 import AppTest

from api.app import create_app
from app.auth import Actor, Role
from components.session import _platform
from components.session import platform as page_platform
from tests.conftest import ADMIN, ROOT, free_port, private_port_range
from tests.engines import BASE_IMAGE, DOCKERD_HOST, REGISTRY
from tests.integration.test_cli_services import FIXTURES, Cli
from tests.support_platform import platform_env, run_cli

pytestmark = pytest.mark.timeout(600)
SERVICE = "test-swarm-api"


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory, shared_envs, docker_engine: docker.DockerClient) -> Iterator[Cli]:
    home = tmp_path_factory.mktemp("swarm-api") / "home"
    env = platform_env(home, free_port(), ALGOSTAGE_ENV_DIR=str(shared_envs), ALGOSTAGE_PORT_RANGE=private_port_range(),
                       DOCKER_HOST=DOCKERD_HOST, ALGOSTAGE_SWARM_REGISTRY=REGISTRY,
                       ALGOSTAGE_DOCKER_BASE_IMAGE=BASE_IMAGE, ALGOSTAGE_SWARM_NETWORK="algostage-test")
    cli = Cli(home, env)
    cli.run("upload", str(FIXTURES / "hello"), "--name", SERVICE)
    t0 = time.perf_counter()
    cli.run("deploy", SERVICE, "--runtime", "swarm", "--replicas", "2", timeout=300)
    print(f"\nswarm deploy of 2 replicas: {time.perf_counter() - t0:.1f} s")
    yield cli
    run_cli(env, "remove", SERVICE)
    run_cli(env, "down")
    for service in docker_engine.services.list(filters={"label": f"algostage.service={SERVICE}"}):
        service.remove()


@pytest.fixture(scope="module")
def api(cli: Cli) -> Iterator[tuple[TestClient, dict[str, str]]]:
    platform = cli.open()
    platform.auth.create_user(ADMIN, "otto", "a-long-password", Role.OPERATOR)
    headers = {"Authorization": f"Bearer {platform.keys.create(ADMIN, 'ops', user='otto').key}"}
    with TestClient(create_app(platform), raise_server_exceptions=False) as client:
        yield client, headers
    platform.close()


def swarm_services(engine: docker.DockerClient) -> list[str]:
    return sorted(s.name for s in engine.services.list(filters={"label": f"algostage.service={SERVICE}"}))


def running_tasks(engine: docker.DockerClient) -> int:
    """Tasks of the service the swarm wants running (those it is ending are left out)."""
    return len(engine.api.tasks(filters={"label": f"algostage.service={SERVICE}", "desired-state": "running"}))


def answers(url: str) -> None:
    assert httpx.get(f"{url}/health", timeout=5).json()["status"] == "READY"
    reply = httpx.post(f"{url}/predict", json={"inputs": ["hi"]}, timeout=30)
    assert reply.status_code == 200 and reply.json()["outputs"][0]["label"] == "short"


@pytest.mark.timeout(120)
def test_the_api_scales_a_swarm_service_2_3_1_and_reads_the_node(
        api: tuple[TestClient, dict[str, str]], docker_engine: docker.DockerClient) -> None:
    client, ops = api
    before = client.get(f"/api/v1/services/{SERVICE}", headers=ops).json()
    assert before["runtime"] == "swarm" and len(before["replicas"]) == 2

    t0 = time.perf_counter()
    grown = client.post(f"/api/v1/services/{SERVICE}/scale", headers=ops, json={"replicas": 3})
    print(f"\nscale-up 2 -> 3 through the API: {time.perf_counter() - t0:.1f} s")
    assert grown.status_code == 200, grown.text
    assert grown.json() == {"service": SERVICE, "replicas": 3, "added": [f"algo-{SERVICE}.3"], "removed": []}
    svc = client.get(f"/api/v1/services/{SERVICE}", headers=ops).json()
    assert [r["name"] for r in svc["replicas"]] == [f"algo-{SERVICE}.{i}" for i in (1, 2, 3)]
    assert svc["state"] == "RUNNING" and svc["urls"][:2] == before["urls"]
    answers(svc["urls"][2])
    assert swarm_services(docker_engine) == [f"algo-{SERVICE}"] and running_tasks(docker_engine) == 3

    shrunk = client.post(f"/api/v1/services/{SERVICE}/scale", headers=ops, json={"replicas": 1})
    assert shrunk.status_code == 200, shrunk.text
    removed = shrunk.json()["removed"]   # the swarm chooses which tasks end
    assert shrunk.json()["replicas"] == 1 and shrunk.json()["added"] == [] and len(removed) == 2, shrunk.json()
    [kept] = client.get(f"/api/v1/services/{SERVICE}", headers=ops).json()["replicas"]
    assert {kept["name"], *removed} == {f"algo-{SERVICE}.{i}" for i in (1, 2, 3)}
    assert kept["endpoint"] in svc["urls"] and running_tasks(docker_engine) == 1
    answers(kept["endpoint"])

    nodes = client.get("/api/v1/nodes", headers=ops)
    assert nodes.status_code == 200, nodes.text
    [node] = nodes.json()
    assert node["role"] == "manager" and node["leader"] and node["state"] == "ready"
    assert node["availability"] == "active" and node["tasks"] >= 1 and node["cpus"] > 0 and node["memory_mb"] > 0
    assert node["name"] == docker_engine.info()["Name"]
    unknown = client.post("/api/v1/nodes/no-such-node/drain", headers=ops)
    assert unknown.status_code == 404 and "no-such-node" in unknown.json()["message"]
    assert client.get("/api/v1/cluster/join-token", headers=ops).status_code == 403   # an operator's key


@pytest.mark.timeout(120)
def test_the_manage_page_shows_the_real_node_and_scales_up(cli: Cli, docker_engine: docker.DockerClient,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in cli.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    try:
        at = AppTest.from_file(str(ROOT / "pages" / "manage.py"), default_timeout=60)
        at.session_state["actor"] = Actor("boss", Role.ADMIN)
        at.session_state["lang"] = "en"
        at.run()
        assert not at.exception and not [i.value for i in at.info if i.value.startswith("No swarm")]
        table = next(d.value for d in at.dataframe if "Node" in d.value.columns)
        [row] = table.to_dict("records")
        assert row["Node"] == docker_engine.info()["Name"] and row["Role"] == "manager · leader"
        assert row["State"] == "🟢 ready" and row["Tasks"] >= 1
        join = [c.value for c in at.code if c.value.startswith("docker swarm join --token SWMTKN-")]
        assert len(join) == 1 and join[0].split()[4] == docker_engine.api.inspect_swarm()["JoinTokens"]["Worker"]

        count = next(n for n in at.number_input if n.key == f"scale-{SERVICE}")   # scaling from the page
        n = int(count.value)
        count.set_value(n + 1)
        next(b for b in at.button if b.key == f"scale-apply-{SERVICE}").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        [said] = [s.value for s in at.success]
        assert said.startswith(f"{SERVICE} runs {n + 1} replica(s): added algo-{SERVICE}."), said
        services = next(d.value for d in at.dataframe if "Service" in d.value.columns)
        assert services["Replicas"].tolist() == [f"{n + 1}/{n + 1}"]   # the table right after the scale
        assert swarm_services(docker_engine) == [f"algo-{SERVICE}"] and running_tasks(docker_engine) == n + 1
    finally:
        page_platform().close()
        _platform.clear()
