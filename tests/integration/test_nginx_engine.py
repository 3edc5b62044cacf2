"""The nginx gateway engine with the real nginx: generated configs pass `nginx -t`, a config that
fails it is never loaded (the old one keeps serving), routes answer through the gateway, errors
are JSON, and a reload drops no connection."""
from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from orchestration.nginx import NGINX, Backend, GatewayConfigError, GatewayRoute, GatewaySpec, NginxGateway, render
from tests.conftest import free_port

pytestmark = pytest.mark.timeout(120)


class Echo(BaseHTTPRequestHandler):
    """A stand-in replica: answers every request with its name, path and request id."""
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self._answer(b"")

    def do_POST(self) -> None:  # noqa: N802
        self._answer(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def _answer(self, body: bytes) -> None:
        reply = json.dumps({"replica": self.server.name, "path": self.path, "bytes": len(body),  # type: ignore[attr-defined]
                            "request_id": self.headers.get("X-Request-Id")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def replicas() -> Iterator[list[tuple[str, int]]]:
    servers = []
    for name in ("r1", "r2"):
        server = ThreadingHTTPServer(("127.0.0.1", free_port()), Echo)
        server.name = name  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    yield [(s.name, s.server_address[1]) for s in servers]  # type: ignore[attr-defined]
    for s in servers:
        s.shutdown()


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[NginxGateway]:
    if not shutil.which(NGINX):
        pytest.fail("nginx is required (scripts/system-packages.sh installs it)")
    g = NginxGateway(tmp_path / "gateway")
    g.root.mkdir()
    yield g
    pid = g.pid()
    if pid:
        subprocess.run([NGINX, "-s", "quit", "-c", str(g.conf), "-p", str(g.root)], capture_output=True)
        deadline = time.monotonic() + 10
        while g.pid() and time.monotonic() < deadline:
            time.sleep(0.1)


def start(g: NginxGateway) -> None:
    """nginx in the background with the live config (the platform runs it under supervisord)."""
    cmd = [a for a in g.command() if a not in ("-g", "daemon off;")]
    subprocess.run(cmd, check=True, capture_output=True)
    deadline = time.monotonic() + 10
    while g.pid() is None and time.monotonic() < deadline:
        time.sleep(0.05)


def spec_for(port: int, replicas: list[tuple[str, int]], **kw: object) -> GatewaySpec:
    backends = tuple(Backend("127.0.0.1", p, 1, name) for name, p in replicas)
    return GatewaySpec("127.0.0.1", port, (GatewayRoute("hello", "hello", backends),
                                          GatewayRoute("gone", "gone", ())), **kw)


def test_routes_reach_the_replicas_with_a_request_id_and_errors_are_json(gateway, replicas):
    port = free_port()
    gateway.apply(spec_for(port, replicas))
    start(gateway)
    url = f"http://127.0.0.1:{port}"
    seen = set()
    with httpx.Client() as client:
        for _ in range(4):
            reply = client.post(f"{url}/ai/hello/predict?threshold=0.5", content=b"x" * 1000)
            assert reply.status_code == 200
            body = reply.json()
            assert body["path"] == "/predict?threshold=0.5" and body["bytes"] == 1000
            assert body["request_id"] and reply.headers["X-Request-Id"] == body["request_id"]
            seen.add(body["replica"])
        assert seen == {"r1", "r2"}   # one upstream, both replicas
        mine = client.get(f"{url}/ai/hello/health", headers={"X-Request-Id": "abc-123"}).json()
        assert mine["request_id"] == "abc-123"
        for path, status in (("/ai/gone/predict", 503), ("/ai/nope/predict", 404), ("/", 404)):
            reply = client.post(f"{url}{path}")
            assert reply.status_code == status and reply.headers["content-type"] == "application/json"
            assert "error" in reply.json()
    logged = [json.loads(line) for line in gateway.access_log.read_text().splitlines()]
    assert {e["service"] for e in logged} >= {"hello", "gone"} and all(e["request_id"] for e in logged)


def test_a_config_that_fails_nginx_t_is_never_loaded(gateway, replicas):
    port = free_port()
    gateway.apply(spec_for(port, replicas))
    start(gateway)
    live = gateway.conf.read_text()
    with pytest.raises(GatewayConfigError, match="nginx rejected") as e:
        gateway.apply(spec_for(port, replicas, extra=("    no_such_directive on;",)))
    assert "no_such_directive" in str(e.value) and e.value.hint
    assert gateway.conf.read_text() == live
    assert "no_such_directive" in gateway.conf.with_name("nginx.conf.rejected").read_text()
    assert httpx.post(f"http://127.0.0.1:{port}/ai/hello/predict").status_code == 200   # still serving


def test_applying_the_same_spec_changes_nothing_and_a_reload_loses_no_request_in_flight(gateway, replicas):
    port = free_port()
    assert gateway.apply(spec_for(port, replicas)) is True
    assert gateway.apply(spec_for(port, replicas)) is False
    start(gateway)
    failures, done = [], []
    stop = threading.Event()

    def load() -> None:
        # A new connection per request: a reload finishes every request in flight, but an idle
        # kept-alive client connection may be closed under a request being sent (the HTTP/1.1
        # race every reverse proxy has; keep-alive clients are the gateway issue's chaos tests).
        with httpx.Client(timeout=5, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            while not stop.is_set():
                try:
                    done.append(client.post(f"http://127.0.0.1:{port}/ai/hello/predict").status_code)
                except httpx.HTTPError as e:
                    failures.append(repr(e))
    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    for i in range(10):   # ten reloads under load, each to a different config
        gateway.apply(spec_for(port, replicas[: 1 + i % 2]))
        time.sleep(0.2)
    stop.set()
    for w in workers:
        w.join()
    assert failures == [] and len(done) > 50 and set(done) == {200}


def test_rendered_names_are_checked():
    with pytest.raises(Exception, match="not a route name"):
        render(GatewaySpec("127.0.0.1", 1, (GatewayRoute("bad name; include /etc/passwd", "x", ()),)), Path("/tmp"))
