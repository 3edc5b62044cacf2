"""The service contract check (DESIGN §3), run by the deploy smoke test against the runner or a
package's own server. Runs on the platform side (it is not copied into replicas).

`check_contract` returns every problem it finds; an empty list means the service passed:
- GET /health answers 200 with JSON {"status": READY|BUSY};
- GET /info answers 200 with a JSON object holding "manifest";
- POST /predict on the sample answers 200 with "outputs" (one per input) and a numeric
  "predict_ms" (skipped when there is no sample);
- GET /metrics answers 200 with Prometheus text.
An unreachable service is one problem ("/health: unreachable ...") and nothing else is tried.
"""
from __future__ import annotations

import json
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from orchestration.errors import Message, Problem, reason_of

READY = ("READY", "BUSY")
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def check_contract(base_url: str, sample: bytes | str | None, task: str,
                   client: httpx.Client | None = None) -> list[Problem]:
    """Every way the service at `base_url` breaks the contract for `task`; [] if it honours it."""
    own = client is None
    http = client or httpx.Client(timeout=30)
    base = base_url.rstrip("/")
    try:
        try:
            problems = _check_health(http.get(f"{base}/health"))
        except httpx.TransportError as e:
            return [Problem("/health", Message("smoke.unreachable", "unreachable: {kind}: {error}", kind=type(e).__name__,
                                               error=str(e)))]
        problems += _checked(lambda: _check_info(http.get(f"{base}/info")), "/info")
        if sample is not None:
            problems += _checked(lambda: _check_predict(http, base, sample, task), "/predict")
        problems += _checked(lambda: _check_metrics(http.get(f"{base}/metrics")), "/metrics")
        return problems
    finally:
        if own:
            http.close()


def _checked(check: Any, endpoint: str) -> list[Problem]:
    try:
        return check()
    except httpx.HTTPError as e:
        return [Problem(endpoint, Message("smoke.request_failed", "request failed: {kind}: {error}", kind=type(e).__name__,
                                          error=str(e)))]
    except ValueError as e:  # the sample itself is unusable
        return [Problem(endpoint, reason_of(e))]


def _json(response: httpx.Response, endpoint: str) -> tuple[Any, list[Problem]]:
    try:
        return response.json(), []
    except ValueError:
        return None, [Problem(endpoint, Message("smoke.not_json", "HTTP {status}, not JSON: {text!r}",
                                                status=response.status_code, text=response.text[:200]))]


def _check_health(response: httpx.Response) -> list[Problem]:
    body, problems = _json(response, "/health")
    if problems:
        return problems
    status = body.get("status") if isinstance(body, dict) else None
    if status not in READY:
        error = body.get("error") if isinstance(body, dict) else None
        reason = Message("smoke.health_error", "status {status!r} (HTTP {http}): {error}", status=status,
                         http=response.status_code, error=error) if error else \
            Message("smoke.health", "status {status!r} (HTTP {http})", status=status, http=response.status_code)
        return [Problem("/health", reason)]
    if response.status_code != 200:
        return [Problem("/health", Message("smoke.health_http", "status {status} must come with HTTP 200, got {http}",
                                           status=status, http=response.status_code))]
    return []


def _http(response: httpx.Response) -> Message:
    return Message("smoke.http", "HTTP {http}", http=response.status_code)


def _check_info(response: httpx.Response) -> list[Problem]:
    body, problems = _json(response, "/info")
    if problems:
        return problems
    if response.status_code != 200:
        return [Problem("/info", _http(response))]
    if not isinstance(body, dict) or not isinstance(body.get("manifest"), dict):
        return [Problem("/info", Message("smoke.info", 'must be a JSON object with the manifest under "manifest"'))]
    return []


def predict_request(sample: bytes | str, task: str) -> tuple[dict[str, Any], int]:
    """httpx keyword arguments posting `sample` the way `task` takes it, and the expected output count.
    ValueError if the sample cannot be sent for this task."""
    if task == "json":
        text = sample.decode() if isinstance(sample, bytes) else sample
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise ValueError(Message("smoke.sample_not_json", "the sample is not JSON: {error}", error=str(e))) from None
        body = doc if isinstance(doc, dict) and ("inputs" in doc or "input" in doc) else {"inputs": [doc]}
        count = len(body["inputs"]) if isinstance(body.get("inputs"), list) else 1
        return {"json": body}, count
    if task.startswith("text."):
        text = sample.decode("utf-8", "replace") if isinstance(sample, bytes) else sample
        return {"json": {"inputs": [text.strip()]}}, 1
    data = sample.encode() if isinstance(sample, str) else sample
    kind = "image/png" if data.startswith(PNG_MAGIC) else "image/jpeg" if data.startswith(JPEG_MAGIC) \
        else "application/octet-stream"
    return {"content": data, "headers": {"Content-Type": kind}}, 1


def _check_predict(http: httpx.Client, base: str, sample: bytes | str, task: str) -> list[Problem]:
    kwargs, count = predict_request(sample, task)
    response = http.post(f"{base}/predict", **kwargs)
    body, problems = _json(response, "/predict")
    if problems:
        return problems
    if response.status_code != 200:
        error = body.get("error") if isinstance(body, dict) else body
        return [Problem("/predict", Message("smoke.predict_http", "HTTP {http} on the first sample: {error}",
                                            http=response.status_code, error=error))]
    problems = []
    outputs = body.get("outputs") if isinstance(body, dict) else None
    if not isinstance(outputs, list) or len(outputs) != count:
        problems.append(Problem("/predict", Message("smoke.outputs", '"outputs" must be a list of {count} result(s), got '
                                                    "{outputs!r:.200}", count=count, outputs=outputs)))
    ms = body.get("predict_ms") if isinstance(body, dict) else None
    if not isinstance(ms, (int, float)) or isinstance(ms, bool):
        problems.append(Problem("/predict", Message("smoke.predict_ms", '"predict_ms" must be a number, got {ms!r}', ms=ms)))
    return problems


def _check_metrics(response: httpx.Response) -> list[Problem]:
    if response.status_code != 200:
        return [Problem("/metrics", _http(response))]
    try:
        families = list(text_string_to_metric_families(response.text))
    except (ValueError, TypeError, IndexError) as e:
        return [Problem("/metrics", Message("smoke.not_prometheus", "not Prometheus text: {error}", error=str(e)))]
    if not families:
        return [Problem("/metrics", Message("smoke.no_metrics", "no metrics in the Prometheus text"))]
    return []
