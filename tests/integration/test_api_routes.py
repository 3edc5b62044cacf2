"""The management API in-process (its real app over a real database, both backends): tokens and
who they act as, the error shapes and statuses, the original plan's paths, and a walk of the route
table that denies every state-changing endpoint to a viewer's key."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from app.auth import Role
from app.platform import Platform
from tests.conftest import ADMIN

PASSWORD = "a-long-password"


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    for name, role in (("ada", Role.ADMIN), ("otto", Role.OPERATOR), ("vera", Role.VIEWER)):
        platform.auth.create_user(ADMIN, name, PASSWORD, role)
    with TestClient(create_app(platform), raise_server_exceptions=False) as c:
        yield c


def token(client: TestClient, user: str) -> dict[str, str]:
    reply = client.post("/api/v1/auth/token", json={"username": user, "password": PASSWORD})
    assert reply.status_code == 201, reply.text
    return {"Authorization": f"Bearer {reply.json()['key']}"}


def test_a_token_acts_as_its_user_with_the_users_role(client: TestClient, platform: Platform) -> None:
    for user, role in (("ada", "admin"), ("otto", "operator"), ("vera", "viewer")):
        assert client.get("/api/v1/me", headers=token(client, user)).json() == {"username": user, "role": role}
    wrong = client.post("/api/v1/auth/token", json={"username": "vera", "password": "nope-nope"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "login_failed"
    headers = token(client, "otto")
    platform.auth.update_user(ADMIN, "otto", role="viewer")   # the role applies at the next request
    assert client.get("/api/v1/me", headers=headers).json()["role"] == "viewer"
    platform.auth.update_user(ADMIN, "otto", active=False)
    assert client.get("/api/v1/me", headers=headers).status_code == 401


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer ask_nope"}, {"Authorization": "Basic eDp5"}])
def test_no_valid_key_is_a_json_401(client: TestClient, headers: dict) -> None:
    reply = client.get("/api/v1/services", headers=headers)
    assert reply.status_code == 401 and reply.json()["code"] == "unauthorized"
    assert reply.headers["www-authenticate"].startswith("Bearer")


def test_errors_carry_the_error_roots_code_and_the_fields(client: TestClient) -> None:
    admin = token(client, "ada")
    missing = client.get("/api/v1/services/nope", headers=admin)
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    refused = client.post("/api/v1/users", headers=admin, json={"username": "X", "password": "short", "role": "boss"})
    assert refused.status_code == 422 and {p["field"] for p in refused.json()["problems"]} == {"username", "password",
                                                                                             "role"}
    bad_body = client.post("/api/v1/deployments", headers=admin, json={"service": "x", "replicas": 99})
    assert bad_body.status_code == 422 and bad_body.json()["problems"][0]["field"] == "replicas"
    viewer = client.put("/api/v1/settings/ALGOSTAGE_UI_PORT", headers=token(client, "vera"), json={"value": "9000"})
    assert viewer.status_code == 403 and viewer.json()["code"] == "forbidden"
    assert client.get("/api/v1/nothing-here", headers=admin).json()["code"] == "not_found"


def test_a_key_without_a_user_may_only_invoke(client: TestClient, platform: Platform) -> None:
    raw = platform.keys.create(ADMIN, "robot").key
    headers = {"Authorization": f"Bearer {raw}"}
    assert client.get("/api/v1/services", headers=headers).status_code == 403
    invoked = client.post("/api/v1/services/nope/invoke", headers=headers, json={"inputs": ["x"]})
    assert invoked.status_code == 404   # it got past authentication to the service lookup


def test_settings_never_return_a_secret(client: TestClient) -> None:
    admin = token(client, "ada")
    assert client.put("/api/v1/settings/GITEA_TOKEN", headers=admin, json={"value": "tok-secret-1"}).status_code == 200
    everything = client.get("/api/v1/settings", headers=admin).text + \
        client.get("/api/v1/settings/history", headers=admin).text + client.get("/api/v1/gitea/config", headers=admin).text
    assert "tok-secret-1" not in everything


def test_the_original_plans_paths_answer(client: TestClient) -> None:
    admin = token(client, "ada")
    assert client.get("/api/v1/config/ALGOSTAGE_UI_PORT", headers=admin).json()["value"] == "8501"
    assert client.put("/api/v1/config/ALGOSTAGE_UI_PORT", headers=admin, json={"value": "8601"}).json()["source"] == \
        "database"
    assert client.get("/api/v1/gitea/config", headers=admin).json()["repo_prefix"] == "algo-"
    assert client.post("/api/v1/gitea/test-connection", headers=admin).json()["ok"] is True
    for path in ("/api/v1/services/status/nope", "/api/v1/services/logs/nope"):
        assert client.get(path, headers=admin).status_code == 404
    for verb in ("start", "stop", "restart"):
        reply = client.post(f"/api/v1/services/{verb}/nope", headers=admin)
        assert reply.status_code == 200 and reply.json()["failed"] == ["nope"]
    spec = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/services/start/{service_id}" in spec["paths"] and "/api/v1/gitea/repos/upload" in spec["paths"]


# --- the walk -----------------------------------------------------------------------------------------

# State-changing endpoints a viewer may use, and why.
VIEWER_MAY = {
    ("POST", "/api/v1/auth/token"): "the login: anyone with a password",
    ("POST", "/api/v1/services/{name}/invoke"): "calling a service is a viewer's right",
    ("POST", "/api/v1/jobs/{job_id}/cancel"): "cancelling one's own job",
    ("POST", "/api/v1/hooks/{provider}"): "a webhook's signature is its right",
    ("DELETE", "/api/v1/keys/{name}"): "revoking one's own keys (another's reads as missing)",
}


def sample(schema: dict[str, Any], spec: dict[str, Any]) -> Any:
    """The smallest value a JSON schema accepts (enough to pass validation)."""
    if "$ref" in schema:
        return sample(spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]], spec)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return sample(schema[key][0], spec)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {k: sample(v, spec) for k, v in schema.get("properties", {}).items() if k in schema.get("required", [])}
    if kind == "array":
        return [sample(schema.get("items", {}), spec)] * max(1, schema.get("minItems", 0))
    return {"integer": 1, "number": 1, "boolean": False, "string": "x"}.get(kind or "string", "x")


def test_every_state_changing_endpoint_is_denied_to_a_viewer(client: TestClient) -> None:
    """Walks the route table as the API publishes it (its OpenAPI paths) plus git's push."""
    viewer = token(client, "vera")
    spec = client.get("/api/v1/openapi.json").json()
    walked = []
    for route, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method in ("get", "head") or (method.upper(), route) in VIEWER_MAY:
                continue
            path = route
            for param in operation.get("parameters", []):
                if param["in"] == "path":
                    value = sample(param.get("schema", {}), spec)
                    text = param["name"] if value == "x" else str(value)   # a name, or the enum's / number's value
                    path = path.replace(f"{{{param['name']}}}", text)
            body = operation.get("requestBody", {}).get("content", {})
            kwargs: dict[str, Any] = {}
            if "application/json" in body:
                kwargs["json"] = sample(body["application/json"]["schema"], spec)
            elif "multipart/form-data" in body:
                kwargs["files"] = {"archive": ("a.zip", b"PK\x05\x06" + b"\0" * 18)}
            reply = client.request(method.upper(), path, headers=viewer, **kwargs)
            walked.append(f"{method.upper()} {route}")
            assert reply.status_code == 403, (method, route, reply.status_code, reply.text)
    push = client.post("/git/hello.git/git-receive-pack", headers=viewer, content=b"0000")
    assert push.status_code == 403
    assert len(walked) >= 25, walked
