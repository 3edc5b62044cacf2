"""The runner's HTTP service (DESIGN §3): one algorithm, one process, four endpoints.

- `GET /health` → {"status": STARTING|READY|BUSY|SETUP_FAILED, "error", ...}; 200 only when
  READY or BUSY, 503 otherwise. SETUP_FAILED is final: the process stays up so the reason can be read.
- `POST /predict` → 200 {"outputs": [...], "predict_ms", "batch"}. Inputs: JSON {"inputs": [...]}
  or {"input": x} with optional "params" (text and json tasks; text/plain is one text input);
  a raw JPEG/PNG body or multipart parts named "images" (image and video tasks), params in the
  query string. Errors: 400 bad input, 413 body over ALGOSTAGE_MAX_BODY_MB, 422 bad params
  (with "problems" naming each), 503 not ready, 500 predict raised or returned a wrong result.
- `GET /info` → manifest, params schema, version/commit/service/replica, pid, uptime, status.
- `GET /metrics` → Prometheus text from a private registry.

`predict` is called in one dedicated worker thread, so calls never overlap and queue in order;
while one runs or waits /health says BUSY. Images are decoded in that thread when it is idle (one
hand-off, lowest latency), else in a small pool, in parallel with the predict in progress.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orchestration.runner.loader import PredictFn, load_predict
from orchestration.runner.manifest import MANIFEST_FILE, Manifest, ManifestError, ParamError, ParamValidator, \
    load_manifest

log = logging.getLogger("algostage.runner")

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LATENCY_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60)
MAX_BATCH_PARTS = 1000


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
    """The runner's Prometheus series, in a private registry (several runners may share a process in tests)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter("algostage_requests", "HTTP requests by endpoint and status code",
                                 ["endpoint", "status"], registry=self.registry)
        self.errors = Counter("algostage_errors", "Failed /predict requests (HTTP 5xx)", registry=self.registry)
        self._predict = Histogram("algostage_predict_seconds", "Time spent inside predict", ["status"],
                                  buckets=LATENCY_BUCKETS, registry=self.registry)
        self.inputs = Counter("algostage_inputs", "Inputs passed to predict", registry=self.registry)
        self._request_children: dict[tuple[str, int], Any] = {}
        self._predict_children = {s: self._predict.labels(s) for s in ("ok", "error")}

    def request(self, endpoint: str, status: int) -> None:
        child = self._request_children.get((endpoint, status))
        if child is None:
            child = self._request_children[(endpoint, status)] = self._requests.labels(endpoint, str(status))
        child.inc()

    def predicted(self, seconds: float, ok: bool) -> None:
        self._predict_children["ok" if ok else "error"].observe(seconds)

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


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, default=json_default, separators=(",", ":")).encode()


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(dumps(obj), status, media_type="application/json")


class Runner:
    """State of one runner process and its endpoint handlers. `loader` and `env` are test seams."""

    def __init__(self, package_dir: Path, env: Mapping[str, str] = os.environ,
                 loader: Callable[[Path, str], PredictFn] = load_predict) -> None:
        self.package_dir = Path(package_dir)
        self.max_body = int(float(env.get("ALGOSTAGE_MAX_BODY_MB", "32")) * 1024 * 1024)
        self.identity = {key: env.get(f"ALGOSTAGE_{key.upper()}")
                         for key in ("version", "commit", "service", "replica")}
        self.metrics = Metrics()
        self.status, self.error, self.setup_s = Status.STARTING, None, None
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._t0 = time.monotonic()
        self._loader = loader
        self._predict: PredictFn | None = None
        # One thread calls predict, so the model never runs concurrently; calls queue in its executor.
        # (starlette's run_in_threadpool + an asyncio.Lock measured ~40% fewer req/s, docs/BENCHMARKS.md.)
        self._predict_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self._decode_threads = ThreadPoolExecutor(min(4, os.cpu_count() or 1), thread_name_prefix="decode")
        self._submitted = 0   # written by the event loop only
        self._finished = 0    # predicts done or cancelled, under _finished_lock
        self._finished_lock = threading.Lock()
        self.manifest: Manifest | None = None
        try:
            self.manifest = load_manifest(self.package_dir)
        except ManifestError as e:
            self._fail(f"invalid {MANIFEST_FILE}: {e}")
            return
        self._params = ParamValidator(self.manifest.params)
        self._kind = self.manifest.task.input_kind
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

    def close(self) -> None:
        """Stop taking work; a predict still running is abandoned (the process is about to exit)."""
        self._predict_thread.shutdown(wait=False, cancel_futures=True)
        self._decode_threads.shutdown(wait=False, cancel_futures=True)

    def current_status(self) -> Status:
        busy = self._submitted != self._finished
        return Status.BUSY if busy and self.status is Status.READY else self.status

    # --- endpoints ------------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        status = self.current_status()
        code = 200 if status in (Status.READY, Status.BUSY) else 503
        self.metrics.request("health", code)
        queued = max(0, self._submitted - self._finished - 1)
        return json_response({"status": status.value, "error": self.error, "pid": os.getpid(),
                              "uptime_s": round(time.monotonic() - self._t0, 3), "queued": queued}, code)

    async def info(self, request: Request) -> Response:
        m = self.manifest
        body = {"manifest": m.model_dump(mode="json", exclude_none=True) if m else None,
                "params_schema": m.params_schema() if m else None, **self.identity,
                "pid": os.getpid(), "uptime_s": round(time.monotonic() - self._t0, 3), "started_at": self.started_at,
                "status": self.current_status().value, "error": self.error, "setup_s": self.setup_s,
                "max_body_mb": round(self.max_body / 1024 / 1024, 3)}
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
            self.metrics.errors.inc()
        self.metrics.request("predict", response.status_code)
        return response

    # --- /predict -------------------------------------------------------------------------------

    async def _predict_request(self, request: Request) -> Response:
        if self.status is not Status.READY:
            raise Refused(503, f"service is {self.status.value}" + (f": {self.error}" if self.error else ""))
        body = await self._read_body(request)
        mime = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        raw_params: dict[str, Any] = dict(request.query_params)
        if mime == "multipart/form-data":
            inputs = await self._multipart(request, body, raw_params)
        elif mime == "application/json" or mime.endswith("+json"):
            inputs = self._json_inputs(body, raw_params)
        elif mime == "text/plain" and self._kind == "text":
            inputs = [_utf8(body)]
        else:
            inputs = [body] if self._kind == "image" else self._refuse_body(mime)
        params = self._check_params(raw_params)
        if self._kind != "image":
            return await self._call(inputs, params)
        if self._submitted == self._finished:  # idle: decode in the predict thread, one hand-off
            return await self._call(inputs, params, decode=mime)
        loop = asyncio.get_running_loop()   # busy: decode in parallel with the predict in progress
        inputs = await loop.run_in_executor(self._decode_threads, decode_images, inputs, mime)
        return await self._call(inputs, params)

    async def _read_body(self, request: Request) -> bytes:
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
        if self._kind == "image":
            raise Refused(400, "image tasks take a raw JPEG/PNG body (params in the query string) or "
                               "multipart/form-data parts named 'images'")
        try:
            doc = json.loads(body)
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
        want, name = (str, "a string") if self._kind == "text" else (dict, "a JSON object")
        for i, item in enumerate(inputs):
            if not isinstance(item, want):
                raise Refused(400, f"inputs[{i}] must be {name} for {self._task} tasks, got {type(item).__name__}")
        return inputs

    async def _multipart(self, request: Request, body: bytes, params: dict[str, Any]) -> list[Any]:
        if self._kind != "image":
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

    def _check_params(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return self._params.validate(raw)
        except ParamError as e:
            raise Refused(422, f"invalid parameters: {e}",
                          [{"field": p.field, "reason": p.reason} for p in e.problems]) from None

    async def _call(self, inputs: list[Any], params: dict[str, Any], decode: str | None = None) -> Response:
        """Run predict in the predict thread; with `decode` (the body's MIME type) the inputs are
        image blobs, decoded there first."""
        self._submitted += 1
        job = self._predict_thread.submit(self._run, inputs, params, decode)
        job.add_done_callback(self._job_done)  # also runs if the job is cancelled before it started
        encoded, ms = await asyncio.wrap_future(job)
        return Response(b'{"outputs":%s,"predict_ms":%.3f,"batch":%d}' % (encoded, ms, len(inputs)),
                        media_type="application/json")

    def _job_done(self, job: Future) -> None:
        with self._finished_lock:
            self._finished += 1

    def _run(self, inputs: list[Any], params: dict[str, Any], decode: str | None) -> tuple[bytes, float]:
        """Runs in the predict thread: predict, check and encode its outputs. Returns (JSON, ms)."""
        assert self._predict is not None
        if decode is not None:
            inputs = decode_images(inputs, decode)
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
        return self._encode(outputs, len(inputs)), seconds * 1000

    def _encode(self, outputs: Any, n: int) -> bytes:
        if isinstance(outputs, (tuple, np.ndarray)):
            outputs = list(outputs)
        if not isinstance(outputs, list) or len(outputs) != n:
            got = f"{len(outputs)} results" if isinstance(outputs, list) else f"a {type(outputs).__name__}"
            raise Refused(500, f"predict returned {got} for {n} input{'s' if n != 1 else ''}; "
                               "it must return a list with one result per input")
        try:
            encoded = dumps(outputs)
        except (TypeError, ValueError) as e:
            raise Refused(500, f"predict returned results that are not JSON-serialisable: {e}") from None
        self.metrics.inputs.inc(n)
        return encoded


def _utf8(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Refused(400, f"text/plain body is not UTF-8: {e}") from None


def decode_images(blobs: list[bytes], mime: str = "") -> list[np.ndarray]:
    """Each blob decoded to a BGR uint8 array. Refused(400) names the first one that is not an image."""
    import cv2  # imported here so text and json runners do not pay for OpenCV

    images = []
    for i, blob in enumerate(blobs):
        where = f"images[{i}]" if len(blobs) > 1 else "body"
        if not blob:
            raise Refused(400, f"{where} is empty")
        if mime in ("", "application/octet-stream") and not blob.startswith((JPEG_MAGIC, PNG_MAGIC)):
            raise Refused(400, f"{where} is not a JPEG or PNG image")
        image = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise Refused(400, f"{where} cannot be decoded as an image ({len(blob)} bytes)")
        images.append(image)
    return images


def build_app(runner: Runner) -> Starlette:
    """The ASGI app of `runner`; setup starts (in a thread) when the app starts."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runner.start_setup()
        yield

    return Starlette(routes=[
        Route("/health", runner.health, methods=["GET"]),
        Route("/info", runner.info, methods=["GET"]),
        Route("/metrics", runner.metrics_endpoint, methods=["GET"]),
        Route("/predict", runner.predict, methods=["POST"]),
    ], lifespan=lifespan)
