"""The swarm runtime from `python -m app` (DESIGN §7, §11), each command a real subprocess over its
own `$ALGOSTAGE_HOME`, against Docker Engine's swarm (tests/engines.py `docker_engine`; FAILS,
never skips, when it cannot be reached): deploy --runtime swarm as one swarm service of 2 tasks
that answer, services, scale up and down, stop/start, one rolling restart, remove; node list, join-token, drain and activate; and
the node commands' one-line error when no swarm manager answers."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator

import docker
import httpx
import pytest

from tests.conftest import free_port, private_port_range
from tests.engines import BASE_IMAGE, DOCKERD_HOST, REGISTRY
from tests.integration.test_cli_services import FIXTURES, Cli
from tests.support_platform import platform_env, run_cli

pytestmark = pytest.mark.timeout(600)
SERVICE = "test-swarm-cli"


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory, shared_envs, docker_engine: docker.DockerClient) -> Iterator[Cli]:  # noqa: ANN001
    home = tmp_path_factory.mktemp("swarm-cli") / "home"
    env = platform_env(home, free_port(), ALGOSTAGE_ENV_DIR=str(shared_envs), ALGOSTAGE_PORT_RANGE=private_port_range(),
                       DOCKER_HOST=DOCKERD_HOST, ALGOSTAGE_SWARM_REGISTRY=REGISTRY,
                       ALGOSTAGE_DOCKER_BASE_IMAGE=BASE_IMAGE, ALGOSTAGE_SWARM_NETWORK="algostage-test")
    yield Cli(home, env)
    run_cli(env, "remove", SERVICE)
    run_cli(env, "down")
    for service in docker_engine.services.list(filters={"label": f"algostage.service={SERVICE}"}):
        service.remove()


def swarm_services(engine: docker.DockerClient) -> list[str]:
    return sorted(s.name for s in engine.services.list(filters={"label": f"algostage.service={SERVICE}"}))


def answers(url: str) -> None:
    assert httpx.get(f"{url}/health", timeout=5).json()["status"] == "READY"
    reply = httpx.post(f"{url}/predict", json={"inputs": ["hi"]}, timeout=30)
    assert reply.status_code == 200 and reply.json()["outputs"][0]["label"] == "short"


def test_deploy_scale_and_manage_a_swarm_service_from_the_command_line(
        cli: Cli, docker_engine: docker.DockerClient) -> None:
    cli.run("upload", str(FIXTURES / "hello"), "--name", SERVICE)
    t0 = time.perf_counter()
    deployed = cli.run("deploy", SERVICE, "--runtime", "swarm", "--replicas", "2", timeout=500)
    print(f"\nswarm deploy of 2 replicas from the CLI: {time.perf_counter() - t0:.1f} s")
    assert deployed.stdout.startswith(f"{SERVICE} v1 is healthy on swarm: http://")
    urls = deployed.stdout.split(": ", 1)[1].split()
    assert len(urls) == 2
    for url in urls:
        answers(url)
    assert swarm_services(docker_engine) == [f"algo-{SERVICE}"]   # one swarm service, its tasks the replicas
    svc = cli.services()[SERVICE]
    assert svc["runtime"] == "swarm" and svc["state"] == "RUNNING" and svc["urls"] == urls
    assert [r["name"] for r in svc["replicas"]] == [f"algo-{SERVICE}.1", f"algo-{SERVICE}.2"]

    t0 = time.perf_counter()
    grown = cli.run("scale", SERVICE, "3", timeout=300)
    print(f"scale-up 2 -> 3 from the CLI: {time.perf_counter() - t0:.1f} s")
    assert grown.stdout.strip() == f"{SERVICE} runs 3 replica(s): added algo-{SERVICE}.3"
    svc = cli.services()[SERVICE]
    assert len(svc["urls"]) == 3 and svc["state"] == "RUNNING" and svc["urls"][:2] == urls
    answers(svc["urls"][2])
    shrunk = cli.run("scale", SERVICE, "1")
    assert shrunk.stdout.strip().startswith(f"{SERVICE} runs 1 replica(s): removed algo-{SERVICE}."), shrunk.stdout
    [kept] = cli.services()[SERVICE]["urls"]
    assert kept in svc["urls"] and swarm_services(docker_engine) == [f"algo-{SERVICE}"]
    refused = cli.run("scale", SERVICE, "0", ok=False)
    assert refused.returncode == 1 and "between 1 and" in refused.stderr

    cli.run("stop", SERVICE)
    assert cli.services()[SERVICE]["replicas"][0]["state"] == "STOPPED"
    cli.run("start", SERVICE)
    svc = cli.services()[SERVICE]
    assert svc["state"] == "RUNNING" and all(r["routed"] for r in svc["replicas"]), svc
    answers(svc["urls"][0])   # a new task, where the swarm started it: the table followed

    spec = docker_engine.services.get(f"algo-{SERVICE}").attrs["Spec"]["TaskTemplate"]
    cli.run("restart", SERVICE, timeout=300)
    restarted = docker_engine.services.get(f"algo-{SERVICE}").attrs["Spec"]["TaskTemplate"]
    assert restarted.get("ForceUpdate", 0) == spec.get("ForceUpdate", 0) + 1   # one rolling restart, not one per slot
    svc = cli.services()[SERVICE]
    assert svc["state"] == "RUNNING" and all(r["routed"] for r in svc["replicas"]), svc
    answers(svc["urls"][0])

    nodes = json.loads(cli.run("node", "list", "--json").stdout)
    assert len(nodes) == 1
    node = nodes[0]
    assert node["role"] == "manager" and node["leader"] and node["state"] == "ready" and node["tasks"] >= 1
    assert node["cpus"] > 0 and node["memory_mb"] > 0
    assert node["name"] in cli.run("node", "list").stdout
    tokens = cli.run("node", "join-token").stdout
    assert tokens.count("docker swarm join --token SWMTKN-") == 2
    cli.run("remove", SERVICE)
    assert swarm_services(docker_engine) == []

    # drained only once nothing of ours runs on the one node, and only for a moment: other tests share it
    try:
        assert cli.run("node", "drain", node["name"]).stdout.strip() == f"node {node['name']} is drain"
        assert json.loads(cli.run("node", "list", "--json").stdout)[0]["availability"] == "drain"
    finally:
        cli.run("node", "activate", node["name"])
    assert json.loads(cli.run("node", "list", "--json").stdout)[0]["availability"] == "active"
    unknown = cli.run("node", "drain", "no-such-node", ok=False)
    assert unknown.returncode == 1 and "no node 'no-such-node'" in unknown.stderr
    assert cli.run("node", "drain", ok=False).returncode == 2


def test_the_node_commands_say_in_one_line_when_no_swarm_manager_answers(cli: Cli, tmp_path) -> None:  # noqa: ANN001
    gone = cli.run("node", "list", ok=False, DOCKER_HOST=f"unix://{tmp_path}/none.sock")
    assert gone.returncode == 1 and "nothing listens at that socket" in gone.stderr
    assert len(gone.stderr.strip().splitlines()) <= 2 and "Traceback" not in gone.stderr
