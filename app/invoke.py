"""Calling deployed services: where a call goes comes from the router (the routing table);
requests are pooled keep-alive connections (app/replica_transport.py); a refused connection is
retried on the next route; timeouts, retries and the inputs per request come from the service's
settings; every call is recorded in `algorithm_calls` (service, version, params, input reference
and hash, output, status, total and predict time, user, time).

A `Target` is a service resolved once (its row and its settings): a caller that sends many
calls to one service (the frames of a video) resolves it once and passes the Target to every
`invoke`; only the router is asked per call, and it answers from memory. A call by name uses a
Target kept TARGET_CACHE_S seconds, as the router keeps its routes: a change made in this process
(a deploy's switch to a new version, a canary, a changed setting, a removal) applies at the next
call, one made by another process (the CLI, the pages) within TARGET_CACHE_S; a refused
connection forgets it with the routes.

Raw frames (NumPy's NPY format, `media.encode_raw`: the video pipeline's frames, no codec on
either side) go as they are to a replica on this host (a loopback address); to any other host, and
to a replica that refused one (a runner built before raw frames: 400), they go as JPEG (quality
90); when the JPEG is taken, that replica gets JPEG from then on. So a caller may always send raw frames.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import Engine, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, sessionmaker

from app.auth import Action, Actor, internal, require
from app.catalog.manifest import input_kind
from app.changes import Changes
from app.errors import AlgoStageError, Message, Problem, ValidationFailed
from app.models import Algorithm, AlgorithmCall, AlgorithmService, AlgorithmVersion, ServiceConfig, utcnow
from app.replica_transport import ReplicaTransport
from app.services.config import ServiceConfigStore, parsed
from app.services.routing import Route, Router
from app.services.rows import get_service
from orchestration.errors import kept
from orchestration.runner.images import NPY_MAGIC

IMAGE_TYPES = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG": "image/png", NPY_MAGIC: "application/x-npy"}
REFUSED = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)
TARGET_CACHE_S = 1.0    # like the router's routes (app/services/routing.py)
SERVICE_ROWS = Changes(AlgorithmService, ServiceConfig, AlgorithmVersion, Algorithm)   # what a Target is read from
INSERT_CALL = insert(AlgorithmCall)   # one statement, compiled once (an ORM flush costs 3-4 times as much)


class InvokeError(AlgoStageError):
    """A call failed; the message says why (service down, bad parameter, error in predict…)."""
    code = "invoke_failed"

    def __init__(self, message: str, *, status: int | None = None, problems: list | None = None,
                 hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.problems = problems or []


@dataclass(frozen=True)
class CallResult:
    call_id: int | None
    service: str
    version: str
    outputs: list[Any]
    total_ms: float
    predict_ms: float | None
    replica: str


@dataclass(frozen=True)
class Target:
    """A service as one call needs it, looked up once."""
    name: str
    service_id: int
    algorithm_id: int
    version_id: int | None
    version: str
    task: str
    manifest: dict[str, Any] | None
    timeout: float
    retries: int
    max_batch: int

    @property
    def input_kind(self) -> str:
        return input_kind(self.task)


def content_hash(data: bytes | str | dict | list) -> str:
    if isinstance(data, (dict, list)):
        data = json.dumps(data, sort_keys=True, ensure_ascii=False)
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


def image_type(data: bytes) -> str | None:
    return next((t for magic, t in IMAGE_TYPES.items() if data.startswith(magic)), None)


class Invoker:
    def __init__(self, sessions: sessionmaker[Session], configs: ServiceConfigStore, router: Router, *,
                 client: httpx.Client | None = None, record: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._sessions = sessions
        self._configs = configs
        self._router = router
        self._client = client                                         # given (tests): every call through it
        self._transport = ReplicaTransport() if client is None else None   # else straight to this transport
        self._record = record
        self._clock = clock   # a seam for tests: how old a kept Target is
        self._engine: Engine | None = sessions.kw.get("bind")
        self._targets: dict[str, tuple[float, int, Target]] = {}   # name → (read at, SERVICE_ROWS, target)
        self._jpeg_only: set[str] = set()   # replica URLs that refused a raw frame

    def target(self, actor: Actor, name: str) -> Target:
        """The service `name` resolved for calls: one read of its row and one of its settings.
        ValidationFailed when there is no such service."""
        require(actor, Action.VIEW_SHOWCASE)
        with self._sessions() as s:
            svc = get_service(s, name, joinedload(AlgorithmService.version), joinedload(AlgorithmService.algorithm),
                              joinedload(AlgorithmService.configs))   # a call resolves its service in one read
            version = svc.version
            row = (svc.id, svc.algorithm_id, svc.version_id, version.tag if version else "?", svc.algorithm.task,
                   dict(version.manifest) if version else None)
            settings = parsed({c.key: c.value for c in svc.configs})
        return Target(name, *row, settings["timeout_s"], settings["retries"], settings["max_batch"])

    def invoke(self, actor: Actor, service: str | Target, inputs: list[Any], params: dict[str, Any] | None = None,
               *, input_ref: str = "", record: bool = True) -> CallResult:
        """Call a service (by name, or a Target resolved earlier) with a batch of inputs (texts,
        dicts, or image bytes); a batch larger than the service's `max_batch` goes in several
        requests, and the outputs come back in order. Records the call (unless `record` is False:
        a sweep records a sample of its calls; `call_id` is then None); InvokeError when it fails."""
        require(actor, Action.VIEW_SHOWCASE)
        target = service if isinstance(service, Target) else self._kept_target(actor, service)
        params = params or {}
        inputs = check_inputs(target, inputs, params)
        t0 = time.perf_counter()
        replica, status, body, error = "", None, None, ""
        try:
            replica, status, body = self._send_batches(target, inputs, params)
        except InvokeError as e:
            error = e.message   # a Message: the history says it in its reader's language
            raise
        finally:
            total_ms = (time.perf_counter() - t0) * 1000
            call_id = self._save(actor, target, inputs, params, input_ref, body, status, error, total_ms,
                                 replica) if record else None
        return CallResult(call_id, target.name, target.version, body["outputs"], total_ms, body.get("predict_ms"),
                          replica)

    @internal("drops what this invoker cached about a service; changes nothing protected")
    def forget(self, service: str) -> None:
        """Drop the kept Target of `service` (the next call by name reads it again)."""
        self._targets.pop(service, None)

    # --- internals ------------------------------------------------------------------------------

    def _kept_target(self, actor: Actor, name: str) -> Target:
        now = self._clock()
        hit = self._targets.get(name)
        if hit is not None and hit[1] == SERVICE_ROWS.value and now - hit[0] < TARGET_CACHE_S:
            return hit[2]
        seen = SERVICE_ROWS.value   # before the read: a change during it makes the entry stale at once
        target = self.target(actor, name)
        if len(self._targets) > 10_000:
            self._targets.clear()
        self._targets[name] = (now, seen, target)
        return target

    def _send_batches(self, target: Target, inputs: list[Any], params: dict[str, Any]) -> tuple[str, int, dict]:
        """One request per `max_batch` inputs; returns the replica(s), status and merged body."""
        size = max(1, target.max_batch)
        replicas, outputs, predict_ms = [], [], []
        for start in range(0, max(len(inputs), 1), size):
            replica, response = self._send(target, inputs[start:start + size], params)
            body = self._json(response)
            if response.status_code != 200:
                raise InvokeError(self._error_message(target.name, response.status_code, body),
                                  status=response.status_code, problems=body.get("problems", []))
            replicas.append(replica)
            outputs += body.get("outputs") or []
            predict_ms.append(body.get("predict_ms"))
        known = [ms for ms in predict_ms if isinstance(ms, (int, float))]
        merged = {"outputs": outputs, "predict_ms": sum(known) if known else None}
        return ",".join(dict.fromkeys(replicas)), 200, merged

    def _send(self, target: Target, inputs: list[Any], params: dict[str, Any]) -> tuple[str, httpx.Response]:
        """To the router's first route; a refused or dropped connection (a replica that was just
        killed or retired) or a 503 (a replica not READY: restarting after a crash, still in its
        setup) moves to the next route, at most `retries` times, after the router forgets what it
        cached. The last route's 503 is the answer."""
        routes = self._router.routes(target.name)[: target.retries + 1]
        if not routes:
            raise InvokeError(Message("invoke.no_route", "{name} is not reachable: no replica is in rotation (is it stopped?)",
                                      name=target.name), hint=Message("invoke.no_route.hint", "start it, or deploy it"))
        last: Exception | None = None
        for attempt, route in enumerate(routes):
            try:
                response = self._post(route, target, inputs, params)
            except REFUSED as e:
                last = e
                self._router.forget(target.name)
                self.forget(target.name)
                continue
            except httpx.TimeoutException as e:
                raise InvokeError(Message("invoke.timeout", "{name} did not answer within {seconds:g} s", name=target.name,
                                          seconds=target.timeout),
                                  hint=Message("invoke.timeout.hint", "raise its timeout_s setting, or send smaller inputs")) from e
            if response.status_code != 503 or attempt == len(routes) - 1:
                return route.replica, response
            self._router.forget(target.name)
            self.forget(target.name)
        raise InvokeError(Message("invoke.refused", "{name} is not reachable (is it stopped?): {error}", name=target.name,
                                  error=str(last))) from last

    def _post(self, route: Route, target: Target, inputs: list[Any], params: dict[str, Any]) -> httpx.Response:
        url = f"{route.url}/predict"
        if target.input_kind != "image":
            return self._send_post(url, target.timeout, json={"inputs": inputs, "params": params})
        raw = any(d.startswith(NPY_MAGIC) for d in inputs)
        if raw and not self._takes_raw(route):
            inputs = [raw_as_jpeg(d) for d in inputs]
        response = self._post_images(url, target.timeout, inputs, params)
        if raw and response.status_code == 400 and self._takes_raw(route):
            response = self._post_images(url, target.timeout, [raw_as_jpeg(d) for d in inputs], params)
            if response.status_code == 200:   # a runner from before raw frames: JPEG from now on
                if len(self._jpeg_only) > 10_000:
                    self._jpeg_only.clear()
                self._jpeg_only.add(route.url)
        return response

    def _post_images(self, url: str, timeout: float, inputs: list[bytes], params: dict[str, Any]) -> httpx.Response:
        if len(inputs) == 1:
            data = inputs[0]
            return self._send_post(url, timeout, content=data, params=_query(params),
                                   headers={"Content-Type": image_type(data) or "application/octet-stream"})
        files = [("images", (f"{i}", d, image_type(d) or "application/octet-stream")) for i, d in enumerate(inputs)]
        return self._send_post(url, timeout, files=files, params=_query(params))

    def _takes_raw(self, route: Route) -> bool:
        """Raw frames go to a replica on this host that has not refused one."""
        return route.url not in self._jpeg_only and on_this_host(route.url)

    def _send_post(self, url: str, timeout: float, **parts: Any) -> httpx.Response:
        """POST through the client given to this invoker, or straight to its own transport (httpx's
        client layers — redirects, cookies, auth, hooks, none of them used here — cost a quarter of
        a trivial predict's round trip)."""
        if self._client is not None:
            return self._client.post(url, timeout=timeout, **parts)
        assert self._transport is not None
        request = httpx.Request("POST", url, extensions={"timeout": httpx.Timeout(timeout).as_dict()}, **parts)
        response = self._transport.handle_request(request)
        response.read()
        return response

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            return {"error": response.text[:500]}
        return body if isinstance(body, dict) else {"error": "unexpected reply"}

    @staticmethod
    def _error_message(name: str, status: int, body: dict[str, Any]) -> str:
        if status == 422 and body.get("problems"):
            return Message("invoke.bad_params", "bad parameters: {problems}",
                           problems="; ".join(f"{p['field']}: {p['reason']}" for p in body["problems"]))
        return Message("invoke.answered", "{name} answered {status}: {error}", name=name, status=status,
                       error=body.get("error", ""))

    def _save(self, actor: Actor, target: Target, inputs: list[Any], params: dict[str, Any], input_ref: str,
              body: dict[str, Any] | None, status: int | None, error: str, total_ms: float,
              replica: str) -> int | None:
        ok = status == 200 and not error
        return self.record(actor, target, params, input_ref=input_ref, input_hash=input_hash(inputs),
                           output={"outputs": body["outputs"]} if ok and body else None,
                           error=error if error or ok else Message("invoke.no_answer",
                                                                   "the call failed before an answer came"),
                           total_ms=total_ms,
                           predict_ms=(body or {}).get("predict_ms"), replica=replica)

    def record(self, actor: Actor, target: Target, params: dict[str, Any], *, input_ref: str, input_hash: str,
               output: dict[str, Any] | None, error: str, total_ms: float, predict_ms: float | None,
               replica: str) -> int | None:
        """Records one call in `algorithm_calls`, as `invoke` does for its own: status "ok" unless
        `error`. For a call made of many requests sent with `record=False` — a video run is one row
        with its frames' detail in `output`. Returns the row's id; None when this invoker does not
        record (nothing is written)."""
        require(actor, Action.VIEW_SHOWCASE)
        if not self._record:
            return None
        text, message = kept(error, 4000)
        row = dict(service_id=target.service_id, service_name=target.name, algorithm_id=target.algorithm_id,
                   version_id=target.version_id, params=params, params_hash=content_hash(params),
                   input_ref=input_ref[:500], input_hash=input_hash, output=bounded_output(output),
                   status="error" if error else "ok", error=text, error_message=message,
                   total_ms=total_ms, predict_ms=predict_ms,
                   replica=replica[:120], user_id=actor.user_id, username=actor.username, created_at=utcnow())
        try:
            return self._insert_call(row)
        except IntegrityError:
            # the service (or the user) was removed since the Target was read: the row is kept
            # as the database keeps the calls of removed services, without the links
            self.forget(target.name)
            return self._insert_call({**row, "service_id": None, "algorithm_id": None, "version_id": None,
                                      "user_id": None})

    def _insert_call(self, row: dict[str, Any]) -> int:
        """One INSERT and its commit, without the ORM's unit of work (a Core statement compiled once)."""
        if self._engine is not None:
            with self._engine.begin() as conn:
                return conn.execute(INSERT_CALL, row).inserted_primary_key[0]
        with self._sessions.begin() as s:
            return s.connection().execute(INSERT_CALL, row).inserted_primary_key[0]


def on_this_host(url: str) -> bool:
    """True when `url` names a loopback address (localhost, 127.x.x.x, ::1)."""
    host = httpx.URL(url).host
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def raw_as_jpeg(data: bytes) -> bytes:
    """A raw frame (NPY) as JPEG at quality 90; other data as it is. InvokeError when it is not a
    readable raw frame."""
    if not data.startswith(NPY_MAGIC):
        return data
    from app import media   # OpenCV: only for a raw frame going to another host

    try:
        return media.encode_jpeg(media.decode_raw(bytes(data)))
    except media.MediaError as e:
        raise InvokeError(Message("invoke.raw_frame", "the raw frame cannot be sent as JPEG: {error}", error=str(e))) from e


def _query(params: dict[str, Any]) -> dict[str, str]:
    return {k: json.dumps(v) if isinstance(v, (bool, list, dict)) else str(v) for k, v in params.items()}


def input_hash(inputs: list[Any]) -> str:
    """The hash recorded for a batch of inputs (texts, dicts or image bytes): the input part of the
    result cache's key."""
    return content_hash(b"".join(hashlib.sha256(i if isinstance(i, bytes) else
                                                json.dumps(i, sort_keys=True).encode()).digest() for i in inputs))


MAX_NESTING = 64
MAX_STORED_OUTPUT_BYTES = 1024 * 1024     # what one call may add to the history; the caller gets it all
MAX_PARAMS_BYTES = 64 * 1024


def bounded_output(output: dict[str, Any] | None) -> dict[str, Any] | None:
    """`output` as stored: a larger one than MAX_STORED_OUTPUT_BYTES is replaced by a note of its
    size (the call's caller got it whole; the history and the result cache do not keep it)."""
    if output is None:
        return None
    size = len(json.dumps(output, default=str))
    if size <= MAX_STORED_OUTPUT_BYTES:
        return output
    return {"omitted": {"bytes": size, "limit": MAX_STORED_OUTPUT_BYTES,
                        "reason": f"the output of {size:,} bytes is larger than the {MAX_STORED_OUTPUT_BYTES:,} "
                                  "bytes kept per call"}}


def _too_nested() -> Message:
    return Message("input.too_deep", "nested more than {levels} levels deep", levels=MAX_NESTING)


def check_inputs(target: Target, inputs: list[Any], params: dict[str, Any]) -> list[Any]:
    """The inputs as the service takes them, or ValidationFailed before any call (nothing is
    recorded): an image service takes bytes; a text service takes text (UTF-8 bytes are decoded,
    other bytes refused); JSON inputs and parameters nested deeper than MAX_NESTING are refused
    (they would overflow the encoder's recursion)."""
    kind = target.input_kind
    problems, checked = [], []
    for i, value in enumerate(inputs):
        where = f"inputs[{i}]"
        if kind == "image":
            if not isinstance(value, (bytes, bytearray)):
                problems.append(Problem(where, Message("input.not_image", "{name} takes images; got {kind}", name=target.name,
                                                        kind=_kind_of(value))))
        elif isinstance(value, (bytes, bytearray)):
            try:
                value = bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                problems.append(Problem(where, Message("input.binary", "{name} takes {kind}; this is binary data "
                                                       "({size:,} bytes, not UTF-8 text)", name=target.name, kind=kind,
                                                       size=len(value))))
        if not isinstance(value, (bytes, bytearray)) and _too_deep(value):
            problems.append(Problem(where, _too_nested()))
        checked.append(value)
    if _too_deep(params):
        problems.append(Problem("params", _too_nested()))
    elif len(json.dumps(params, default=str)) > MAX_PARAMS_BYTES:
        problems.append(Problem("params", Message("params.too_large", "larger than {kb} KB", kb=MAX_PARAMS_BYTES // 1024)))
    if problems:
        raise ValidationFailed(problems)
    return checked


def _kind_of(value: Any) -> str:
    return "text" if isinstance(value, str) else type(value).__name__


def _too_deep(value: Any, limit: int = MAX_NESTING) -> bool:
    """True when lists/dicts nest deeper than `limit` (iterative: no recursion to overflow)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            if depth > limit:
                return True
            stack.extend((v, depth + 1) for v in item if isinstance(v, (list, dict)))
    return False
