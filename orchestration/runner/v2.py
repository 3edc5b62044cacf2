"""The Open Inference Protocol v2 (KServe V2 REST) as the runner speaks it: parsing inference
requests and building replies. No HTTP here; `server.py` routes, validates parameters, queues.

An algorithm is one model named after its manifest, with one input and one output tensor:
- input: BYTES tensor `input`, one element per item — a text (text tasks), an encoded JPEG/PNG
  (image tasks), a JSON object as text (json tasks). In JSON form (`"data": [...]`) elements are
  strings; image bytes are then base64. With the binary tensor extension (the request's JSON
  header is `Inference-Header-Content-Length` bytes long, the input has
  `parameters.binary_data_size`) each element is a 4-byte little-endian length and its bytes,
  as tritonclient sends BYTES by default.
- parameters: the request's `parameters`, except the protocol's own (`binary_data_output`,
  sequence_*, priority, timeout, headers, triton_*), are the algorithm's params.
- output: BYTES tensor `output`, one JSON text per item, in JSON or, when asked for
  (`binary_data_output`, or `binary_data` on the requested output), in the binary extension.
Every malformed request raises `V2Error(400, message)`; the server answers `{"error": message}`.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from typing import Any

from orchestration.runner import limits

INPUT, OUTPUT, DATATYPE = "input", "output", "BYTES"
PROTOCOL_PARAMS = frozenset({"binary_data_output", "sequence_id", "sequence_start", "sequence_end", "priority",
                             "timeout", "headers"})
HEADER_LENGTH = "inference-header-content-length"
EXTENSIONS = ["binary_tensor_data"]


class V2Error(Exception):
    """A request the protocol refuses; answered as {"error": message} with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    elements: list[str | bytes]     # str from JSON data, bytes from the binary extension
    params: dict[str, Any]          # the algorithm's, protocol parameters removed
    binary_output: bool


def parse_infer(body: bytes, header_length: str | None) -> InferRequest:
    """The inference request in `body` (JSON, or a JSON header of `header_length` bytes followed by
    binary tensor data). V2Error(400) names what is wrong."""
    header, binary = _split(body, header_length)
    try:
        doc = limits.loads(header)
    except limits.TooDeep as e:
        raise V2Error(400, str(e)) from None
    except ValueError as e:
        raise V2Error(400, f"malformed inference request JSON: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list):
        raise V2Error(400, 'the inference request must be a JSON object with an "inputs" list')
    tensor = _the_input(doc["inputs"])
    elements = _elements(tensor, binary)
    params = doc.get("parameters") or {}
    if not isinstance(params, dict):
        raise V2Error(400, '"parameters" must be a JSON object')
    request_id = doc.get("id")
    return InferRequest(id=str(request_id) if request_id is not None else None, elements=elements,
                        params={k: v for k, v in params.items() if not _is_protocol_param(k)},
                        binary_output=_binary_output(doc.get("outputs"), params))


def _is_protocol_param(name: str) -> bool:
    return name in PROTOCOL_PARAMS or name.startswith("triton_")


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    if not header_length.isdigit() or int(header_length) > len(body):
        raise V2Error(400, f"Inference-Header-Content-Length {header_length!r} does not fit a body of "
                           f"{len(body)} bytes")
    n = int(header_length)
    return body[:n], body[n:]


def _the_input(inputs: list[Any]) -> dict[str, Any]:
    if len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise V2Error(400, f"expected one input tensor named '{INPUT}', got {len(inputs)}")
    tensor = inputs[0]
    if tensor.get("name") != INPUT:
        raise V2Error(400, f"unknown input {tensor.get('name')!r}; this model takes one {DATATYPE} tensor "
                           f"named '{INPUT}'")
    if tensor.get("datatype") != DATATYPE:
        raise V2Error(400, f"input '{INPUT}' must have datatype {DATATYPE}, got {tensor.get('datatype')!r}")
    return tensor


def _elements(tensor: dict[str, Any], binary: bytes) -> list[str | bytes]:
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise V2Error(400, f"input '{INPUT}' shape must be a list of non-negative integers, got {shape!r}")
    size = (tensor.get("parameters") or {}).get("binary_data_size")
    if size is not None:
        elements: list[str | bytes] = list(_binary_elements(binary, size))
    else:
        if binary:
            raise V2Error(400, f"{len(binary)} bytes of binary data but no input has binary_data_size")
        elements = _json_elements(tensor.get("data"))
    if math.prod(shape) != len(elements):
        raise V2Error(400, f"input '{INPUT}' has shape {shape} ({math.prod(shape)} elements) but "
                           f"{len(elements)} elements of data")
    if not elements:
        raise V2Error(400, f"input '{INPUT}' is empty: send at least one element")
    return elements


def _json_elements(data: Any) -> list[str | bytes]:
    if not isinstance(data, list):
        raise V2Error(400, f"input '{INPUT}' needs \"data\" (a list) or binary_data_size")
    flat = _flatten(data)
    for i, element in enumerate(flat):
        if not isinstance(element, str):
            raise V2Error(400, f"input '{INPUT}' element {i} must be a string ({DATATYPE}), "
                               f"got {type(element).__name__}")
    return flat


def _flatten(data: list[Any]) -> list[Any]:
    """Row-major elements of nested lists (the protocol allows both flat and nested data)."""
    if not any(isinstance(d, list) for d in data):
        return data
    return [e for d in data for e in (_flatten(d) if isinstance(d, list) else [d])]


def _binary_elements(binary: bytes, size: Any) -> list[bytes]:
    """BYTES elements of the binary extension: each a 4-byte little-endian length and its bytes."""
    if not isinstance(size, int) or isinstance(size, bool) or size != len(binary):
        raise V2Error(400, f"input '{INPUT}' binary_data_size {size!r} does not match the {len(binary)} bytes "
                           "after the JSON header")
    elements, at = [], 0
    while at < len(binary):
        if at + 4 > len(binary):
            raise V2Error(400, f"input '{INPUT}' binary data is truncated at byte {at}")
        n = int.from_bytes(binary[at:at + 4], "little")
        if at + 4 + n > len(binary):
            raise V2Error(400, f"input '{INPUT}' element {len(elements)} claims {n} bytes; "
                               f"{len(binary) - at - 4} are left")
        elements.append(binary[at + 4:at + 4 + n])
        at += 4 + n
    return elements


def _binary_output(outputs: Any, params: dict[str, Any]) -> bool:
    if outputs is None:
        return params.get("binary_data_output") is True
    if not isinstance(outputs, list) or any(not isinstance(o, dict) or o.get("name") != OUTPUT for o in outputs):
        raise V2Error(400, f"this model has one output, '{OUTPUT}'; requested: {outputs!r}")
    wanted = [(o.get("parameters") or {}).get("binary_data") for o in outputs]
    return any(w is True for w in wanted) or (not any(w is False for w in wanted)
                                              and params.get("binary_data_output") is True)


def as_text(element: str | bytes, i: int) -> str:
    if isinstance(element, str):
        return element
    try:
        return element.decode("utf-8")
    except UnicodeDecodeError as e:
        raise V2Error(400, f"input '{INPUT}' element {i} is not UTF-8 text: {e}") from None


def as_object(element: str | bytes, i: int) -> dict[str, Any]:
    try:
        value = limits.loads(element)
    except limits.TooDeep as e:
        raise V2Error(400, f"input '{INPUT}' element {i}: {e}") from None
    except ValueError as e:
        raise V2Error(400, f"input '{INPUT}' element {i} is not JSON: {e}") from None
    if not isinstance(value, dict):
        raise V2Error(400, f"input '{INPUT}' element {i} must be a JSON object, got {type(value).__name__}")
    return value


def as_image_bytes(element: str | bytes, i: int) -> bytes:
    """Image bytes: as sent in the binary extension, or base64 text in JSON data."""
    if isinstance(element, bytes):
        return element
    try:
        return base64.b64decode(element, validate=True)
    except (binascii.Error, ValueError):
        raise V2Error(400, f"input '{INPUT}' element {i}: images in JSON data must be base64 "
                           "(or send them with the binary tensor extension)") from None


def infer_reply(model: str, version: str, request_id: str | None, items: list[bytes], predict_ms: float,
                binary: bool) -> tuple[bytes, int | None]:
    """(body, JSON header length or None) of the inference response: `items` (JSON texts, one per
    input element) as the BYTES tensor `output`, in JSON or in the binary extension."""
    head: dict[str, Any] = {"model_name": model, "model_version": version}
    if request_id is not None:
        head["id"] = request_id
    head["parameters"] = {"predict_ms": round(predict_ms, 3)}
    output: dict[str, Any] = {"name": OUTPUT, "datatype": DATATYPE, "shape": [len(items)]}
    head["outputs"] = [output]
    if not binary:
        output["data"] = [item.decode("utf-8") for item in items]
        return json.dumps(head, separators=(",", ":")).encode(), None
    blob = b"".join(len(item).to_bytes(4, "little") + item for item in items)
    output["parameters"] = {"binary_data_size": len(blob)}
    header = json.dumps(head, separators=(",", ":")).encode()
    return header + blob, len(header)


def model_metadata(name: str, version: str, task: str, params: dict[str, Any]) -> dict[str, Any]:
    """Model metadata: the one input and output, and under "parameters" the task and the manifest's
    params (type, default, range, choices, help) that an inference request may set."""
    return {"name": name, "versions": [version], "platform": "algostage",
            "inputs": [{"name": INPUT, "datatype": DATATYPE, "shape": [-1]}],
            "outputs": [{"name": OUTPUT, "datatype": DATATYPE, "shape": [-1]}],
            "parameters": {"task": task, "params": params}}


def server_metadata(version: str) -> dict[str, Any]:
    return {"name": "algostage-runner", "version": version, "extensions": EXTENSIONS}
