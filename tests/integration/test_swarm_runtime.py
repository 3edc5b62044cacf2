"""The swarm runtime against a REAL Docker Engine swarm (tests/engines.py `docker_engine`:
scripts/docker-engine.sh --swarm, a single-node manager with the local registry; it FAILS, never
skips, when the engine cannot be reached): a service of 2 tasks whose endpoints answer, status and
logs per task, scaling, stop/start/restart/remove, a rolling update that serves the new version,
and a version whose setup fails rolled back by the swarm while the old one keeps serving.
Images are the docker runtime's, built on the manager's engine and pushed to the registry."""
from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from orchestration.docker import DockerRuntime
from orchestration.errors import DeployError, NotFound
from orchestration.runtime import ClusterRuntime, ReplicaSpec, Resources, Runtime, ServiceState, TaskEndpoint
from orchestration.swarm import SwarmRuntime
from tests.engines import BASE_IMAGE, DOCKERD_HOST, REGISTRY, TIMINGS

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "algorithms"
SERVICE = "test-swarm"
NAME = f"algo-{SERVICE}"

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def swarm(docker_engine: docker.DockerClient) -> Iterator[SwarmRuntime]:
    builder = DockerRuntime(docker_engine, docker_host=DOCKERD_HOST, base_image=BASE_IMAGE)
    runtime = SwarmRuntime(docker_engine, docker_host=DOCKERD_HOST, builder=builder, registry=REGISTRY,
                           network="algostage-test")
    runtime.remove(NAME)
    yield runtime
    runtime.remove(NAME)


def package(tmp_path: Path, fixture: str, version: str, *, setup_fails: bool = False) -> Path:
    """The fixture as the deployer exports it (releases/<name>/<tag>-<commit>); `setup_fails`
    makes its setup() raise, as a version with a missing model file."""
    target = tmp_path / "releases" / SERVICE / f"{version}-abc123"
    shutil.copytree(FIXTURES / fixture, target, ignore=shutil.ignore_patterns("__pycache__"))
    if setup_fails:
        source = (target / "predict.py").read_text()
        (target / "predict.py").write_text(source.replace("self.ready = True", "raise RuntimeError('model missing')"))
    (target / ".complete").write_text("abc123")
    return target


def spec(pkg: Path, version: str) -> ReplicaSpec:
    env = {"ALGOSTAGE_SERVICE": SERVICE, "ALGOSTAGE_VERSION": version, "ALGOSTAGE_COMMIT": "abc123"}
    return ReplicaSpec(SERVICE, 1, version, "abc123", pkg, 0, "0.0.0.0", env=env, resources=Resources(0.5, 256),
                       requirements_hash=f"swarmtest-{version}")


def answers(found: dict[str, TaskEndpoint], version: str) -> None:
    """Every task answers /health READY, /info with `version` and /predict."""
    for slot, task in found.items():
        url = task.endpoint.url
        assert httpx.get(f"{url}/health", timeout=5).json()["status"] == "READY", slot
        assert httpx.get(f"{url}/info", timeout=5).json()["version"] == version, slot
        reply = httpx.post(f"{url}/predict", json={"inputs": ["hi"]}, timeout=30)
        assert reply.status_code == 200 and reply.json()["outputs"][0]["label"] == "short", slot


def tasks(swarm: SwarmRuntime, count: int, version: str | None = None) -> dict[str, TaskEndpoint] | None:
    """The running tasks when there are `count` of them (all of `version` if given), else None."""
    found = swarm.endpoints(NAME)
    ok = len(found) == count and (version is None or {t.version for t in found.values()} == {version})
    return found if ok else None


def until(what: str, check, timeout: float = 90.0):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        time.sleep(0.5)


def test_a_swarm_service_of_two_tasks_answers_scales_and_stops_starts_restarts_removes(
        swarm: SwarmRuntime, tmp_path: Path) -> None:
    assert isinstance(swarm, Runtime) and isinstance(swarm, ClusterRuntime)
    assert "Docker Swarm, 1 node(s)" in swarm.check()
    v1 = spec(package(tmp_path, "hello", "v1"), "v1")
    lines: list[str] = []
    t0 = time.perf_counter()
    found = swarm.deploy_service(NAME, v1, 2, lines.append, timeout=120)
    TIMINGS["swarm: cold deploy of 2 tasks (build, push, converge)"] = time.perf_counter() - t0
    assert sorted(found) == [f"{NAME}.1", f"{NAME}.2"] and {t.version for t in found.values()} == {"v1"}
    assert len({t.endpoint for t in found.values()}) == 2
    assert any(f"{REGISTRY}/algostage/{SERVICE}:v1-" in line for line in lines)   # pushed or reused, and run
    answers(found, "v1")

    spec_ = swarm.client.services.get(NAME).attrs["Spec"]
    template = spec_["TaskTemplate"]
    assert spec_["EndpointSpec"]["Mode"] == "dnsrr" and spec_["Labels"]["algostage.service"] == SERVICE
    assert spec_["UpdateConfig"]["Order"] == "start-first" and spec_["UpdateConfig"]["FailureAction"] == "rollback"
    assert template["Resources"]["Limits"]["NanoCPUs"] == 500_000_000
    assert template["Resources"]["Limits"]["MemoryBytes"] == 256 * 2**20
    assert template["Resources"]["Reservations"]["MemoryBytes"] == 64 * 2**20
    assert template["ContainerSpec"]["Image"].startswith(f"{REGISTRY}/algostage/{SERVICE}:v1-")
    assert template["Placement"]["Preferences"] == [{"Spread": {"SpreadDescriptor": "node.id"}}]

    node = swarm.nodes()[0]
    assert node.role == "manager" and node.state == "ready" and node.leader and node.tasks == 2
    first = swarm.status(f"{NAME}.1")
    assert first.state is ServiceState.RUNNING and first.container_id and f"running on {node.name}" in first.message
    listed = {st.name: st.state for st in swarm.list()}
    assert listed[f"{NAME}.1"] is listed[f"{NAME}.2"] is ServiceState.RUNNING
    def log(name: str) -> str:
        return swarm.logs(name, 200, "stderr") + swarm.logs(name, 200, "stdout")
    assert until("both tasks' start in the service's log", lambda: log(NAME).count("hello is READY") == 2)
    assert log(f"{NAME}.1").count("hello is READY") == log(f"{NAME}.2").count("hello is READY") == 1
    assert swarm.status("algo-test-swarm-none.1").exists is False

    t0 = time.perf_counter()
    swarm.scale(NAME, 3)
    grown = until("3 running tasks", lambda: tasks(swarm, 3))
    TIMINGS["swarm: scale-up 2 -> 3 tasks (running and healthy)"] = time.perf_counter() - t0
    answers(grown, "v1")
    swarm.scale(NAME, 1)
    until("1 running task", lambda: len(swarm.endpoints(NAME)) == 1)

    swarm.stop(NAME + ".1")
    assert swarm.endpoints(NAME) == {} and swarm.status(f"{NAME}.1").state is ServiceState.STOPPED
    swarm.stop(NAME + ".1")   # idempotent
    swarm.start(NAME + ".1")  # back to the 1 task it had
    again = until("1 task after start", lambda: tasks(swarm, 1))
    answers(again, "v1")
    before = swarm.status(f"{NAME}.1").container_id
    swarm.restart(NAME + ".1")
    until("a new task after restart", lambda: swarm.status(f"{NAME}.1").container_id not in (None, before)
          and swarm.status(f"{NAME}.1").state is ServiceState.RUNNING and len(swarm.endpoints(NAME)) == 1)
    answers(swarm.endpoints(NAME), "v1")

    swarm.remove(NAME)
    assert swarm.status(f"{NAME}.1").exists is False and swarm.endpoints(NAME) == {}
    swarm.remove(NAME)        # idempotent
    with pytest.raises(NotFound):
        swarm.start(NAME)
    with pytest.raises(NotFound):
        swarm.scale(NAME, 2)


def test_a_rolling_update_serves_the_new_version_and_a_failing_one_is_rolled_back(
        swarm: SwarmRuntime, tmp_path: Path) -> None:
    swarm.deploy_service(NAME, spec(package(tmp_path, "hello", "v1"), "v1"), 2, lambda line: None, timeout=120)
    seen: list[dict[str, TaskEndpoint]] = []
    t0 = time.perf_counter()
    rolled = swarm.deploy_service(NAME, spec(package(tmp_path, "hello", "v2"), "v2"), 2, lambda line: None,
                                  timeout=120, on_change=seen.append)
    TIMINGS["swarm: rolling update of 2 tasks (start-first)"] = time.perf_counter() - t0
    assert {t.version for t in rolled.values()} == {"v2"} and len(rolled) == 2
    answers(rolled, "v2")
    assert any({t.version for t in s.values()} == {"v1", "v2"} for s in seen), "the gateway saw no roll"

    broken = spec(package(tmp_path, "hello", "v3", setup_fails=True), "v3")
    t0 = time.perf_counter()
    with pytest.raises(DeployError) as failed:
        swarm.deploy_service(NAME, broken, 2, lambda line: None, timeout=15)
    TIMINGS["swarm: failed update rolled back"] = time.perf_counter() - t0
    assert failed.value.phase == "start" and "rolled" in str(failed.value)
    assert "model missing" in failed.value.log
    kept = until("2 tasks of v2 after the rollback", lambda: tasks(swarm, 2, "v2"))
    answers(kept, "v2")
    print("\nswarm timings: " + ", ".join(f"{k}: {v:.1f} s" for k, v in TIMINGS.items() if k.startswith("swarm")))
