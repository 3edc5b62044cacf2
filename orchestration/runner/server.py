"""The runner's HTTP service (DESIGN §3): one algorithm, one process, four endpoints, and the
Open Inference Protocol v2 beside them (`v2_endpoints.py`, sharing validation, queue and metrics).

- `GET /health` → {"status": STARTING|READY|BUSY|SETUP_FAILED, "error", ...}; 200 only when
  READY or BUSY, 503 otherwise. SETUP_FAILED is final: the process stays up so the reason can be read.
  With ALGOSTAGE_EXIT_ON_SETUP_FAILURE=1 (a cluster's tasks) it exits with status 3 instead, after
  logging the reason: the orchestrator sees the task fail at once and rolls an update back.
- `POST /predict` → 200 {"outputs": [...], "predict_ms", "batch"}. Inputs: JSON {"inputs": [...]}
  or {"input": x} with optional "params" (text and json tasks; text/plain is one text input);
  a raw JPEG/PNG body — or a raw frame, NPY pixels (`images.decode_raw`) — or multipart parts
  named "images" (image and video tasks), params in the query string. Errors: 400 bad input, 413
  body over ALGOSTAGE_MAX_BODY_MB or more inputs than ALGOSTAGE_MAX_BATCH (default 1000) in one
  request, 422 bad params
  (with "problems" naming each), 503 not ready, 500 predict raised or returned a wrong result.
- `GET /info` → manifest, params schema, version/commit/service/replica, pid, uptime, status.
- `GET /metrics` → Prometheus text from a private registry.

`predict` is called in one dedicated worker thread (`worker.PredictThread`), so calls never
overlap and queue in order; while one runs or waits /health says BUSY. Images are decoded in that
thread when it is idle (one hand-off, lowest latency), else in a small pool, in parallel with the
predict in progress. POST /predict skips Starlette's router and middleware (`RunnerApp`).
"""
from __future__ import annotations

import asyncio
import bisect
import collections
import functools
import itertools
import json
import logging
import os
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import Response

from orchestration.runner import SETUP_FAILED_EXIT, limits
from orchestration.runner.images import JPEG_MAGIC, NPY_MAGIC, PNG_MAGIC, RawFrameError, decode as decode_image, \
    dimensions
from orchestration.runner.loader import PredictFn, load_predict
from orchestration.runner.manifest import MANIFEST_FILE, Manifest, ManifestError, ParamError, ParamValidator, \
    load_manifest
from orchestration.runner.worker import PredictThread

log = logging.getLogger("algostage.runner")

LATENCY_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60)
MAX_BATCH_PARTS = 1000
RAW_ON_LOOP_BYTES = 4 << 20   # raw frames decoded on the event loop: a copy of at most ~0.5 ms


class Status(str, Enum):
    STARTING = "STARTING"
    READY = "READY"
    BUSY = "BUSY"
    SETUP_FAILED = "SETUP_FAILED"


class Refused(Exception):
    """A request answered with an error status; becomes {"error": message, "problems"?: [...]}."""

    def __init__(self, status: int, message: str, problems: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.problems = status, message, problems

    def response(self) -> Response:
        body: dict[str, Any] = {"error": self.message}
        if self.problems is not None:
            body["problems"] = self.problems
        return json_response(body, self.status)


class Metrics:
    """The runner's Prometheus series, in a private registry (several runners may share a process in
    tests). Counted in plain ints and exposed by a custom collector: prometheus-client's own counters
    take a lock per increment, ~2 us of the ~15 us of Python a trivial predict costs. Each count has
    one writer (requests and errors the event loop, inputs and predict times the predict thread),
    so no lock is needed."""

    def __init__(self) -> None:
        self.requests: collections.Counter[tuple[str, int]] = collections.Counter()
        self.errors = 0
        self.inputs = 0
        self._buckets = {s: [0] * (len(LATENCY_BUCKETS) + 1) for s in ("ok", "error")}
        self._sums = {"ok": 0.0, "error": 0.0}
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def request(self, endpoint: str, status: int) -> None:
        self.requests[(endpoint, status)] += 1

    def predicted(self, seconds: float, ok: bool) -> None:
        status = "ok" if ok else "error"
        self._buckets[status][bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self._sums[status] += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("algostage_requests", "HTTP requests by endpoint and status code",
                                       labels=["endpoint", "status"])
        for (endpoint, status), n in sorted(self.requests.items()):
            requests.add_metric([endpoint, str(status)], n)
        yield requests
        yield CounterMetricFamily("algostage_errors", "Failed /predict and infer requests (HTTP 5xx)", self.errors)
        predict = HistogramMetricFamily("algostage_predict_seconds", "Time spent inside predict", labels=["status"])
        for status, counts in self._buckets.items():
            bounds = [*(str(b) for b in LATENCY_BUCKETS), "+Inf"]
            predict.add_metric([status], list(zip(bounds, itertools.accumulate(counts))), self._sums[status])
        yield predict
        yield CounterMetricFamily("algostage_inputs", "Inputs passed to predict", self.inputs)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def json_default(o: Any) -> Any:
    """JSON for what algorithms commonly return: numpy scalars and arrays, sets, paths, models."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, frozenset)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "model_dump"):
        return o.model_dump(mode="json")
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


_ENCODER = json.JSONEncoder(default=json_default, separators=(",", ":"))


def dumps(obj: Any) -> bytes:
    return _ENCODER.encode(obj).encode()


def encode_list(outputs: list[Any]) -> bytes:
    """The outputs as one JSON array (the native reply)."""
    return dumps(outputs)


def encode_items(outputs: list[Any]) -> list[bytes]:
    """Each output as its own JSON text (the V2 reply's BYTES elements)."""
    return [dumps(o) for o in outputs]


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(dumps(obj), status, media_type="application/json")


class Runner:
    """State of one runner process and its endpoint handlers. `loader` and `env` are test seams."""

    def __init__(self, package_dir: Path, env: Mapping[str, str] = os.environ,
                 loader: Callable[[Path, str], PredictFn] = load_predict) -> None:
        self.package_dir = Path(package_dir)
        self.max_body = int(float(env.get("ALGOSTAGE_MAX_BODY_MB", "32")) * 1024 * 1024)
        self.max_batch = max(1, int(env.get("ALGOSTAGE_MAX_BATCH", str(MAX_BATCH_PARTS))))
        self.identity = {key: env.get(f"ALGOSTAGE_{key.upper()}")
                         for key in ("version", "commit", "service", "replica")}
        self.metrics = Metrics()
        self.status, self.error, self.setup_s = Status.STARTING, None, None
        self._exit_on_failure = env.get("ALGOSTAGE_EXIT_ON_SETUP_FAILURE", "").lower() in ("1", "true", "yes")
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._t0 = time.monotonic()
        self._loader = loader
        self._predict: PredictFn | None = None
        # One thread calls predict, so the model never runs concurrently; calls queue in order.
        self._predict_thread = PredictThread()
        self._decode_threads = ThreadPoolExecutor(min(4, os.cpu_count() or 1), thread_name_prefix="decode")
        self.manifest: Manifest | None = None
        self.model_name = self.package_dir.name
        self.version = self.identity["version"] or "1"
        try:
            self.manifest = load_manifest(self.package_dir)
        except ManifestError as e:
            self._fail(f"invalid {MANIFEST_FILE}: {e}")
            return
        self.model_name = self.manifest.name
        self._params = ParamValidator(self.manifest.params)
        self.kind = self.manifest.task.input_kind
        self._task = self.manifest.task.value

    # --- lifecycle ------------------------------------------------------------------------------

    def start_setup(self) -> threading.Thread | None:
        """Import the entrypoint and run setup() in a background thread; None if there is nothing to set up."""
        if self.status is not Status.STARTING:
            return None
        thread = threading.Thread(target=self._setup, name="algorithm-setup", daemon=True)
        thread.start()
        return thread

    def _setup(self) -> None:
        assert self.manifest is not None
        t0 = time.perf_counter()
        try:
            self._predict = self._loader(self.package_dir, self.manifest.entrypoint)
        except BaseException as e:  # noqa: BLE001 - SystemExit in setup must read as SETUP_FAILED too
            log.error("setup failed:\n%s", traceback.format_exc())
            self._fail(f"{type(e).__name__}: {e}")
            return
        self.setup_s = round(time.perf_counter() - t0, 3)
        self.status = Status.READY
        log.info("%s is READY (setup took %.2f s)", self.manifest.name, self.setup_s)

    def _fail(self, error: str) -> None:
        self.error, self.status = error, Status.SETUP_FAILED
        log.error("SETUP_FAILED: %s", error)
        if self._exit_on_failure:
            logging.shutdown()
            os._exit(SETUP_FAILED_EXIT)   # from the setup thread too: the whole process ends

    def close(self) -> None:
        """Stop taking work; a predict still running is abandoned (the process is about to exit)."""
        self._predict_thread.close()
        self._decode_threads.shutdown(wait=False, cancel_futures=True)

    def current_status(self) -> Status:
        busy = self._predict_thread.pending > 0
        return Status.BUSY if busy and self.status is Status.READY else self.status

    # --- endpoints ------------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        status = self.current_status()
        code = 200 if status in (Status.READY, Status.BUSY) else 503
        self.metrics.request("health", code)
        queued = max(0, self._predict_thread.pending - 1)
        return json_response({"status": status.value, "error": self.error, "pid": os.getpid(),
                              "uptime_s": round(time.monotonic() - self._t0, 3), "queued": queued}, code)

    async def info(self, request: Request) -> Response:
        m = self.manifest
        body = {"manifest": m.model_dump(mode="json", exclude_none=True) if m else None,
                "params_schema": m.params_schema() if m else None, **self.identity,
                "pid": os.getpid(), "uptime_s": round(time.monotonic() - self._t0, 3), "started_at": self.started_at,
                "status": self.current_status().value, "error": self.error, "setup_s": self.setup_s,
                "max_body_mb": round(self.max_body / 1024 / 1024, 3), "max_batch": self.max_batch}
        self.metrics.request("info", 200)
        return json_response(body)

    async def metrics_endpoint(self, request: Request) -> Response:
        self.metrics.request("metrics", 200)
        return Response(self.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    async def predict(self, request: Request) -> Response:
        try:
            response = await self._predict_request(request)
        except Refused as r:
            response = r.response()
        except Exception as e:  # noqa: BLE001 - a bug here must still answer JSON and keep serving
            log.exception("unexpected error in /predict")
            response = Refused(500, f"{type(e).__name__}: {e}").response()
        if response.status_code >= 500:
            self.metrics.errors += 1
        self.metrics.request("predict", response.status_code)
        return response

    # --- /predict -------------------------------------------------------------------------------

    async def _predict_request(self, request: Request) -> Response:
        self.require_ready()
        body = await self.read_body(request)
        mime = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        raw_params: dict[str, Any] = dict(request.query_params) if request.scope["query_string"] else {}
        if mime == "multipart/form-data":
            inputs = await self._multipart(request, body, raw_params)
        elif mime == "application/json" or mime.endswith("+json"):
            inputs = self._json_inputs(body, raw_params)
        elif mime == "text/plain" and self.kind == "text":
            inputs = [_utf8(body)]
        else:
            inputs = [body] if self.kind == "image" else self._refuse_body(mime)
        decode = functools.partial(decode_images, mime=mime) if self.kind == "image" else None
        encoded, ms = await self.compute(inputs, self.check_params(raw_params), encode_list, decode)
        return Response(b'{"outputs":%s,"predict_ms":%.3f,"batch":%d}' % (encoded, ms, len(inputs)),
                        media_type="application/json")

    def require_ready(self) -> None:
        """Refused(503) unless setup has finished."""
        if self.status is not Status.READY:
            raise Refused(503, f"service is {self.status.value}" + (f": {self.error}" if self.error else ""))

    async def read_body(self, request: Request) -> bytes:
        """The request body; Refused(413) past ALGOSTAGE_MAX_BODY_MB, (400) for a bad Content-Length."""
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise Refused(400, f"bad Content-Length {length!r}")
            if int(length) > self.max_body:
                raise Refused(413, self._too_large())
            return await request.body()
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise Refused(413, self._too_large())
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self) -> str:
        return f"request body over the limit of {self.max_body / 1024 / 1024:g} MB (ALGOSTAGE_MAX_BODY_MB)"

    def _refuse_body(self, mime: str) -> list[Any]:
        raise Refused(400, f"the {self._task} task takes JSON "
                           f'{{"inputs": [...], "params": {{...}}}}, not {mime or "a body without Content-Type"}')

    def _json_inputs(self, body: bytes, params: dict[str, Any]) -> list[Any]:
        if self.kind == "image":
            raise Refused(400, "image tasks take a raw JPEG/PNG body (params in the query string) or "
                               "multipart/form-data parts named 'images'")
        try:
            doc = limits.loads(body)
        except limits.TooDeep as e:
            raise Refused(400, str(e)) from None
        except ValueError as e:
            raise Refused(400, f"malformed JSON: {e}") from None
        if not isinstance(doc, dict) or not ("inputs" in doc or "input" in doc):
            raise Refused(400, 'the body must be a JSON object with "inputs" (a list) or "input"')
        inputs = doc["inputs"] if "inputs" in doc else [doc["input"]]
        if not isinstance(inputs, list) or not inputs:
            raise Refused(400, '"inputs" must be a non-empty list')
        extra = doc.get("params") or {}
        if not isinstance(extra, dict):
            raise Refused(400, '"params" must be a JSON object')
        params.update(extra)
        want, name = (str, "a string") if self.kind == "text" else (dict, "a JSON object")
        for i, item in enumerate(inputs):
            if not isinstance(item, want):
                raise Refused(400, f"inputs[{i}] must be {name} for {self._task} tasks, got {type(item).__name__}")
        return inputs

    async def _multipart(self, request: Request, body: bytes, params: dict[str, Any]) -> list[Any]:
        if self.kind != "image":
            raise Refused(400, "multipart/form-data is for image tasks; send JSON {\"inputs\": [...]}")

        async def stream() -> AsyncIterator[bytes]:
            yield body

        try:
            form = await MultiPartParser(request.headers, stream(), max_files=MAX_BATCH_PARTS,
                                         max_fields=MAX_BATCH_PARTS, max_part_size=self.max_body).parse()
        except MultiPartException as e:
            raise Refused(400, f"malformed multipart body: {e.message}") from None
        blobs: list[bytes] = []
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key in ("images", "image"):
                    blobs.append(await value.read())
                await value.close()
            else:
                params[key] = value
        if not blobs:
            raise Refused(400, "multipart body has no file parts named 'images'")
        return blobs

    def check_params(self, raw: Mapping[str, Any], status: int = 422) -> dict[str, Any]:
        """The keyword arguments for predict; Refused(`status`, problems naming each bad parameter)."""
        try:
            return self._params.validate(raw)
        except ParamError as e:
            raise Refused(status, f"invalid parameters: {e}",
                          [{"field": p.field, "reason": p.reason} for p in e.problems]) from None

    async def compute(self, inputs: list[Any], params: dict[str, Any], encode: Callable[[list[Any]], Any],
                      decode: Callable[[list[Any]], list[Any]] | None = None) -> tuple[Any, float]:
        """(encode(outputs), predict_ms) of predict on `inputs`, in the predict thread, after the calls
        queued before. `decode` (image tasks) turns the blobs into images: in the predict thread when it
        is idle, else in the decode pool while the predict in progress runs (raw frames of at most
        RAW_ON_LOOP_BYTES in all, whose decoding is a copy, on the event loop). Refused(413) for too many
        inputs, (400) for an undecodable image, (500) when predict fails or returns a wrong result."""
        if len(inputs) > self.max_batch:
            raise Refused(413, f"{len(inputs)} inputs in one request; at most {self.max_batch} "
                               "(ALGOSTAGE_MAX_BATCH): send them in smaller batches")
        if decode is not None and self._predict_thread.pending:
            raw = all(isinstance(b, bytes) and b.startswith(NPY_MAGIC) for b in inputs)
            if raw and sum(map(len, inputs)) <= RAW_ON_LOOP_BYTES:
                inputs = decode(inputs)   # raw frames: a copy, cheaper here than two hops to the pool and back
            else:
                inputs = await asyncio.get_running_loop().run_in_executor(self._decode_threads, decode, inputs)
            decode = None
        return await self._predict_thread.run(self._run, inputs, params, decode, encode)

    def _run(self, inputs: list[Any], params: dict[str, Any], decode: Callable[[list[Any]], list[Any]] | None,
             encode: Callable[[list[Any]], Any]) -> tuple[Any, float]:
        """Runs in the predict thread: decode, predict, check and encode its outputs. Returns (encoded, ms)."""
        assert self._predict is not None
        if decode is not None:
            inputs = decode(inputs)
        t0 = time.perf_counter()
        try:
            outputs = self._predict(inputs, **params)
        except SystemExit as e:
            log.error("predict called sys.exit(%s); the process exits", e.code)
            os._exit(e.code if isinstance(e.code, int) else 1)
        except Exception as e:  # noqa: BLE001 - any algorithm error is a 500, the runner keeps serving
            self.metrics.predicted(time.perf_counter() - t0, ok=False)
            log.error("predict failed:\n%s", traceback.format_exc())
            raise Refused(500, f"{type(e).__name__}: {e}") from None
        seconds = time.perf_counter() - t0
        self.metrics.predicted(seconds, ok=True)
        return self._encode(outputs, len(inputs), encode), seconds * 1000

    def _encode(self, outputs: Any, n: int, encode: Callable[[list[Any]], Any]) -> Any:
        if isinstance(outputs, (tuple, np.ndarray)):
            outputs = list(outputs)
        if not isinstance(outputs, list) or len(outputs) != n:
            got = f"{len(outputs)} results" if isinstance(outputs, list) else f"a {type(outputs).__name__}"
            raise Refused(500, f"predict returned {got} for {n} input{'s' if n != 1 else ''}; "
                               "it must return a list with one result per input")
        try:
            encoded = encode(outputs)
        except (TypeError, ValueError) as e:
            raise Refused(500, f"predict returned results that are not JSON-serialisable: {e}") from None
        self.metrics.inputs += n
        return encoded


def _utf8(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Refused(400, f"text/plain body is not UTF-8: {e}") from None


def decode_images(blobs: list[bytes], mime: str = "", label: str = "images",
                  max_pixels: int = limits.MAX_IMAGE_PIXELS) -> list[np.ndarray]:
    """Each blob decoded to a BGR uint8 array (`images.decode`). Refused(400) names the first one
    that is not an image (`label[i]`; a single blob of the native API is "body"), or whose header
    claims more than `max_pixels` pixels (checked before decoding: a decompression bomb allocates
    nothing). Without a MIME type (or application/octet-stream) only JPEG, PNG and raw frames (NPY,
    `images.decode_raw`) are accepted; a raw frame is recognised by its magic bytes whatever the
    MIME type says, and one that is not uint8 BGR or grey, or whose data does not match its
    header, is refused saying why."""
    images = []
    for i, blob in enumerate(blobs):
        where = f"{label}[{i}]" if len(blobs) > 1 or label != "images" else "body"
        if not blob:
            raise Refused(400, f"{where} is empty")
        if mime in ("", "application/octet-stream") and not blob.startswith((JPEG_MAGIC, PNG_MAGIC, NPY_MAGIC)):
            raise Refused(400, f"{where} is not a JPEG, PNG or raw (NPY) image")
        size = dimensions(blob)
        if size is not None and size[0] * size[1] > max_pixels:
            raise Refused(400, f"{where} is {size[0]}x{size[1]} pixels, over the limit of {max_pixels:,} "
                               "(ALGOSTAGE_MAX_IMAGE_PIXELS)")
        try:
            image = decode_image(blob)
        except RawFrameError as e:
            raise Refused(400, f"{where}: {e}") from None
        if image is None:
            raise Refused(400, f"{where} cannot be decoded as an image ({len(blob)} bytes)")
        images.append(image)
    return images
