"""`Deployer.scale` (python -m app scale NAME N) on the supervisor runtime with the real runner:
scaling up adds health-gated replicas beside the running ones (untouched, still serving), scaling
down takes the highest-numbered out of rotation and removes them with their ports; a scale-up
whose new replica fails leaves the service as it was; what is refused and who may scale."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from app.auth import PermissionDenied
from app.errors import ValidationFailed
from app.models import PortReservation
from app.platform import Platform
from app.services.deployer import DeployRequest
from orchestration.errors import DeployError
from tests.conftest import ADMIN, OPERATOR, ROOT, VIEWER, service_platform
from tests.integration.test_deploy import FailingSecondReplica, deployer_with

pytestmark = pytest.mark.timeout(600)
FIXTURES = ROOT / "tests" / "fixtures" / "algorithms"


@pytest.fixture
def p(migrated_db_url: str, tmp_path: Path, shared_envs: Path) -> Iterator[Platform]:
    platform = service_platform(migrated_db_url, tmp_path / "home", shared_envs)
    yield platform
    platform.daemon.shutdown()
    platform.close()


def replicas(p: Platform) -> list[tuple[str, str, bool]]:
    return [(r.name, r.endpoint, r.routed) for r in p.services.get(VIEWER, "hello").replicas]


def owners(p: Platform) -> list[str]:
    with p.sessions() as s:
        return sorted(r.owner for r in s.scalars(select(PortReservation)))


def test_scaling_up_adds_gated_replicas_beside_the_running_ones_and_down_removes_the_last(p: Platform) -> None:
    p.catalog.upload(ADMIN, str(FIXTURES / "hello"))
    p.deployer.deploy(OPERATOR, DeployRequest("hello"))
    first = replicas(p)
    pid = p.services.get(VIEWER, "hello").replicas[0].pid

    grown = p.deployer.scale(OPERATOR, "hello", 3)
    assert (grown.replicas, grown.added, grown.removed) == (3, ["algo-hello-2", "algo-hello-3"], [])
    now = replicas(p)
    assert now[0] == first[0] and [r[0] for r in now] == ["algo-hello-1", "algo-hello-2", "algo-hello-3"]
    assert all(routed for _, _, routed in now) and len({url for _, url, _ in now}) == 3
    view = p.services.get(VIEWER, "hello")
    assert view.replicas[0].pid == pid and view.version == "v1" and view.state.value == "RUNNING"
    answered = {p.invoker.invoke(VIEWER, "hello", ["hi"]).replica for _ in range(9)}
    assert answered == {"algo-hello-1", "algo-hello-2", "algo-hello-3"}

    assert p.deployer.scale(OPERATOR, "hello", 3).added == []   # already there
    shrunk = p.deployer.scale(OPERATOR, "hello", 1)
    assert (shrunk.replicas, shrunk.added, shrunk.removed) == (1, [], ["algo-hello-2", "algo-hello-3"])
    assert replicas(p) == first and owners(p) == ["algo-hello-1"]
    assert p.runtimes["supervisor"].status("algo-hello-3").exists is False
    with p.sessions() as s:
        from app.services.rows import get_service
        assert get_service(s, "hello").replicas == 1
    assert p.invoker.invoke(VIEWER, "hello", ["hi"]).replica == "algo-hello-1"


def test_a_failed_scale_up_leaves_the_service_as_it_was_and_bad_requests_are_refused(p: Platform) -> None:
    p.catalog.upload(ADMIN, str(FIXTURES / "hello"))
    p.deployer.deploy(OPERATOR, DeployRequest("hello"))
    before = replicas(p), owners(p)
    failing = deployer_with(p, runtime=FailingSecondReplica(p.runtimes["supervisor"], OSError(28, "No space left")))
    failing.scale(OPERATOR, "hello", 2)          # its first deploy call starts replica 2: fine
    p.deployer.scale(OPERATOR, "hello", 1)
    with pytest.raises(DeployError) as e:
        failing.scale(OPERATOR, "hello", 3)      # the second of these fails: neither is kept
    assert e.value.phase == "start" and "No space left" in str(e.value)
    assert (replicas(p), owners(p)) == before
    assert p.runtimes["supervisor"].status("algo-hello-2").exists is False

    with pytest.raises(ValidationFailed, match="between 1 and"):
        p.deployer.scale(OPERATOR, "hello", 0)
    with pytest.raises(PermissionDenied):
        p.deployer.scale(VIEWER, "hello", 2)
    p.services.stop(OPERATOR, ["hello"])
    with pytest.raises(ValidationFailed, match="stopped: start it first"):
        p.deployer.scale(OPERATOR, "hello", 2)
