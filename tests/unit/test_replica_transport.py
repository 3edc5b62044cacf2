"""The invoker's transport to the replicas (app/replica_transport.py) against a small real HTTP/1.1
server on loopback: keep-alive reuse, a connection the server closed while idle, and the httpx
exceptions the invoker's failover relies on (refused, closed without an answer, timeouts)."""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from app.replica_transport import ReplicaTransport


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: set[tuple[str, int]] = set()   # the clients' addresses: one per connection

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        # not id(self.connection): a closed connection's socket object may be freed and the next
        # one allocated at the same address, so two connections counted as one
        Handler.connections.add(self.client_address)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.startswith("/hang"):
            time.sleep(1.0)
        if self.path.startswith("/drop"):
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        reply = b'{"path": "%s", "bytes": %d, "type": "%s"}' % (self.path.encode(), len(body),
                                                               self.headers.get("Content-Type", "").encode())
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.send_header("X-Seen", "yes")
        self.end_headers()
        self.wfile.write(reply)


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    Handler.connections = set()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def url(srv: ThreadingHTTPServer, path: str) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}{path}"


def test_answers_like_httpx_and_keeps_the_connection(server: ThreadingHTTPServer) -> None:
    with httpx.Client(transport=ReplicaTransport()) as client:
        for i in range(5):
            reply = client.post(url(server, "/predict"), json={"inputs": ["x" * i]}, params={"k": "v w"}, timeout=5)
            assert reply.status_code == 200 and reply.headers["x-seen"] == "yes"
            assert reply.json() == {"path": "/predict?k=v+w", "bytes": len(b'{"inputs":["' + b"x" * i + b'"]}'),
                                    "type": "application/json"}
        files = client.post(url(server, "/predict"), files=[("images", ("0", b"\xff\xd8\xff" * 1000, "image/jpeg"))])
        assert files.json()["type"].startswith("multipart/form-data") and files.json()["bytes"] > 3000
    assert len(Handler.connections) == 1   # one keep-alive connection for all six


def test_a_connection_the_server_closed_while_idle_is_not_used(server: ThreadingHTTPServer) -> None:
    transport = ReplicaTransport()
    with httpx.Client(transport=transport) as client:
        assert client.post(url(server, "/predict"), content=b"a").status_code == 200
        for conns in transport._idle.values():   # the server goes away from the idle connection
            for conn in conns:
                assert conn.sock is not None
                conn.sock.shutdown(socket.SHUT_RD)
        assert client.post(url(server, "/predict"), content=b"b").status_code == 200
    assert len(Handler.connections) == 2


def test_refused_closed_and_late_are_the_errors_the_failover_knows(server: ThreadingHTTPServer) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    with httpx.Client(transport=ReplicaTransport()) as client:
        with pytest.raises(httpx.ConnectError):
            client.post(f"http://127.0.0.1:{free}/predict", content=b"x", timeout=2)
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.post(url(server, "/drop"), content=b"x", timeout=2)
        with pytest.raises(httpx.ReadTimeout):
            client.post(url(server, "/hang"), content=b"x", timeout=0.2)
        assert client.post(url(server, "/predict"), content=b"x", timeout=2).status_code == 200   # still usable
