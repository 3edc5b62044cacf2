"""Issue 13 on a real two-node swarm (tests/cluster/nodes.py: two Docker Engines in network
namespaces of their own, a manager and a worker, on a bridge), with the platform started by `up`
(supervisord, the agent's health checks, nginx as the gateway) deploying through the command line
with `--runtime swarm`. Under a steady ~30 requests/s through the gateway, every request counted:

1. a service of 4 replicas — one swarm service of 4 tasks, its slots the replicas — runs tasks on
   both nodes and serves through the gateway from both;
2. a rolling update to a new version, rolled by the swarm (new tasks first, each health-gated)
   while the gateway follows the tasks → 0 failed, every replica on the new version;
3. a version whose setup fails is rolled back by the swarm (its tasks exit, the update's failure
   action): the deploy fails saying so, the old version keeps serving → 0 failed;
4. a hung task (its container frozen) is withdrawn by the active health checks within
   3 probe intervals → 0 failed; a canary at 25% takes its share of the calls and is promoted;
5. the worker node is shut down → 0 failed; the swarm marks it down and runs its tasks on the
   manager, the gateway follows them there (both figures printed and recorded); the service is
   then removed without waiting for the tasks the dead node still reports.

Images are built on the host's Docker Engine and pushed to its registry (tests/engines.py
`docker_engine`); the nodes pull them through a relay. FAILS, never skips, when a part is missing.
"""
from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import yaml

from tests.chaos.load import Load
from tests.cluster.nodes import TwoNodeSwarm
from tests.conftest import ROOT, free_port, private_port_range
from tests.engines import BASE_IMAGE, DOCKERD_HOST, REGISTRY, TIMINGS
from tests.support_platform import RunningPlatform, start_platform, stop_platform

pytestmark = pytest.mark.timeout(900)
FIXTURES = ROOT / "tests" / "fixtures" / "algorithms"
SERVICE = "hello-cluster"
RATE = 30
STEADY_S = 30
INTERVAL_S = 1.0


@pytest.fixture(scope="module")
def cluster(docker_engine: docker.DockerClient) -> Iterator[TwoNodeSwarm]:
    """`docker_engine`: the host's engine (the builder, with the base image) and the registry are up."""
    nodes = TwoNodeSwarm()
    try:
        yield nodes.up()
    finally:
        nodes.down()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, shared_envs: Path,
            cluster: TwoNodeSwarm) -> Iterator[RunningPlatform]:
    home = tmp_path_factory.mktemp("two-nodes") / "home"
    p = start_platform(home, free_port(), ALGOSTAGE_PORT_RANGE=private_port_range(), ALGOSTAGE_ENV_DIR=str(shared_envs),
                       DOCKER_HOST=DOCKERD_HOST, ALGOSTAGE_SWARM_HOST=cluster.manager.docker_host,
                       ALGOSTAGE_SWARM_REGISTRY=REGISTRY, ALGOSTAGE_DOCKER_BASE_IMAGE=BASE_IMAGE,
                       ALGOSTAGE_SWARM_NETWORK="algostage-two-nodes", ALGOSTAGE_GATEWAY_PORT=str(free_port()),
                       ALGOSTAGE_HEALTH_INTERVAL_S=str(INTERVAL_S), ALGOSTAGE_HEALTH_TIMEOUT_S="1")
    try:
        yield p
    finally:
        p.cli("remove", SERVICE, timeout=300)
        stop_platform(p)


@pytest.fixture(scope="module")
def key(running: RunningPlatform) -> str:
    return json.loads(running.cli("key", "create", "two-nodes", "--json", check=True).stdout)["key"]


@pytest.fixture(scope="module")
def gateway(running: RunningPlatform) -> str:
    return f"http://127.0.0.1:{running.env['ALGOSTAGE_GATEWAY_PORT']}/ai/{SERVICE}/predict"


def service(running: RunningPlatform) -> dict:
    return next(s for s in json.loads(running.cli("services", "--json", check=True).stdout) if s["name"] == SERVICE)


def tasks_per_node(cluster: TwoNodeSwarm) -> dict[str, int]:
    """Running tasks of the service by node hostname, as the manager sees them."""
    manager = cluster.manager.client()
    names = {n["ID"]: n["Description"]["Hostname"] for n in manager.api.nodes()}
    out: dict[str, int] = {}
    for t in manager.api.tasks(filters={"label": f"algostage.service={SERVICE}", "desired-state": "running"}):
        if t["Status"].get("State") == "running":
            out[names[t["NodeID"]]] = out.get(names[t["NodeID"]], 0) + 1
    return out


def version_of(running: RunningPlatform, tmp_path: Path, title: str, fixture: str = "hello") -> None:
    package = tmp_path / SERVICE
    shutil.copytree(FIXTURES / fixture, package)
    manifest = yaml.safe_load((package / "algorithm.yaml").read_text())
    (package / "algorithm.yaml").write_text(yaml.safe_dump({**manifest, "name": SERVICE, "title": title},
                                                           sort_keys=False))
    running.cli("upload", str(package), check=True)


def steady(seconds: float) -> None:
    time.sleep(max(seconds, 0))


def until(check, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if check():
            return time.monotonic() - t0
        time.sleep(0.25)
    raise AssertionError(f"not {what} within {timeout:g} s")


def assert_no_loss(load: Load) -> None:
    print(f"\n{load.report.summary()}")
    assert load.report.total >= RATE * STEADY_S * 0.5, load.report.summary()
    assert load.report.failed == [], load.report.summary()
    assert load.report.resent <= load.workers, load.report.summary()


def test_1_four_replicas_run_on_both_nodes_and_serve_through_the_gateway(running, cluster, key, gateway, tmp_path):
    version_of(running, tmp_path, "Hello on two nodes")
    t0 = time.monotonic()
    running.cli("deploy", SERVICE, "--runtime", "swarm", "--replicas", "4", check=True, timeout=600)
    TIMINGS["two-node swarm: deploy of 4 replicas"] = time.monotonic() - t0
    svc = service(running)
    assert svc["state"] == "RUNNING" and len(svc["replicas"]) == 4 and svc["runtime"] == "swarm", svc
    assert [r["name"] for r in svc["replicas"]] == [f"algo-{SERVICE}.{slot}" for slot in (1, 2, 3, 4)]
    assert [s.name for s in cluster.manager.client().services.list(
        filters={"label": f"algostage.service={SERVICE}"})] == [f"algo-{SERVICE}"]
    placed = tasks_per_node(cluster)
    assert placed.keys() == {cluster.manager.name, cluster.worker.name} and sum(placed.values()) == 4, placed
    hosts = {r["endpoint"].removeprefix("http://").split(":")[0] for r in svc["replicas"]}
    assert hosts == {cluster.manager.ip, cluster.worker.ip}, svc["replicas"]
    until(lambda: all(r["routed"] for r in service(running)["replicas"]), 30, "every replica in rotation")
    with Load(gateway, key, rate=RATE) as load:
        steady(10)
    answered = {addr.split(":")[0] for addr in load.report.replicas()}
    assert load.report.failed == [] and answered == hosts, (load.report.summary(), load.report.replicas())


def test_2_a_rolling_update_under_load_loses_no_request(running, cluster, key, gateway, tmp_path):
    version_of(running, tmp_path, "Hello on two nodes, v2")
    with Load(gateway, key, rate=RATE) as load:
        steady(5)
        t0 = time.monotonic()
        running.cli("deploy", SERVICE, check=True, timeout=600)
        TIMINGS["two-node swarm: rolling update of 4 replicas"] = took = time.monotonic() - t0
        steady(STEADY_S - 5 - took)
    assert_no_loss(load)
    svc = service(running)
    assert svc["version"] == "v2" and len(svc["replicas"]) == 4 and {r["version"] for r in svc["replicas"]} == {"v2"}
    assert sum(tasks_per_node(cluster).values()) == 4


def running_tasks(cluster: TwoNodeSwarm) -> set[str]:
    return {t["ID"] for t in cluster.manager.client().api.tasks(
        filters={"label": f"algostage.service={SERVICE}", "desired-state": "running"})}


def test_2b_a_restart_under_load_rolls_on_the_swarm_and_loses_no_request(running, cluster, key, gateway):
    """`restart` leaves the replicas in rotation: the swarm replaces each task (new first, health-
    gated) and the gateway follows each new task to its port; before, every replica was taken out
    of rotation for the whole update and the gateway answered 503."""
    before = running_tasks(cluster)
    with Load(gateway, key, rate=RATE) as load:
        steady(5)
        t0 = time.monotonic()
        running.cli("restart", SERVICE, check=True, timeout=600)
        TIMINGS["two-node swarm: rolling restart of 4 replicas"] = took = time.monotonic() - t0
        print(f"\nrolling restart of 4 replicas on the swarm: {took:.1f} s")
        steady(STEADY_S - 5 - took)
    assert_no_loss(load)
    after = running_tasks(cluster)
    assert len(after) == 4 and not after & before, (before, after)
    svc = service(running)
    assert svc["state"] == "RUNNING" and all(r["routed"] for r in svc["replicas"]), svc
    endpoints = {e.removeprefix("http://") for e in (r["endpoint"] for r in svc["replicas"])}
    assert len(endpoints) == 4, svc["replicas"]
    with Load(gateway, key, rate=RATE) as load:
        steady(4)
    assert load.report.failed == [] and set(load.report.replicas()) == endpoints, (load.report.summary(),
                                                                                   load.report.replicas())


def test_3_a_version_whose_setup_fails_is_rolled_back_by_the_swarm_and_the_old_keeps_serving(
        running, cluster, key, gateway, tmp_path):
    version_of(running, tmp_path, "Hello that cannot start", fixture="crash_in_setup")
    with Load(gateway, key, rate=RATE) as load:
        steady(5)
        t0 = time.monotonic()
        failed = running.cli("deploy", SERVICE, timeout=600)
        took = time.monotonic() - t0
        steady(STEADY_S - 5 - took)
    said = failed.stdout + failed.stderr
    assert failed.returncode != 0, failed.stdout
    assert f"the swarm rolled algo-{SERVICE} back" in said and "model file missing" in said, said
    TIMINGS["two-node swarm: a failing update rolled back by the swarm"] = took
    print(f"\nthe swarm rolled the failing version back; the deploy failed after {took:.1f} s")
    assert_no_loss(load)
    update = cluster.manager.client().services.get(f"algo-{SERVICE}").attrs.get("UpdateStatus") or {}
    assert update.get("State") == "rollback_completed", update
    svc = service(running)
    assert svc["version"] == "v2" and {r["version"] for r in svc["replicas"]} == {"v2"} and len(svc["replicas"]) == 4
    assert sum(tasks_per_node(cluster).values()) == 4   # the failed version's tasks are gone


def container_of(cluster: TwoNodeSwarm, replica: str):
    """The running container of `replica`'s task (`algo-x.3`: slot 3), on whichever node runs it."""
    service = replica.rpartition(".")[0]
    for node in cluster.nodes:
        for c in node.client().containers.list(filters={"label": f"com.docker.swarm.service.name={service}"}):
            if c.labels.get("com.docker.swarm.task.name", "").startswith(f"{replica}."):
                return c
    raise AssertionError(f"no running container of {replica}")


def test_4_a_hung_task_is_withdrawn_and_a_canary_takes_its_share(running, cluster, key, gateway, tmp_path):
    until(lambda: all(r["routed"] for r in service(running)["replicas"]), 60, "every replica in rotation")
    hung = service(running)["replicas"][-1]
    frozen = container_of(cluster, hung["name"])
    with Load(gateway, key, rate=RATE) as load:
        steady(3)
        frozen.pause()   # every process of the task frozen (the cgroup freezer): it hangs, its port stays open
        try:
            took = until(lambda: not next(r for r in service(running)["replicas"] if r["name"] == hung["name"])["routed"],
                         3 * INTERVAL_S + 15, "withdrawn")
            steady(5)
        finally:
            frozen.unpause()
    print(f"\na hung swarm task was out of rotation {took:.1f} s after it was frozen (as seen through the CLI)")
    assert load.report.failed == [], load.report.summary()
    until(lambda: all(r["routed"] for r in service(running)["replicas"]), 60, "back in rotation once it answers")

    version_of(running, tmp_path, "Hello on two nodes, v4")
    running.cli("deploy", SERVICE, "--canary", "25", check=True, timeout=600)
    svc = service(running)
    trial = {r["endpoint"].removeprefix("http://") for r in svc["replicas"] if r["version"] == "v4"}
    assert svc["canary_version"] == "v4" and svc["canary_percent"] == 25 and len(trial) == 1, svc
    assert [r["name"] for r in svc["replicas"] if r["version"] == "v4"] == [f"algo-{SERVICE}-v4.1"]   # beside it
    until(lambda: all(r["routed"] for r in service(running)["replicas"]), 60, "the canary in rotation")
    with Load(gateway, key, rate=RATE) as load:
        steady(15)
    answered = load.report.replicas()
    share = sum(n for addr, n in answered.items() if addr in trial) / sum(answered.values())
    assert load.report.failed == [] and 0.15 <= share <= 0.35, (share, answered)
    running.cli("canary", "promote", SERVICE, check=True, timeout=600)
    svc = service(running)
    assert svc["version"] == "v4" and {r["version"] for r in svc["replicas"]} == {"v4"} and len(svc["replicas"]) == 4
    assert [s.name for s in cluster.manager.client().services.list(
        filters={"label": f"algostage.service={SERVICE}"})] == [f"algo-{SERVICE}"]   # the trial's service removed


def test_5_the_worker_node_shut_down_under_load_loses_no_request(running, cluster, key, gateway):
    until(lambda: all(r["routed"] for r in service(running)["replicas"]), 30, "every replica in rotation")
    assert tasks_per_node(cluster).get(cluster.worker.name, 0) >= 1
    with Load(gateway, key, rate=RATE) as load:
        steady(5)
        stopped = time.monotonic()
        cluster.stop(cluster.worker)
        down = until(lambda: cluster.node_states().get(cluster.worker.name) == "down", 120, "the worker marked down")
        moved = until(lambda: tasks_per_node(cluster) == {cluster.manager.name: 4}, 180,
                      "the 4 tasks running on the manager")
        steady(max(5.0, STEADY_S - (time.monotonic() - stopped)))
    TIMINGS["two-node swarm: worker marked down after its shutdown"] = down
    TIMINGS["two-node swarm: its tasks running on the manager after its shutdown"] = moved
    print(f"\nworker shut down: marked down after {down:.1f} s, its tasks running on the manager after {moved:.1f} s")
    assert_no_loss(load)
    until(lambda: {r["endpoint"].removeprefix("http://").split(":")[0] for r in service(running)["replicas"]
                   if r["routed"]} == {cluster.manager.ip} and
          sum(r["routed"] for r in service(running)["replicas"]) == 4, 60, "the gateway following the moved tasks")
    with Load(gateway, key, rate=RATE) as load:
        steady(5)
    assert load.report.failed == [] and {a.split(":")[0] for a in load.report.replicas()} == {cluster.manager.ip}

    # removing it does not wait for the tasks the dead node still "runs" (it used to: 60 s per replica)
    t0 = time.monotonic()
    running.cli("remove", SERVICE, check=True, timeout=600)
    took = time.monotonic() - t0
    print(f"removed with the worker down in {took:.1f} s")
    assert took < 90, took
    assert not cluster.manager.client().services.list(filters={"label": f"algostage.service={SERVICE}"})
