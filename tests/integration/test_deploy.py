"""Health-gated deploys on the supervisor runtime with the real runner: the whole service
lifecycle, replicas, redeploys that build nothing, failed deploys that keep the old version,
kill -9 recovery. Environments are shared by the session (as ALGOSTAGE_ENV_DIR shares them
between platforms), so only the first deploy pays for building one."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import select

from app.i18n import say
from app.invoke import InvokeError
from app.models import Deployment, PortReservation
from app.platform import Platform
from app.catalog.codestore.base import CodeStoreError
from app.services.deployer import DeployEvent, Deployer, DeployRequest
from orchestration.errors import DeployError
from orchestration.runtime import ServiceState
from tests.conftest import ADMIN, OPERATOR, ROOT, VIEWER, service_platform, wait_ready

pytestmark = pytest.mark.timeout(900)
FIXTURES = ROOT / "tests" / "fixtures" / "algorithms"


@pytest.fixture
def deploy_platform(migrated_db_url: str, tmp_path: Path, shared_envs: Path) -> Iterator[Platform]:
    p = service_platform(migrated_db_url, tmp_path / "home", shared_envs)
    yield p
    p.daemon.shutdown()
    p.close()


def package_as(tmp_path: Path, fixture: str, name: str, **manifest: object) -> Path:
    pkg = tmp_path / f"{fixture}-{name}-{len(list(tmp_path.iterdir()))}"
    shutil.copytree(FIXTURES / fixture, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    data = yaml.safe_load((pkg / "algorithm.yaml").read_text())
    data.update(name=name, **manifest)
    (pkg / "algorithm.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return pkg


def health(url: str) -> dict:
    return httpx.get(f"{url}/health", timeout=5).json()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    return state != "Z"


def test_deploy_invoke_stop_start_restart_remove(deploy_platform: Platform) -> None:
    p = deploy_platform
    p.catalog.upload(ADMIN, str(FIXTURES / "hello"))
    events: list[str] = []
    result = p.deployer.deploy(OPERATOR, DeployRequest("hello"), lambda e: events.append(e.phase))

    assert result.version == 1 and result.runtime == "supervisor" and len(result.urls) == 1
    assert list(result.phases) == ["export", "build", "start", "smoke", "switch", "retire"]
    assert {"build", "smoke", "switch"} <= set(events)
    assert p.services.get(VIEWER, "hello").state.value == "RUNNING"   # supervisord's startsecs are over, too
    url = result.urls[0]
    info = httpx.get(f"{url}/info", timeout=5).json()
    assert info["version"] == "v1" and info["manifest"]["name"] == "hello"

    call = p.invoker.invoke(VIEWER, "hello", ["hello world"])
    assert call.version == "v1" and len(call.outputs) == 1 and call.predict_ms is not None
    with pytest.raises(InvokeError) as bad:
        p.invoker.invoke(VIEWER, "hello", ["x"], {"threshold": 7})
    assert bad.value.status == 422 and "threshold" in str(bad.value)

    view = p.services.get(VIEWER, "hello")
    assert view.state is ServiceState.RUNNING and view.version == "v1" and view.replicas[0].pid
    pid = view.replicas[0].pid
    p.services.stop(OPERATOR, ["hello"])
    assert p.services.get(VIEWER, "hello").state is ServiceState.STOPPED and not pid_alive(pid)
    with pytest.raises(InvokeError):
        p.invoker.invoke(VIEWER, "hello", ["x"])
    p.services.start(OPERATOR, ["hello"])
    wait_ready(url)
    old_pid = p.services.get(VIEWER, "hello").replicas[0].pid
    p.services.restart(OPERATOR, ["hello"])
    wait_ready(url)
    assert p.services.get(VIEWER, "hello").replicas[0].pid != old_pid

    name = view.replicas[0].name
    p.services.remove(OPERATOR, ["hello"])
    assert p.services.list(VIEWER) == []
    assert not (p.daemon.include_dir / f"{name}.conf").exists()
    assert p.runtimes["supervisor"].status(name).exists is False
    with p.sessions() as s:
        assert s.scalars(select(PortReservation)).all() == []
        deployment = s.scalars(select(Deployment)).one()
    assert deployment.status == "succeeded" and deployment.actor == "op"
    assert set(deployment.phases) >= {"build", "smoke"}
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/health", timeout=2)
    audited = [(r.actor, r.action, r.target, r.detail) for r in reversed(p.auth.audit_log(ADMIN))]
    assert audited == [("op", action, "hello", "ok") for action in ("stop", "start", "restart", "remove")]


def test_a_restart_of_two_replicas_in_rotation_rolls_and_stops_at_one_that_is_not_ready(
        deploy_platform: Platform) -> None:
    """slow-setup takes ~3 s to be READY. A restart takes one replica out at a time and puts it back
    once READY: calls made meanwhile all succeed and a replica is always in rotation. When the first
    one restarted is not READY in time, the roll stops there and the other keeps serving, untouched."""
    p = deploy_platform
    p.catalog.upload(ADMIN, str(FIXTURES / "slow_setup"))
    p.deployer.deploy(OPERATOR, DeployRequest("slow-setup", replicas=2, health_timeout=120))
    pids = lambda: [r.pid for r in p.services.get(VIEWER, "slow-setup").replicas]   # noqa: E731
    routed, failures, calls = [], [], [0]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            p.router.forget("slow-setup")
            routed.append(len(p.router.routes("slow-setup")))
            try:
                p.invoker.invoke(VIEWER, "slow-setup", ["x"], record=False)
                calls[0] += 1
            except InvokeError as e:
                failures.append(str(e))
            time.sleep(0.05)

    before = pids()
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        results = p.services.restart(OPERATOR, ["slow-setup"])
    finally:
        done.set()
        watcher.join()
    assert results == {"slow-setup": None}
    assert failures == [] and calls[0] >= 20 and min(routed) == 1 and max(routed) == 2, (failures, calls, routed)
    after = pids()
    assert len(after) == 2 and not set(before) & set(after)
    assert all(r.routed for r in p.services.get(VIEWER, "slow-setup").replicas)

    p.service_configs.set(ADMIN, "slow-setup", "health_timeout_s", "1")
    results = p.services.restart(OPERATOR, ["slow-setup"])
    first, second = p.services.get(VIEWER, "slow-setup").replicas
    assert "is not READY after its restart" in results["slow-setup"] and \
        "1 replica(s) not restarted yet keep serving" in results["slow-setup"], results
    assert first.pid != after[0] and not first.routed                # restarted, not READY in time: out
    assert second.pid == after[1] and second.routed                  # never touched
    assert p.invoker.invoke(VIEWER, "slow-setup", ["x"]).replica == second.name


def test_replicas_share_the_load_and_survive_kill_9(deploy_platform: Platform) -> None:
    p = deploy_platform
    p.catalog.upload(ADMIN, str(FIXTURES / "hello"))
    result = p.deployer.deploy(OPERATOR, DeployRequest("hello", replicas=2))
    assert len(set(result.urls)) == 2
    replicas = {p.invoker.invoke(VIEWER, "hello", ["abc"]).replica for _ in range(4)}
    assert replicas == {"algo-hello-1", "algo-hello-2"}

    view = p.services.get(VIEWER, "hello")
    victim = view.replicas[0]
    os.kill(victim.pid, signal.SIGKILL)
    t0 = time.monotonic()
    # the other replica keeps answering while the killed one comes back
    assert p.invoker.invoke(VIEWER, "hello", ["still here"]).outputs
    wait_ready(f"http://127.0.0.1:{victim.port}", timeout=30)
    recovered = time.monotonic() - t0
    new_pid = p.services.get(VIEWER, "hello").replicas[0].pid
    assert new_pid != victim.pid and recovered < 30


def test_redeploy_with_unchanged_requirements_builds_nothing_and_retires_the_old(
        deploy_platform: Platform, tmp_path: Path) -> None:
    p = deploy_platform
    p.catalog.upload(ADMIN, str(FIXTURES / "hello"))
    first = p.deployer.deploy(OPERATOR, DeployRequest("hello"))
    v2 = package_as(tmp_path, "hello", "hello", title="Hello again")
    p.catalog.upload(ADMIN, str(v2))
    second = p.deployer.deploy(OPERATOR, DeployRequest("hello"))

    assert second.version == 2 and second.environment_built is False
    assert second.urls != first.urls
    assert httpx.get(f"{second.urls[0]}/info", timeout=5).json()["version"] == "v2"
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{first.urls[0]}/health", timeout=2)
    assert [r.name for r in p.services.get(VIEWER, "hello").replicas] == ["algo-hello-2"]
    rollback = p.deployer.deploy(OPERATOR, DeployRequest("hello", version=1))
    assert httpx.get(f"{rollback.urls[0]}/info", timeout=5).json()["version"] == "v1"


def test_a_replica_being_retired_does_not_make_the_service_read_otherwise(deploy_platform: Platform,
                                                                         tmp_path: Path) -> None:
    """Between the switch and the end of a redeploy the old replica stops (retire: STOPPING, or
    whatever befalls it meanwhile): the service serves the new version all along, so it reads
    RUNNING, and the old replica is listed as retiring, with its own version and state."""
    p = deploy_platform
    p.catalog.upload(ADMIN, str(FIXTURES / "hello"))
    p.deployer.deploy(OPERATOR, DeployRequest("hello"))
    p.catalog.upload(ADMIN, str(package_as(tmp_path, "hello", "hello", title="Hello again")))
    seen = []

    def as_retire_begins(event: DeployEvent) -> None:
        if event.phase != "retire" or seen:   # the switch is done: v2 serves, v1 still runs
            return
        before = {r.name: r for r in p.services.get(VIEWER, "hello").replicas}
        os.kill(before["algo-hello-1"].pid, signal.SIGKILL)   # supervisord: EXITED, then BACKOFF or STARTING
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            view = p.services.get(VIEWER, "hello")
            if next(r for r in view.replicas if r.name == "algo-hello-1").state is not ServiceState.RUNNING:
                seen.append(view)
                return
            time.sleep(0.05)
    p.deployer.deploy(OPERATOR, DeployRequest("hello"), progress=as_retire_begins)

    view = seen[0]
    old, new = sorted(view.replicas, key=lambda r: r.name)
    assert (old.name, old.version, old.retiring, old.routed) == ("algo-hello-1", "v1", True, False)
    assert old.state in (ServiceState.EXITED, ServiceState.BACKOFF, ServiceState.STARTING, ServiceState.STOPPED)
    assert (new.name, new.version, new.retiring, new.routed, new.state) == \
        ("algo-hello-2", "v2", False, True, ServiceState.RUNNING)
    assert view.state is ServiceState.RUNNING and view.version == "v2"
    assert [r.name for r in p.services.get(VIEWER, "hello").replicas] == ["algo-hello-2"]


def test_a_version_whose_setup_fails_leaves_the_running_one_serving(deploy_platform: Platform,
                                                                    tmp_path: Path) -> None:
    p = deploy_platform
    good = package_as(tmp_path, "hello", "flaky")
    p.catalog.upload(ADMIN, str(good))
    ok = p.deployer.deploy(OPERATOR, DeployRequest("flaky"))
    broken = package_as(tmp_path, "crash_in_setup", "flaky", task="text.classification")
    p.catalog.upload(ADMIN, str(broken))

    with pytest.raises(DeployError) as e:
        p.deployer.deploy(OPERATOR, DeployRequest("flaky", health_timeout=30))
    assert e.value.phase == "smoke" and "SETUP_FAILED" in str(e.value) and "model file missing" in str(e.value)

    assert p.invoker.invoke(VIEWER, "flaky", ["still v1"]).version == "v1"
    assert health(ok.urls[0])["status"] == "READY"
    view = p.services.get(VIEWER, "flaky")
    assert view.version == "v1" and [r.name for r in view.replicas] == ["algo-flaky-1"]
    with p.sessions() as s:
        rows = s.scalars(select(Deployment).order_by(Deployment.id)).all()
        owners = sorted(r.owner for r in s.scalars(select(PortReservation)))
    assert [r.status for r in rows] == ["succeeded", "failed"]
    assert rows[1].failed_phase == "smoke" and "model file missing" in rows[1].error
    assert owners == ["algo-flaky-1"]
    # kept as the messages they were: a page says them in its reader's language, values intact
    assert view.last_error.startswith("deploy of v2 failed at smoke: algo-flaky-2 is not healthy: SETUP_FAILED")
    assert say(view.last_error, "zh").startswith("v2 的部署在冒烟测试阶段失败：algo-flaky-2 不健康：SETUP_FAILED")
    assert "model file missing" in say(view.last_error, "zh")
    assert rows[1].error_text == rows[1].error and say(rows[1].error_text, "zh").startswith("algo-flaky-2 不健康")
    assert p.runtimes["supervisor"].status("algo-flaky-2").exists is False


def test_deploy_rights_and_bad_requests(deploy_platform: Platform) -> None:
    from app.auth import PermissionDenied
    from app.errors import ValidationFailed
    p = deploy_platform
    p.catalog.upload(ADMIN, str(FIXTURES / "hello"))
    with pytest.raises(PermissionDenied):
        p.deployer.deploy(VIEWER, DeployRequest("hello"))
    with pytest.raises(ValidationFailed, match="no algorithm"):
        p.deployer.deploy(OPERATOR, DeployRequest("nope"))
    with pytest.raises(ValidationFailed, match="no version 9"):
        p.deployer.deploy(OPERATOR, DeployRequest("hello", version=9))
    with pytest.raises(ValidationFailed, match="replicas"):
        p.deployer.deploy(OPERATOR, DeployRequest("hello", replicas=40))
    with pytest.raises(ValidationFailed, match="unknown runtime"):
        p.deployer.deploy(OPERATOR, DeployRequest("hello", runtime="k8s"))


class FailingExport:
    """A code store whose export fails part-way (the repository server went away mid-download)."""

    def __init__(self, real: object) -> None:
        self._real = real

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)

    def export(self, name: str, tag: str, target: Path) -> None:
        (target / "partial.py").write_text("# half of the package\n")
        raise CodeStoreError("Gitea at http://gitea.example is not reachable: connection reset")


class FailingSecondReplica:
    """A runtime whose second replica cannot be created (`error`: what it raises)."""

    def __init__(self, real: object, error: Exception) -> None:
        self._real, self._error, self.deployed = real, error, 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)

    def deploy(self, spec, log):  # noqa: ANN001, ANN201 - the Runtime signature
        self.deployed += 1
        if self.deployed == 2:
            raise self._error
        return self._real.deploy(spec, log)


def deployer_with(p: Platform, *, codestore: object = None, runtime: object = None) -> Deployer:
    runtimes = {"supervisor": runtime or p.runtimes["supervisor"]}
    return Deployer(p.sessions, codestore or p.codestore, runtimes, p.ports, p.router, p.service_configs, p.home)


def serving_state(p: Platform) -> tuple:
    view = p.services.get(VIEWER, "hello")
    with p.sessions() as s:
        owners = sorted(r.owner for r in s.scalars(select(PortReservation)))
    return view.version, [(r.name, r.endpoint, r.routed) for r in view.replicas], owners


def test_a_code_store_failure_at_export_leaves_nothing_half_done(deploy_platform: Platform, tmp_path: Path) -> None:
    p = deploy_platform
    p.catalog.upload(ADMIN, str(FIXTURES / "hello"))
    p.deployer.deploy(OPERATOR, DeployRequest("hello"))
    p.catalog.upload(ADMIN, str(package_as(tmp_path, "hello", "hello", title="v2")))
    before = serving_state(p)

    with pytest.raises(DeployError) as e:
        deployer_with(p, codestore=FailingExport(p.codestore)).deploy(OPERATOR, DeployRequest("hello"))
    assert e.value.phase == "export" and "not reachable" in str(e.value)
    assert serving_state(p) == before
    assert p.invoker.invoke(VIEWER, "hello", ["still v1"]).version == "v1"
    with p.sessions() as s:
        last = s.scalars(select(Deployment).order_by(Deployment.id.desc())).first()
    assert (last.status, last.failed_phase) == ("failed", "export") and last.finished_at is not None
    assert not [d for d in (p.home / "releases" / "hello").iterdir() if "tmp" in d.name or d.name.startswith("v2")]


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), RuntimeError("a bug in a backend")])
def test_a_failure_while_starting_replicas_removes_the_ones_started(deploy_platform: Platform,
                                                                      error: Exception) -> None:
    p = deploy_platform
    p.catalog.upload(ADMIN, str(FIXTURES / "hello"))
    p.deployer.deploy(OPERATOR, DeployRequest("hello"))
    before = serving_state(p)
    runtime = FailingSecondReplica(p.runtimes["supervisor"], error)

    with pytest.raises(type(error) if isinstance(error, RuntimeError) else DeployError) as e:
        deployer_with(p, runtime=runtime).deploy(OPERATOR, DeployRequest("hello", replicas=2))
    if isinstance(e.value, DeployError):
        assert e.value.phase == "start" and "No space left" in str(e.value)
    assert serving_state(p) == before   # the replica started first is gone, its port released
    assert p.runtimes["supervisor"].status("algo-hello-2").exists is False
    with p.sessions() as s:
        last = s.scalars(select(Deployment).order_by(Deployment.id.desc())).first()
    assert (last.status, last.failed_phase) == ("failed", "start")


def test_a_redeploy_keeps_the_replica_count(deploy_platform: Platform) -> None:
    p = deploy_platform
    p.catalog.upload(ADMIN, str(FIXTURES / "hello"))
    p.deployer.deploy(OPERATOR, DeployRequest("hello", replicas=2))
    again = p.deployer.deploy(OPERATOR, DeployRequest("hello"))
    assert len(again.urls) == 2 and len(p.services.get(VIEWER, "hello").replicas) == 2


@pytest.mark.parametrize("startsecs", [1, 0], ids=["exits-while-starting", "exits-after-startsecs"])
def test_a_replica_whose_port_is_taken_after_the_check_moves_to_another(deploy_platform: Platform,
                                                                        startsecs: int) -> None:
    """Another process binds the port between the allocator's check and the replica's bind (any
    outgoing connection may take a port): the replica cannot bind and exits, and the deploy starts
    it again on another port instead of failing. The race is made certain: the allocator's check
    says every port is free while a real listener holds the range's first. The runner exits either
    within supervisord's `startsecs` (supervisord retries, then gives up on it) or after it, as on
    a busy machine where its start takes longer than that (`startsecs` 0 makes that certain):
    supervisord then counts it as started and `autorestart` starts it again and again."""
    p = deploy_platform
    p.runtimes["supervisor"].startsecs = startsecs
    p.catalog.upload(ADMIN, str(FIXTURES / "hello"))
    low = p.settings.value("ALGOSTAGE_PORT_RANGE")[0]
    taker = socket.socket()
    taker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    taker.bind(("127.0.0.1", low))
    taker.listen(8)
    stop = threading.Event()

    def refuse() -> None:   # accepts and closes at once: probes of it fail fast, as of a foreign server
        taker.settimeout(0.2)
        while not stop.is_set():
            try:
                taker.accept()[0].close()
            except OSError:
                continue
    thread = threading.Thread(target=refuse, daemon=True)
    thread.start()
    p.deployer._ports._is_free = lambda port: True
    events: list[str] = []
    try:
        result = p.deployer.deploy(OPERATOR, DeployRequest("hello"), lambda e: events.append(e.message))
    finally:
        stop.set()
        thread.join()
        taker.close()
    assert f"algo-hello-1: port {low} was taken by another process; on port {low + 1} instead" in events, events
    assert result.urls == [f"http://127.0.0.1:{low + 1}"]
    assert health(result.urls[0])["status"] == "READY"
    assert p.invoker.invoke(VIEWER, "hello", ["hello world"]).replica == "algo-hello-1"
    with p.sessions() as s:
        assert [(r.port, r.owner) for r in s.scalars(select(PortReservation))] == [(low + 1, "algo-hello-1")]
