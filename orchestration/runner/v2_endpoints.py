"""The Open Inference Protocol v2 (KServe V2 REST) endpoints of the runner, beside its native API.

- `GET /v2/health/live` → 200 {"live": true} while the process serves.
- `GET /v2/health/ready`, `GET /v2/models/<name>[/versions/<v>]/ready` → 200 {"ready": true} when
  READY or BUSY, else 400 {"ready": false, "error"} (the protocol: 4xx means not ready).
- `GET /v2` → server metadata; `GET /v2/models/<name>[/versions/<v>]` → model metadata with the
  manifest's params (`v2.model_metadata`).
- `POST /v2/models/<name>[/versions/<v>]/infer` → the inference response (`v2.py` says how items,
  params and outputs map to tensors). Errors are {"error": message}: 400 for a malformed request,
  a wrong datatype, shape or parameter, or an undecodable image; 404 for another model or
  version; 413 too large; 503 not ready; 500 predict failed.
The model is the manifest's name; its one version is ALGOSTAGE_VERSION (or "1"). Inference goes
through the same parameter validation, predict thread and metrics as POST /predict
(`algostage_requests_total{endpoint="infer"}`).
"""
from __future__ import annotations

import functools
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orchestration.runner import v2
from orchestration.runner.server import Refused, Runner, Status, decode_images, encode_items, json_response
from orchestration.runner.manifest import ParamSpec

log = logging.getLogger("algostage.runner")
MODEL = "/v2/models/{name}"
VERSIONED = "/v2/models/{name}/versions/{version}"


class V2Endpoints:
    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def routes(self) -> list[Route]:
        """The V2 routes, inference first (Starlette tries routes in order)."""
        models = [MODEL, VERSIONED]
        return [*[Route(f"{m}/infer", self.infer, methods=["POST"]) for m in models],
                Route("/v2/health/live", self.live, methods=["GET"]),
                Route("/v2/health/ready", self.ready, methods=["GET"]),
                Route("/v2", self.server_metadata, methods=["GET"]),
                *[Route(f"{m}/ready", self.model_ready, methods=["GET"]) for m in models],
                *[Route(m, self.model_metadata, methods=["GET"]) for m in models]]

    # --- health and metadata --------------------------------------------------------------------

    async def live(self, request: Request) -> Response:
        return self._answer("v2_live", {"live": True})

    async def ready(self, request: Request) -> Response:
        status = self.runner.current_status()
        if status in (Status.READY, Status.BUSY):
            return self._answer("v2_ready", {"ready": True})
        return self._answer("v2_ready", {"ready": False, "error": f"service is {status.value}"}, 400)

    async def server_metadata(self, request: Request) -> Response:
        return self._answer("v2_metadata", v2.server_metadata(self.runner.version))

    async def model_ready(self, request: Request) -> Response:
        try:
            self._check_model(request)
        except Refused as r:
            return self._answer("v2_model_ready", {"error": r.message}, r.status)
        ready = self.runner.current_status() in (Status.READY, Status.BUSY)
        return self._answer("v2_model_ready", {"name": self.runner.model_name, "ready": ready}, 200 if ready else 400)

    async def model_metadata(self, request: Request) -> Response:
        try:
            self._check_model(request)
        except Refused as r:
            return self._answer("v2_model_metadata", {"error": r.message}, r.status)
        m = self.runner.manifest
        params = {name: _param_metadata(spec) for name, spec in m.params.items()} if m else {}
        body = v2.model_metadata(self.runner.model_name, self.runner.version, m.task.value if m else "", params)
        return self._answer("v2_model_metadata", body)

    # --- inference ------------------------------------------------------------------------------

    async def infer(self, request: Request) -> Response:
        try:
            response = await self._infer(request)
        except v2.V2Error as e:
            response = json_response({"error": e.message}, e.status)
        except Refused as r:
            response = json_response({"error": r.message}, r.status)
        except Exception as e:  # noqa: BLE001 - a bug here must still answer JSON and keep serving
            log.exception("unexpected error in infer")
            response = json_response({"error": f"{type(e).__name__}: {e}"}, 500)
        if response.status_code >= 500:
            self.runner.metrics.errors += 1
        self.runner.metrics.request("infer", response.status_code)
        return response

    async def _infer(self, request: Request) -> Response:
        self._check_model(request)
        self.runner.require_ready()
        body = await self.runner.read_body(request)
        req = v2.parse_infer(body, request.headers.get(v2.HEADER_LENGTH))
        inputs = self._inputs(req.elements)
        params = self.runner.check_params(req.params, status=400)
        decode = functools.partial(decode_images, label="input") if self.runner.kind == "image" else None
        items, ms = await self.runner.compute(inputs, params, encode_items, decode)
        reply, header_length = v2.infer_reply(self.runner.model_name, self.runner.version, req.id, items, ms,
                                              req.binary_output)
        if header_length is None:
            return Response(reply, media_type="application/json")
        return Response(reply, media_type="application/octet-stream",
                        headers={"Inference-Header-Content-Length": str(header_length)})

    def _inputs(self, elements: list[str | bytes]) -> list[Any]:
        convert = {"text": v2.as_text, "json": v2.as_object, "image": v2.as_image_bytes}[self.runner.kind]
        return [convert(e, i) for i, e in enumerate(elements)]

    def _check_model(self, request: Request) -> None:
        """Refused(404) unless the URL names this runner's model (and version, if it names one)."""
        name, version = request.path_params["name"], request.path_params.get("version")
        if name != self.runner.model_name:
            raise Refused(404, f"unknown model {name!r}; this service serves {self.runner.model_name!r}")
        if version is not None and version != self.runner.version:
            raise Refused(404, f"unknown version {version!r} of {name!r}; this service serves version "
                               f"{self.runner.version!r}")

    def _answer(self, endpoint: str, body: dict[str, Any], status: int = 200) -> Response:
        self.runner.metrics.request(endpoint, status)
        return json_response(body, status)


def _param_metadata(spec: ParamSpec) -> dict[str, Any]:
    """A parameter as model metadata lists it: its spec, the display texts only when it has them."""
    out = spec.model_dump(mode="json", exclude_none=True)
    return {k: v for k, v in out.items() if k not in ("label", "choice_labels") or v}
