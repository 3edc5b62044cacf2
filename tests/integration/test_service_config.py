"""Per-service settings: get one, set one, list a service's; validated; history kept."""
import pytest

from app.errors import PermissionDenied, ValidationFailed
from app.models import Algorithm, AlgorithmService
from app.settings import Source
from tests.conftest import OPERATOR, VIEWER


@pytest.fixture
def service(platform):
    with platform.sessions() as s, s.begin():
        algo = Algorithm(name="hello", title="Hello", task="text.classification", created_by="t")
        s.add(algo)
        s.flush()
        s.add(AlgorithmService(name="hello", algorithm_id=algo.id, runtime="supervisor", created_by="t"))
    return "hello"


def test_defaults_set_get_list_and_history(platform, service):
    store = platform.service_configs
    assert store.get(VIEWER, service, "timeout_s").value == 30.0
    assert store.get(VIEWER, service, "timeout_s").source is Source.DEFAULT
    store.set(OPERATOR, service, "timeout_s", "2.5")
    r = store.get(VIEWER, service, "timeout_s")
    assert (r.value, r.source) == (2.5, Source.DB)
    keys = {s.key for s in store.list(VIEWER, service)}
    assert keys == {"host", "timeout_s", "retries", "health_timeout_s", "max_batch", "max_body_mb", "autorestart"}
    assert "port" not in keys  # dropped: a fixed replica port cannot survive a start-before-stop redeploy
    store.set(OPERATOR, service, "timeout_s", "5")
    assert [(h.old_value, h.new_value, h.actor) for h in store.history(VIEWER, service)] == [("2.5", "5", "op"),
                                                                                      (None, "2.5", "op")]


def test_bad_value_unknown_key_unknown_service_and_viewer_are_refused(platform, service):
    store = platform.service_configs
    with pytest.raises(ValidationFailed, match="timeout_s: must be between"):
        store.set(OPERATOR, service, "timeout_s", "0")
    with pytest.raises(ValidationFailed, match="unknown service setting"):
        store.set(OPERATOR, service, "colour", "red")
    with pytest.raises(ValidationFailed, match="no service"):
        store.get(VIEWER, "nope", "timeout_s")
    with pytest.raises(PermissionDenied):
        store.set(VIEWER, service, "timeout_s", "3")
    assert store.get(VIEWER, service, "timeout_s").source is Source.DEFAULT
    assert store.history(VIEWER, service) == []
