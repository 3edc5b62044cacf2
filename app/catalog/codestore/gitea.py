"""Code store backend: repositories on a Gitea server.

`GiteaClient` speaks Gitea's REST API v1 (`Authorization: token …`). `GiteaCodeStore` creates
repositories through it and moves code with git over HTTPS: each repository has a local bare
mirror under `cache_dir`, commits are made there (the same plumbing as the local backend) and
pushed atomically (branch and tag together); reads come from the mirror, fetched when a ref is
not there yet. The token reaches git only as an `http.extraHeader` passed through the
environment — never in a URL, a command line, a config file or a message.
"""
from __future__ import annotations

import base64
import re
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from app.catalog.codestore.base import CodeStoreError, CommitInfo, check_repo_name, git_env, git_failure, mask, version_order
from app.catalog.codestore.local import GIT_ERRORS, BareRepo
from orchestration.locks import file_lock

PAGE = 50
GIT_TIMEOUT = 600
FULL_SHA_RE = re.compile(r"[0-9a-f]{40}")
T = TypeVar("T")


class GiteaClient:
    """A small client of Gitea's API v1. Every failure is a CodeStoreError carrying the HTTP
    status and Gitea's "message", with the token masked."""

    def __init__(self, base_url: str, token: str, owner: str = "", http: httpx.Client | None = None) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/api/v1")
        self.token = token
        self.owner = owner
        self._http = http or httpx.Client(timeout=30.0)
        self._login: str | None = None

    def close(self) -> None:
        self._http.close()

    # --- plumbing --------------------------------------------------------------------------------

    def mask(self, text: str) -> str:
        return mask(text, (self.token, self._basic_credentials()))

    def _basic_credentials(self) -> str:
        return base64.b64encode(f"algostage:{self.token}".encode()).decode() if self.token else ""

    def git_auth_header(self) -> str:
        """The HTTP header git sends to Gitea: basic auth with the token as password."""
        return f"Authorization: Basic {self._basic_credentials()}"

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                missing_ok: bool = False) -> httpx.Response | None:
        """The response of a successful call; None for a 404 when `missing_ok`."""
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"token {self.token}"
        try:
            r = self._http.request(method, f"{self.base_url}/api/v1{path}", json=json, params=params,
                                   headers=headers)
        except httpx.HTTPError as e:
            raise CodeStoreError(self.mask(f"Gitea at {self.base_url} is not reachable: {e}")) from e
        if r.status_code == 404 and missing_ok:
            return None
        if r.status_code >= 400:
            raise CodeStoreError(self.mask(self._describe(method, path, r)))
        return r

    def _describe(self, method: str, path: str, r: httpx.Response) -> str:
        try:
            message = str(r.json().get("message") or "")
        except (ValueError, AttributeError):
            message = r.text[:200]
        what = {401: "Gitea refused the token", 403: "the token is not allowed to do this",
                404: "not found", 409: "conflict"}.get(r.status_code, "failed")
        return f"Gitea {method} {path}: {r.status_code} {what}" + (f": {message}" if message else "")

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        r = self.request(method, path, **kwargs)
        assert r is not None
        return r.json()

    # --- API -------------------------------------------------------------------------------------

    def version(self) -> str:
        return str(self._json("GET", "/version").get("version", "?"))

    def current_user(self) -> dict[str, Any]:
        user = self._json("GET", "/user")
        self._login = user.get("login")
        return user

    def login(self) -> str:
        """The login of the token's user (asked once)."""
        if self._login is None:
            self.current_user()
        return self._login or ""

    def get_repo(self, owner: str, name: str) -> dict[str, Any] | None:
        """The repository, or None when it does not exist."""
        r = self.request("GET", f"/repos/{_seg(owner)}/{_seg(name)}", missing_ok=True)
        return None if r is None else r.json()

    def create_repo(self, owner: str, name: str, description: str = "", private: bool = True) -> dict[str, Any]:
        """Create an empty repository (branch main) for the token's user or an organisation."""
        body = {"name": name, "description": description, "private": private, "auto_init": False,
                "default_branch": "main"}
        path = "/user/repos" if owner in ("", self.login()) else f"/orgs/{_seg(owner)}/repos"
        return self._json("POST", path, json=body)

    def delete_repo(self, owner: str, name: str) -> bool:
        """Delete a repository; False if it did not exist."""
        return self.request("DELETE", f"/repos/{_seg(owner)}/{_seg(name)}", missing_ok=True) is not None

    def branches(self, owner: str, name: str) -> list[str]:
        return [b["name"] for b in self._pages(f"/repos/{_seg(owner)}/{_seg(name)}/branches")]

    def tags(self, owner: str, name: str) -> list[str]:
        return [t["name"] for t in self._pages(f"/repos/{_seg(owner)}/{_seg(name)}/tags")]

    def _pages(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for page in range(1, 1000):
            batch = self._json("GET", path, params={"page": page, "limit": PAGE})
            items += batch or []
            if len(batch or []) < PAGE:
                break
        return items


def _seg(text: str) -> str:
    return quote(text, safe="")


class GiteaCodeStore:
    """Repositories `{repo_prefix}{name}` owned by `owner` (a user or organisation; the token's
    user when empty). Locations returned are the repositories' clone URLs."""

    kind = "gitea"

    def __init__(self, client: GiteaClient, owner: str = "", repo_prefix: str = "", *, cache_dir: Path) -> None:
        self.client = client
        self._owner_name = owner
        self.repo_prefix = repo_prefix
        self.cache_dir = cache_dir

    # --- helpers ---------------------------------------------------------------------------------

    def owner(self) -> str:
        return self._owner_name or self.client.owner or self.client.login()

    def repo_name(self, name: str) -> str:
        return check_repo_name(f"{self.repo_prefix}{check_repo_name(name)}")

    def _lock(self, name: str) -> AbstractContextManager[None]:
        return file_lock(self.cache_dir / ".locks" / f"{self.owner()}--{self.repo_name(name)}.lock")

    def _clone_url(self, name: str) -> str:
        repo = self.client.get_repo(self.owner(), self.repo_name(name))
        if repo is None:
            raise CodeStoreError(f"no repository {self.owner()}/{self.repo_name(name)} on Gitea")
        return str(repo["clone_url"])

    def _git_env(self) -> dict[str, str]:
        return git_env({"http.extraHeader": self.client.git_auth_header(), "credential.helper": ""})

    def _mirror(self, name: str) -> BareRepo:
        path = self.cache_dir / self.owner() / f"{self.repo_name(name)}.git"
        return BareRepo(path) if (path / "HEAD").is_file() else BareRepo.create(path)

    def _fetch(self, mirror: BareRepo, url: str) -> None:
        mirror.repo.git.fetch("--prune", "--force", "--no-write-fetch-head", "--", url,
                              "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*",
                              env=self._git_env(), kill_after_timeout=GIT_TIMEOUT)

    def _fail(self, what: str, e: BaseException) -> CodeStoreError:
        reason = git_failure(e, (self.client.token, self.client.git_auth_header()))
        if "401" in reason or "Authentication failed" in reason or "could not read Username" in reason:
            reason = f"Gitea refused the token for git over HTTP ({reason})"
        return CodeStoreError(self.client.mask(f"{what}: {reason}"))

    def _ready(self, name: str, *refs: str) -> BareRepo:
        """The mirror, fetched unless every ref is a tag or a full commit it already has."""
        with self._lock(name):
            try:
                mirror = self._mirror(name)
                if not all(mirror.has_tag(r) or (FULL_SHA_RE.fullmatch(r) and mirror.resolves(r)) for r in refs):
                    self._fetch(mirror, self._clone_url(name))
            except GIT_ERRORS as e:
                raise self._fail(f"fetching {self.repo_name(name)} from Gitea failed", e) from e
        return mirror

    def _read(self, name: str, action: Callable[[BareRepo], T], *refs: str, missing: str = "not found") -> T:
        mirror = self._ready(name, *refs)
        try:
            return action(mirror)
        except CodeStoreError:
            raise
        except KeyError as e:
            raise CodeStoreError(f"{name}: {missing}") from e
        except GIT_ERRORS as e:
            raise self._fail(name, e) from e

    # --- CodeStore -------------------------------------------------------------------------------

    def ensure_repository(self, name: str, description: str = "") -> str:
        owner, repo_name = self.owner(), self.repo_name(name)
        repo = self.client.get_repo(owner, repo_name)
        if repo is None:
            try:
                repo = self.client.create_repo(owner, repo_name, description)
            except CodeStoreError:
                repo = self.client.get_repo(owner, repo_name)   # created concurrently: fine
                if repo is None:
                    raise
        return str(repo["clone_url"])

    def commit_version(self, name: str, package_dir: Path, *, tag: str, message: str, author_name: str,
                       author_email: str) -> CommitInfo:
        with self._lock(name):
            url = self._clone_url(name)
            try:
                mirror = self._mirror(name)
                self._fetch(mirror, url)
            except GIT_ERRORS as e:
                raise self._fail(f"fetching {self.repo_name(name)} from Gitea failed", e) from e
            try:
                info, parent = mirror.commit(package_dir, tag=tag, message=message, author_name=author_name,
                                             author_email=author_email)
            except GIT_ERRORS as e:
                raise self._fail(f"commit to {self.repo_name(name)} failed", e) from e
            self._push(mirror, url, info, parent)
        return info

    def _push(self, mirror: BareRepo, url: str, info: CommitInfo, parent: str | None) -> None:
        try:
            mirror.repo.git.push("--atomic", "--porcelain", "--", url, "refs/heads/main:refs/heads/main",
                                 f"refs/tags/{info.tag}:refs/tags/{info.tag}", env=self._git_env(),
                                 kill_after_timeout=GIT_TIMEOUT)
        except GIT_ERRORS as e:
            mirror.undo(info.tag, info.sha, parent)
            raise self._fail(f"push of {info.tag} to {self.client.mask(url)} failed", e) from e

    def diff_files(self, name: str, old_ref: str, new_ref: str) -> dict[str, list[str]]:
        return self._read(name, lambda m: m.diff(old_ref, new_ref), old_ref, new_ref)

    def export(self, name: str, ref: str, dest: Path) -> Path:
        return self._read(name, lambda m: m.export(ref, dest), ref)

    def read_file(self, name: str, ref: str, path: str) -> bytes:
        return self._read(name, lambda m: m.read(ref, path), ref, missing=f"no file {path!r} at {ref!r}")

    def delete_repository(self, name: str) -> None:
        with self._lock(name):
            self.client.delete_repo(self.owner(), self.repo_name(name))
            shutil.rmtree(self.cache_dir / self.owner() / f"{self.repo_name(name)}.git", ignore_errors=True)

    def list_refs(self, name: str) -> dict[str, list[str]]:
        owner, repo_name = self.owner(), self.repo_name(name)
        if self.client.get_repo(owner, repo_name) is None:
            raise CodeStoreError(f"no repository {owner}/{repo_name} on Gitea")
        return {"branches": sorted(self.client.branches(owner, repo_name)),
                "tags": sorted(self.client.tags(owner, repo_name), key=version_order)}

    def test_connection(self) -> str:
        version = self.client.version()
        login = self.client.login()
        return (f"Gitea {version} at {self.client.base_url}: signed in as {login}; "
                f"repositories {self.owner()}/{self.repo_prefix}<name>")

