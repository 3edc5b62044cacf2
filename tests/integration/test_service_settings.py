"""Every per-service setting does what it says: one test per setting, each showing the change in
behaviour on a real deploy (supervisor runtime, the real runner). Settings read by the deployer
(host, health_timeout_s, max_body_mb, autorestart, the runner's max_batch) apply from the next
deploy; those read by the invoker (timeout_s, retries, max_batch) apply at once."""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.invoke import InvokeError
from app.platform import Platform
from app.services.deployer import DeployRequest
from orchestration.errors import DeployError
from orchestration.runtime import ServiceState
from tests.conftest import ADMIN, ROOT, service_platform

pytestmark = pytest.mark.timeout(600)
FIXTURES = ROOT / "tests" / "fixtures" / "algorithms"


@pytest.fixture
def p(migrated_db_url: str, tmp_path: Path, shared_envs: Path) -> Iterator[Platform]:
    platform = service_platform(migrated_db_url, tmp_path / "home", shared_envs)
    yield platform
    platform.daemon.shutdown()
    platform.close()


def deployed(p: Platform, fixture: str, replicas: int = 1, **env: str) -> str:
    name = p.catalog.upload(ADMIN, str(FIXTURES / fixture)).algorithm
    p.deployer.deploy(ADMIN, DeployRequest(name, replicas=replicas, env=env))
    return name


def redeploy(p: Platform, name: str, **env: str) -> None:
    p.deployer.deploy(ADMIN, DeployRequest(name, env=env))


def setting(p: Platform, name: str, key: str, value: str) -> None:
    p.service_configs.set(ADMIN, name, key, value)


def urls(p: Platform, name: str) -> list[str]:
    return p.services.get(ADMIN, name).urls


def refused(url: str) -> bool:
    try:
        httpx.get(f"{url}/health", timeout=2)
    except httpx.TransportError:
        return True
    return False


def predict_requests(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("algostage_requests_total") and 'endpoint="predict"' in line)


def test_host_is_the_address_replicas_bind(p: Platform) -> None:
    name = deployed(p, "hello")
    assert urls(p, name)[0].startswith("http://127.0.0.1:")
    setting(p, name, "host", "127.0.0.2")
    redeploy(p, name)
    [url] = urls(p, name)
    assert url.startswith("http://127.0.0.2:")
    assert refused(url.replace("127.0.0.2", "127.0.0.1"))   # bound to 127.0.0.2 only
    assert p.invoker.invoke(ADMIN, name, ["hi"]).outputs[0]["label"] == "short"


def test_timeout_s_bounds_one_call(p: Platform) -> None:
    name = deployed(p, "slow_predict")
    setting(p, name, "timeout_s", "0.5")
    with pytest.raises(InvokeError, match="did not answer within 0.5 s"):
        p.invoker.invoke(ADMIN, name, ["x"], {"seconds": 2})
    setting(p, name, "timeout_s", "10")
    assert p.invoker.invoke(ADMIN, name, ["x"], {"seconds": 2}).outputs[0]["label"] == "slow"


def test_retries_move_a_refused_call_to_another_replica(p: Platform) -> None:
    name = deployed(p, "hello", replicas=2)
    first = p.services.get(ADMIN, name).replicas[0].name
    p.runtimes["supervisor"].stop(first)   # one replica down, still in rotation
    setting(p, name, "retries", "0")
    outcomes = []
    for _ in range(4):
        try:
            p.invoker.invoke(ADMIN, name, ["hi"])
            outcomes.append("ok")
        except InvokeError:
            outcomes.append("failed")
    assert "failed" in outcomes and "ok" in outcomes   # round-robin hits the stopped one, no retry
    setting(p, name, "retries", "1")
    assert all(p.invoker.invoke(ADMIN, name, ["hi"]).outputs for _ in range(4))


def test_health_timeout_s_is_how_long_a_new_replica_may_take(p: Platform) -> None:
    name = deployed(p, "slow_setup", SLOW_SETUP_SECONDS="1")
    setting(p, name, "health_timeout_s", "2")
    with pytest.raises(DeployError, match="not READY within 2 s") as e:
        redeploy(p, name, SLOW_SETUP_SECONDS="8")
    assert e.value.phase == "smoke"
    assert p.invoker.invoke(ADMIN, name, ["x"]).outputs   # the running version kept serving
    setting(p, name, "health_timeout_s", "60")
    redeploy(p, name, SLOW_SETUP_SECONDS="3")


def test_max_batch_splits_a_batch_and_the_replica_refuses_a_larger_one(p: Platform) -> None:
    name = deployed(p, "hello")
    setting(p, name, "max_batch", "2")
    [url] = urls(p, name)
    before = predict_requests(url)
    result = p.invoker.invoke(ADMIN, name, ["a", "bb", "ccc", "dddd", "eeeeeeeeeeee"])
    assert [o["label"] for o in result.outputs] == ["short"] * 4 + ["long"]
    assert predict_requests(url) - before == 3   # 2 + 2 + 1
    redeploy(p, name)
    [url] = urls(p, name)
    assert httpx.get(f"{url}/info", timeout=5).json()["max_batch"] == 2
    reply = httpx.post(f"{url}/predict", json={"inputs": ["a", "b", "c"]}, timeout=10)
    assert reply.status_code == 413 and "ALGOSTAGE_MAX_BATCH" in reply.json()["error"]


def test_max_body_mb_is_the_largest_request_a_replica_takes(p: Platform) -> None:
    name = deployed(p, "hello")
    text = "x" * (1_500_000)
    assert p.invoker.invoke(ADMIN, name, [text]).outputs   # 1.5 MB under the default 32 MB
    setting(p, name, "max_body_mb", "1")
    redeploy(p, name)
    with pytest.raises(InvokeError, match="413"):
        p.invoker.invoke(ADMIN, name, [text])
    assert p.invoker.invoke(ADMIN, name, ["small"]).outputs


def test_autorestart_false_leaves_a_crashed_replica_down(p: Platform) -> None:
    name = deployed(p, "hello")
    setting(p, name, "autorestart", "false")
    redeploy(p, name)
    runtime = p.runtimes["supervisor"]
    replica = p.services.get(ADMIN, name).replicas[0]
    time.sleep(1.5)  # past startsecs
    os.kill(runtime.status(replica.name).pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and runtime.status(replica.name).state.is_up:
        time.sleep(0.2)
    time.sleep(2)
    assert runtime.status(replica.name).state is ServiceState.EXITED
    assert refused(replica.endpoint)
