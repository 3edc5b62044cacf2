"""What every endpoint depends on: the platform, who is calling (from `Authorization: Bearer <key>`),
and how an AlgoStage error becomes an HTTP answer (the error root's code, message and hint; the
status from the kind of error; never a traceback)."""
from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth import Actor, LoginError
from app.db import DatabaseUnavailable
from app.errors import AlgoStageError, Missing, PermissionDenied, TooLarge, ValidationFailed
from app.invoke import InvokeError
from app.keys import KeyRefused, is_invoke_only
from app.platform import Platform
from app.storage import ObjectNotFound, StorageError
from orchestration.errors import BackendUnavailable, Conflict, DeployError, NotFound, PortUnavailable

log = logging.getLogger("algostage.api")
bearer_scheme = HTTPBearer(auto_error=False, description="an API key: `python -m app key create NAME --user USER`")

# The status of each kind of error; the first class that matches wins.
STATUS: list[tuple[type[AlgoStageError], int]] = [
    (KeyRefused, 401), (LoginError, 401), (PermissionDenied, 403), (Missing, 404), (NotFound, 404),
    (ObjectNotFound, 404), (Conflict, 409), (TooLarge, 413), (ValidationFailed, 422), (DeployError, 422),
    (BackendUnavailable, 503), (PortUnavailable, 503), (StorageError, 503), (DatabaseUnavailable, 503),
    (InvokeError, 502),
]
ERRORS = {401: "no valid API key", 403: "the key's user may not do this", 404: "no such thing",
          409: "conflicts with an action in progress", 413: "the request body is too large",
          422: "refused: each problem names its field", 429: "too many failed logins for this name (Retry-After)",
          502: "the service failed or did not answer",
          503: "an engine (supervisord, the container engine, the database) is not available"}


async def platform(request: Request) -> Platform:
    return request.app.state.platform


def status_of(error: AlgoStageError) -> int:
    if isinstance(error, KeyRefused):
        return error.status
    if isinstance(error, LoginError) and error.retry_after:
        return 429
    if isinstance(error, InvokeError) and error.status in (400, 413, 422):
        return error.status
    return next((status for cls, status in STATUS if isinstance(error, cls)), 400)


def error_response(error: AlgoStageError) -> JSONResponse:
    status = status_of(error)
    challenge = 'Basic realm="AlgoStage (your API key as the password)"' if getattr(error, "basic", False) else "Bearer"
    headers = {"WWW-Authenticate": challenge} if status == 401 else {}
    if isinstance(error, LoginError) and error.retry_after:
        headers["Retry-After"] = str(error.retry_after)
    return JSONResponse(error.to_dict(), status_code=status, headers=headers)


# The dependencies are coroutines: FastAPI would run plain functions in its thread pool, one hop
# each (measured: ~0.5 ms apiece); a key's check is one short query, done on the loop.
async def caller(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None,
                                                           Depends(bearer_scheme)]) -> Actor:
    """The user the key acts as. A key without a user may only invoke (see `invoker`)."""
    actor = _actor(request, credentials)
    if is_invoke_only(actor):
        raise PermissionDenied("this key has no user: it may only invoke services",
                               hint="create a key bound to a user: python -m app key create NAME --user USER")
    return actor


async def invoker(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None,
                                                            Depends(bearer_scheme)]) -> Actor:
    """Anyone with a valid key: its user, or for a key without a user an invoke-only actor."""
    return _actor(request, credentials)


def _actor(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Actor:
    raw = credentials.credentials if credentials is not None else None
    return request.app.state.platform.keys.actor_for(raw)


Who = Annotated[Actor, Depends(caller)]
Invoker = Annotated[Actor, Depends(invoker)]
P = Annotated[Platform, Depends(platform)]
