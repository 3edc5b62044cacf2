"""API keys, the active health monitor and canary deploys against a real database (both backends)
and, for canaries, real deploys on the supervisor runtime."""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from app.db import transaction
from app.errors import PermissionDenied, ValidationFailed
from app.i18n import say
from app.keys import ApiKeys, KeyRefused, bearer, hash_key
from app.models import Algorithm, AlgorithmService, ApiKey, ServiceReplica
from app.platform import Platform
from app.services.deployer import DeployRequest
from app.services.gateway import weights
from app.services.monitor import IN, HealthMonitor
from orchestration.health import Health
from orchestration.runtime import Endpoint
from tests.conftest import ADMIN, OPERATOR, ROOT, VIEWER, service_platform

FIXTURES = ROOT / "tests" / "fixtures" / "algorithms"


def add_service(p: Platform, name: str, replicas: int, desired: str = "running") -> None:
    with transaction(p.sessions) as s:
        algo = s.scalar(select(Algorithm).where(Algorithm.name == "algo"))
        if algo is None:
            algo = Algorithm(name="algo", title="A", task="text.classification", created_by="t")
            s.add(algo)
            s.flush()
        svc = AlgorithmService(name=name, algorithm_id=algo.id, runtime="supervisor", created_by="t",
                               desired_state=desired)
        for i in range(1, replicas + 1):
            svc.replica_rows.append(ServiceReplica(index=i, backend_name=f"algo-{name}-{i}", port=20000 + i,
                                                   endpoint=f"http://127.0.0.1:{20000 + i}"))
        s.add(svc)


# --- keys -------------------------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


def test_keys_are_shown_once_stored_hashed_limited_and_revocable(platform: Platform) -> None:
    add_service(platform, "hello", 1)
    add_service(platform, "other", 1)
    clock = Clock()
    keys = ApiKeys(platform.sessions, clock=clock)
    everything = keys.create(ADMIN, "ci")
    scoped = keys.create(ADMIN, "scoped", services=["hello"], expires_days=1)
    with platform.sessions() as s:
        stored = {k.name: k for k in s.scalars(select(ApiKey))}
    assert stored["ci"].key_hash == hash_key(everything.key) and everything.key not in str(vars(stored["ci"]))
    assert keys.check(everything.key, "other").name == "ci"
    assert keys.check(scoped.key, "hello").name == "scoped"
    with pytest.raises(KeyRefused) as e:
        keys.check(scoped.key, "other")
    assert e.value.status == 403
    for raw in (None, "", "ask_nope"):
        with pytest.raises(KeyRefused) as e:
            keys.check(raw, "hello")
        assert e.value.status == 401
    clock.now += timedelta(days=2)
    with pytest.raises(KeyRefused, match="expired"):
        keys.check(scoped.key, "hello")
    keys.revoke(ADMIN, "ci")
    with pytest.raises(KeyRefused) as e:
        keys.check(everything.key, "hello")
    assert e.value.status == 401
    assert {k.name: k.state for k in keys.list(ADMIN)} == {"ci": "revoked", "scoped": "expired"}


def test_bad_key_requests_are_refused_with_every_reason(platform: Platform) -> None:
    keys = platform.keys
    keys.create(ADMIN, "taken")
    with pytest.raises(ValidationFailed) as e:
        keys.create(ADMIN, "bad name!", services=["nope"], expires_days=-1)
    assert {p.field for p in e.value.problems} == {"name", "services", "expires"}
    with pytest.raises(ValidationFailed, match="already exists"):
        keys.create(ADMIN, "taken")
    with pytest.raises(ValidationFailed, match="no key"):
        keys.revoke(ADMIN, "missing")
    for actor in (OPERATOR, VIEWER):
        with pytest.raises(PermissionDenied):
            keys.create(actor, "mine")
    assert bearer("Bearer abc ") == "abc" and bearer("Basic abc") is None and bearer(None) is None


# --- the health monitor --------------------------------------------------------------------------------

class Recorder:
    """A Router that records what the monitor asks of it and keeps the table up to date."""

    def __init__(self, p: Platform) -> None:
        self.direct, self.calls = p.router._direct, []

    def withdraw(self, service, replicas=None):  # noqa: ANN001, ANN201
        self.calls.append(("withdraw", service, sorted(replicas)))
        self.direct.withdraw(service, replicas)

    def publish(self, service, endpoints):  # noqa: ANN001, ANN201
        self.calls.append(("publish", service, sorted(endpoints)))
        self.direct.publish(service, endpoints)


def test_the_monitor_withdraws_what_fails_or_hangs_and_publishes_it_again(platform: Platform) -> None:
    add_service(platform, "svc", 3)
    add_service(platform, "paused", 1, desired="stopped")
    answers = {20001: Health("READY"), 20002: Health("UNREACHABLE", "ReadTimeout: timed out"),
               20003: Health("STARTING")}
    router = Recorder(platform)
    monitor = HealthMonitor(platform.sessions, router, timeout_s=0.5,
                            probe_fn=lambda url, timeout: answers[int(url.rsplit(":", 1)[1])])
    report = monitor.round()
    assert report.probed == 3   # the stopped service is not probed
    assert set(report.withdrawn) == {"algo-svc-2", "algo-svc-3"} and report.published == []
    with platform.sessions() as s:
        rows = {r.backend_name: r for r in s.scalars(select(ServiceReplica))}
    assert rows["algo-svc-1"].routed and rows["algo-svc-1"].route_note == IN
    assert not rows["algo-svc-2"].routed and "probe timeout" in rows["algo-svc-2"].route_note
    assert not rows["algo-svc-3"].routed and "STARTING" in rows["algo-svc-3"].route_note
    assert rows["algo-svc-1"].checked_at is not None
    # the Manage page's view says why in its reader's language; the API's text stays English
    notes = {r.name: r.route_note for r in platform.services.get(ADMIN, "svc").replicas}
    assert notes["algo-svc-2"] == "out: no answer within the probe timeout of 0.5 s"
    assert [say(notes[n], "zh") for n in ("algo-svc-2", "algo-svc-3")] == \
        ["不接收流量：探测在 0.5 秒内没有应答", "不接收流量：/health 返回 STARTING"]

    answers[20002] = Health("READY")
    report = monitor.round()
    assert report.published == ["algo-svc-2"] and report.withdrawn == {}
    assert monitor.round().published == []   # nothing changes: the gateway is not reloaded
    assert router.calls == [("withdraw", "svc", ["algo-svc-2", "algo-svc-3"]), ("publish", "svc", ["algo-svc-2"])]


def test_a_round_locates_the_replicas_of_a_runtime_in_one_call_and_follows_a_moved_one(platform: Platform) -> None:
    """The monitor asks each runtime once per round where its replicas run (a cluster lists its
    tasks once per service, not once per slot); a replica it names elsewhere is probed and kept
    there, one it does not name stays where the table says; a runtime that cannot say moves none."""
    add_service(platform, "svc", 3)
    asked: list[tuple[str, list[str]]] = []

    def locate(runtime: str, replicas):  # noqa: ANN001, ANN202
        asked.append((runtime, list(replicas)))
        if runtime == "broken":
            raise RuntimeError("engine down")
        return {"algo-svc-2": Endpoint("127.0.0.1", 20012)}

    probed: list[str] = []
    monitor = HealthMonitor(platform.sessions, Recorder(platform), locate=locate,
                            probe_fn=lambda url, timeout: probed.append(url) or Health("READY"))
    report = monitor.round()
    assert asked == [("supervisor", ["algo-svc-1", "algo-svc-2", "algo-svc-3"])]
    assert report.moved == {"algo-svc-2": "http://127.0.0.1:20012"}
    assert sorted(probed) == ["http://127.0.0.1:20001", "http://127.0.0.1:20003", "http://127.0.0.1:20012"]
    with platform.sessions() as s:
        assert s.scalar(select(ServiceReplica.endpoint).where(ServiceReplica.backend_name == "algo-svc-2")) == \
            "http://127.0.0.1:20012"
    with transaction(platform.sessions) as s:
        s.scalar(select(AlgorithmService).where(AlgorithmService.name == "svc")).runtime = "broken"
    assert monitor.round().moved == {} and asked[-1][0] == "broken"


def test_a_round_that_overlaps_a_stop_does_not_put_the_replicas_back(platform: Platform) -> None:
    """A chaos run got a 502 from the gateway after `stop` had returned: a health round read its
    targets while the stop was under way (withdrawn, still alive, still wanted), probed them READY
    and published them again, and then they died. Publishing now requires the service to be wanted
    in the same statement, and the stop says so first."""
    add_service(platform, "racing", 2)
    platform.router.withdraw("racing")                    # out, e.g. failed probes: a round would publish

    def stop_while_probing(url: str, timeout: float) -> Health:
        with transaction(platform.sessions) as s:          # what ServiceManager.stop does first
            s.scalar(select(AlgorithmService).where(AlgorithmService.name == "racing")).desired_state = "stopped"
        return Health("READY")

    report = HealthMonitor(platform.sessions, platform.router._direct, probe_fn=stop_while_probing).round()
    assert report.probed == 2
    assert platform.router._direct.routes("racing") == []
    with platform.sessions() as s:
        assert not any(r.routed for r in s.scalars(select(ServiceReplica)))


# --- canary deploys ------------------------------------------------------------------------------------

@pytest.fixture
def deploy_platform(migrated_db_url: str, tmp_path: Path, shared_envs: Path) -> Iterator[Platform]:
    p = service_platform(migrated_db_url, tmp_path / "home", shared_envs)
    yield p
    p.daemon.shutdown()
    p.close()


def version_of(tmp_path: Path, title: str) -> Path:
    pkg = tmp_path / title.replace(" ", "-")
    shutil.copytree(FIXTURES / "hello", pkg)
    manifest = yaml.safe_load((pkg / "algorithm.yaml").read_text())
    (pkg / "algorithm.yaml").write_text(yaml.safe_dump({**manifest, "title": title}, sort_keys=False))
    return pkg


def test_a_canary_runs_beside_the_served_version_until_it_is_aborted(deploy_platform: Platform,
                                                                        tmp_path: Path) -> None:
    p = deploy_platform
    p.catalog.upload(ADMIN, str(FIXTURES / "hello"))
    with pytest.raises(ValidationFailed, match="serves no version yet"):
        p.deployer.deploy(OPERATOR, DeployRequest("hello", canary=10))
    p.deployer.deploy(OPERATOR, DeployRequest("hello", replicas=2))
    p.catalog.upload(ADMIN, str(version_of(tmp_path, "Hello two")))
    p.deployer.deploy(OPERATOR, DeployRequest("hello", canary=25))
    view = p.services.get(VIEWER, "hello")
    assert (view.version, view.canary_version, view.canary_percent) == ("v1", "v2", 25)
    assert sorted(r.version for r in view.replicas) == ["v1", "v1", "v2"] and all(r.routed for r in view.replicas)
    spec = {r.service: r for r in p.gateway_table.views()}["hello"]
    share = weights(spec.replicas, "v2", 25)
    assert share["algo-hello-3"] / sum(share.values()) == pytest.approx(0.25)
    assert "algo-hello-3" in (p.home / "gateway" / "nginx.conf").read_text()   # the gateway serves it
    with pytest.raises(ValidationFailed, match="already has a version on trial"):
        p.deployer.deploy(OPERATOR, DeployRequest("hello", canary=10))

    assert p.deployer.abort(OPERATOR, "hello") == ["algo-hello-3"]
    view = p.services.get(VIEWER, "hello")
    assert view.canary_version is None and [r.version for r in view.replicas] == ["v1", "v1"]
    assert p.runtimes["supervisor"].status("algo-hello-3").exists is False
    assert "algo-hello-3" not in (p.home / "gateway" / "nginx.conf").read_text()
    with pytest.raises(ValidationFailed, match="no version on trial"):
        p.deployer.abort(OPERATOR, "hello")
    with pytest.raises(PermissionDenied):
        p.deployer.promote(VIEWER, "hello")
