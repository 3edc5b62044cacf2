"""The original plan's paths, answered as written (aliases of the resources above), so its examples
work unchanged: `/services/{start,stop,restart}/{id}`, `/services/status/{id}`, `/services/logs/{id}`,
`/config/{key}`, `/gitea/config`, `/gitea/test-connection`, `/gitea/repos/upload`,
`/services/deploy-from-gitea`. `{id}` is the service's name."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from fastapi import APIRouter, File, Form, UploadFile

from api.catalog import read_limited
from api.deps import P, Who
from api.services import deploy_job, logs
from app.auth import Action, require
from app.schemas import ActionResultOut, JobOut, ServiceOut, SettingIn, SettingOut, Shape, UploadOut
from app.services.deployer import DeployRequest

router = APIRouter(prefix="/api/v1", tags=["original plan"])
GITEA_KEYS = ("GITEA_URL", "GITEA_TOKEN", "GITEA_OWNER", "GITEA_REPO_PREFIX")


class GiteaConfig(Shape):
    url: str = ""
    token: str = ""
    owner: str = ""
    repo_prefix: str = ""


class DeployFromGitIn(Shape):
    algorithm: str | None = None          # a version already uploaded (the latest, or `version`)
    repo_url: str | None = None           # or a repository to upload from first (`https://…/x.git`)
    ref: str | None = None
    version: int | None = Field(None, ge=1, le=2**31 - 1)
    replicas: int | None = Field(None, ge=1, le=16)


def _action(action: Literal["start", "stop", "restart"]):  # noqa: ANN202 - an endpoint
    def endpoint(service_id: str, p: P, who: Who) -> ActionResultOut:
        return ActionResultOut.of(getattr(p.services, action)(who, [service_id]))
    endpoint.__name__ = f"{action}_service"
    return endpoint


for _verb in ("start", "stop", "restart"):   # three static paths: a pattern would swallow /services/{name}/…
    router.post(f"/services/{_verb}/{{service_id}}", response_model=ActionResultOut)(_action(_verb))


@router.get("/services/status/{service_id}", response_model=ServiceOut)
def status(service_id: str, p: P, who: Who) -> ServiceOut:
    return ServiceOut.of(p.services.get(who, service_id))


@router.get("/services/logs/{service_id}", response_model=dict[str, str])
def service_logs(service_id: str, p: P, who: Who, lines: int = 200) -> dict[str, str]:
    return logs(service_id, p, who, lines=min(max(lines, 1), 10_000))


@router.get("/config/{key}", response_model=SettingOut)
def get_config(key: str, p: P, who: Who) -> SettingOut:
    return SettingOut.of(p.settings.get(who, key))


@router.put("/config/{key}", response_model=SettingOut)
def put_config(key: str, body: SettingIn, p: P, who: Who) -> SettingOut:
    return SettingOut.of(p.settings.set(who, key, body.value))


@router.get("/gitea/config", response_model=GiteaConfig)
def gitea_config(p: P, who: Who) -> GiteaConfig:
    """The code store's Gitea settings; the token masked."""
    values = {r.key: r.display for r in p.settings.all(who) if r.key in GITEA_KEYS}
    return GiteaConfig(url=values["GITEA_URL"], token=values["GITEA_TOKEN"], owner=values["GITEA_OWNER"],
                       repo_prefix=values["GITEA_REPO_PREFIX"])


@router.post("/gitea/config", response_model=GiteaConfig)
def set_gitea_config(body: GiteaConfig, p: P, who: Who) -> GiteaConfig:
    """Set the Gitea settings given (empty fields are left as they are)."""
    for key, value in zip(GITEA_KEYS, (body.url, body.token, body.owner, body.repo_prefix)):
        if value:
            p.settings.set(who, key, value)
    return gitea_config(p, who)


class ConnectionOut(Shape):
    ok: bool
    detail: str


@router.post("/gitea/test-connection", response_model=ConnectionOut)
def test_connection(p: P, who: Who) -> ConnectionOut:
    return ConnectionOut(ok=True, detail=p.test_codestore(who))


@router.post("/gitea/repos/upload", response_model=UploadOut, status_code=201)
def repo_upload(p: P, who: Who, archive: Annotated[UploadFile, File()], name: Annotated[str | None, Form()] = None,
                message: Annotated[str, Form()] = "") -> UploadOut:
    """Upload an archive as a new version (into Gitea when it is the code store)."""
    data = read_limited(archive, p.settings.value("ALGOSTAGE_MAX_UPLOAD_MB"))
    return UploadOut.of(p.catalog.upload_archive(who, archive.filename or "upload.zip", data, name=name or None,
                                                 message=message))


@router.post("/services/deploy-from-gitea", response_model=JobOut, status_code=202)
def deploy_from_gitea(body: DeployFromGitIn, p: P, who: Who) -> JobOut:
    """Upload from `repo_url` (at `ref`) if given, then deploy the algorithm's version as a job."""
    require(who, Action.DEPLOY)   # before anything is fetched
    name, version = body.algorithm, body.version
    if body.repo_url:
        source = body.repo_url + (f"#{body.ref}" if body.ref else "")
        uploaded = p.catalog.upload(who, source, name=body.algorithm)
        name, version = uploaded.algorithm, uploaded.version
    if not name:
        from app.errors import Problem, ValidationFailed
        raise ValidationFailed([Problem("algorithm", "give an algorithm or a repo_url")])
    return JobOut.of(p.jobs.get(who, deploy_job(p, who, DeployRequest(name, version, replicas=body.replicas))))
