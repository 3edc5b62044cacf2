"""Calling deployed services: pooled keep-alive clients, requests spread over the replicas, a
refused connection retried on another replica, timeouts from the service's settings, and every
call recorded in `algorithm_calls` (service, version, params, input reference and hash, output,
status, total and predict time, user, time)."""
from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from app.auth import Action, Actor, require
from app.db import transaction
from app.errors import Problem, ValidationFailed
from app.models import AlgorithmCall, AlgorithmService
from app.service_config import ServiceConfigStore

IMAGE_TYPES = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG": "image/png"}


class InvokeError(Exception):
    """A call failed; the message says why (service down, bad parameter, error in predict…)."""

    def __init__(self, message: str, *, status: int | None = None, problems: list | None = None) -> None:
        super().__init__(message)
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
    service_id: int
    algorithm_id: int
    version_id: int | None
    version: str
    task: str
    urls: list[tuple[str, str]]   # (replica name, base url)
    timeout: float
    retries: int


def content_hash(data: bytes | str | dict | list) -> str:
    if isinstance(data, (dict, list)):
        data = json.dumps(data, sort_keys=True, ensure_ascii=False)
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


def image_type(data: bytes) -> str | None:
    return next((t for magic, t in IMAGE_TYPES.items() if data.startswith(magic)), None)


class Invoker:
    def __init__(self, sessions: sessionmaker[Session], configs: ServiceConfigStore, *,
                 client: httpx.Client | None = None, record: bool = True) -> None:
        self._sessions = sessions
        self._configs = configs
        self._client = client or httpx.Client(limits=httpx.Limits(max_keepalive_connections=64, max_connections=128))
        self._record = record
        self._rr: dict[str, itertools.count] = {}
        self._lock = threading.Lock()

    def target(self, name: str) -> Target:
        with self._sessions() as s:
            svc = s.scalar(select(AlgorithmService).where(AlgorithmService.name == name).options(
                selectinload(AlgorithmService.replica_rows), selectinload(AlgorithmService.version),
                selectinload(AlgorithmService.algorithm)))
            if svc is None:
                raise ValidationFailed([Problem("service", f"no service {name!r}")])
            urls = [(r.backend_name, f"http://127.0.0.1:{r.port}") for r in svc.replica_rows]
            target = Target(svc.id, svc.algorithm_id, svc.version_id, svc.version.tag if svc.version else "?",
                            svc.algorithm.task, urls, 0.0, 0)
        settings = {c.key: c.value for c in self._configs.list(name)}
        host = settings["host"]
        urls = [(n, u.replace("127.0.0.1", host)) for n, u in target.urls] if host != "0.0.0.0" else target.urls
        return Target(**{**target.__dict__, "urls": urls, "timeout": settings["timeout_s"],
                         "retries": settings["retries"]})

    def invoke(self, actor: Actor, name: str, inputs: list[Any], params: dict[str, Any] | None = None, *,
               input_ref: str = "") -> CallResult:
        """Call `name` with a batch of inputs (texts, dicts, or image bytes). Records the call."""
        require(actor, Action.VIEW_SHOWCASE)
        target = self.target(name)
        if not target.urls:
            raise InvokeError(f"{name} has no replica; deploy it first")
        params = params or {}
        t0 = time.perf_counter()
        replica, status, body, error = "", None, None, ""
        try:
            replica, response = self._send(target, name, inputs, params)
            status, body = response.status_code, self._json(response)
            if status != 200:
                raise InvokeError(self._error_message(name, status, body), status=status,
                                  problems=body.get("problems", []) if isinstance(body, dict) else [])
        except InvokeError as e:
            error = str(e)
            raise
        finally:
            total_ms = (time.perf_counter() - t0) * 1000
            call_id = self._save(actor, name, target, inputs, params, input_ref, body, status, error, total_ms,
                                 replica)
        return CallResult(call_id, name, target.version, body["outputs"], total_ms, body.get("predict_ms"), replica)

    # --- internals ------------------------------------------------------------------------------

    def _send(self, target: Target, name: str, inputs: list[Any], params: dict[str, Any]) -> tuple[str, httpx.Response]:
        """Round-robin over replicas; a refused or dropped connection (a replica that was just killed
        resets its kept-alive connections) moves to the next replica, at most `retries` times."""
        order = self._order(name, target.urls)
        last: Exception | None = None
        for replica, url in order[: target.retries + 1] if len(order) > 1 else order:
            try:
                return replica, self._post(url, target.task, inputs, params, target.timeout)
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as e:
                last = e
            except httpx.TimeoutException as e:
                raise InvokeError(f"{name} did not answer within {target.timeout:g} s") from e
        raise InvokeError(f"{name} is not reachable (is it stopped?): {last}") from last

    def _order(self, name: str, urls: list[tuple[str, str]]) -> list[tuple[str, str]]:
        with self._lock:
            start = next(self._rr.setdefault(name, itertools.count())) % len(urls)
        return urls[start:] + urls[:start]

    def _post(self, url: str, task: str, inputs: list[Any], params: dict[str, Any], timeout: float) -> httpx.Response:
        if task.startswith(("image.", "video.")):
            if len(inputs) == 1:
                data = inputs[0]
                return self._client.post(f"{url}/predict", content=data, params=_query(params), timeout=timeout,
                                         headers={"Content-Type": image_type(data) or "application/octet-stream"})
            files = [("images", (f"{i}", d, image_type(d) or "application/octet-stream")) for i, d in enumerate(inputs)]
            return self._client.post(f"{url}/predict", files=files, params=_query(params), timeout=timeout)
        return self._client.post(f"{url}/predict", json={"inputs": inputs, "params": params}, timeout=timeout)

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
            return "bad parameters: " + "; ".join(f"{p['field']}: {p['reason']}" for p in body["problems"])
        return f"{name} answered {status}: {body.get('error', '')}"

    def _save(self, actor: Actor, name: str, target: Target, inputs: list[Any], params: dict[str, Any],
              input_ref: str, body: dict[str, Any] | None, status: int | None, error: str, total_ms: float,
              replica: str) -> int | None:
        if not self._record:
            return None
        ok = status == 200 and not error
        with transaction(self._sessions) as s:
            call = AlgorithmCall(
                service_id=target.service_id, service_name=name, algorithm_id=target.algorithm_id,
                version_id=target.version_id, params=params, params_hash=content_hash(params),
                input_ref=input_ref[:500], input_hash=input_hash(inputs),
                output={"outputs": body["outputs"]} if ok and body else None, status="ok" if ok else "error",
                error=error[:4000], total_ms=total_ms, predict_ms=(body or {}).get("predict_ms"), replica=replica,
                user_id=actor.user_id, username=actor.username)
            s.add(call)
            s.flush()
            return call.id


def _query(params: dict[str, Any]) -> dict[str, str]:
    return {k: json.dumps(v) if isinstance(v, (bool, list, dict)) else str(v) for k, v in params.items()}


def input_hash(inputs: list[Any]) -> str:
    """The hash recorded for a batch of inputs (texts, dicts or image bytes): the input part of the
    result cache's key."""
    return content_hash(b"".join(hashlib.sha256(i if isinstance(i, bytes) else
                                                json.dumps(i, sort_keys=True).encode()).digest() for i in inputs))
