"""Code stores against real git: local bare repositories, and the Gitea backend pushing over
git's smart HTTP protocol to a real `git http-backend` on loopback (behind a small WSGI
wrapper that demands the token), with Gitea's REST API played by an httpx.MockTransport."""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import git
import httpx
import pytest

from app.catalog.codestore.base import CodeStore, CodeStoreError
from app.catalog.codestore.gitea import GiteaClient, GiteaCodeStore
from app.catalog.codestore.local import LocalCodeStore

TOKEN = "s3cret-token-0123456789abcdef"
GIT_HTTP_BACKEND = Path(subprocess.run(["git", "--exec-path"], capture_output=True, text=True,
                                       check=True).stdout.strip()) / "git-http-backend"


# --- a real git smart-HTTP server ----------------------------------------------------------------

def git_http_app(project_root: Path, token: str, public_reads: bool = False):  # type: ignore[no-untyped-def]
    """WSGI app: basic auth with `token` as password (or a bearer token), then git http-backend (CGI).
    With `public_reads`, fetching needs no token (a public repository) but pushing does."""
    def app(environ: dict[str, Any], start_response):  # type: ignore[no-untyped-def]
        pushing = "git-receive-pack" in environ.get("PATH_INFO", "") + environ.get("QUERY_STRING", "")
        if (pushing or not public_reads) and not _authorized(environ.get("HTTP_AUTHORIZATION", ""), token):
            start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="git"'),
                                                ("Content-Type", "text/plain")])
            return [b"authentication required\n"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        cgi_env = {"GIT_PROJECT_ROOT": str(project_root), "GIT_HTTP_EXPORT_ALL": "1", "REMOTE_USER": "tester",
                   "PATH": os.environ.get("PATH", ""), "REQUEST_METHOD": environ["REQUEST_METHOD"],
                   "PATH_INFO": environ.get("PATH_INFO", ""), "QUERY_STRING": environ.get("QUERY_STRING", ""),
                   "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""), "CONTENT_LENGTH": str(len(body)),
                   "HTTP_CONTENT_ENCODING": environ.get("HTTP_CONTENT_ENCODING", ""),
                   "GIT_PROTOCOL": environ.get("HTTP_GIT_PROTOCOL", "")}
        out = subprocess.run([str(GIT_HTTP_BACKEND)], input=body, env=cgi_env, capture_output=True, check=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        headers = [tuple(h.split(": ", 1)) for h in head.decode().split("\r\n") if ": " in h]
        status = next((v for k, v in headers if k.lower() == "status"), "200 OK")
        start_response(status, [(k, v) for k, v in headers if k.lower() != "status"])
        return [payload]
    return app


def _authorized(header: str, token: str) -> bool:
    if header == f"Bearer {token}":
        return True
    if not header.startswith("Basic "):
        return False
    _, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return password == token


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def public_reads() -> bool:
    """Whether the served repositories can be fetched without a token; tests override it by parametrizing."""
    return False


@pytest.fixture
def git_server(tmp_path: Path, public_reads: bool) -> Iterator[tuple[str, Path]]:
    """(base URL, project root) of a git smart-HTTP server that requires TOKEN (only for pushing
    when `public_reads`)."""
    root = tmp_path / "served"
    root.mkdir()
    server = make_server("127.0.0.1", 0, git_http_app(root, TOKEN, public_reads), server_class=_ThreadingServer,
                         handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", root
    server.shutdown()
    server.server_close()


# --- a fake Gitea API whose clone URLs point at that server --------------------------------------

class FakeGitea:
    """The documented shapes of Gitea's API v1 for the calls the code store makes; repositories
    created here are real bare repositories served by `git_server`."""

    def __init__(self, git_url: str, root: Path, login: str = "tester") -> None:
        self.git_url, self.root, self.login = git_url, root, login
        self.requests: list[httpx.Request] = []

    def repo_json(self, owner: str, name: str) -> dict[str, Any]:
        return {"id": 1, "name": name, "full_name": f"{owner}/{name}", "owner": {"login": owner},
                "private": True, "empty": False, "default_branch": "main",
                "html_url": f"http://gitea.test/{owner}/{name}", "ssh_url": f"git@gitea.test:{owner}/{name}.git",
                "clone_url": f"{self.git_url}/{owner}/{name}.git"}

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.headers.get("Authorization") not in (f"token {TOKEN}", "token wrong-token"):
            return httpx.Response(401, json={"message": "token is required", "url": "http://gitea.test/api/swagger"})
        parts = request.url.path.removeprefix("/api/v1/").split("/")
        if parts == ["version"]:
            return httpx.Response(200, json={"version": "1.21.11"})
        if parts == ["user"]:
            return httpx.Response(200, json={"id": 1, "login": self.login, "email": "t@example.com"})
        if parts == ["user", "repos"] and request.method == "POST":
            return self.create(self.login, json.loads(request.content))
        if parts[0] == "repos" and len(parts) >= 3:
            return self.repo(request, parts[1], parts[2], parts[3:])
        return httpx.Response(404, json={"message": "not found", "url": str(request.url)})

    def create(self, owner: str, body: dict[str, Any]) -> httpx.Response:
        path = self.root / owner / f"{body['name']}.git"
        if path.exists():
            return httpx.Response(409, json={"message": "The repository with the same name already exists."})
        git.Repo.init(path, bare=True, mkdir=True, initial_branch="main")
        return httpx.Response(201, json=self.repo_json(owner, body["name"]))

    def repo(self, request: httpx.Request, owner: str, name: str, rest: list[str]) -> httpx.Response:
        path = self.root / owner / f"{name}.git"
        if not path.exists():
            return httpx.Response(404, json={"message": "The target couldn't be found.", "url": str(request.url)})
        if request.method == "DELETE":
            shutil.rmtree(path)
            return httpx.Response(204)
        if rest in (["branches"], ["tags"]):
            if request.url.params.get("page") not in (None, "1"):
                return httpx.Response(200, json=[])
            kind = "heads" if rest == ["branches"] else "tags"
            names = git.Repo(path).git.for_each_ref("--format=%(refname:lstrip=2)", f"refs/{kind}").split()
            return httpx.Response(200, json=[{"name": n, "commit": {"id": "0" * 40}} for n in names])
        return httpx.Response(200, json=self.repo_json(owner, name))


@pytest.fixture
def fake_gitea(git_server: tuple[str, Path]) -> FakeGitea:
    return FakeGitea(*git_server)


def gitea_store(fake: FakeGitea, cache: Path, token: str = TOKEN) -> GiteaCodeStore:
    client = GiteaClient("http://gitea.test", token, http=httpx.Client(transport=httpx.MockTransport(fake.handler)))
    return GiteaCodeStore(client, "", "algo-", cache_dir=cache)


@pytest.fixture(params=["local", "gitea"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> CodeStore:
    if request.param == "local":
        return LocalCodeStore(tmp_path / "repos")
    return gitea_store(request.getfixturevalue("fake_gitea"), tmp_path / "cache")


# --- helpers -------------------------------------------------------------------------------------

def write_tree(root: Path, files: dict[str, str]) -> Path:
    shutil.rmtree(root, ignore_errors=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


V1 = {"algorithm.yaml": "name: demo\n", "predict.py": "def predict(x):\n    return x\n", "samples/a.txt": "a\n",
      ".gitignore": "*.txt\n"}
V2 = {"algorithm.yaml": "name: demo\ntitle: Demo\n", "predict.py": "def predict(x):\n    return x\n",
      "README.md": "# demo\n", ".gitignore": "*.txt\n"}


def commit(store: CodeStore, tmp_path: Path, files: dict[str, str], tag: str, name: str = "demo"):  # type: ignore[no-untyped-def]
    return store.commit_version(name, write_tree(tmp_path / f"pkg-{tag}", files), tag=tag, message=f"upload {tag}",
                                author_name="cli:alice", author_email="alice@algostage.local")


# --- the contract, on both backends --------------------------------------------------------------

def test_two_versions_tags_diff_export_and_read(store: CodeStore, tmp_path: Path):
    location = store.ensure_repository("demo", "Demo algorithm")
    assert store.ensure_repository("demo", "Demo algorithm") == location          # idempotent
    first = commit(store, tmp_path, V1, "v1")
    second = commit(store, tmp_path, V2, "v2")
    assert first.files == sorted(V1) and first.tag == "v1" and len(first.sha) == 40
    assert second.files == sorted(V2) and second.sha != first.sha
    assert store.diff_files("demo", "v1", "v2") == {"added": ["README.md"], "modified": ["algorithm.yaml"],
                                                   "deleted": ["samples/a.txt"]}
    assert store.list_refs("demo") == {"branches": ["main"], "tags": ["v1", "v2"]}
    assert store.read_file("demo", "v1", "samples/a.txt") == b"a\n"
    out = store.export("demo", "v1", tmp_path / "export")
    assert {str(p.relative_to(out)): p.read_text() for p in out.rglob("*") if p.is_file()} == V1
    assert not (out / ".git").exists()


def test_unknown_repository_ref_and_path_are_code_store_errors(store: CodeStore, tmp_path: Path):
    store.ensure_repository("demo")
    commit(store, tmp_path, V1, "v1")
    for call in (lambda: store.read_file("demo", "v1", "missing.txt"), lambda: store.read_file("demo", "v9", "x"),
                 lambda: store.diff_files("demo", "v1", "v7"), lambda: store.export("demo", "--output=x", tmp_path),
                 lambda: store.list_refs("nope"), lambda: store.diff_files("nope", "v1", "v2"),
                 lambda: store.commit_version("nope", tmp_path / "pkg-v1", tag="v1", message="m",
                                              author_name="a", author_email="a@b")):
        with pytest.raises(CodeStoreError):
            call()


def test_existing_tag_is_refused_and_leaves_main_unchanged(store: CodeStore, tmp_path: Path):
    store.ensure_repository("demo")
    first = commit(store, tmp_path, V1, "v1")
    with pytest.raises(CodeStoreError, match="v1"):
        commit(store, tmp_path, V2, "v1")
    assert store.read_file("demo", "v1", "algorithm.yaml") == V1["algorithm.yaml"].encode()
    assert commit(store, tmp_path, V2, "v2").sha != first.sha


def test_delete_is_idempotent(store: CodeStore, tmp_path: Path):
    store.ensure_repository("demo")
    commit(store, tmp_path, V1, "v1")
    store.delete_repository("demo")
    store.delete_repository("demo")
    with pytest.raises(CodeStoreError):
        store.list_refs("demo")
    store.ensure_repository("demo")                     # a fresh start under the same name
    assert commit(store, tmp_path, V2, "v1").files == sorted(V2)


def test_invalid_names_are_refused(store: CodeStore):
    for name in ("../escape", "a/b", "", "-rf"):
        with pytest.raises(CodeStoreError):
            store.ensure_repository(name)


# --- local specifics -----------------------------------------------------------------------------

def test_local_repository_is_bare_with_annotated_tags_and_authors(tmp_path: Path):
    store = LocalCodeStore(tmp_path / "repos")
    path = Path(store.ensure_repository("demo", "Demo algorithm"))
    info = commit(store, tmp_path, V1, "v1")
    repo = git.Repo(path)
    assert repo.bare and path == tmp_path / "repos" / "demo.git"
    assert repo.git.cat_file("-t", "v1") == "tag"
    assert repo.tags["v1"].tag.message.strip() == "upload v1"
    assert repo.commit("main").hexsha == info.sha
    assert repo.commit("main").author.name == "cli:alice"
    assert (path / "description").read_text().strip() == "Demo algorithm"
    assert "1 repositories" in store.test_connection()


def test_concurrent_uploads_of_different_algorithms(tmp_path: Path):
    store = LocalCodeStore(tmp_path / "repos")
    names = [f"algo-{i}" for i in range(8)]
    errors: list[BaseException] = []

    def upload(name: str) -> None:
        try:
            store.ensure_repository(name)
            for tag in ("v1", "v2", "v3"):
                files = {"algorithm.yaml": f"name: {name}\n", f"{tag}.txt": tag}
                store.commit_version(name, write_tree(tmp_path / f"pkg-{name}-{tag}", files), tag=tag,
                                     message=tag, author_name="a", author_email="a@b")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=upload, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for name in names:
        assert store.list_refs(name)["tags"] == ["v1", "v2", "v3"]
        assert store.diff_files(name, "v1", "v3") == {"added": ["v3.txt"], "modified": [], "deleted": ["v1.txt"]}


def test_concurrent_uploads_of_the_same_algorithm_are_serialised(tmp_path: Path):
    store = LocalCodeStore(tmp_path / "repos")
    store.ensure_repository("demo")
    tags = [f"v{i}" for i in range(1, 9)]
    errors: list[BaseException] = []

    def upload(tag: str) -> None:
        try:
            store.commit_version("demo", write_tree(tmp_path / f"pkg-{tag}", {"t.txt": tag}), tag=tag, message=tag,
                                 author_name="a", author_email="a@b")
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=upload, args=(t,)) for t in tags]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    repo = git.Repo(tmp_path / "repos" / "demo.git")
    assert len(list(repo.iter_commits("main"))) == 8          # a chain: no commit was lost
    assert store.list_refs("demo")["tags"] == tags


# --- Gitea specifics: the push reaches the served repository -------------------------------------

def test_gitea_commit_and_tag_arrive_in_the_served_repository(fake_gitea: FakeGitea, tmp_path: Path):
    store = gitea_store(fake_gitea, tmp_path / "cache")
    location = store.ensure_repository("demo", "Demo")
    assert location == f"{fake_gitea.git_url}/tester/algo-demo.git"
    info = commit(store, tmp_path, V1, "v1")
    served = git.Repo(fake_gitea.root / "tester" / "algo-demo.git")
    assert served.commit("main").hexsha == info.sha
    assert served.git.cat_file("-t", "v1") == "tag" and served.tags["v1"].commit.hexsha == info.sha
    assert sorted(served.git.ls_tree("-r", "--name-only", "v1").splitlines()) == sorted(V1)

    # a second store with an empty cache reads everything back from the server
    other = gitea_store(fake_gitea, tmp_path / "other-cache")
    commit(other, tmp_path, V2, "v2")
    assert store.list_refs("demo") == {"branches": ["main"], "tags": ["v1", "v2"]}
    assert store.diff_files("demo", "v1", "v2")["added"] == ["README.md"]          # fetched on demand
    assert store.read_file("demo", "v2", "README.md") == b"# demo\n"
    assert served.git.rev_list("--count", "main") == "2"


def test_gitea_creates_the_repository_through_the_api_with_the_token(fake_gitea: FakeGitea, tmp_path: Path):
    store = gitea_store(fake_gitea, tmp_path / "cache")
    store.ensure_repository("demo", "Demo")
    post = [r for r in fake_gitea.requests if r.method == "POST"]
    assert [r.url.path for r in post] == ["/api/v1/user/repos"]
    assert post[0].headers["Authorization"] == f"token {TOKEN}"
    assert "Gitea 1.21.11" in store.test_connection()


def _wrong_token_fails(fake_gitea: FakeGitea, tmp_path: Path, stage: str) -> None:
    good = gitea_store(fake_gitea, tmp_path / "cache")
    good.ensure_repository("demo")
    commit(good, tmp_path, V1, "v1")
    bad = gitea_store(fake_gitea, tmp_path / "bad-cache", token="wrong-token")
    with pytest.raises(CodeStoreError) as info:
        commit(bad, tmp_path, V2, "v2")
    message = str(info.value)
    assert message.startswith(stage) and "refused the token" in message, message
    assert "wrong-token" not in message and base64.b64encode(b"algostage:wrong-token").decode() not in message
    served = git.Repo(fake_gitea.root / "tester" / "algo-demo.git")
    assert [t.name for t in served.tags] == ["v1"]
    mirror = git.Repo(tmp_path / "bad-cache" / "tester" / "algo-demo.git")
    assert "v2" not in [t.name for t in mirror.tags]                        # the mirror was rolled back


def test_gitea_wrong_token_fails_clearly_on_a_private_repository(fake_gitea: FakeGitea, tmp_path: Path):
    _wrong_token_fails(fake_gitea, tmp_path, "fetching algo-demo from Gitea failed")


@pytest.mark.parametrize("public_reads", [True])
def test_gitea_wrong_token_fails_clearly_at_the_push(fake_gitea: FakeGitea, tmp_path: Path):
    _wrong_token_fails(fake_gitea, tmp_path, "push of v2")


def test_gitea_push_failure_rolls_the_mirror_back(fake_gitea: FakeGitea, tmp_path: Path):
    store = gitea_store(fake_gitea, tmp_path / "cache")
    store.ensure_repository("demo")
    first = commit(store, tmp_path, V1, "v1")
    served = git.Repo(fake_gitea.root / "tester" / "algo-demo.git")
    (Path(served.git_dir) / "hooks" / "pre-receive").write_text("#!/bin/sh\necho refused by hook >&2\nexit 1\n")
    os.chmod(Path(served.git_dir) / "hooks" / "pre-receive", 0o755)
    with pytest.raises(CodeStoreError, match="push of v2"):
        commit(store, tmp_path, V2, "v2")
    mirror = git.Repo(tmp_path / "cache" / "tester" / "algo-demo.git")
    assert mirror.commit("main").hexsha == first.sha and [t.name for t in mirror.tags] == ["v1"]
    (Path(served.git_dir) / "hooks" / "pre-receive").unlink()
    assert commit(store, tmp_path, V2, "v2").files == sorted(V2)          # retry works


def test_gitea_token_is_never_written_to_disk(fake_gitea: FakeGitea, tmp_path: Path):
    store = gitea_store(fake_gitea, tmp_path / "cache")
    store.ensure_repository("demo")
    commit(store, tmp_path, V1, "v1")
    store.export("demo", "v1", tmp_path / "export")
    secret_forms = (TOKEN.encode(), base64.b64encode(f"algostage:{TOKEN}".encode()))
    for path in (tmp_path / "cache").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(s in data for s in secret_forms), path
