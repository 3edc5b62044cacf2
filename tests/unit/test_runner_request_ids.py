"""Request ids in the runner's ASGI app, in-process: echoed on the short paths (native predict, V2
infer) and through Starlette alike; logged as warnings (4xx), errors (5xx), or at debug level only."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest

from orchestration.runner.asgi import MAX_ID_BYTES, RequestLog, build_app, is_health
from orchestration.runner.server import Runner

HELLO = Path(__file__).resolve().parents[1] / "fixtures" / "algorithms" / "hello"
LOGGER = "algostage.runner.requests"


def loader(package_dir: Path, entrypoint: str):
    def predict(inputs: list, **params) -> list:
        if inputs == ["boom"]:
            raise ValueError("boom")
        return [{"label": text} for text in inputs]
    return predict


def exchange(requests: list[tuple[str, str, dict]], *, ready: bool = True) -> list[httpx.Response]:
    """Each (method, path, keyword arguments) sent in turn to a fresh runner app."""
    async def main() -> list[httpx.Response]:
        runner = Runner(HELLO, env={}, loader=loader)
        if ready:
            runner.start_setup().join()
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(build_app(runner)), base_url="http://r") as c:
                return [await c.request(method, path, **kw) for method, path, kw in requests]
        finally:
            runner.close()
    return asyncio.run(main())


def rid(value: str) -> dict:
    return {"headers": {"X-Request-Id": value}}


def test_the_id_is_echoed_on_every_path_and_never_invented() -> None:
    tensor = {"name": "input", "datatype": "BYTES", "shape": [1], "data": ["x"]}
    replies = exchange([("POST", "/predict", {"json": {"inputs": ["a"]}, **rid("p-1")}),
                        ("POST", "/v2/models/hello/infer", {"json": {"inputs": [tensor]}, **rid("v2-2")}),
                        ("GET", "/health", rid("h-3")), ("GET", "/v2/health/ready", rid("r-4")),
                        ("GET", "/nowhere", rid("n-5")), ("POST", "/predict", {"json": {"inputs": ["b"]}})])
    assert [r.status_code for r in replies] == [200, 200, 200, 200, 404, 200]
    assert [r.headers.get("x-request-id") for r in replies] == ["p-1", "v2-2", "h-3", "r-4", "n-5", None]
    assert [len(r.headers.get_list("x-request-id")) for r in replies[:5]] == [1] * 5


def test_refused_and_failed_requests_are_logged_with_their_id(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    exchange([("POST", "/predict", {"json": {"inputs": ["fine"]}, **rid("ok")}),
              ("POST", "/predict", {"json": {"inputs": ["boom"]}, **rid("fails")}),
              ("POST", "/predict", {"json": {"inputs": ["x"], "params": {"n": 0}}, **rid("bad-param")}),
              ("GET", "/health", rid("health"))])
    logged = {r.getMessage().rpartition("request_id=")[2]: r for r in caplog.records if r.name == LOGGER}
    assert set(logged) == {"fails", "bad-param"}
    assert logged["fails"].levelno == logging.ERROR and logged["fails"].getMessage().startswith("POST /predict 500 ")
    assert logged["bad-param"].levelno == logging.WARNING and "POST /predict 422" in logged["bad-param"].getMessage()


def test_while_starting_predict_is_refused_but_health_is_only_answered(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    replies = exchange([("GET", "/health", rid("h")), ("GET", "/v2/health/ready", rid("r")),
                        ("POST", "/predict", {"json": {"inputs": ["a"]}, **rid("early")})], ready=False)
    assert [r.status_code for r in replies] == [503, 400, 503]   # V2 readiness says 400, as Triton does
    [refused] = [r for r in caplog.records if r.name == LOGGER]
    assert refused.levelno == logging.WARNING and refused.getMessage().endswith("request_id=early")


def test_at_debug_every_request_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, LOGGER)
    exchange([("POST", "/predict", {"json": {"inputs": ["a"]}, **rid("d-1")}), ("GET", "/info", rid("d-2")),
              ("GET", "/metrics", {})])
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER]
    assert [level for level, _ in lines] == [logging.DEBUG] * 3
    assert lines[0][1].startswith("POST /predict 200 ") and lines[0][1].endswith("request_id=d-1")
    assert lines[1][1].startswith("GET /info 200 ") and lines[2][1].endswith("request_id=-")


def test_a_long_id_is_cut_before_it_is_echoed_or_logged() -> None:
    [reply] = exchange([("GET", "/health", rid("x" * 1000))])
    assert reply.headers["x-request-id"] == "x" * MAX_ID_BYTES


def test_which_paths_are_health_checks() -> None:
    assert all(map(is_health, ["/health", "/v2/health/ready", "/v2/health/live", "/v2/models/m/ready"]))
    assert not any(map(is_health, ["/predict", "/info", "/v2/models/m/infer", "/ready"]))

@pytest.mark.parametrize("path, status, level", [("/predict", 500, logging.ERROR), ("/predict", 503, logging.WARNING),
                                                 ("/predict", 413, logging.WARNING), ("/x", 404, logging.WARNING),
                                                 ("/health", 503, None), ("/predict", 200, None)])
def test_levels_by_status_at_info(path: str, status: int, level: int | None, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "test.requests")
    RequestLog(logging.getLogger("test.requests")).done({"method": "GET", "path": path}, status, 0.0, b"id-1")
    assert [r.levelno for r in caplog.records] == ([level] if level else [])
