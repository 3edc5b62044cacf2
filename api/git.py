"""Push to deploy over HTTP: git's smart HTTP protocol into the platform's incoming repository of
an algorithm (`git push http://<user>:<key>@host/git/<algorithm>.git main`), served by git's own
`git http-backend`; its post-receive hook (`python -m app hook post-receive`) turns the pushed
commit into a version and, with auto-deploy on, redeploys — the pusher sees it as `remote:` lines.
And the signed webhooks of Gitea and GitHub (`POST /api/v1/hooks/{gitea,github}`)."""
from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from api.deps import P
from app.auth import Action, Actor, require
from app.jobs import JobContext
from app.keys import KeyRefused, bearer, is_invoke_only
from app.schemas import JobOut

router = APIRouter()
REPO_ROOT = Path(__file__).resolve().parent.parent
MAX_PUSH_BYTES = 512 * 1024 * 1024
POST_RECEIVE = """#!/bin/sh
# AlgoStage: a pushed commit of the deploy branch becomes a version (and, with auto-deploy, a deploy)
exec {python} -m app hook post-receive
"""


@router.api_route("/git/{repo}.git/{path:path}", methods=["GET", "POST"], include_in_schema=False)
async def smart_http(repo: str, path: str, request: Request, p: P) -> Response:
    """git's smart HTTP: fetch needs the catalog right, push the upload right (key as the password)."""
    writing = path == "git-receive-pack" or request.query_params.get("service") == "git-receive-pack"
    actor = _pusher(request, p)
    require(actor, Action.UPLOAD if writing else Action.VIEW_CATALOG)
    repository = p.pushes.incoming_repository(repo)
    body = await request.body()
    if len(body) > MAX_PUSH_BYTES:
        return Response("push too large\n", 413, media_type="text/plain")
    env = _cgi_env(request, repository, path, actor, p.home, len(body))
    done = await run_in_threadpool(subprocess.run, ["git", "http-backend"], input=body, capture_output=True, env=env)
    return _cgi_response(done.stdout, done.stderr)


@router.post("/api/v1/hooks/{provider}", response_model=JobOut | None, status_code=202, tags=["push to deploy"],
             responses={200: {"description": "a signed event that is not a push (a ping)"}})
async def webhook(provider: str, request: Request, p: P) -> Response | JobOut:
    """A signed push event of Gitea or GitHub for a repository an admin linked to an algorithm:
    the commit becomes a version (and a deploy with auto-deploy on), in a job. 401 when the
    signature does not match the repository's secret; nothing is fetched or deployed then."""
    if provider not in ("gitea", "github"):
        return Response('{"code": "not_found", "message": "hooks: gitea or github"}', 404,
                        media_type="application/json")
    call = p.pushes.webhook(provider, await request.body(), request.headers)
    if call is None:
        return Response('{"status": "ignored"}', 200, media_type="application/json")

    def work(ctx: JobContext) -> dict:
        return {"status": p.pushes.run_hook(call, ctx.log)}
    job_id = p.jobs.submit(call.actor, f"webhook-{provider}", work)
    return JobOut.of(p.jobs.get(call.actor, job_id))


def _pusher(request: Request, p: object) -> Actor:
    header = request.headers.get("authorization", "")
    raw = bearer(header)
    if raw is None and header.lower().startswith("basic "):
        try:
            raw = base64.b64decode(header[6:]).decode().partition(":")[2] or None
        except (ValueError, UnicodeDecodeError):
            raw = None
    try:
        actor = p.keys.actor_for(raw)   # type: ignore[attr-defined]
    except KeyRefused as e:
        raise _ask_for_key(e) from None
    if is_invoke_only(actor):
        raise _ask_for_key(KeyRefused(401, "this key has no user; push with a key bound to a user"))
    return actor


def _ask_for_key(e: KeyRefused) -> KeyRefused:
    e.basic = True   # type: ignore[attr-defined]  # git asks for credentials on a Basic challenge
    return e


def hooks_dir(home: Path) -> Path:
    """The hooks git runs for pushes over HTTP (core.hooksPath), written on first use."""
    path = home / "git-hooks"
    hook = path / "post-receive"
    text = POST_RECEIVE.format(python=sys.executable)
    if not hook.exists() or hook.read_text() != text:
        path.mkdir(parents=True, exist_ok=True)
        hook.write_text(text)
        hook.chmod(0o755)
    return path


def _cgi_env(request: Request, repository: Path, path: str, actor: Actor, home: Path, length: int) -> dict[str, str]:
    env = {**os.environ, "GIT_PROJECT_ROOT": str(repository.parent), "GIT_HTTP_EXPORT_ALL": "1",
           "PATH_INFO": f"/{repository.name}/{path}", "REQUEST_METHOD": request.method,
           "QUERY_STRING": request.url.query, "CONTENT_TYPE": request.headers.get("content-type", ""),
           "CONTENT_LENGTH": str(length), "REMOTE_USER": actor.username,
           "REMOTE_ADDR": request.client.host if request.client else "", "ALGOSTAGE_HOME": str(home),
           "ALGOSTAGE_PUSH_USER": actor.username, "PYTHONPATH": str(REPO_ROOT),
           "GIT_CONFIG_COUNT": "2", "GIT_CONFIG_KEY_0": "http.receivepack", "GIT_CONFIG_VALUE_0": "true",
           "GIT_CONFIG_KEY_1": "core.hooksPath", "GIT_CONFIG_VALUE_1": str(hooks_dir(home))}
    for header, var in (("content-encoding", "HTTP_CONTENT_ENCODING"), ("git-protocol", "GIT_PROTOCOL")):
        if request.headers.get(header):
            env[var] = request.headers[header]
    return env


def _cgi_response(out: bytes, err: bytes) -> Response:
    head, sep, body = out.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = out.partition(b"\n\n")
    status, headers = 200, {}
    for line in head.decode("latin-1").splitlines():
        key, _, value = line.partition(":")
        if key.lower() == "status":
            status = int(value.strip().split()[0])
        elif key:
            headers[key.strip()] = value.strip()
    if not sep:   # git wrote no CGI answer: its error is on stderr
        return Response(err.decode(errors="replace")[-2000:] or "git http-backend failed\n", 500,
                        media_type="text/plain")
    return Response(body, status, headers=headers)
