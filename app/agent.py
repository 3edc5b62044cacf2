"""The platform's agent: a long-lived program of the platform's supervisord (`python -m app agent`)
that does what must not live in a page:

- the **active health checks** (app/services/monitor.py), one round every
  `ALGOSTAGE_HEALTH_INTERVAL_S`, withdrawing and publishing replicas through the gateway;
- the gateway's **key check**: nginx asks `GET /gateway/auth` (answer cached a few seconds by
  nginx) before it forwards a call; 200, 401 or 403, nothing else;
- `GET /gateway/routes`: the routes the caller's key may call (the gateway's `GET /ai/`);
- `GET /metrics`: the gateway's request counts, errors and latency per service and replica
  (from nginx's access log) in Prometheus text — the platform's /metrics.

It listens on a unix socket under `$ALGOSTAGE_HOME/gateway` that only nginx and the platform use.
"""
from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.keys import ApiKeys, KeyRefused, bearer
from app.platform import Platform
from app.services.gateway_log import AccessLog, GatewayMetrics

log = logging.getLogger("algostage.agent")


def socket_path(home: Path) -> Path:
    return home / "gateway" / "agent.sock"


class Agent:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.keys: ApiKeys = platform.keys
        self.metrics = GatewayMetrics()
        self.access_log = AccessLog(platform.gateway_engine.access_log)
        self._lock = threading.Lock()

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/gateway/auth", self.auth), Route("/gateway/routes", self.routes),
                                 Route("/metrics", self.prometheus), Route("/healthz", self.healthz)])

    def auth(self, request: Request) -> Response:   # sync: Starlette runs it in its thread pool
        service = request.headers.get("x-algostage-service") or None
        try:
            info = self.keys.check(bearer(request.headers.get("authorization")), service)
        except KeyRefused as e:
            return Response(status_code=e.status)
        self.keys.touch(info.name)
        return Response(status_code=200)

    def routes(self, request: Request) -> Response:
        key = bearer(request.headers.get("authorization"))
        try:
            info = self.keys.check(key, None) if self._auth_on() else None
        except KeyRefused as e:
            return _json({"error": e.message}, e.status)
        names = sorted(v.service for v in self.platform.gateway_table.views())
        allowed = [n for n in names if info is None or info.may_call(n)]
        base = "/ai/"
        return _json({"routes": [{"service": n, "predict": f"{base}{n}/predict", "health": f"{base}{n}/health",
                                  "info": f"{base}{n}/info", "metrics": f"{base}{n}/metrics"} for n in allowed]})

    async def prometheus(self, request: Request) -> Response:
        with self._lock:
            self.metrics.feed(self.access_log.new_entries())
            body = self.metrics.exposition()
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def healthz(self, request: Request) -> Response:
        return _json({"status": "ok"})

    def _auth_on(self) -> bool:
        return self.platform.settings.value("ALGOSTAGE_GATEWAY_AUTH") == "keys"

    def start_monitor(self, stop: threading.Event) -> threading.Thread:
        monitor = self.platform.health_monitor
        interval = lambda: float(self.platform.settings.value("ALGOSTAGE_HEALTH_INTERVAL_S"))  # noqa: E731
        thread = threading.Thread(target=monitor.run, args=(stop, interval), name="health-monitor", daemon=True)
        thread.start()
        return thread


def _json(body: object, status: int = 200) -> Response:
    return Response(json.dumps(body), status, media_type="application/json")


def main() -> None:
    """Run the agent in the foreground (supervisord's program `algostage-agent`)."""
    import uvicorn
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    platform = Platform.open()
    agent = Agent(platform)
    sock = socket_path(platform.home)
    sock.parent.mkdir(parents=True, exist_ok=True)
    sock.unlink(missing_ok=True)
    stop = threading.Event()
    agent.start_monitor(stop)
    try:
        uvicorn.run(agent.app(), uds=str(sock), log_level="warning", access_log=False)
    finally:
        stop.set()
