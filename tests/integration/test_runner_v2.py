"""The runner's Open Inference Protocol v2 endpoints, driven by a client nobody here wrote:
tritonclient.http (Triton's Python HTTP client), against real runner processes on the fixture
packages `hello` (text.classification) and `hello_image` (image.detection)."""
from __future__ import annotations

import base64
import json

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.runner_process import FIXTURES, RunnerProcess, jpeg, metric, png, ready_runner

hello = ready_runner("hello", ALGOSTAGE_VERSION="v3")
hello_image = ready_runner("hello_image")


def client_of(runner: RunnerProcess) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=f"127.0.0.1:{runner.port}", network_timeout=30)


def bytes_input(items: list[bytes | str], binary: bool = True, name: str = "input") -> triton.InferInput:
    tensor = triton.InferInput(name, [len(items)], "BYTES")
    tensor.set_data_from_numpy(np.array(items, dtype=np.object_), binary_data=binary)
    return tensor


def outputs(result: triton.InferResult) -> list[dict]:
    return [json.loads(item) for item in result.as_numpy("output")]


def refused(call, status: str) -> str:
    """The message of the InferenceServerException `call()` raises; its HTTP status must be `status`."""
    with pytest.raises(InferenceServerException) as info:
        call()
    assert info.value.status() == status, info.value
    return info.value.message()


# --- health and metadata ------------------------------------------------------------------------

def test_server_live_ready_and_metadata(hello: RunnerProcess) -> None:
    client = client_of(hello)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("hello") and client.is_model_ready("hello", "v3")
    assert not client.is_model_ready("other")
    server = client.get_server_metadata()
    assert server["name"] == "algostage-runner" and "binary_tensor_data" in server["extensions"]


def test_model_metadata_lists_the_manifest_params(hello: RunnerProcess) -> None:
    meta = client_of(hello).get_model_metadata("hello")
    assert meta["name"] == "hello" and meta["versions"] == ["v3"]
    assert meta["inputs"] == [{"name": "input", "datatype": "BYTES", "shape": [-1]}]
    assert meta["outputs"] == [{"name": "output", "datatype": "BYTES", "shape": [-1]}]
    params = meta["parameters"]["params"]
    assert meta["parameters"]["task"] == "text.classification"
    assert set(params) == {"threshold", "mode", "upper", "note", "n"}
    assert params["n"] == {"type": "int", "default": 5, "min": 1, "max": 100, "help": "length that scores 0.5"}
    assert params["mode"]["choices"] == ["length", "echo"]


def test_unknown_model_or_version_404(hello: RunnerProcess) -> None:
    client = client_of(hello)
    assert "unknown model 'other'" in refused(lambda: client.get_model_metadata("other"), "404")
    assert "unknown version '7'" in refused(lambda: client.get_model_metadata("hello", "7"), "404")
    message = refused(lambda: client.infer("other", [bytes_input([b"x"])]), "404")
    assert "this service serves 'hello'" in message


def test_not_ready_while_setup_runs() -> None:
    with RunnerProcess(FIXTURES / "slow_setup") as runner:
        assert runner.wait_listening().json()["status"] == "STARTING"
        client = client_of(runner)
        assert client.is_server_live() and not client.is_server_ready()
        r = httpx.get(f"{runner.url}/v2/health/ready", timeout=5)
        assert r.status_code == 400 and r.json() == {"ready": False, "error": "service is STARTING"}
        message = refused(lambda: client.infer("slow-setup", [bytes_input([b"x"])]), "503")
        assert "STARTING" in message
        runner.wait_status("READY", timeout=15)
        assert client.is_server_ready()


# --- inference: text ----------------------------------------------------------------------------

def test_infer_text_binary_tensor(hello: RunnerProcess) -> None:
    """tritonclient's defaults: BYTES input in the binary extension, outputs asked for in binary."""
    result = client_of(hello).infer("hello", [bytes_input([b"hi", "a long sentence".encode(), "four".encode()])],
                                    request_id="req-1")
    assert [o["label"] for o in outputs(result)] == ["short", "long", "short"]
    response = result.get_response()
    assert response["model_name"] == "hello" and response["model_version"] == "v3" and response["id"] == "req-1"
    assert response["parameters"]["predict_ms"] >= 0
    assert response["outputs"][0]["parameters"]["binary_data_size"] > 0  # the reply came binary


def test_infer_text_json_data_and_params(hello: RunnerProcess) -> None:
    client = client_of(hello)
    result = client.infer("hello", [bytes_input(["héllo wörld"], binary=False)],
                          outputs=[triton.InferRequestedOutput("output", binary_data=False)],
                          parameters={"mode": "echo", "upper": True, "note": "n1"}, model_version="v3")
    out = outputs(result)
    assert out == [{**out[0], "label": "HÉLLO WÖRLD", "note": "n1"}]
    assert out[0]["params"] == {"threshold": 0.5, "mode": "echo", "upper": True, "n": 5}
    assert "data" in result.get_response()["outputs"][0]  # JSON reply, as asked


def test_infer_json_over_plain_http(hello: RunnerProcess) -> None:
    body = {"inputs": [{"name": "input", "datatype": "BYTES", "shape": [2, 1], "data": [["abc"], ["abcdefghijk"]]}],
            "parameters": {"n": 2}}
    r = httpx.post(f"{hello.url}/v2/models/hello/versions/v3/infer", json=body, timeout=30)
    assert r.status_code == 200, r.text
    reply = r.json()
    assert reply["outputs"][0]["shape"] == [2] and reply["outputs"][0]["datatype"] == "BYTES"
    assert [json.loads(o)["score"] for o in reply["outputs"][0]["data"]] == [0.75, 1.0]


def test_deeply_nested_infer_request_is_the_protocols_400(hello: RunnerProcess) -> None:
    """Issue 11, finding 7, on the V2 path: 100,000 levels of nesting are a 400 error JSON, not a 500."""
    deep = ('{"inputs": [{"name": "input", "datatype": "BYTES", "shape": [1], "data": ["a"]}], "parameters": '
            + "[" * 100_000 + "]" * 100_000 + "}")
    r = httpx.post(f"{hello.url}/v2/models/hello/infer", content=deep, timeout=30,
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json() == {"error": "JSON nested deeper than 64 levels"}, r.text


# --- inference: images --------------------------------------------------------------------------

def test_infer_images_binary_tensor(hello_image: RunnerProcess) -> None:
    client = client_of(hello_image)
    meta = client.get_model_metadata("hello-image")
    assert meta["parameters"]["task"] == "image.detection" and set(meta["parameters"]["params"]) == {"min_size"}
    result = client.infer("hello-image", [bytes_input([jpeg(64, 48), png(20, 10, (255, 0, 0))])],
                          parameters={"min_size": 30})
    first, second = outputs(result)
    assert first["shape"] == [48, 64, 3] and first["boxes"][0]["w"] == 64
    assert second["shape"] == [10, 20, 3] and second["boxes"] == [] and second["pixel"] == [255, 0, 0]


def test_infer_raw_frames_in_a_binary_tensor_reach_predict_as_their_pixels(hello_image: RunnerProcess) -> None:
    """A raw frame (NPY, what the video pipeline sends to a replica on its host) is an image element
    of the BYTES tensor like a JPEG: BGR and grey, beside a JPEG in one request."""
    from app.media import encode_raw
    bgr = np.zeros((9, 14, 3), np.uint8)
    bgr[:, :] = (10, 120, 250)
    grey = np.full((5, 6), 77, np.uint8)
    result = client_of(hello_image).infer("hello-image", [bytes_input([encode_raw(bgr), jpeg(16, 8), encode_raw(grey)])])
    first, second, third = outputs(result)
    assert first["shape"] == [9, 14, 3] and first["pixel"] == [10, 120, 250]
    assert second["shape"] == [8, 16, 3]
    assert third["shape"] == [5, 6, 3] and third["pixel"] == [77, 77, 77]


def test_infer_image_base64_in_json(hello_image: RunnerProcess) -> None:
    data = [base64.b64encode(png(12, 10, (0, 0, 200))).decode()]
    r = httpx.post(f"{hello_image.url}/v2/models/hello-image/infer", timeout=30,
                   json={"inputs": [{"name": "input", "datatype": "BYTES", "shape": [1], "data": data}]})
    assert r.status_code == 200, r.text
    assert json.loads(r.json()["outputs"][0]["data"][0])["pixel"] == [0, 0, 200]


def test_undecodable_image_400_then_still_serving(hello_image: RunnerProcess) -> None:
    client = client_of(hello_image)
    message = refused(lambda: client.infer("hello-image", [bytes_input([jpeg(8, 8), b"GIF89a...."])]), "400")
    assert message == "input[1] is not a JPEG, PNG or raw (NPY) image"
    r = httpx.post(f"{hello_image.url}/v2/models/hello-image/infer", timeout=30,
                   json={"inputs": [{"name": "input", "datatype": "BYTES", "shape": [1], "data": ["not base64!"]}]})
    assert r.status_code == 400 and "base64" in r.json()["error"]
    assert outputs(client.infer("hello-image", [bytes_input([jpeg(16, 16)])]))[0]["shape"] == [16, 16, 3]


# --- the 400 cases ------------------------------------------------------------------------------

def test_wrong_datatype_400(hello: RunnerProcess) -> None:
    tensor = triton.InferInput("input", [2], "FP32")
    tensor.set_data_from_numpy(np.array([1.0, 2.0], dtype=np.float32))
    message = refused(lambda: client_of(hello).infer("hello", [tensor]), "400")
    assert message == "input 'input' must have datatype BYTES, got 'FP32'"


def test_wrong_shape_400(hello: RunnerProcess) -> None:
    tensor = bytes_input([b"a", b"b"])
    tensor.set_shape([3])  # declares three elements, sends two
    message = refused(lambda: client_of(hello).infer("hello", [tensor]), "400")
    assert message == "input 'input' has shape [3] (3 elements) but 2 elements of data"


def test_wrong_input_name_400(hello: RunnerProcess) -> None:
    message = refused(lambda: client_of(hello).infer("hello", [bytes_input([b"a"], name="text")]), "400")
    assert "unknown input 'text'" in message


@pytest.mark.parametrize("parameters,fragment", [
    ({"n": 0}, "n: must be between 1 and 100, got 0"),
    ({"mode": "loud"}, "mode: must be one of"),
    ({"min_neighbors": 3}, "min_neighbors: unknown parameter"),
])
def test_wrong_parameter_400(hello: RunnerProcess, parameters: dict, fragment: str) -> None:
    message = refused(lambda: client_of(hello).infer("hello", [bytes_input([b"a"])], parameters=parameters), "400")
    assert message.startswith("invalid parameters: ") and fragment in message


def test_not_utf8_text_400(hello: RunnerProcess) -> None:
    message = refused(lambda: client_of(hello).infer("hello", [bytes_input([b"\xff\xfe"])]), "400")
    assert "element 0 is not UTF-8 text" in message


BINARY_HEADER = (b'{"inputs": [{"name": "input", "datatype": "BYTES", "shape": [1], '
                 b'"parameters": {"binary_data_size": 9}}]}')


@pytest.mark.parametrize("body,headers,fragment", [
    (b"{not json", {}, "malformed inference request JSON"),
    (b'{"inputs": []}', {}, "expected one input tensor named 'input', got 0"),
    (b'{"inputs": [{"name": "input", "datatype": "BYTES", "shape": [1], "data": [7]}]}', {},
     "element 0 must be a string"),
    (BINARY_HEADER + b"\x05\x00\x00\x00abc", {"Inference-Header-Content-Length": str(len(BINARY_HEADER))},
     "binary_data_size 9 does not match the 7 bytes"),
    (BINARY_HEADER + b"\x05\x00\x00\x00abcd", {"Inference-Header-Content-Length": str(len(BINARY_HEADER))},
     "binary_data_size 9 does not match the 8 bytes"),
    (BINARY_HEADER + b"\x09\x00\x00\x00abcde", {"Inference-Header-Content-Length": str(len(BINARY_HEADER))},
     "element 0 claims 9 bytes; 5 are left"),
    (b'{"inputs": [{"name": "input", "datatype": "BYTES", "shape": [1], "data": ["a"]}]}',
     {"Inference-Header-Content-Length": "999"}, "does not fit a body"),
    (b'{"inputs": [{"name": "input", "datatype": "BYTES", "shape": [1], "data": ["a"]}], '
     b'"outputs": [{"name": "scores"}]}', {}, "this model has one output, 'output'"),
])
def test_malformed_requests_400(hello: RunnerProcess, body: bytes, headers: dict, fragment: str) -> None:
    r = httpx.post(f"{hello.url}/v2/models/hello/infer", content=body, timeout=30,
                   headers={"Content-Type": "application/json", **headers})
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"error"} and fragment in r.json()["error"]


def test_infer_shares_the_metrics(hello: RunnerProcess) -> None:
    before = httpx.get(f"{hello.url}/metrics").text
    client = client_of(hello)
    client.infer("hello", [bytes_input([b"a", b"b"])])
    refused(lambda: client.infer("hello", [bytes_input([b"a"])], parameters={"n": -1}), "400")
    after = httpx.get(f"{hello.url}/metrics").text
    for name, labels, delta in [("algostage_requests_total", {"endpoint": "infer", "status": "200"}, 1),
                                ("algostage_requests_total", {"endpoint": "infer", "status": "400"}, 1),
                                ("algostage_inputs_total", {}, 2),
                                ("algostage_predict_seconds_count", {"status": "ok"}, 1)]:
        assert metric(after, name, **labels) - metric(before, name, **labels) == delta, (name, labels)
