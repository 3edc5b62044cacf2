"""The JSON shapes of the platform's resources: one module shared by the command line's `--json`
and the management API (request and response models of /api/v1). Other tools parse these shapes:
a field is added, never renamed or removed. Times are ISO 8601 strings as Python writes them.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Collection
from datetime import datetime
from typing import Annotated, Any, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, create_model

from app.history import CallRow

Time = Annotated[datetime, PlainSerializer(lambda d: d.isoformat(), return_type=str)]


class Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class _RecordShape(Shape):
    @classmethod
    def of(cls, record: Any) -> _RecordShape:
        return cls.model_validate(record, from_attributes=True)


def record_shape(record: type, *, leave_out: Collection[str] = ()) -> type[_RecordShape]:
    """A Shape with the fields of the dataclass `record` but those named in `leave_out`: in its
    order, with its types (a datetime as `Time`), each one required; `of(r)` reads them from a
    record. The record stays the one place that names them."""
    hints = get_type_hints(record)
    fields: dict[str, Any] = {f.name: (Time if hints[f.name] is datetime else hints[f.name], ...)
                              for f in dataclasses.fields(record) if f.name not in leave_out}
    return create_model(f"{record.__name__}Fields", __base__=_RecordShape, __module__=__name__, **fields)


# --- errors ------------------------------------------------------------------------------------------

class ProblemOut(Shape):
    field: str
    reason: str


class ErrorOut(Shape):
    """Every error the API answers: the error root's code, its message, what to do, refused fields."""
    code: str
    message: str
    hint: str | None = None
    problems: list[ProblemOut] | None = None


# --- catalog ---------------------------------------------------------------------------------------------

class VersionOut(Shape):
    number: int
    tag: str
    commit: str
    message: str
    created_by: str
    created_at: Time
    manifest: dict[str, Any]
    files: list[str]
    samples: list[str]


class AlgorithmOut(Shape):
    name: str
    title: str
    description: str
    task: str
    repository: str
    versions: list[VersionOut]

    @classmethod
    def of(cls, a: Any) -> AlgorithmOut:
        return cls(name=a.name, title=a.title, description=a.description, task=a.task, repository=a.repository,
                   versions=[VersionOut(number=v.number, tag=v.tag, commit=v.commit_sha, message=v.message,
                                        created_by=v.created_by, created_at=v.created_at, manifest=v.manifest,
                                        files=v.files, samples=[f for f in v.files if f.startswith("samples/")])
                             for v in a.versions])


class UploadOut(Shape):
    algorithm: str
    version: int
    tag: str
    commit: str
    changes: dict[str, Any] | None = None

    @classmethod
    def of(cls, r: Any) -> UploadOut:
        changes = None
        if r.changes is not None:
            c = r.changes
            changes = {"added": c.added, "modified": c.modified, "deleted": c.deleted,
                       "manifest": {k: list(v) for k, v in c.manifest.items()}, "params_added": c.params_added,
                       "params_removed": c.params_removed,
                       "params_changed": {k: list(v) for k, v in c.params_changed.items()}}
        return cls(algorithm=r.algorithm, version=r.version, tag=r.tag, commit=r.commit_sha, changes=changes)


# --- services ----------------------------------------------------------------------------------------------

class ReplicaOut(Shape):
    name: str
    index: int
    port: int
    endpoint: str
    routed: bool
    route_note: str
    retiring: bool = Field(description="replaced by a deploy: out of rotation and stopping; the service's state "
                                       "leaves it out")
    version: str
    state: str
    pid: int | None
    container_id: str | None
    uptime_s: float | None
    message: str
    log_tail: str


class ServiceOut(Shape):
    name: str
    algorithm: str
    task: str
    version: str
    runtime: str
    state: str
    desired_state: str
    group: str | None
    last_error: str
    urls: list[str]
    canary_version: str | None
    canary_percent: int
    replicas: list[ReplicaOut]

    @classmethod
    def of(cls, v: Any) -> ServiceOut:
        return cls(name=v.name, algorithm=v.algorithm, task=v.task, version=v.version, runtime=v.runtime,
                   state=v.state.value, desired_state=v.desired_state, group=v.group, last_error=v.last_error,
                   urls=v.urls, canary_version=v.canary_version, canary_percent=v.canary_percent,
                   replicas=[ReplicaOut(name=r.name, index=r.index, port=r.port, endpoint=r.endpoint, routed=r.routed,
                                        route_note=r.route_note, retiring=r.retiring, version=r.version,
                                        state=r.state.value, pid=r.pid,
                                        container_id=r.container_id, uptime_s=r.uptime_s, message=r.message,
                                        log_tail=r.log_tail) for r in v.replicas])


class ActionResultOut(Shape):
    """Per service: "ok", or why the action failed for it."""
    results: dict[str, str]
    failed: list[str]

    @classmethod
    def of(cls, results: dict[str, str | None]) -> ActionResultOut:
        return cls(results={n: "ok" if e is None else e for n, e in results.items()},
                   failed=[n for n, e in results.items() if e])


class DeployIn(Shape):
    version: int | None = Field(None, ge=1, le=2**31 - 1, description="default: the latest")
    runtime: str | None = Field(None, description="default: the service's, else ALGOSTAGE_RUNTIME")
    replicas: int | None = Field(None, ge=1, le=16, description="default: the service's count, else the manifest's")
    env: dict[str, str] = Field(default_factory=dict)
    canary: int | None = Field(None, ge=1, le=99, description="run beside the served version for this % of the calls")


class DeployOut(Shape):
    deployment: int
    service: str
    version: int
    runtime: str
    urls: list[str]
    phases: dict[str, float]
    environment_built: bool

    @classmethod
    def of(cls, r: Any) -> DeployOut:
        return cls(deployment=r.deployment_id, service=r.service, version=r.version, runtime=r.runtime, urls=r.urls,
                   phases=r.phases, environment_built=r.environment_built)


class DeploymentOut(Shape):
    id: int
    service: str
    runtime: str
    replicas: int
    status: str
    failed_phase: str
    error: str
    phases: dict[str, Any]
    actor: str
    started_at: Time
    finished_at: Time | None

    @classmethod
    def of(cls, d: Any) -> DeploymentOut:
        return cls(id=d.id, service=d.service_name, runtime=d.runtime, replicas=d.replicas, status=d.status,
                   failed_phase=d.failed_phase, error=d.error, phases=d.phases, actor=d.actor,
                   started_at=d.started_at, finished_at=d.finished_at)


class JobOut(Shape):
    id: str
    kind: str
    owner: str
    state: str
    done: int
    total: int
    stage: str | None
    log: list[str]
    result: Any = None
    error: str | None
    submitted_at: Time
    finished_at: Time | None

    @classmethod
    def of(cls, j: Any, result: Any = None) -> JobOut:
        return cls(id=j.id, kind=j.kind, owner=j.owner, state=j.state.value, done=j.progress[0], total=j.progress[1],
                   stage=j.stage.name if j.stage else None, log=list(j.log), result=result, error=j.error,
                   submitted_at=j.submitted_at, finished_at=j.finished_at)


class InvokeIn(Shape):
    inputs: list[Any] = Field(min_length=1, max_length=1024, description="texts or JSON objects")
    params: dict[str, Any] = Field(default_factory=dict)


class InvokeOut(Shape):
    service: str
    version: str
    outputs: list[Any]
    total_ms: float
    predict_ms: float | None
    replica: str
    call_id: int | None

    @classmethod
    def of(cls, r: Any) -> InvokeOut:
        return cls(service=r.service, version=r.version, outputs=r.outputs, total_ms=round(r.total_ms, 3),
                   predict_ms=r.predict_ms, replica=r.replica, call_id=r.call_id)


# A recorded call without the details of a video run. (A comment: a docstring would be the schema's description.)
class CallOut(record_shape(CallRow, leave_out=("kind", "frames", "video_key", "frame_ms", "frame_predict_ms"))):
    pass


# --- settings, users, keys ----------------------------------------------------------------------------------

class SettingOut(Shape):
    key: str
    value: str
    source: str
    error: str

    @classmethod
    def of(cls, r: Any) -> SettingOut:
        return cls(key=r.key, value=r.display, source=r.source.value, error=r.error)


class SettingIn(Shape):
    value: str


class SettingHistoryOut(Shape):
    id: int
    key: str
    old: str | None
    new: str | None
    actor: str
    changed_at: Time

    @classmethod
    def of(cls, h: Any) -> SettingHistoryOut:
        return cls(id=h.id, key=h.key, old=h.old, new=h.new, actor=h.actor, changed_at=h.changed_at)


class UserOut(Shape):
    username: str
    role: str
    active: bool
    created_at: Time
    last_login_at: Time | None

    @classmethod
    def of(cls, u: Any) -> UserOut:
        return cls(username=u.username, role=u.role.value, active=u.is_active, created_at=u.created_at,
                   last_login_at=u.last_login_at)


class UserIn(Shape):
    username: str
    password: str
    role: str = "viewer"


class UserChange(Shape):
    role: str | None = None
    active: bool | None = None
    password: str | None = None


class KeyOut(Shape):
    name: str
    prefix: str
    services: list[str] | None
    state: str
    user: str | None
    created_by: str
    created_at: Time
    expires_at: Time | None
    revoked_at: Time | None
    last_used_at: Time | None

    @classmethod
    def of(cls, k: Any) -> KeyOut:
        return cls(name=k.name, prefix=k.prefix, services=k.services, state=k.state, user=k.user,
                   created_by=k.created_by, created_at=k.created_at, expires_at=k.expires_at,
                   revoked_at=k.revoked_at, last_used_at=k.last_used_at)


class NewKeyOut(Shape):
    """A key just created: `key` is shown this once."""
    name: str
    key: str
    services: list[str] | None
    user: str | None
    expires_at: Time | None

    @classmethod
    def of(cls, new: Any) -> NewKeyOut:
        return cls(name=new.info.name, key=new.key, services=new.info.services, user=new.info.user,
                   expires_at=new.info.expires_at)


class KeyIn(Shape):
    name: str
    services: list[str] | None = None
    expires_days: float | None = Field(None, gt=0, le=3650)
    user: str | None = None


class TokenIn(Shape):
    username: str
    password: str
    expires_days: float = Field(30, gt=0, le=365)
    name: str | None = Field(None, description="default: <username>-<time>")
