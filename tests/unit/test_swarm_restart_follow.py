"""`SwarmRuntime.restart_service` follows the swarm's rolling update to its end: on a scripted
service (what the engine reports at each poll, on a clock that only moves when the runtime sleeps)
it returns the new endpoints once the update completed, tells `on_change` of every move on the
way, raises RolledBack when the swarm rolled the restart back and DeployError when the update is
not over in time — and an update that began before the restart does not count as this one's end."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from orchestration.errors import DeployError, RolledBack
from orchestration.runtime import Endpoint, TaskEndpoint
from orchestration.swarm import POLL_S, SwarmRuntime


def task(port: int) -> TaskEndpoint:
    return TaskEndpoint(Endpoint("10.0.0.1", port), "v1", "alpha")


class Scripted(SwarmRuntime):
    """Poll i shows `polls[i]` (endpoints, UpdateStatus); the last entry repeats."""

    def __init__(self, polls: list[tuple[dict[str, TaskEndpoint], dict[str, Any]]], before: dict[str, Any]) -> None:
        self.now = 0.0
        super().__init__(client=SimpleNamespace(), clock=lambda: self.now, sleep=self.advance)
        self.polls, self.before, self.poll, self.restarted = polls, before, -1, False

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def restart(self, name: str) -> None:
        self.restarted = True

    def _service(self, name: str) -> Any:
        status = self.before if not self.restarted else self.polls[min(self.poll, len(self.polls) - 1)][1]
        return SimpleNamespace(attrs={"Spec": {"Mode": {"Replicated": {"Replicas": 2}}}, "UpdateStatus": status})

    def endpoints(self, name: str) -> dict[str, TaskEndpoint]:
        self.poll += 1
        return self.polls[min(self.poll, len(self.polls) - 1)][0]

    def logs(self, name: str, lines: int = 200, stream: str = "stdout") -> str:
        return "task log"


OLD = {"algo-x.1": task(30001), "algo-x.2": task(30002)}
HALF = {"algo-x.1": task(30011), "algo-x.2": task(30002)}
NEW = {"algo-x.1": task(30011), "algo-x.2": task(30012)}
EARLIER = {"State": "completed", "StartedAt": "2026-12-01T10:00:00Z"}


def updating(state: str) -> dict[str, Any]:
    return {"State": state, "StartedAt": "2026-12-05T01:00:00Z", "Message": f"update {state}"}


def test_a_completed_restart_returns_the_new_endpoints_and_every_move_was_told() -> None:
    runtime = Scripted([(OLD, EARLIER), (HALF, updating("updating")), (NEW, updating("updating")),
                        (NEW, updating("completed"))], EARLIER)
    told: list[dict[str, TaskEndpoint]] = []
    assert runtime.restart_service("algo-x", timeout=30, on_change=told.append) == NEW
    assert runtime.restarted and told == [OLD, HALF, NEW]


def test_the_previous_updates_completed_state_is_not_taken_for_this_restarts_end() -> None:
    """Until the swarm starts this update, UpdateStatus still says the last one completed."""
    runtime = Scripted([(OLD, EARLIER), (OLD, EARLIER), (NEW, updating("completed"))], EARLIER)
    assert runtime.restart_service("algo-x", timeout=30, on_change=lambda found: None) == NEW
    assert runtime.poll == 2


def test_a_restart_the_swarm_rolled_back_raises_rolled_back_after_following_the_rollback() -> None:
    runtime = Scripted([(HALF, updating("updating")), (HALF, updating("rollback_started")),
                        (OLD, updating("rollback_completed"))], EARLIER)
    told: list[dict[str, TaskEndpoint]] = []
    with pytest.raises(RolledBack) as e:
        runtime.restart_service("algo-x", timeout=30, on_change=told.append)
    assert e.value.message.key == "swarm.restart_rolled_back" and "rollback_started" in str(e.value)
    assert told[-1] == OLD   # the rows end on the tasks the rollback kept


def test_an_update_not_over_in_time_raises_deploy_error_after_the_timeout_and_the_monitor() -> None:
    runtime = Scripted([(HALF, updating("updating"))], EARLIER)
    with pytest.raises(DeployError) as e:
        runtime.restart_service("algo-x", timeout=10, on_change=lambda found: None)
    assert e.value.message.key == "swarm.restart_not_over" and "updating" in str(e.value)
    assert 70 < runtime.now <= 70 + POLL_S   # polled until timeout + 60 s, not longer
