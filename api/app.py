"""The management API application: `create_app(platform)`; `python -m app api` (a program of the
platform's supervisord) serves it on ALGOSTAGE_API_PORT, and the gateway routes `/api/` to it.

Errors are JSON with the error root's code and message (api/deps.py): 401 without or with a bad
key, 403 for a missing right, 404, 409 for a conflict, 413, 422 with the fields — and an
unexpected failure is a JSON 500 without a traceback (logged with it)."""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import admin, catalog, cluster, git, plan, services
from api.deps import ERRORS, error_response
from app.errors import AlgoStageError
from app.platform import Platform
from app.schemas import ErrorOut

log = logging.getLogger("algostage.api")
PREFIX = "/api/v1"


def create_app(platform: Platform | None = None) -> FastAPI:
    app = FastAPI(title="AlgoStage", version="1", description=__doc__, openapi_url=f"{PREFIX}/openapi.json",
                  docs_url="/api/docs", redoc_url=None,
                  responses={status: {"model": ErrorOut, "description": text} for status, text in ERRORS.items()})
    app.state.platform = platform or Platform.open()
    # cluster before services: its /services/{name}/scale would otherwise meet /services/{name}/{action}
    # services.hot (invoke) right after the original plan's aliases, the only routes that must come first
    for router in (plan.router, services.hot, catalog.router, cluster.router, services.router, admin.router,
                   git.router):
        app.include_router(router)
    app.add_exception_handler(AlgoStageError, _algostage_error)
    app.add_exception_handler(RequestValidationError, _request_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    return app


async def _algostage_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, AlgoStageError)
    return error_response(error)


async def _request_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = [{"field": ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body",
                 "reason": e.get("msg", "invalid")} for e in error.errors()]
    return JSONResponse({"code": "invalid", "message": "; ".join(f"{p['field']}: {p['reason']}" for p in problems),
                         "problems": problems}, status_code=422)


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
    return JSONResponse({"code": code, "message": str(error.detail)}, status_code=error.status_code,
                        headers=getattr(error, "headers", None))


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unexpected error in %s %s", request.method, request.url.path)
    return JSONResponse({"code": "internal", "message": "an unexpected error; it is in the API's log"}, status_code=500)


def main() -> None:
    """Serve the API in the foreground (supervisord's program `algostage-api`)."""
    import uvicorn
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)   # a line per call to a replica: every invoke paid for it
    platform = Platform.open()
    uvicorn.run(create_app(platform), host=platform.settings.value("ALGOSTAGE_API_HOST"),
                port=platform.settings.value("ALGOSTAGE_API_PORT"), log_level="warning", server_header=False,
                access_log=False)   # errors are logged; one line per request would cost every call
