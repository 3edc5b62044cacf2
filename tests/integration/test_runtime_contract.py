"""The Runtime contract (orchestration/runtime.py), one suite for every backend in the registry,
each against its real engines: a supervisord of its own; for the docker runtime both engines behind
the Docker API, Podman's service and Docker Engine; for the swarm runtime Docker Engine's swarm
(a replica is a swarm service of one task). A backend added to the registry without an
engine here fails this suite, so a new backend cannot land untested.
"""
from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from orchestration import registry
from orchestration.builder import EnvironmentBuilder
from orchestration.docker import DockerRuntime
from orchestration.errors import NotFound
from orchestration.health import wait_ready
from orchestration.runtime import ClusterRuntime, Endpoint, ReplicaSpec, Resources, Runtime, ServiceState
from orchestration.supervisor import SupervisorRuntime
from orchestration.supervisord import SupervisorDaemon
from orchestration.swarm import SwarmRuntime
from tests.conftest import free_port
from tests.engines import BASE_IMAGE, DOCKER_HOST, DOCKERD_HOST, REGISTRY

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "algorithms"

pytestmark = pytest.mark.timeout(900)


def supervisor_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    daemon = SupervisorDaemon(tmp_path / "home")
    yield SupervisorRuntime(daemon, EnvironmentBuilder(request.getfixturevalue("shared_envs")))
    daemon.shutdown()


def docker_backend(fixture: str, host: str) -> Callable[[pytest.FixtureRequest, Path], Iterator[Runtime]]:
    def made(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
        yield DockerRuntime(request.getfixturevalue(fixture), docker_host=host, base_image=BASE_IMAGE)
    return made


def swarm_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    engine = request.getfixturevalue("docker_engine")
    builder = DockerRuntime(engine, docker_host=DOCKERD_HOST, base_image=BASE_IMAGE)
    yield SwarmRuntime(engine, docker_host=DOCKERD_HOST, builder=builder, registry=REGISTRY, network="algostage-test")


Factory = Callable[[pytest.FixtureRequest, Path], Iterator[Runtime]]
ENGINES: dict[str, dict[str, Factory]] = {
    "supervisor": {"supervisord": supervisor_backend},
    "docker": {"podman": docker_backend("engine", DOCKER_HOST),
               "docker-engine": docker_backend("docker_engine", DOCKERD_HOST)},
    "swarm": {"docker-engine": swarm_backend},
}
BACKENDS = [(backend, engine) for backend in registry.names() for engine in ENGINES.get(backend, {"": None})]


@pytest.fixture(params=BACKENDS, ids=[f"{b}-{e}" if e else b for b, e in BACKENDS])
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    backend, engine = request.param
    if not engine:
        pytest.fail(f"backend {backend!r} is registered but has no real engine in this suite")
    made = ENGINES[backend][engine](request, tmp_path)
    rt = next(made)
    yield rt
    for st in rt.list():
        if st.name.startswith("algo-test-"):
            rt.remove(st.name)
    next(made, None)


def package(fixture: str, tmp_path: Path) -> Path:
    target = tmp_path / "releases" / fixture / "v1-abc123"
    shutil.copytree(FIXTURES / fixture, target)
    return target


def spec(service: str, pkg: Path, **kw: object) -> ReplicaSpec:
    return ReplicaSpec(f"test-{service}", 1, "v1", "abc123", pkg, free_port(),
                       env={"ALGOSTAGE_SERVICE": f"test-{service}"}, **kw)


def deploy(runtime: Runtime, s: ReplicaSpec) -> Endpoint:
    runtime.build(s, lambda line: None)
    return runtime.deploy(s, lambda line: None)


def ready(endpoint: Endpoint, timeout: float = 120) -> None:
    with httpx.Client(timeout=5) as client:
        health = wait_ready(client, endpoint.url, timeout)
    assert health.ready, f"{endpoint.url}: {health.status} {health.error}"


def until(check: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"not {what} within {timeout:g} s")


def refused(endpoint: Endpoint) -> bool:
    try:
        httpx.get(f"{endpoint.url}/health", timeout=2)
    except httpx.TransportError:
        return True
    return False


def test_a_missing_replica_reads_as_stopped_and_stop_remove_are_idempotent(runtime: Runtime) -> None:
    st = runtime.status("algo-test-nope-1")
    assert (st.state, st.exists) == (ServiceState.STOPPED, False)
    runtime.stop("algo-test-nope-1")
    runtime.remove("algo-test-nope-1")
    assert runtime.logs("algo-test-nope-1", 5, "stderr") == ""
    with pytest.raises(NotFound):
        runtime.start("algo-test-nope-1")
    with pytest.raises(NotFound):
        runtime.restart("algo-test-nope-1")


def test_the_lifecycle_of_a_runner_replica(runtime: Runtime, tmp_path: Path) -> None:
    s = spec("contract", package("hello", tmp_path), resources=Resources(1.0, 256))
    assert isinstance(runtime.build(s, lambda line: None), bool)
    assert runtime.build(s, lambda line: None) is False  # built once, then reused
    endpoint = runtime.deploy(s, lambda line: None)
    assert endpoint == Endpoint("127.0.0.1", s.port)
    ready(endpoint)
    reply = httpx.post(f"{endpoint.url}/predict", json={"inputs": ["hi"]}, timeout=30)
    assert reply.status_code == 200 and reply.json()["outputs"][0]["label"] == "short"
    until(lambda: runtime.status(s.name).state is ServiceState.RUNNING, what="RUNNING")
    st = runtime.status(s.name)
    assert st.exists and st.started_at and abs(time.time() - st.started_at) < 600
    assert s.name in [x.name for x in runtime.list()]
    assert runtime.logs(s.name, 50, "stderr") != ""
    usage = runtime.usage(runtime.list())
    assert s.name in usage and usage[s.name].memory_mb and usage[s.name].memory_mb > 1
    assert runtime.check()

    runtime.stop(s.name)
    runtime.stop(s.name)
    st = runtime.status(s.name)
    assert (st.state, st.exists) == (ServiceState.STOPPED, True) and refused(endpoint)
    assert s.name not in runtime.usage([st])
    runtime.start(s.name)
    ready(endpoint)
    runtime.restart(s.name)
    ready(endpoint)
    runtime.remove(s.name)
    runtime.remove(s.name)
    assert runtime.status(s.name).exists is False and refused(endpoint)


def test_a_replica_binds_the_host_its_spec_names(runtime: Runtime, tmp_path: Path) -> None:
    """127.0.0.2 is a loopback address of its own: a replica bound there is not on 127.0.0.1. A
    cluster's task publishes on its node's address instead (the contract's one difference)."""
    s = spec("host", package("hello", tmp_path), host="127.0.0.2")
    endpoint = deploy(runtime, s)
    if isinstance(runtime, ClusterRuntime):
        assert endpoint.port == s.port and endpoint.host in {n.address for n in runtime.nodes()}
        ready(endpoint)
        return
    assert endpoint == Endpoint("127.0.0.2", s.port)
    ready(endpoint)
    assert refused(Endpoint("127.0.0.1", s.port))


def test_the_packages_own_server_runs_with_its_port_and_host(runtime: Runtime, tmp_path: Path) -> None:
    s = spec("server", package("custom_server", tmp_path), server="python server.py --port $PORT --host $HOST")
    endpoint = deploy(runtime, s)
    ready(endpoint)
    reply = httpx.post(f"{endpoint.url}/predict", json={"inputs": [{"b": 1, "a": 2}]}, timeout=30)
    assert reply.status_code == 200 and reply.json()["outputs"][0]["keys"] == ["a", "b"]


@pytest.mark.parametrize("autorestart", [True, False])
def test_a_killed_replica_comes_back_only_with_autorestart(runtime: Runtime, tmp_path: Path,
                                                           autorestart: bool) -> None:
    s = spec(f"restart-{str(autorestart).lower()}", package("hello", tmp_path), autorestart=autorestart)
    endpoint = deploy(runtime, s)
    ready(endpoint)
    time.sleep(1.5)   # past supervisord's startsecs: this is the crash of a running replica
    until(lambda: runtime.status(s.name).state is ServiceState.RUNNING and runtime.status(s.name).pid,
          what=f"RUNNING with a pid ({runtime.status(s.name)})")
    pid = runtime.status(s.name).pid
    os.kill(pid, signal.SIGKILL)
    if autorestart:
        until(lambda: runtime.status(s.name).pid not in (None, pid), 60, "restarted")
        ready(endpoint)
    else:
        until(lambda: not runtime.status(s.name).state.is_up, 30, "down")
        time.sleep(3)
        assert not runtime.status(s.name).state.is_up and refused(endpoint)
