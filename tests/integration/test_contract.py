"""check_contract (the deploy smoke test) against real services: the runner on the fixtures, a
package's own server, and services that break the contract in each way."""
from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.errors import Problem
from app.catalog.manifest import load_manifest
from orchestration.smoke import check_contract, predict_request
from tests.conftest import free_port
from tests.integration.test_runner import FIXTURES, RunnerProcess


def first_sample(package: Path) -> bytes | str:
    path = package / load_manifest(package).samples[0]
    return path.read_text() if path.suffix in (".txt", ".json") else path.read_bytes()


@pytest.fixture
def started() -> Iterator[list[RunnerProcess]]:
    processes: list[RunnerProcess] = []
    yield processes
    for p in processes:
        p.stop()


def start(started: list[RunnerProcess], name: str, ready: bool = True, **kwargs: object) -> RunnerProcess:
    runner = RunnerProcess(FIXTURES / name, **kwargs)  # type: ignore[arg-type]
    started.append(runner)
    if ready:
        runner.wait_status("READY")
    return runner


@pytest.mark.parametrize("name", ["hello", "hello_image", "custom_server"])
def test_runner_on_fixture_passes(started: list[RunnerProcess], name: str) -> None:
    """custom_server is served here by the runner (its predict.py); its own server is tested below."""
    runner = start(started, name)
    package = FIXTURES / name
    assert check_contract(runner.url, first_sample(package), load_manifest(package).task.value) == []


def test_custom_server_passes(started: list[RunnerProcess]) -> None:
    package = FIXTURES / "custom_server"
    manifest = load_manifest(package)
    assert manifest.server is not None
    argv = [a.replace("$PORT", "{port}").replace("$HOST", "127.0.0.1") for a in shlex.split(manifest.server)]
    server = start(started, "custom_server", argv=argv)
    with httpx.Client(timeout=10) as client:
        assert check_contract(server.url, first_sample(package), "json", client) == []
        assert client.get(f"{server.url}/info").json()["manifest"]["name"] == "custom-server"
    assert server.proc.poll() is None  # the client passed in was used and the server still runs


def test_no_sample_skips_predict(started: list[RunnerProcess]) -> None:
    runner = start(started, "raise_in_predict")
    assert check_contract(runner.url, None, "text.classification") == []
    problems = check_contract(runner.url, "boom", "text.classification")
    assert problems == [Problem("/predict", "HTTP 500 on the first sample: ValueError: bad input")]


def test_setup_failed_service_is_reported(started: list[RunnerProcess]) -> None:
    runner = start(started, "crash_in_setup", ready=False)
    runner.wait_status("SETUP_FAILED")
    problems = check_contract(runner.url, "hello", "text.classification")
    by_endpoint = {p.field: p.reason for p in problems}
    assert set(by_endpoint) == {"/health", "/predict"}
    assert by_endpoint["/health"] == "status 'SETUP_FAILED' (HTTP 503): RuntimeError: model file missing"
    assert "HTTP 503" in by_endpoint["/predict"]


def test_unreachable_service_is_one_problem() -> None:
    problems = check_contract(f"http://127.0.0.1:{free_port()}", "x", "text.classification")
    assert len(problems) == 1 and problems[0].field == "/health" and "unreachable" in problems[0].reason


def test_wrong_sample_for_task_is_reported(started: list[RunnerProcess]) -> None:
    runner = start(started, "hello_image")
    problems = check_contract(runner.url, b"not an image", "image.detection")
    assert [p.field for p in problems] == ["/predict"] and "HTTP 400" in problems[0].reason


def broken_service(request: httpx.Request) -> httpx.Response:
    """Answers every endpoint, each one breaking the contract differently."""
    if request.url.path == "/health":
        return httpx.Response(200, json={"status": "OK"})
    if request.url.path == "/info":
        return httpx.Response(200, json={"name": "x"})
    if request.url.path == "/predict":
        return httpx.Response(200, json={"outputs": [1, 2], "predict_ms": "fast"})
    return httpx.Response(200, text="<html>metrics</html>")


def test_every_broken_endpoint_is_reported() -> None:
    with httpx.Client(transport=httpx.MockTransport(broken_service)) as client:
        problems = check_contract("http://svc", "hello", "text.classification", client)
    reasons = [(p.field, p.reason.split(",")[0]) for p in problems]
    assert [f for f, _ in reasons] == ["/health", "/info", "/predict", "/predict", "/metrics"]
    assert "'OK'" in problems[0].reason and "manifest" in problems[1].reason
    assert "list of 1 result" in problems[2].reason and "predict_ms" in problems[3].reason


def test_predict_request_by_task() -> None:
    assert predict_request("hi\n", "text.ner") == ({"json": {"inputs": ["hi"]}}, 1)
    assert predict_request('{"a": 1}', "json") == ({"json": {"inputs": [{"a": 1}]}}, 1)
    assert predict_request('{"inputs": [{"a": 1}, {"b": 2}]}', "json")[1] == 2
    kwargs, _ = predict_request(b"\x89PNG\r\n\x1a\nrest", "video.detection")
    assert kwargs["headers"]["Content-Type"] == "image/png"
    with pytest.raises(ValueError):
        predict_request("{broken", "json")
