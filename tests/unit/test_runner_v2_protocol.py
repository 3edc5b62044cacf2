"""orchestration/runner/v2.py: inference requests (JSON and the binary tensor extension) to items
and params, replies back, and a precise V2Error(400) for every malformed request."""
from __future__ import annotations

import json

import pytest

from orchestration.runner import v2


def tensor(**fields: object) -> dict:
    return {"name": "input", "datatype": "BYTES", "shape": [1], **fields}


def request(*inputs: dict, **fields: object) -> bytes:
    return json.dumps({"inputs": list(inputs), **fields}).encode()


def binary_request(elements: list[bytes], **fields: object) -> tuple[bytes, str]:
    blob = b"".join(len(e).to_bytes(4, "little") + e for e in elements)
    header = request(tensor(shape=[len(elements)], parameters={"binary_data_size": len(blob)}), **fields)
    return header + blob, str(len(header))


def test_json_request_items_params_and_id() -> None:
    body = request(tensor(shape=[2, 1], data=[["a"], ["b"]]), id=42,
                   parameters={"n": 3, "binary_data_output": True, "priority": 1, "triton_x": 1})
    req = v2.parse_infer(body, None)
    assert req.elements == ["a", "b"] and req.id == "42"
    assert req.params == {"n": 3} and req.binary_output is True


def test_binary_request_elements_are_bytes() -> None:
    body, length = binary_request([b"\xff\xd8\xffjpeg", b"", b"text"])
    req = v2.parse_infer(body, length)
    assert req.elements == [b"\xff\xd8\xffjpeg", b"", b"text"] and req.params == {} and not req.binary_output


@pytest.mark.parametrize("outputs,params,binary", [
    (None, {}, False),
    ([{"name": "output"}], {"binary_data_output": True}, True),
    ([{"name": "output", "parameters": {"binary_data": False}}], {"binary_data_output": True}, False),
    ([{"name": "output", "parameters": {"binary_data": True}}], {}, True),
])
def test_binary_output_choice(outputs: list | None, params: dict, binary: bool) -> None:
    fields: dict = {"parameters": params}
    if outputs is not None:
        fields["outputs"] = outputs
    assert v2.parse_infer(request(tensor(data=["a"]), **fields), None).binary_output is binary


@pytest.mark.parametrize("body,length,message", [
    (b"[1]", None, 'the inference request must be a JSON object with an "inputs" list'),
    (request(tensor(data=["a"]), tensor(data=["b"])), None, "expected one input tensor named 'input', got 2"),
    (request(tensor(name="text", data=["a"])), None, "unknown input 'text'; this model takes one BYTES tensor "
                                                     "named 'input'"),
    (request(tensor(datatype="INT32", data=[1])), None, "input 'input' must have datatype BYTES, got 'INT32'"),
    (request(tensor(shape=[-1], data=["a"])), None, "input 'input' shape must be a list of non-negative integers, "
                                                    "got [-1]"),
    (request(tensor(shape=[2], data=["a"])), None, "input 'input' has shape [2] (2 elements) but 1 elements of data"),
    (request(tensor(shape=[0], data=[])), None, "input 'input' is empty: send at least one element"),
    (request(tensor()), None, 'input \'input\' needs "data" (a list) or binary_data_size'),
    (request(tensor(data=["a"]), parameters=[1]), None, '"parameters" must be a JSON object'),
    (request(tensor(data=["a"])) + b"xx", "3", "malformed inference request JSON"),
    (request(tensor(data=["a"])), "x", "Inference-Header-Content-Length 'x' does not fit a body"),
])
def test_malformed_requests(body: bytes, length: str | None, message: str) -> None:
    with pytest.raises(v2.V2Error) as info:
        v2.parse_infer(body, length)
    assert info.value.status == 400 and info.value.message.startswith(message)


def test_binary_data_without_a_binary_input_is_refused() -> None:
    header = request(tensor(data=["a"]))
    with pytest.raises(v2.V2Error, match="2 bytes of binary data but no input has binary_data_size"):
        v2.parse_infer(header + b"xy", str(len(header)))


def test_item_conversions() -> None:
    assert v2.as_text(b"h\xc3\xa9", 0) == "hé" and v2.as_text("x", 0) == "x"
    assert v2.as_object('{"a": 1}', 0) == {"a": 1}
    assert v2.as_image_bytes("aGk=", 0) == b"hi" and v2.as_image_bytes(b"raw", 0) == b"raw"
    for convert, value, fragment in [(v2.as_text, b"\xff", "not UTF-8"), (v2.as_object, "[1]", "a JSON object"),
                                     (v2.as_object, "{", "not JSON"), (v2.as_image_bytes, "a b", "base64")]:
        with pytest.raises(v2.V2Error, match=fragment):
            convert(value, 3)


def test_json_reply() -> None:
    body, length = v2.infer_reply("m", "1", "r1", [b'{"a":1}', b'{"a":2}'], 1.23456, binary=False)
    assert length is None
    assert json.loads(body) == {"model_name": "m", "model_version": "1", "id": "r1",
                                "parameters": {"predict_ms": 1.235},
                                "outputs": [{"name": "output", "datatype": "BYTES", "shape": [2],
                                             "data": ['{"a":1}', '{"a":2}']}]}


def test_binary_reply() -> None:
    body, length = v2.infer_reply("m", "1", None, [b'{"a":1}', b"[]"], 0.5, binary=True)
    head, blob = json.loads(body[:length]), body[length:]
    assert "id" not in head and head["outputs"][0]["parameters"] == {"binary_data_size": len(blob)}
    assert blob == b"\x07\x00\x00\x00" + b'{"a":1}' + b"\x02\x00\x00\x00[]"
