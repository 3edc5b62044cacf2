"""Schemathesis against the API's own OpenAPI document, with an admin key: for every operation,
generated requests (valid and invalid) get no 5xx and no answer that contradicts the schema.
Bounded: a few examples per operation, on SQLite, in-process (the same app the API program serves).
Operations that would reach outside this machine (a git URL to clone) are left out; the cluster's
are answered by a fake swarm manager (tests/fake_swarm.py)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

from api.app import create_app
from app.auth import Role
from app.platform import Platform
from app.services.cluster import Cluster
from tests.conftest import ADMIN
from tests.fake_swarm import fake_swarm

LEFT_OUT = ("/api/v1/algorithms/git", "/api/v1/services/deploy-from-gitea")


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    home = tmp_path_factory.mktemp("schema")
    platform = Platform.open(Path(home), {"ALGOSTAGE_HOME": str(home)})
    platform.auth.create_user(ADMIN, "ada", "a-long-password", Role.ADMIN)
    platform.cluster = Cluster({"swarm": fake_swarm()[0]})   # a manager that answers: no swarm would be a 503
    key = platform.keys.create(ADMIN, "schemathesis", user="ada").key
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", create_app(platform))
    schema.config.headers = {"Authorization": f"Bearer {key}"}
    yield schema.exclude(path=list(LEFT_OUT))
    platform.close()


def test_no_5xx_and_no_answer_against_the_schema(api_schema: schemathesis.BaseSchema) -> None:
    """Every operation, a few generated cases each (driven by hand: schemathesis' pytest plugin
    does not load under this pytest)."""
    failures: dict[str, str] = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 35
    for operation in operations:
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                  derandomize=True)
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=[not_a_server_error, response_schema_conformance, status_code_conformance])
        try:
            check()
        except Exception as e:  # noqa: BLE001 - every operation's failure is collected, then shown together
            failures[operation.label] = str(e)[:2000]
    assert failures == {}, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
