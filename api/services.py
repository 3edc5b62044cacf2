"""Services: deploy (answered with a job), list, status, start/stop/restart/remove (by name, group
or all), logs, per-service settings, canary; invoke and the history of calls; jobs."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from api.deps import Invoker, P, Who
from app.auth import Action, require
from app.errors import Problem, ValidationFailed
from app.history import CallFilter, to_csv
from app.jobs import JobContext, Stage
from app.schemas import (ActionResultOut, CallOut, DeployIn, DeploymentOut, DeployOut, InvokeIn, InvokeOut, JobOut,
                         ServiceOut, Shape)
from app.services.deployer import PHASES, DeployEvent, DeployRequest

router = APIRouter(prefix="/api/v1", tags=["services"])
# invoke, the one hot path: included early (api/app.py), since FastAPI tries the routes in order and
# each one it passes costs ~10 µs (measured: ~0.3 ms to reach invoke at the end of this router)
hot = APIRouter(prefix="/api/v1", tags=["services"])
Action_ = Literal["start", "stop", "restart", "remove"]
IMAGE_TYPES = ("image/jpeg", "image/png")


class DeployNameIn(DeployIn):
    service: str


class BulkIn(Shape):
    action: Action_
    names: list[str] = []
    group: str | None = None
    all: bool = False


class ServiceSettingOut(Shape):
    key: str
    value: str
    source: str
    applies: str


# --- deploy and jobs ----------------------------------------------------------------------------------------

def deploy_job(p: Any, who: Any, request: DeployRequest, promote: bool = False) -> str:
    """Run a deploy (or a canary promotion) as a job whose log is the deploy's events."""
    require(who, Action.DEPLOY)

    def work(ctx: JobContext) -> dict:
        def progress(e: DeployEvent) -> None:
            ctx.log(f"[{e.phase}] {e.message}")
            if e.phase in PHASES:
                ctx.progress(PHASES.index(e.phase) + 1, len(PHASES), Stage(PHASES.index(e.phase) + 1, len(PHASES),
                                                                           e.phase))
        result = p.deployer.promote(who, request.name, progress) if promote else p.deployer.deploy(who, request,
                                                                                                    progress)
        return DeployOut.of(result).json_dict()
    return p.jobs.submit(who, "deploy", work)


@router.post("/deployments", response_model=JobOut, status_code=202)
def deploy(body: DeployNameIn, p: P, who: Who) -> JobOut:
    """Deploy a version of an algorithm as its service (health-gated); follow it at /jobs/{id}."""
    req = DeployRequest(body.service, body.version, body.runtime, body.replicas, body.env, canary=body.canary)
    return JobOut.of(p.jobs.get(who, deploy_job(p, who, req)))


@router.get("/deployments", response_model=list[DeploymentOut])
def deployments(p: P, who: Who, service: str | None = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[DeploymentOut]:
    return [DeploymentOut.of(d) for d in p.services.deployments(who, service, limit)]


@router.get("/jobs/{job_id}", response_model=JobOut)
def job(job_id: str, p: P, who: Invoker, wait: Annotated[float, Query(ge=0, le=300)] = 0) -> JobOut:
    """A job as it is now, or once it has finished (`wait` seconds at most)."""
    view = p.jobs.wait(who, job_id, wait) if wait else p.jobs.get(who, job_id)
    return JobOut.of(view, view.result)


@router.post("/jobs/{job_id}/cancel", response_model=JobOut)
def cancel_job(job_id: str, p: P, who: Invoker) -> JobOut:
    return JobOut.of(p.jobs.cancel(who, job_id))


@router.post("/services/{name}/canary/promote", response_model=JobOut, status_code=202, tags=["canary"])
def promote(name: str, p: P, who: Who) -> JobOut:
    return JobOut.of(p.jobs.get(who, deploy_job(p, who, DeployRequest(name), promote=True)))


@router.post("/services/{name}/canary/abort", response_model=list[str], tags=["canary"])
def abort(name: str, p: P, who: Who) -> list[str]:
    return p.deployer.abort(who, name)


# --- services -----------------------------------------------------------------------------------------------

@router.get("/services", response_model=list[ServiceOut])
def services(p: P, who: Who) -> list[ServiceOut]:
    return [ServiceOut.of(v) for v in p.services.list(who, resources=False)]


@router.get("/services/{name}", response_model=ServiceOut)
def service(name: str, p: P, who: Who) -> ServiceOut:
    return ServiceOut.of(p.services.get(who, name))


@router.post("/services/actions", response_model=ActionResultOut)
def bulk(body: BulkIn, p: P, who: Who) -> ActionResultOut:
    """An action on services by name, by group, or on all of them; each one's result."""
    require(who, Action.MANAGE_SERVICES)   # before the names are looked at
    names = list(body.names)
    if body.group:
        names += p.services.names_in_group(who, body.group)
    if body.all:
        names += p.services.all_names(who)
    if not names:
        raise ValidationFailed([Problem("names", "give service names, a group, or all")])
    return ActionResultOut.of(getattr(p.services, body.action)(who, list(dict.fromkeys(names))))


@router.delete("/services/{name}", response_model=ActionResultOut)
def remove(name: str, p: P, who: Who) -> ActionResultOut:
    return ActionResultOut.of(p.services.remove(who, [name]))


@router.get("/services/{name}/logs", response_model=dict[str, str])
def logs(name: str, p: P, who: Who, lines: Annotated[int, Query(ge=1, le=10_000)] = 200,
         replica: Annotated[int | None, Query(ge=1)] = None,
         stream: Literal["stdout", "stderr"] = "stderr") -> dict[str, str]:
    """The last lines of each replica's output (the runner logs to stderr), by replica."""
    return p.services.logs(who, name, replica=replica, lines=lines, stream=stream)


@router.get("/services/{name}/config", response_model=list[ServiceSettingOut])
def service_config(name: str, p: P, who: Who) -> list[ServiceSettingOut]:
    from app.services.config import SERVICE_SPECS
    return [ServiceSettingOut(key=c.key, value=c.raw, source=c.source.value, applies=SERVICE_SPECS[c.key].applies)
            for c in p.service_configs.list(who, name)]


@router.put("/services/{name}/config/{key}", response_model=ServiceSettingOut)
def set_service_config(name: str, key: str, p: P, who: Who, value: Annotated[str, Body(embed=True)]) \
        -> ServiceSettingOut:
    from app.services.config import SERVICE_SPECS
    c = p.service_configs.set(who, name, key, value)
    return ServiceSettingOut(key=c.key, value=c.raw, source=c.source.value, applies=SERVICE_SPECS[c.key].applies)


# --- invoke and history -------------------------------------------------------------------------------------

@hot.post("/services/{name}/invoke", response_model=InvokeOut, tags=["invoke"],
             openapi_extra={"requestBody": {"content": {t: {"schema": {"type": "string", "format": "binary"}}
                                                        for t in IMAGE_TYPES}}})
async def invoke(name: str, request: Request, p: P, who: Invoker) -> Response:
    """Call a service: JSON `{"inputs": [...], "params": {...}}`, or one image as the raw body
    (image/jpeg or image/png) with params in the query string. Recorded in the history."""
    inputs, params, ref = await _invoke_body(request)
    result = await run_in_threadpool(p.invoker.invoke, who, name, inputs, params, input_ref=ref)
    # already the documented shape: encoded once, by pydantic's serializer, not validated again
    return Response(InvokeOut.of(result).model_dump_json(), media_type="application/json")


async def _invoke_body(request: Request) -> tuple[list[Any], dict[str, Any], str]:
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    body = await request.body()
    if kind in IMAGE_TYPES:
        if not body:
            raise ValidationFailed([Problem("body", "an empty image")])
        return [body], {k: _query_value(v) for k, v in request.query_params.items()}, "api: image"
    try:
        doc = InvokeIn.model_validate_json(body or b"null")
    except (ValueError, TypeError) as e:
        raise ValidationFailed([Problem("body", f"JSON {{\"inputs\": [...], \"params\": {{...}}}} or an image expected: "
                                                f"{str(e)[:300]}")]) from None
    return doc.inputs, doc.params, "api"


def _query_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


@router.get("/calls", response_model=list[CallOut], tags=["history"])
def calls(p: P, who: Who, service: str | None = None, user: str | None = None,
          status: Literal["ok", "error"] | None = None, since: datetime | None = None, until: datetime | None = None,
          limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> list[CallOut]:
    """The calls `who` may see (their own, or everyone's for operators), newest first."""
    return [CallOut.of(c) for c in p.history.calls(who, CallFilter(service, user, status, since, until), limit=limit)]


@router.get("/calls.csv", response_class=PlainTextResponse, tags=["history"])
def calls_csv(p: P, who: Who, service: str | None = None, user: str | None = None,
              status: Literal["ok", "error"] | None = None) -> Response:
    rows = p.history.calls(who, CallFilter(service, user, status))
    return Response(to_csv(rows), media_type="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="algostage-calls.csv"'})


# registered last: `/services/{name}/{action}` would otherwise take /invoke and the others
@router.post("/services/{name}/{action}", response_model=ActionResultOut)
def act(name: str, action: Literal["start", "stop", "restart"], p: P, who: Who) -> ActionResultOut:
    return ActionResultOut.of(getattr(p.services, action)(who, [name]))
