"""The routing table follows the swarm (issue 13, item 3, on the single-node swarm of
tests/engines.py): a service deployed on the swarm runtime serves through the table; when the table
says a replica answers where the swarm no longer runs it (its task was rescheduled on another node),
the health monitor's next round locates it, updates its endpoint, probes it there and publishes
it again, so the gateway's configuration names where it runs now. A first deploy whose setup fails
is refused at once and leaves nothing on the swarm."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from sqlalchemy import select

from app.db import transaction
from app.models import ServiceReplica
from app.platform import Platform
from app.services.deployer import DeployRequest
from app.services.monitor import IN
from orchestration.errors import DeployError
from tests.conftest import ADMIN, OPERATOR, VIEWER, private_port_range
from tests.engines import BASE_IMAGE, DOCKERD_HOST, REGISTRY
from tests.integration.test_export_stack import package_as

pytestmark = pytest.mark.timeout(600)
SERVICE = "test-swarm-gw"


@pytest.fixture
def platform(tmp_path: Path, shared_envs: Path, docker_engine: docker.DockerClient) -> Iterator[Platform]:
    home = tmp_path / "home"
    p = Platform.open(home, {"ALGOSTAGE_HOME": str(home), "ALGOSTAGE_ENV_DIR": str(shared_envs),
                             "ALGOSTAGE_PORT_RANGE": private_port_range(), "DOCKER_HOST": DOCKERD_HOST,
                             "ALGOSTAGE_SWARM_REGISTRY": REGISTRY, "ALGOSTAGE_DOCKER_BASE_IMAGE": BASE_IMAGE,
                             "ALGOSTAGE_SWARM_NETWORK": "algostage-test"})
    yield p
    p.services.remove(ADMIN, [SERVICE])
    p.daemon.shutdown()
    p.close()


def test_the_monitor_follows_a_replica_the_swarm_runs_elsewhere(platform: Platform, tmp_path: Path) -> None:
    p = platform
    p.catalog.upload(ADMIN, str(package_as(tmp_path, "hello", SERVICE)))
    result = p.deployer.deploy(OPERATOR, DeployRequest(SERVICE, runtime="swarm", replicas=1))
    url = result.urls[0]
    name = f"algo-{SERVICE}.1"   # the first task slot of the one swarm service
    assert p.invoker.invoke(VIEWER, SERVICE, ["hi"]).replica == name
    assert {k: e.url for k, e in p.cluster.locate("swarm", [name, "algo-gone.1"]).items()} == {name: url}
    assert p.cluster.locate("supervisor", [name]) == {}

    stale = url.replace("127.0.0.1", "127.0.0.2")   # where the table says it runs: no longer true
    with transaction(p.sessions) as s:
        s.scalar(select(ServiceReplica).where(ServiceReplica.backend_name == name)).endpoint = stale
    report = p.health_monitor.round()
    assert report.moved == {name: url} and report.withdrawn == {} and name in report.published
    with p.sessions() as s:
        row = s.scalar(select(ServiceReplica).where(ServiceReplica.backend_name == name))
        assert (row.endpoint, row.routed, row.route_note) == (url, True, IN)
    assert url.removeprefix("http://") in p.gateway_engine.conf.read_text()
    assert stale.removeprefix("http://") not in p.gateway_engine.conf.read_text()
    assert p.invoker.invoke(VIEWER, SERVICE, ["hi"]).replica == name
    assert p.health_monitor.round().moved == {}   # where it runs: nothing to follow


def test_a_first_deploy_whose_setup_fails_leaves_no_swarm_service(platform: Platform, tmp_path: Path,
                                                                    docker_engine: docker.DockerClient) -> None:
    """Its tasks exit at once (the runner is told to: ALGOSTAGE_EXIT_ON_SETUP_FAILURE); the deploy
    fails with the reason from their output instead of waiting out the health check's start period,
    and the swarm service it created is removed."""
    p = platform
    p.catalog.upload(ADMIN, str(package_as(tmp_path, "crash_in_setup", SERVICE)))
    t0 = time.perf_counter()
    with pytest.raises(DeployError) as failed:
        p.deployer.deploy(OPERATOR, DeployRequest(SERVICE, runtime="swarm", replicas=2, health_timeout=120))
    took = time.perf_counter() - t0
    print(f"\na first swarm deploy whose setup fails: refused after {took:.1f} s")
    assert failed.value.phase == "start" and "setup() of v1 failed" in str(failed.value), failed.value
    assert "model file missing" in failed.value.log
    assert took < 90, took   # not the 120 s start period and the update's monitor after it
    assert docker_engine.services.list(filters={"label": f"algostage.service={SERVICE}"}) == []
    with p.sessions() as s:
        assert s.scalars(select(ServiceReplica)).all() == []
