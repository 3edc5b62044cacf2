"""Push to deploy: a `git push` over HTTP into the platform's incoming repository of an algorithm,
or a signed Gitea/GitHub webhook naming a commit of the upstream repository an admin linked to
it, becomes a new version (checked like any upload) and — when the algorithm has auto-deploy on —
a health-gated redeploy. Every push and webhook is recorded with what became of it and why, so a
rejected upload or a failed deploy shows in the algorithm's history; the running version keeps
serving either way.

Contracts:
- `received(actor, name, ref, commit, say)` handles one pushed ref: the deploy branch's commit
  becomes a version (UploadRejected is recorded as "rejected"), then is deployed when auto-deploy
  is on ("deployed" or "deploy_failed"); another ref is recorded as "ignored". `say` gets the
  lines a pusher sees ("remote: …").
- `webhook(provider, body, headers)` verifies the HMAC-SHA256 signature of the body with the
  linked repository's secret (Gitea `X-Gitea-Signature: <hex>`, GitHub `X-Hub-Signature-256:
  sha256=<hex>`); a missing or wrong signature, or a repository nobody linked, is KeyRefused(401)
  and nothing happens. It returns what to do (a `HookCall`), which the API runs as a job.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from app.auth import Action, Actor, Role, internal, require
from app.catalog.catalog import Catalog, UploadRejected
from app.catalog.codestore.base import check_repo_name
from app.crypto import SecretBox
from app.db import transaction
from app.errors import AlgoStageError, Message, Missing, Problem
from app.keys import KeyRefused
from app.models import Algorithm, AlgorithmRepository, PushEvent
from orchestration.locks import file_lock

Say = Callable[[str], None]


@dataclass(frozen=True)
class LinkInfo:
    algorithm: str
    upstream_url: str
    deploy_branch: str
    auto_deploy: bool
    has_secret: bool


@dataclass(frozen=True)
class EventInfo:
    id: int
    algorithm: str
    source: str
    ref: str
    commit: str
    status: str
    reason: str
    version: int | None
    actor: str
    created_at: datetime


@dataclass(frozen=True)
class HookCall:
    """A verified webhook: push `commit` of `algorithm`'s upstream as `actor`, from `source`."""
    algorithm: str
    ref: str
    commit: str
    source: str
    actor: Actor


class Pushes:
    def __init__(self, sessions: sessionmaker[Session], catalog: Catalog, deploy: Callable[..., object],
                 secrets: Callable[[], SecretBox]) -> None:
        """`deploy(actor, name, say)` redeploys the latest version (the platform's deployer)."""
        self._sessions = sessions
        self._catalog = catalog
        self._deploy = deploy
        self._secrets = secrets

    # --- configuration ------------------------------------------------------------------------------

    def link(self, actor: Actor, algorithm: str, *, upstream_url: str | None = None, secret: str | None = None,
             auto_deploy: bool | None = None, branch: str | None = None) -> LinkInfo:
        """Set where `algorithm`'s webhooks come from, their secret, the deploy branch and whether
        a new version deploys at once (admins: a linked URL is fetched by the platform)."""
        require(actor, Action.MANAGE_SETTINGS)
        with transaction(self._sessions) as s:
            repo = self._repository(s, algorithm)
            if upstream_url is not None:
                repo.upstream_url = upstream_url.strip()
            if secret is not None:
                repo.webhook_secret_encrypted = self._secrets().encrypt(secret) if secret else None
            if auto_deploy is not None:
                repo.auto_deploy = auto_deploy
            if branch:
                repo.deploy_branch = branch.strip()
            return _link(algorithm, repo)

    def link_info(self, actor: Actor, algorithm: str) -> LinkInfo:
        require(actor, Action.VIEW_CATALOG)
        with self._sessions() as s:
            return _link(algorithm, self._repository(s, algorithm))

    def events(self, actor: Actor, algorithm: str | None = None, limit: int = 100) -> list[EventInfo]:
        """Pushes and webhooks, newest first (all algorithms, or one)."""
        require(actor, Action.VIEW_CATALOG)
        q = select(PushEvent).order_by(PushEvent.id.desc()).limit(limit)
        if algorithm:
            q = q.where(PushEvent.algorithm_name == algorithm)
        with self._sessions() as s:
            return [EventInfo(e.id, e.algorithm_name, e.source, e.ref, e.commit_sha, e.status, e.reason, e.version,
                              e.actor, e.created_at) for e in s.scalars(q)]

    # --- git push over HTTP -------------------------------------------------------------------------

    @internal("where git's smart HTTP stores a push; the API checks the pusher's rights first")
    def incoming_repository(self, name: str) -> Path:
        """The bare repository pushes of `name` land in, created on first use."""
        root = self._catalog.incoming
        repo = root / f"{check_repo_name(name)}.git"
        with file_lock(root / ".locks" / f"{name}.lock"):
            if not (repo / "HEAD").exists():
                root.mkdir(parents=True, exist_ok=True)
                subprocess.run(["git", "init", "--bare", "--quiet", "--initial-branch=main", str(repo)], check=True)
        return repo

    def received(self, actor: Actor, name: str, ref: str, commit: str, say: Say = lambda line: None) -> str:
        """Handle one ref update of a push (see the module contract); returns the event's status."""
        require(actor, Action.UPLOAD)
        branch = self._branch(name)
        if ref != f"refs/heads/{branch}":
            return self._record(name, "push", ref, commit, "ignored", f"only {branch} deploys", None, actor)
        return self._new_version(actor, name, ref, commit, "push", say,
                                 lambda: self._catalog.upload_push(actor, name, commit))

    # --- webhooks -----------------------------------------------------------------------------------

    @internal("a webhook's signature, checked here against the linked repository's secret, is its right")
    def webhook(self, provider: str, body: bytes, headers: Mapping[str, str]) -> HookCall | None:
        """The push a signed webhook announces (None for another event, e.g. a ping)."""
        try:
            event = json.loads(body)
            repository = event["repository"]
        except (ValueError, KeyError, TypeError):
            raise KeyRefused(401, "not a push event of a linked repository") from None
        name, secret = self._secret_for(repository)
        if not _signed(provider, body, headers, secret):
            raise KeyRefused(401, "the webhook's signature does not match its repository's secret")
        if "after" not in event or "ref" not in event:
            return None
        return HookCall(name, str(event["ref"]), str(event["after"]), provider, Actor(f"hook:{provider}", Role.OPERATOR))

    @internal("runs a webhook that `webhook` verified")
    def run_hook(self, call: HookCall, say: Say = lambda line: None) -> str:
        branch = self._branch(call.algorithm)
        if call.ref != f"refs/heads/{branch}":
            return self._record(call.algorithm, call.source, call.ref, call.commit, "ignored",
                                f"only {branch} deploys", None, call.actor)
        return self._new_version(call.actor, call.algorithm, call.ref, call.commit, call.source, say,
                                 lambda: self._catalog.upload_linked(call.actor, call.algorithm, call.commit))

    # --- internals ----------------------------------------------------------------------------------

    def _new_version(self, actor: Actor, name: str, ref: str, commit: str, source: str, say: Say,
                     upload: Callable[[], object]) -> str:
        try:
            result = upload()
        except UploadRejected as e:
            say(f"rejected, nothing stored: {e}")
            return self._record(name, source, ref, commit, "rejected", str(e), None, actor)
        version = result.version   # type: ignore[attr-defined]
        say(f"{name} version {version} stored")
        if not self._auto_deploy(name):
            return self._record(name, source, ref, commit, "version", "auto-deploy is off", version, actor)
        try:
            self._deploy(actor, name, say)
        except AlgoStageError as e:
            say(f"deploy failed, the running version keeps serving: {e}")
            return self._record(name, source, ref, commit, "deploy_failed", str(e), version, actor)
        return self._record(name, source, ref, commit, "deployed", "", version, actor)

    def _record(self, name: str, source: str, ref: str, commit: str, status: str, reason: str, version: int | None,
                actor: Actor) -> str:
        with transaction(self._sessions) as s:
            s.add(PushEvent(algorithm_name=name, source=source, ref=ref[:200], commit_sha=commit[:64], status=status,
                            reason=reason[:4000], version=version, actor=actor.username))
        return status

    def _repository(self, s: Session, algorithm: str) -> AlgorithmRepository:
        algo = s.scalar(select(Algorithm).where(Algorithm.name == algorithm).options(selectinload(Algorithm.repository)))
        if algo is None or algo.repository is None:
            raise Missing([Problem("algorithm", Message("algorithm.missing", "no algorithm {name!r}", name=algorithm))])
        return algo.repository

    def _branch(self, name: str) -> str:
        with self._sessions() as s:
            return s.scalar(select(AlgorithmRepository.deploy_branch).join(Algorithm)
                            .where(Algorithm.name == name)) or "main"

    def _auto_deploy(self, name: str) -> bool:
        with self._sessions() as s:
            return bool(s.scalar(select(AlgorithmRepository.auto_deploy).join(Algorithm).where(Algorithm.name == name)))

    def _secret_for(self, repository: Mapping[str, object]) -> tuple[str, str]:
        urls = {_norm(str(repository.get(k) or "")) for k in ("clone_url", "html_url", "ssh_url", "url")} - {""}
        with self._sessions() as s:
            for algo, repo in s.execute(select(Algorithm.name, AlgorithmRepository).join(AlgorithmRepository)
                                        .where(AlgorithmRepository.upstream_url != "")):
                if _norm(repo.upstream_url) in urls and repo.webhook_secret_encrypted:
                    return algo, self._secrets().decrypt(repo.webhook_secret_encrypted)
        raise KeyRefused(401, "no algorithm is linked to this repository with a webhook secret")


def _norm(url: str) -> str:
    return url.strip().removesuffix("/").removesuffix(".git")


def _signed(provider: str, body: bytes, headers: Mapping[str, str], secret: str) -> bool:
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    given = headers.get("x-hub-signature-256", "").removeprefix("sha256=") if provider == "github" \
        else headers.get("x-gitea-signature", "")
    return bool(given) and hmac.compare_digest(expected, given.strip().lower())


def _link(algorithm: str, repo: AlgorithmRepository) -> LinkInfo:
    return LinkInfo(algorithm, repo.upstream_url, repo.deploy_branch, repo.auto_deploy,
                    repo.webhook_secret_encrypted is not None)
