"""A service's state from its replicas' (`ServiceView.state`): replicas a deploy is retiring do not
count while the new version serves."""
from __future__ import annotations

from app.services.manager import ReplicaView, ServiceView
from orchestration.runtime import ServiceState as S


def replica(name: str, state: S, *, routed: bool = True, retiring: bool = False) -> ReplicaView:
    return ReplicaView(name, 0, 9000, "http://127.0.0.1:9000", routed, state, None, None, None, None, None, "",
                       retiring=retiring)


def service(*replicas: ReplicaView) -> ServiceView:
    return ServiceView("svc", "algo", "text.classification", "v2", 2, "supervisor", "running", None, "",
                       list(replicas))


def test_replicas_being_retired_do_not_count() -> None:
    for old_state in (S.STOPPING, S.STOPPED, S.EXITED, S.UNKNOWN):
        view = service(replica("old", old_state, routed=False, retiring=True), replica("new", S.RUNNING))
        assert view.state is S.RUNNING, old_state


def test_a_replica_out_of_rotation_that_is_not_retiring_still_counts() -> None:
    assert service(replica("a", S.RUNNING), replica("b", S.FATAL, routed=False)).state is S.FATAL
    assert service(replica("a", S.RUNNING), replica("b", S.BACKOFF, routed=False)).state is S.BACKOFF


def test_the_new_replicas_state_shows_through_retiring_ones() -> None:
    view = service(replica("old", S.RUNNING, routed=False, retiring=True), replica("new", S.STARTING))
    assert view.state is S.STARTING


def test_only_retiring_replicas_left_say_what_they_are() -> None:
    assert service(replica("old", S.STOPPED, routed=False, retiring=True)).state is S.STOPPED
    assert service().state is S.STOPPED
