"""The swarm backend is registered without a swarm: building it contacts no engine, an engine that
is missing or is not a swarm manager reads as BackendUnavailable in words (Home page, reconcile),
and the platform keeps working without one. Task states and slot names map as documented."""
from __future__ import annotations

from pathlib import Path

import pytest

from app.services.cluster import Cluster
from app.settings import SPECS
from orchestration import registry
from orchestration.errors import BackendUnavailable
from orchestration.registry import RuntimeContext
from orchestration.runtime import ClusterRuntime, Runtime, ServiceState, slot_of
from orchestration.swarm import SwarmRuntime, _state
from tests.conftest import ADMIN


def context(tmp_path: Path, **settings: str) -> RuntimeContext:
    values = {"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock", **settings}
    return RuntimeContext(tmp_path, lambda key: values.get(key, SPECS[key].default))


class NotAManager:
    """A Docker Engine (or Podman) that answers but is not a swarm manager."""
    def info(self) -> dict:
        return {"Swarm": {"LocalNodeState": "inactive", "ControlAvailable": False}, "Name": "box"}


def test_swarm_is_registered_with_its_settings_and_built_without_contacting_an_engine(tmp_path: Path) -> None:
    assert "swarm" in registry.names()
    assert {"ALGOSTAGE_SWARM_HOST", "ALGOSTAGE_SWARM_NETWORK", "ALGOSTAGE_SWARM_REGISTRY"} <= set(SPECS)
    runtime = registry.create("swarm", context(tmp_path, ALGOSTAGE_SWARM_REGISTRY="10.0.0.5:5000"))
    assert isinstance(runtime, Runtime) and isinstance(runtime, ClusterRuntime)
    assert runtime.registry == "10.0.0.5:5000" and runtime.network == "algostage"
    assert runtime.docker_host == f"unix://{tmp_path}/no-docker.sock"
    with pytest.raises(BackendUnavailable, match="nothing listens at that socket"):
        runtime.check()
    with pytest.raises(BackendUnavailable):
        runtime.list()


def test_an_engine_that_is_not_a_swarm_manager_is_unavailable_not_an_error(tmp_path: Path) -> None:
    runtime = SwarmRuntime(NotAManager(), docker_host="unix:///x.sock")
    for call in (runtime.check, runtime.list, runtime.nodes, lambda: runtime.status("algo-x.1")):
        with pytest.raises(BackendUnavailable, match="not a swarm manager"):
            call()
    with pytest.raises(BackendUnavailable, match="not a swarm manager"):
        Cluster({"supervisor": object(), "swarm": runtime}).nodes(ADMIN)


def test_slot_names_and_task_states() -> None:
    assert slot_of("algo-x.3") == ("algo-x", 3) and slot_of("algo-x-1") == ("algo-x-1", None)
    assert slot_of("algo-x-v4.12") == ("algo-x-v4", 12) and slot_of("algo-x.y") == ("algo-x.y", None)
    assert _state("starting", True, "on-failure") is ServiceState.STARTING
    assert _state("running", True, "on-failure") is ServiceState.RUNNING
    assert _state("running", False, "on-failure") is ServiceState.STOPPING
    assert _state("failed", True, "on-failure") is ServiceState.BACKOFF
    assert _state("failed", True, "none") is ServiceState.EXITED
    assert _state("shutdown", False, "any") is ServiceState.STOPPED


def test_the_platform_lists_and_reconciles_without_a_swarm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.overview import reachability
    from app.platform import Platform
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    home = tmp_path / "home"
    p = Platform.open(home, {"ALGOSTAGE_HOME": str(home), "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"})
    try:
        found = reachability(p, "swarm")
        assert not found.reachable and "nothing listens at that socket" in found.detail
        report = p.services.reconcile()
        assert "swarm" not in report.failed and report.unexpected == []
    finally:
        p.close()
