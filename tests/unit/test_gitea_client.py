"""GiteaClient against Gitea's documented API v1 request and response shapes (httpx.MockTransport)."""
from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from app.catalog.codestore.base import CodeStoreError
from app.catalog.codestore.gitea import GiteaClient, GiteaCodeStore

TOKEN = "0123456789abcdef-secret-token"
BASE = "https://gitea.example.com/git"      # Gitea under a sub-path


def repo_json(owner: str, name: str) -> dict:
    return {"id": 7, "name": name, "full_name": f"{owner}/{name}", "owner": {"id": 1, "login": owner},
            "description": "", "empty": True, "private": True, "default_branch": "main",
            "html_url": f"{BASE}/{owner}/{name}", "ssh_url": f"git@gitea.example.com:{owner}/{name}.git",
            "clone_url": f"{BASE}/{owner}/{name}.git"}


class Recorder:
    """Answers from a route table; records every request."""

    def __init__(self, routes: dict[tuple[str, str], httpx.Response]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = (request.method, request.url.path)
        if key in self.routes:
            return self.routes[key]
        return httpx.Response(404, json={"message": "The target couldn't be found.", "url": str(request.url)})


def client(routes: dict, token: str = TOKEN, owner: str = "") -> tuple[GiteaClient, Recorder]:
    recorder = Recorder(routes)
    return GiteaClient(BASE, token, owner, http=httpx.Client(transport=httpx.MockTransport(recorder))), recorder


USER = {("GET", "/git/api/v1/user"): httpx.Response(200, json={"id": 1, "login": "alice", "email": "a@x"})}


def test_creates_a_user_repository_with_the_documented_body_and_token_header():
    routes = {**USER, ("POST", "/git/api/v1/user/repos"): httpx.Response(201, json=repo_json("alice", "algo-x"))}
    c, rec = client(routes)
    repo = c.create_repo("alice", "algo-x", "An algorithm")
    assert repo["clone_url"] == f"{BASE}/alice/algo-x.git"
    post = rec.requests[-1]
    assert post.headers["Authorization"] == f"token {TOKEN}"
    assert json.loads(post.content) == {"name": "algo-x", "description": "An algorithm", "private": True,
                                        "auto_init": False, "default_branch": "main"}


def test_an_organisation_owner_creates_under_orgs():
    routes = {**USER, ("POST", "/git/api/v1/orgs/research/repos"): httpx.Response(201, json=repo_json("research", "x"))}
    c, rec = client(routes)
    assert c.create_repo("research", "x")["full_name"] == "research/x"
    assert rec.requests[-1].url.path == "/git/api/v1/orgs/research/repos"


def test_404_means_missing_and_delete_of_a_missing_repository_is_false():
    c, _ = client({})
    assert c.get_repo("alice", "nope") is None
    assert c.delete_repo("alice", "nope") is False


def test_409_conflict_carries_giteas_message():
    routes = {**USER, ("POST", "/git/api/v1/user/repos"): httpx.Response(
        409, json={"message": "The repository with the same name already exists.", "url": f"{BASE}/api/swagger"})}
    c, _ = client(routes)
    with pytest.raises(CodeStoreError) as info:
        c.create_repo("alice", "algo-x")
    assert "409" in str(info.value) and "The repository with the same name already exists." in str(info.value)


def test_401_bad_token_is_an_error_without_the_token():
    routes = {("GET", "/git/api/v1/user"): httpx.Response(
        401, json={"message": f"user does not exist [uid: 0, name: {TOKEN}]", "url": f"{BASE}/api/swagger"})}
    c, _ = client(routes)
    with pytest.raises(CodeStoreError) as info:
        c.current_user()
    message = str(info.value)
    assert "401" in message and "refused the token" in message
    assert TOKEN not in message and "***" in message


def test_unreachable_server_is_a_code_store_error():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)
    c = GiteaClient(BASE, TOKEN, http=httpx.Client(transport=httpx.MockTransport(refuse)))
    with pytest.raises(CodeStoreError, match="not reachable"):
        c.version()


def test_tags_and_branches_follow_pagination():
    tags = [{"name": f"v{i}", "id": "x", "commit": {"sha": "0" * 40}} for i in range(1, 121)]

    def pages(request: httpx.Request) -> httpx.Response:
        page, limit = int(request.url.params["page"]), int(request.url.params["limit"])
        if request.url.path.endswith("/tags"):
            return httpx.Response(200, json=tags[(page - 1) * limit:page * limit])
        return httpx.Response(200, json=[{"name": "main", "commit": {"id": "0" * 40}}] if page == 1 else [])
    c = GiteaClient(BASE, TOKEN, http=httpx.Client(transport=httpx.MockTransport(pages)))
    assert c.tags("alice", "x") == [f"v{i}" for i in range(1, 121)]
    assert c.branches("alice", "x") == ["main"]


def test_store_ensure_repository_creates_only_when_missing(tmp_path: Path):
    routes = {**USER, ("POST", "/git/api/v1/user/repos"): httpx.Response(201, json=repo_json("alice", "algo-x"))}
    c, rec = client(routes)
    store = GiteaCodeStore(c, "", "algo-", cache_dir=tmp_path)
    assert store.ensure_repository("x", "X") == f"{BASE}/alice/algo-x.git"
    assert [(r.method, r.url.path) for r in rec.requests] == [
        ("GET", "/git/api/v1/user"), ("GET", "/git/api/v1/repos/alice/algo-x"), ("POST", "/git/api/v1/user/repos")]
    rec.routes[("GET", "/git/api/v1/repos/alice/algo-x")] = httpx.Response(200, json=repo_json("alice", "algo-x"))
    rec.requests.clear()
    assert store.ensure_repository("x", "X") == f"{BASE}/alice/algo-x.git"
    assert [r.method for r in rec.requests] == ["GET"]


def test_store_owner_from_settings_wins_and_delete_is_idempotent(tmp_path: Path):
    c, rec = client({("DELETE", "/git/api/v1/repos/research/algo-x"): httpx.Response(204)})
    store = GiteaCodeStore(c, "research", "algo-", cache_dir=tmp_path)
    store.delete_repository("x")
    rec.routes.clear()
    store.delete_repository("x")                                           # 404 now: still fine
    assert [r.url.path for r in rec.requests] == ["/git/api/v1/repos/research/algo-x"] * 2


def test_test_connection_names_version_and_user(tmp_path: Path):
    routes = {**USER, ("GET", "/git/api/v1/version"): httpx.Response(200, json={"version": "1.22.3"})}
    c, _ = client(routes)
    message = GiteaCodeStore(c, "", "algo-", cache_dir=tmp_path).test_connection()
    assert "Gitea 1.22.3" in message and "alice" in message


def test_git_auth_header_is_basic_with_the_token_as_password():
    import base64
    c, _ = client({})
    header = c.git_auth_header()
    assert header.startswith("Authorization: Basic ")
    assert base64.b64decode(header.split()[-1]).decode().split(":", 1)[1] == TOKEN
    assert c.mask(f"x {TOKEN} {header}") == "x *** Authorization: Basic ***"
