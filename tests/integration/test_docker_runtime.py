"""The docker runtime against a REAL container engine through the Docker API (Podman's
Docker-compatible service here; no Docker daemon needed): the Runtime contract, image builds
with a reused dependency layer, a manifest `server`, a package's own Dockerfile, build failures
and an unreachable engine.

The engine comes from tests/engines.py (`engine`): it FAILS, never skips, when no
engine can be reached or set up.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import docker
import docker.errors
import httpx
import pytest

from orchestration.docker import DockerRuntime
from orchestration.errors import BackendUnavailable, DeployError, NotFound
from orchestration.health import wait_ready
from orchestration.runtime import ReplicaSpec, Resources, ServiceState
from tests.conftest import free_port
from tests.engines import BASE_IMAGE, DOCKER_HOST, TIMINGS

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "algorithms"

pytestmark = pytest.mark.timeout(900)


@pytest.fixture
def runtime(engine: docker.DockerClient) -> DockerRuntime:
    return DockerRuntime(engine, docker_host=DOCKER_HOST, base_image=BASE_IMAGE)


# --- helpers -------------------------------------------------------------------------------------

def export(fixture: str, tmp_path: Path, version: str = "v1") -> Path:
    """The fixture as the deployer exports it: releases/<name>/<tag>-<commit>."""
    target = tmp_path / "releases" / fixture / f"{version}-abc123"
    shutil.copytree(FIXTURES / fixture, target)
    (target / ".complete").write_text("abc123")
    return target


def runner_spec(service: str, package: Path, port: int, version: str = "v1", **kw: object) -> ReplicaSpec:
    """A spec as app/services/deployer.py builds it: the runner on the package, the platform's variables."""
    env = {"ALGOSTAGE_SERVICE": service, "ALGOSTAGE_REPLICA": "1", "ALGOSTAGE_VERSION": version,
           "ALGOSTAGE_COMMIT": "abc123"}
    return ReplicaSpec(service, 1, version, "abc123", package, port, env=env, **kw)


def timed_deploy(runtime: DockerRuntime, spec: ReplicaSpec, label: str = "") -> list[str]:
    lines: list[str] = []
    t0 = time.perf_counter()
    runtime.deploy(spec, lines.append)
    if label:
        TIMINGS[label] = time.perf_counter() - t0
    return lines


def ready(port: int, timeout: float = 120.0) -> None:
    with httpx.Client(timeout=5) as http:
        health = wait_ready(http, f"http://127.0.0.1:{port}", timeout)
    assert health.ready, f"/health on {port}: {health.status} {health.error}"


def wait_state(runtime: DockerRuntime, name: str, state: ServiceState, timeout: float = 30.0):  # noqa: ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = runtime.status(name)
        if st.state is state:
            return st
        time.sleep(0.2)
    raise AssertionError(f"{name} is {runtime.status(name)}, wanted {state}")


def pip_step_cached(lines: list[str]) -> bool:
    """True if the build reused the layer of the `RUN … pip install` step."""
    for i, line in enumerate(lines):
        if line.startswith("STEP") and "pip install" in line:
            return i + 1 < len(lines) and "Using cache" in lines[i + 1]
    raise AssertionError("no pip install step in the build log:\n" + "\n".join(lines[-40:]))


# --- tests ---------------------------------------------------------------------------------------

def test_runner_replica_lifecycle(runtime: DockerRuntime, engine: docker.DockerClient, tmp_path: Path) -> None:
    port = free_port()
    spec = runner_spec("test-hello", export("hello", tmp_path), port, resources=Resources(0.5, 256))
    lines = timed_deploy(runtime, spec, "first image build + start (hello)")
    assert any("pip install" in ln for ln in lines) and "algo-test-hello-1" in lines[-1]
    ready(port)

    reply = httpx.post(f"http://127.0.0.1:{port}/predict", json={"inputs": ["hi", "hello there, world"]}, timeout=30)
    assert reply.status_code == 200, reply.text
    assert [o["label"] for o in reply.json()["outputs"]] == ["short", "long"]

    container = engine.containers.get("algo-test-hello-1")
    st = runtime.status("algo-test-hello-1")
    assert (st.state, st.exists, st.container_id) == (ServiceState.RUNNING, True, container.id)
    assert st.pid and st.pid > 1 and abs(time.time() - st.started_at) < 300
    assert st.labels["algostage.service"] == "test-hello" and st.labels["algostage.managed"] == "true"
    assert (st.labels["algostage.replica"], st.labels["algostage.version"], st.labels["algostage.commit"]) == \
        ("1", "v1", "abc123")
    host = container.attrs["HostConfig"]
    assert host["PortBindings"][f"{port}/tcp"][0]["HostIp"] == "127.0.0.1"
    assert (host["NanoCpus"], host["Memory"]) == (500_000_000, 256 * 1024 * 1024)
    assert host["RestartPolicy"]["Name"] == "on-failure"
    assert "algo-test-hello-1" in [s.name for s in runtime.list()]
    assert "serving hello from /srv/package" in runtime.logs("algo-test-hello-1", 50, "stderr")

    runtime.stop("algo-test-hello-1")
    runtime.stop("algo-test-hello-1")
    assert runtime.status("algo-test-hello-1").state is ServiceState.STOPPED
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)

    runtime.start("algo-test-hello-1")
    ready(port)
    first_start = runtime.status("algo-test-hello-1").started_at
    time.sleep(1.1)
    runtime.restart("algo-test-hello-1")
    ready(port)
    restarted = runtime.status("algo-test-hello-1")
    assert restarted.state is ServiceState.RUNNING and restarted.started_at > first_start

    runtime.remove("algo-test-hello-1")
    assert engine.containers.list(all=True, filters={"name": "algo-test-hello-1"}) == []
    runtime.remove("algo-test-hello-1")
    st = runtime.status("algo-test-hello-1")
    assert (st.state, st.exists) == (ServiceState.STOPPED, False)
    with pytest.raises(NotFound):
        runtime.start("algo-test-hello-1")


def test_redeploy_with_unchanged_requirements_reuses_the_dependency_layer(runtime: DockerRuntime,
                                                                           tmp_path: Path) -> None:
    port = free_port()
    timed_deploy(runtime, runner_spec("test-cache", export("hello", tmp_path, "v1"), port))
    v2 = export("hello", tmp_path, "v2")
    (v2 / "predict.py").write_text((v2 / "predict.py").read_text() + "\n# v2: source changed\n")
    lines = timed_deploy(runtime, runner_spec("test-cache", v2, port, "v2"), "rebuild with unchanged requirements")
    assert pip_step_cached(lines), "\n".join(lines)
    assert any(ln.startswith("STEP") and "COPY package/" in ln for ln in lines)
    ready(port)
    assert runtime.status("algo-test-cache-1").labels["algostage.version"] == "v2"
    runtime.remove("algo-test-cache-1")


def test_manifest_server_runs_inside_the_container(runtime: DockerRuntime, tmp_path: Path) -> None:
    """custom_server's own uvicorn, its manifest command given the container's $PORT and $HOST (0.0.0.0)."""
    port = free_port()
    package = export("custom_server", tmp_path)
    spec = ReplicaSpec("test-custom", 1, "v1", "abc123", package, port, server="python server.py --port $PORT --host $HOST")
    timed_deploy(runtime, spec)
    ready(port)
    reply = httpx.post(f"http://127.0.0.1:{port}/predict", json={"inputs": [{"b": 1, "a": 2}]}, timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.json()["outputs"][0]["keys"] == ["a", "b"]
    runtime.remove("algo-test-custom-1")


def test_package_dockerfile_is_used(runtime: DockerRuntime, tmp_path: Path) -> None:
    package = tmp_path / "own"
    package.mkdir()
    (package / "index.html").write_text("built from the package's own Dockerfile\n")
    (package / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nCOPY index.html /www/index.html\nWORKDIR /www\n"
                                        "CMD python3 -m http.server $PORT\n")
    port = free_port()
    spec = runner_spec("test-own", package, port)  # a runner command: the image's own CMD runs instead
    timed_deploy(runtime, spec)
    deadline = time.monotonic() + 30
    while True:
        try:
            reply = httpx.get(f"http://127.0.0.1:{port}/index.html", timeout=2)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert reply.text == "built from the package's own Dockerfile\n"
    runtime.stop("algo-test-own-1")
    assert wait_state(runtime, "algo-test-own-1", ServiceState.STOPPED).exists
    runtime.remove("algo-test-own-1")


def test_failed_build_is_a_deploy_error_with_the_build_log(runtime: DockerRuntime, engine: docker.DockerClient,
                                                           tmp_path: Path) -> None:
    package = export("hello", tmp_path)
    (package / "requirements.txt").write_text("algostage-no-such-package-exists==0.0.1\n")
    with pytest.raises(DeployError) as e:
        runtime.deploy(runner_spec("test-broken", package, free_port()), lambda line: None)
    assert e.value.phase == "build"
    assert "algostage-no-such-package-exists" in e.value.log
    assert engine.containers.list(all=True, filters={"name": "algo-test-broken-1"}) == []


def test_missing_replica_contract(runtime: DockerRuntime) -> None:
    runtime.stop("algo-test-nope-1")
    runtime.remove("algo-test-nope-1")
    st = runtime.status("algo-test-nope-1")
    assert (st.state, st.exists) == (ServiceState.STOPPED, False)
    assert runtime.logs("algo-test-nope-1") == ""
    with pytest.raises(NotFound):
        runtime.restart("algo-test-nope-1")


@pytest.mark.parametrize("host", ["unix:///run/algostage-no-such-engine.sock", "tcp://127.0.0.1:{port}"])
def test_unreachable_engine_is_backend_unavailable(host: str, tmp_path: Path) -> None:
    host = host.format(port=free_port())  # nothing listens there: connection refused
    runtime = DockerRuntime(docker_host=host)  # construction never contacts the engine
    for call in (lambda: runtime.status("algo-test-x-1"), runtime.list,
                 lambda: runtime.deploy(runner_spec("test-x", export("hello", tmp_path), 1), lambda line: None)):
        with pytest.raises(BackendUnavailable, match=f"container engine at {host} is not reachable"):
            call()
