"""The runner's ASGI app: the native endpoints (`server.Runner`) and the Open Inference Protocol v2
(`v2_endpoints.V2Endpoints`) over one `Runner`, with POST /predict on a short path.

Request ids: a request's `X-Request-Id` (the gateway sets one on every request it passes) is echoed
in the response and logged by `RequestLog`: every failed request (500: predict raised or returned
a wrong result) as an error, every refused one (any other 4xx/5xx: bad input or parameters, too
large, not ready) as a warning — but a health or readiness check's "not ready" is its answer, not a
refusal — and, at debug level (ALGOSTAGE_LOG_LEVEL=debug), every request."""
from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from orchestration.runner.server import Runner
from orchestration.runner.v2_endpoints import V2Endpoints


class RunnerApp:
    """The runner's ASGI app: POST /predict and POST /v2/models/<name>[/versions/<v>]/infer go
    straight to their handlers (which answer every error themselves), everything else, lifespan
    included, through the Starlette app. Starlette's router and its two middlewares cost ~9 us of
    ~26 us of Python per trivial predict, and every µs the event loop spends per request lengthens
    the stalls of the predict thread's hand-off: V2 inference through the router made ~8.6k req/s
    with p99 31-41 ms under wrk -c32, on this short path 11-14k with p99 5.5-10 ms
    (docs/BENCHMARKS.md "Runner against peers")."""

    def __init__(self, runner: Runner, v2: V2Endpoints, app: Starlette, log: RequestLog | None = None) -> None:
        self.runner, self.v2, self.app = runner, v2, app
        self.log = log or RequestLog()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0, request_id = time.perf_counter(), header(scope, b"x-request-id")
        if scope["method"] == "POST":
            path = scope["path"]
            if path == "/predict":
                await self._short(self.runner.predict, scope, receive, send, t0, request_id)
                return
            model = infer_path(path)
            if model is not None:
                scope["path_params"] = model
                await self._short(self.v2.infer, scope, receive, send, t0, request_id)
                return
        status = 500   # what the log says if the app fails before it answers

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if request_id is not None:
                    message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id)]
            await send(message)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.log.done(scope, status, t0, request_id)

    async def _short(self, handler: Callable[[Request], Awaitable[Response]], scope: Scope, receive: Receive,
                     send: Send, t0: float, request_id: bytes | None) -> None:
        response = await handler(Request(scope, receive))
        if request_id is not None:
            response.raw_headers.append((b"x-request-id", request_id))
        await response(scope, receive, send)
        self.log.done(scope, response.status_code, t0, request_id)


class RequestLog:
    """Logs a request once it is answered (see the module docstring). The check costs a comparison
    or two per request: a successful predict at info level logs nothing."""

    def __init__(self, logger: logging.Logger = logging.getLogger("algostage.runner.requests")) -> None:
        self.logger = logger

    def done(self, scope: Scope, status: int, t0: float, request_id: bytes | None) -> None:
        if status < 400 or is_health(scope["path"]):
            level = logging.DEBUG
        elif status == 500:
            level = logging.ERROR
        else:
            level = logging.WARNING
        if level == logging.DEBUG and not self.logger.isEnabledFor(logging.DEBUG):
            return
        self.logger.log(level, "%s %s %d %.1f ms request_id=%s", scope["method"], scope["path"], status,
                        (time.perf_counter() - t0) * 1000, request_id.decode("latin-1") if request_id else "-")


def header(scope: Scope, name: bytes) -> bytes | None:
    """The value of header `name` (lower case) of the request, None without one; a value of more
    than MAX_ID_BYTES is cut there (it is echoed and logged)."""
    for key, value in scope["headers"]:
        if key == name:
            return value[:MAX_ID_BYTES]
    return None


def is_health(path: str) -> bool:
    """/health and the V2 readiness and liveness paths: their 503 is an answer, not a refusal."""
    return path == "/health" or path.startswith("/v2/") and path.endswith(("/ready", "/live"))


MAX_ID_BYTES = 200


def infer_path(path: str) -> dict[str, str] | None:
    """{"name", "version"?} of /v2/models/<name>[/versions/<version>]/infer; None for any other path."""
    parts = path.split("/")
    if len(parts) == 5 and parts[:3] == ["", "v2", "models"] and parts[4] == "infer" and parts[3]:
        return {"name": parts[3]}
    if len(parts) == 7 and parts[:3] == ["", "v2", "models"] and parts[4] == "versions" and parts[6] == "infer" \
            and parts[3] and parts[5]:
        return {"name": parts[3], "version": parts[5]}
    return None


def build_app(runner: Runner) -> RunnerApp:
    """The ASGI app of `runner`; setup starts (in a thread) when the app starts."""
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runner.start_setup()
        yield

    v2 = V2Endpoints(runner)
    return RunnerApp(runner, v2, Starlette(routes=[
        *v2.routes(),
        Route("/health", runner.health, methods=["GET"]),
        Route("/info", runner.info, methods=["GET"]),
        Route("/metrics", runner.metrics_endpoint, methods=["GET"]),
        Route("/predict", runner.predict, methods=["POST"]),  # reached only by what RunnerApp passes on
    ], lifespan=lifespan))
