"""The runner as a real process (`python -m orchestration.runner`), one per fixture algorithm,
exercised over HTTP: states, inputs of every kind, errors, /info and /metrics."""
from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ROOT, free_port
from tests.runner_process import FIXTURES, PYTHON, RunnerProcess, jpeg, metric, png, ready_runner

hello = ready_runner("hello", ALGOSTAGE_VERSION="v3", ALGOSTAGE_COMMIT="abc123", ALGOSTAGE_SERVICE="hello",
                     ALGOSTAGE_REPLICA="2")
hello_image = ready_runner("hello_image", ALGOSTAGE_MAX_BODY_MB="1")
raising = ready_runner("raise_in_predict")


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as c:
        yield c


# --- text: hello --------------------------------------------------------------------------------

def test_health_ready(hello: RunnerProcess, client: httpx.Client) -> None:
    r = client.get(f"{hello.url}/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "READY" and body["error"] is None and body["pid"] == hello.proc.pid


def test_json_batch(hello: RunnerProcess, client: httpx.Client) -> None:
    r = client.post(f"{hello.url}/predict", json={"inputs": ["hi", "a long sentence", "four"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [o["label"] for o in body["outputs"]] == ["short", "long", "short"]
    assert body["batch"] == 3 and isinstance(body["predict_ms"], float) and body["predict_ms"] >= 0


def test_single_input_and_params_in_body(hello: RunnerProcess, client: httpx.Client) -> None:
    r = client.post(f"{hello.url}/predict", json={"input": "hey", "params": {"mode": "echo", "upper": True,
                                                                             "note": "n1"}})
    assert r.status_code == 200, r.text
    out = r.json()["outputs"]
    assert len(out) == 1 and out[0]["label"] == "HEY" and out[0]["note"] == "n1"


def test_query_string_params_are_coerced(hello: RunnerProcess, client: httpx.Client) -> None:
    r = client.post(f"{hello.url}/predict?upper=true&n=2&threshold=0.9", json={"inputs": ["abc"]})
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["params"] == {"threshold": 0.9, "mode": "length", "upper": True, "n": 2}
    assert out["label"] == "SHORT" and out["score"] == 0.75


def test_text_plain_body_is_one_input(hello: RunnerProcess, client: httpx.Client) -> None:
    r = client.post(f"{hello.url}/predict?mode=echo", content="plain text".encode(),
                    headers={"Content-Type": "text/plain; charset=utf-8"})
    assert r.status_code == 200 and r.json()["outputs"][0]["label"] == "plain text"


def test_invalid_params_422_names_each(hello: RunnerProcess, client: httpx.Client) -> None:
    r = client.post(f"{hello.url}/predict?n=0", json={"inputs": ["x"], "params": {"mode": "loud", "min_neighbors": 3}})
    assert r.status_code == 422
    body = r.json()
    fields = {p["field"]: p["reason"] for p in body["problems"]}
    assert set(fields) == {"n", "mode", "min_neighbors"}
    assert fields["n"] == "must be between 1 and 100, got 0" and "unknown parameter" in fields["min_neighbors"]
    assert "min_neighbors" in body["error"]


@pytest.mark.parametrize("kwargs,fragment", [
    ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, "malformed JSON"),
    ({"json": {"inputs": [1, "a"]}}, "inputs[0] must be a string"),
    ({"json": {"inputs": []}}, "non-empty list"),
    ({"json": {"text": "a"}}, '"inputs"'),
    ({"json": {"inputs": ["a"], "params": [1]}}, '"params"'),
    ({"content": jpeg(8, 8), "headers": {"Content-Type": "image/jpeg"}}, "takes JSON"),
])
def test_bad_requests_400(hello: RunnerProcess, client: httpx.Client, kwargs: dict, fragment: str) -> None:
    r = client.post(f"{hello.url}/predict", **kwargs)
    assert r.status_code == 400, r.text
    assert fragment in r.json()["error"]


def test_info_fields(hello: RunnerProcess, client: httpx.Client) -> None:
    body = client.get(f"{hello.url}/info").json()
    assert body["manifest"]["name"] == "hello" and body["manifest"]["task"] == "text.classification"
    assert set(body["manifest"]["params"]) == {"threshold", "mode", "upper", "note", "n"}
    assert body["params_schema"]["properties"]["n"]["type"] == "integer"
    assert (body["version"], body["commit"], body["service"], body["replica"]) == ("v3", "abc123", "hello", "2")
    assert body["pid"] == hello.proc.pid and body["status"] == "READY"
    assert body["uptime_s"] > 0 and body["started_at"].endswith("+00:00")


def test_metrics_counters_increase(hello: RunnerProcess, client: httpx.Client) -> None:
    before = client.get(f"{hello.url}/metrics").text
    assert client.post(f"{hello.url}/predict", json={"inputs": ["a", "b"]}).status_code == 200
    assert client.post(f"{hello.url}/predict", json={"inputs": ["a"], "params": {"n": -1}}).status_code == 422
    r = client.get(f"{hello.url}/metrics")
    assert r.headers["content-type"].startswith("text/plain")
    after = r.text
    for name, labels, delta in [("algostage_requests_total", {"endpoint": "predict", "status": "200"}, 1),
                                ("algostage_requests_total", {"endpoint": "predict", "status": "422"}, 1),
                                ("algostage_requests_total", {"endpoint": "metrics", "status": "200"}, 1),
                                ("algostage_inputs_total", {}, 2),
                                ("algostage_predict_seconds_count", {"status": "ok"}, 1),
                                ("algostage_errors_total", {}, 0)]:
        assert metric(after, name, **labels) - metric(before, name, **labels) == delta, (name, labels)


# --- images: hello_image ------------------------------------------------------------------------

def test_raw_jpeg_body(hello_image: RunnerProcess, client: httpx.Client) -> None:
    r = client.post(f"{hello_image.url}/predict", content=jpeg(640, 480), headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["boxes"] == [{"x": 0, "y": 0, "w": 640, "h": 480, "label": "image", "score": 1.0}]
    assert out["shape"] == [480, 640, 3] and out["dtype"] == "uint8"


def test_raw_png_body_is_decoded_to_bgr(hello_image: RunnerProcess, client: httpx.Client) -> None:
    r = client.post(f"{hello_image.url}/predict", content=png(30, 20, (255, 0, 0)),
                    headers={"Content-Type": "image/png"})
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["pixel"] == [255, 0, 0] and out["shape"] == [20, 30, 3]


def test_octet_stream_is_sniffed(hello_image: RunnerProcess, client: httpx.Client) -> None:
    r = client.post(f"{hello_image.url}/predict", content=png(12, 10, (0, 0, 200)),
                    headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200 and r.json()["outputs"][0]["pixel"] == [0, 0, 200]


def test_multipart_batch_keeps_order(hello_image: RunnerProcess, client: httpx.Client) -> None:
    files = [("images", ("a.jpg", jpeg(64, 48), "image/jpeg")), ("images", ("b.png", png(20, 10, (1, 2, 3)),
                                                                            "image/png")),
             ("images", ("c.jpg", jpeg(32, 90), "image/jpeg"))]
    r = client.post(f"{hello_image.url}/predict?min_size=30", files=files)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["batch"] == 3
    assert [o["shape"][:2] for o in body["outputs"]] == [[48, 64], [10, 20], [90, 32]]
    assert [len(o["boxes"]) for o in body["outputs"]] == [1, 0, 1]


def test_concurrent_images_each_get_their_own_result(hello_image: RunnerProcess) -> None:
    """Under load images are decoded in a pool while predict runs; results must not mix up."""
    sizes = [(40 + 8 * i, 30 + 4 * i) for i in range(12)]
    results: dict[int, httpx.Response] = {}

    def call(i: int) -> None:
        w, h = sizes[i]
        body = jpeg(w, h) if i % 4 else b"\xff\xd8\xffgarbage"
        with httpx.Client(timeout=30) as c:
            for _ in range(5):
                results[i] = c.post(f"{hello_image.url}/predict", content=body, headers={"Content-Type": "image/jpeg"})

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(sizes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, (w, h) in enumerate(sizes):
        if i % 4:
            assert results[i].status_code == 200 and results[i].json()["outputs"][0]["shape"] == [h, w, 3]
        else:
            assert results[i].status_code == 400


def test_image_params_in_query_422(hello_image: RunnerProcess, client: httpx.Client) -> None:
    r = client.post(f"{hello_image.url}/predict?min_size=big", content=jpeg(8, 8),
                    headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "min_size"


@pytest.mark.parametrize("content,ctype,fragment", [
    (b"definitely not an image", "image/jpeg", "cannot be decoded"),
    (b"GIF89a....", "application/octet-stream", "not a JPEG, PNG or raw (NPY) image"),
    (b"", "image/png", "empty"),
])
def test_garbage_image_400_then_still_serving(hello_image: RunnerProcess, client: httpx.Client, content: bytes,
                                              ctype: str, fragment: str) -> None:
    r = client.post(f"{hello_image.url}/predict", content=content, headers={"Content-Type": ctype})
    assert r.status_code == 400 and fragment in r.json()["error"]
    ok = client.post(f"{hello_image.url}/predict", content=jpeg(16, 16), headers={"Content-Type": "image/jpeg"})
    assert ok.status_code == 200


def png_bomb(width: int, height: int) -> bytes:
    """A real PNG of width x height 1-bit grey zeros: a few hundred KB that decode to width*height*3 bytes."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row, packer = b"\x00" * (1 + (width + 7) // 8), zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def test_decompression_bombs_and_deep_json_are_400_and_the_runner_serves_on(
        hello: RunnerProcess, hello_image: RunnerProcess, client: httpx.Client) -> None:
    """Issue 11, finding 7: a 60000x60000 PNG (OpenCV raised: a 500) and a 100,000-deep JSON body
    (RecursionError: a 500) are the caller's mistakes: 400 naming why. A 9000x9000 PNG, which OpenCV
    would have decoded into 243 MB, is refused by its header before any pixel is allocated."""
    bomb = png_bomb(60_000, 60_000)
    assert len(bomb) < 1_000_000
    for blob, size in ((bomb, "60000x60000"), (png_bomb(9_000, 9_000), "9000x9000")):
        r = client.post(f"{hello_image.url}/predict", content=blob, headers={"Content-Type": "image/png"})
        assert r.status_code == 400, r.text
        assert f"is {size} pixels, over the limit of 64,000,000" in r.json()["error"]
    deep = b'{"inputs": ["x"], "params": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    r = client.post(f"{hello.url}/predict", content=deep, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "JSON nested deeper than 64 levels", r.text
    nested = {"inputs": ["x"], "params": {"n": 1}}
    for _ in range(70):
        nested = {"inputs": ["x"], "params": {"n": nested}}
    r = client.post(f"{hello.url}/predict", json=nested)
    assert r.status_code == 400 and "deeper than 64" in r.json()["error"]
    ok = client.post(f"{hello_image.url}/predict", content=jpeg(16, 16), headers={"Content-Type": "image/jpeg"})
    assert ok.status_code == 200 and client.post(f"{hello.url}/predict", json={"inputs": ["hi"]}).status_code == 200


def test_json_body_on_image_task_400(hello_image: RunnerProcess, client: httpx.Client) -> None:
    r = client.post(f"{hello_image.url}/predict", json={"inputs": ["a"]})
    assert r.status_code == 400 and "raw JPEG/PNG" in r.json()["error"]


def test_body_over_cap_413(hello_image: RunnerProcess, client: httpx.Client) -> None:
    r = client.post(f"{hello_image.url}/predict", content=os.urandom(3 * 1024 * 1024),
                    headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 413 and "1 MB" in r.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap applies while reading
        for _ in range(3):
            yield os.urandom(1024 * 1024)

    r = client.post(f"{hello_image.url}/predict", content=chunks(), headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 413
    assert client.get(f"{hello_image.url}/health").status_code == 200


# --- lifecycle fixtures -------------------------------------------------------------------------

def test_slow_setup_starting_then_ready(client: httpx.Client) -> None:
    runner = RunnerProcess(FIXTURES / "slow_setup")
    try:
        first = runner.wait_listening()
        assert first.status_code == 503 and first.json()["status"] == "STARTING"
        early = client.post(f"{runner.url}/predict", json={"inputs": ["x"]})
        assert early.status_code == 503 and "STARTING" in early.json()["error"]
        t0 = time.monotonic()
        body = runner.wait_status("READY", timeout=15)
        assert body["error"] is None and time.monotonic() - t0 > 1.0
        assert client.get(f"{runner.url}/info").json()["setup_s"] >= 2.5
        assert client.post(f"{runner.url}/predict", json={"inputs": ["x"]}).json()["outputs"][0]["label"] == "slow"
    finally:
        runner.stop()


def test_crash_in_setup_stays_alive_with_reason(client: httpx.Client) -> None:
    runner = RunnerProcess(FIXTURES / "crash_in_setup")
    try:
        body = runner.wait_status("SETUP_FAILED")
        assert body["error"] == "RuntimeError: model file missing"
        time.sleep(0.5)
        assert runner.proc.poll() is None
        r = client.get(f"{runner.url}/health")
        assert r.status_code == 503 and r.json()["status"] == "SETUP_FAILED"
        p = client.post(f"{runner.url}/predict", json={"inputs": ["x"]})
        assert p.status_code == 503 and "model file missing" in p.json()["error"]
        assert client.get(f"{runner.url}/info").json()["status"] == "SETUP_FAILED"
        log = runner.log()
        assert "Traceback" in log and "model file missing" in log and "in setup" in log
    finally:
        runner.stop()


def test_invalid_manifest_is_setup_failed(client: httpx.Client) -> None:
    runner = RunnerProcess(FIXTURES / "bad_manifest")
    try:
        body = runner.wait_status("SETUP_FAILED")
        assert body["error"].startswith("invalid algorithm.yaml: name: ") and "params.model.choices" in body["error"]
        assert client.get(f"{runner.url}/info").json()["manifest"] is None
    finally:
        runner.stop()


def test_exit_in_predict_kills_the_process(client: httpx.Client) -> None:
    runner = RunnerProcess(FIXTURES / "exit_in_predict")
    try:
        runner.wait_status("READY")
        with pytest.raises(httpx.TransportError):
            client.post(f"{runner.url}/predict", json={"inputs": ["x"]})
        assert runner.proc.wait(10) == 1
        with pytest.raises(httpx.TransportError):
            client.get(f"{runner.url}/health", timeout=2)
    finally:
        runner.stop()


# --- a misbehaving predict: raise_in_predict ----------------------------------------------------

def test_exception_in_predict_500_then_still_serving(raising: RunnerProcess, client: httpx.Client) -> None:
    before = client.get(f"{raising.url}/metrics").text
    r = client.post(f"{raising.url}/predict", json={"inputs": ["fine", "boom"]})
    assert r.status_code == 500 and r.json() == {"error": "ValueError: bad input"}
    ok = client.post(f"{raising.url}/predict", json={"inputs": ["fine"]})
    assert ok.status_code == 200 and ok.json()["outputs"][0]["setup_calls"] == 1
    assert "ValueError: bad input" in raising.log() and "Traceback" in raising.log()
    after = client.get(f"{raising.url}/metrics").text
    assert metric(after, "algostage_errors_total") - metric(before, "algostage_errors_total") == 1
    assert metric(after, "algostage_predict_seconds_count", status="error") - \
        metric(before, "algostage_predict_seconds_count", status="error") == 1


def test_wrong_number_of_outputs_500(raising: RunnerProcess, client: httpx.Client) -> None:
    r = client.post(f"{raising.url}/predict", json={"inputs": ["a", "drop"]})
    assert r.status_code == 500
    assert r.json()["error"] == ("predict returned 1 results for 2 inputs; it must return a list with one "
                                 "result per input")


def test_unserialisable_outputs_500(raising: RunnerProcess, client: httpx.Client) -> None:
    r = client.post(f"{raising.url}/predict", json={"inputs": ["object"]})
    assert r.status_code == 500 and "not JSON-serialisable" in r.json()["error"]


def test_busy_while_predicting_and_calls_never_overlap(raising: RunnerProcess, client: httpx.Client) -> None:
    results: list[httpx.Response] = []

    def call() -> None:
        with httpx.Client(timeout=30) as c:
            results.append(c.post(f"{raising.url}/predict", json={"inputs": ["slow"]}))

    threads = [threading.Thread(target=call) for _ in range(3)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    seen = set()
    while any(t.is_alive() for t in threads):
        r = client.get(f"{raising.url}/health")
        seen.add((r.status_code, r.json()["status"]))
        time.sleep(0.05)
    elapsed = time.monotonic() - t0
    assert (200, "BUSY") in seen
    assert all(r.status_code == 200 for r in results)
    assert [r.json()["outputs"][0]["concurrent"] for r in results] == [1, 1, 1]
    assert elapsed >= 1.7  # three 0.6 s predicts, one after the other
    assert client.get(f"{raising.url}/health").json()["status"] == "READY"


# --- command line -------------------------------------------------------------------------------

def test_port_from_environment(client: httpx.Client) -> None:
    port = free_port()
    runner = RunnerProcess(FIXTURES / "hello", env={"PORT": str(port)},
                           argv=[str(PYTHON), "-m", "orchestration.runner", "--package", str(FIXTURES / "hello")])
    runner.url = f"http://127.0.0.1:{port}"
    try:
        assert runner.wait_status("READY")["status"] == "READY"
    finally:
        runner.stop()


def test_usage_error_exit_2() -> None:
    proc = subprocess.run([str(PYTHON), "-m", "orchestration.runner", "--package", str(FIXTURES / "hello")],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "PORT": ""}, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "--port" in proc.stderr


# --- request ids ----------------------------------------------------------------------------------

def log_lines(runner: RunnerProcess, fragment: str) -> list[str]:
    return [line for line in runner.log().splitlines() if fragment in line]


def test_request_ids_are_echoed_and_logged_for_refused_and_failed_requests(raising: RunnerProcess,
                                                                           client: httpx.Client) -> None:
    [start] = log_lines(raising, "serving raise-in-predict")
    assert "log level info" in start and "X-Request-Id" in start
    ok = client.post(f"{raising.url}/predict", json={"inputs": ["fine"]}, headers={"X-Request-Id": "rid-ok-1"})
    failed = client.post(f"{raising.url}/predict", json={"inputs": ["boom"]}, headers={"X-Request-Id": "rid-500-2"})
    refused = client.post(f"{raising.url}/predict", content=b"{", headers={"X-Request-Id": "rid-400-3",
                                                                              "Content-Type": "application/json"})
    missing = client.get(f"{raising.url}/nowhere", headers={"X-Request-Id": "rid-404-4"})
    health = client.get(f"{raising.url}/health", headers={"X-Request-Id": "rid-health-5"})
    assert [r.status_code for r in (ok, failed, refused, missing, health)] == [200, 500, 400, 404, 200]
    assert [r.headers.get("x-request-id") for r in (ok, failed, refused, missing, health)] == \
        ["rid-ok-1", "rid-500-2", "rid-400-3", "rid-404-4", "rid-health-5"]
    assert "x-request-id" not in client.get(f"{raising.url}/health").headers   # echoed, never invented
    deadline = time.monotonic() + 5
    while not log_lines(raising, "rid-404-4") and time.monotonic() < deadline:
        time.sleep(0.05)
    [error] = log_lines(raising, "request_id=rid-500-2")
    assert " ERROR " in error and "POST /predict 500" in error
    [warning] = log_lines(raising, "request_id=rid-400-3")
    assert " WARNING " in warning and "POST /predict 400" in warning
    assert "GET /nowhere 404" in log_lines(raising, "request_id=rid-404-4")[0]
    assert log_lines(raising, "rid-ok-1") == [] and log_lines(raising, "rid-health-5") == []   # info: quiet


def test_every_request_is_logged_with_its_id_at_debug_level(client: httpx.Client) -> None:
    with RunnerProcess(FIXTURES / "hello", env={"ALGOSTAGE_LOG_LEVEL": "debug"}) as runner:
        runner.wait_status("READY")
        assert "log level debug" in log_lines(runner, "serving hello")[0]
        for i in range(3):
            r = client.post(f"{runner.url}/predict", json={"inputs": ["x"]}, headers={"X-Request-Id": f"dbg-{i}"})
            assert r.status_code == 200 and r.headers["x-request-id"] == f"dbg-{i}"
        client.get(f"{runner.url}/info", headers={"X-Request-Id": "dbg-info"})
        deadline = time.monotonic() + 5
        while not log_lines(runner, "dbg-info") and time.monotonic() < deadline:
            time.sleep(0.05)
        for i in range(3):
            [line] = log_lines(runner, f"request_id=dbg-{i}")
            assert " DEBUG " in line and "POST /predict 200" in line
        assert "GET /info 200" in log_lines(runner, "request_id=dbg-info")[0]
