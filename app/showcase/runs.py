"""Runs: one deployed service on one input, through the result cache.

Contracts:
- A service is looked up once per run (`Invoker.target`), and its manifest parsed once to check
  the parameters: `prepare` gives a `Resolved` column (Target and checked parameters) that every
  call of that run, comparison column or video plan reuses.
- Parameters outside the manifest are refused before any call: ValidationFailed names each one
  (field = its name, after an optional prefix such as "column 2 · ").
- The result cache is `algorithm_calls`: a hit is the latest ok call with the same version,
  params hash and input hash. `run` returns a hit (`cached=True`) unless `force`; when the
  service fails (stopped, timed out, error in predict) `run` does not raise: it returns the
  cached result with `error` set, or no outputs and `error` when nothing is cached.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session, sessionmaker

from app import media
from app.auth import Action, Actor, require
from app.catalog.manifest import Demo, Manifest, ParamError, ParamSpec, ScoreSpec, input_kind, validate_params
from app.errors import Message, Problem, ValidationFailed
from app.invoke import InvokeError, Invoker, Target, content_hash, input_hash
from app.models import Algorithm, AlgorithmCall, AlgorithmVersion, utcnow
from app.showcase.inputs import InputData, InputRef, Inputs, media_kinds

if TYPE_CHECKING:
    from app.services.manager import ServiceManager, ServiceView
    from app.shared import ResultCache


@dataclass(frozen=True)
class Column:
    """One side of a comparison: a service and its parameters (missing ones take the defaults)."""
    service: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Resolved:
    """A column resolved once: the service's Target and its parameters checked, defaults filled in."""
    target: Target
    params: dict[str, Any]


@dataclass(frozen=True)
class RunResult:
    """One run. `outputs` is None only when the call failed and nothing was cached. `cached`
    results carry the original call's id, times and `cached_at`; `error` says why a call failed
    (with a cached result: why the cached one is shown)."""
    service: str
    version: str
    task: str
    params: dict[str, Any]
    input_ref: str
    outputs: list[Any] | None
    total_ms: float | None = None
    predict_ms: float | None = None
    cached: bool = False
    call_id: int | None = None
    error: str | None = None
    cached_at: datetime | None = None

    @property
    def output(self) -> Any:
        return self.outputs[0] if self.outputs else None

    @property
    def ok(self) -> bool:
        return self.outputs is not None


@dataclass(frozen=True)
class ServiceChoice:
    """A deployed service as the Showcase offers it, with its serving version's manifest (None
    when the version is unknown)."""
    name: str
    title: str
    task: str
    version: str
    state: str
    params: dict[str, ParamSpec]
    manifest: Manifest | None = None

    @property
    def input_kind(self) -> str:
        return input_kind(self.task)

    @property
    def running(self) -> bool:
        return self.state == "RUNNING"

    @property
    def score(self) -> ScoreSpec | None:
        """What its results' scores mean (the manifest's `score`), if it says."""
        return self.manifest.score if self.manifest else None

    @property
    def demo(self) -> Demo | None:
        """Its manifest's suggested first demo, if any."""
        return self.manifest.demo if self.manifest else None

    def localized(self, lang: str) -> ServiceChoice:
        """The same choice with the manifest's texts in `lang` (title, parameter labels and help)."""
        if self.manifest is None:
            return self
        manifest = self.manifest.localized(lang)
        return replace(self, title=manifest.title, params=manifest.params, manifest=manifest)


def demo_order(choices: Iterable[ServiceChoice]) -> list[ServiceChoice]:
    """The order pages offer services in, best first demo first: those whose manifest suggests a
    demo, then running ones, then by name. A page opens on the first one's task and demo."""
    return sorted(choices, key=lambda c: (c.demo is None, not c.running, c.name))


def check_fits(target: Target, data: InputData) -> None:
    """ValidationFailed ("input") unless `target` takes `data` as it is (videos go frame by frame
    through the video runs, never through `run`)."""
    wanted = target.input_kind
    if data.kind == "video":
        reason = Message("input.video_view", "videos run through the video view, frame by frame") if wanted == "image" \
            else Message("input.wrong_kind_video", "{name} takes {wanted} input, not a video", name=target.name, wanted=wanted)
    elif data.kind in media_kinds(wanted):
        return
    else:
        reason = Message("input.wrong_kind", "{name} takes {wanted} input, not {kind}", name=target.name, wanted=wanted,
                         kind=data.kind)
    raise ValidationFailed([Problem("input", reason)])


def payload(data: InputData, *, as_json: bool) -> Any:
    """What goes to the service: text, a dict (`as_json`), or JPEG/PNG bytes (other image formats
    are converted to PNG, which every runner decodes)."""
    if data.kind == "text":
        if not as_json:
            return data.text
        try:
            return json.loads(data.text or "")
        except ValueError as e:
            raise ValidationFailed([Problem("input", Message("input.not_json", "not JSON: {error}", error=str(e)))]) from None
    raw = data.data or b""
    return raw if media.sniff(raw) in ("image/jpeg", "image/png") else media.to_png(media.decode_image(raw))


@dataclass(frozen=True)
class CachedCall:
    """What a cached result needs of the call that made it."""
    id: int
    outputs: Any
    total_ms: float | None
    predict_ms: float | None
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "outputs": self.outputs, "total_ms": self.total_ms, "predict_ms": self.predict_ms,
                "created_at": self.created_at.isoformat()}

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> CachedCall:
        return cls(data["id"], data["outputs"], data["total_ms"], data["predict_ms"],
                   datetime.fromisoformat(data["created_at"]))


class Runs:
    """Runs with the result cache; `services` is the ServiceManager (live states). `results` is
    the shared cache in front of the call history (app/shared.py: Redis or in-process)."""

    def __init__(self, sessions: sessionmaker[Session], invoker: Invoker, inputs: Inputs,
                 services: ServiceManager, results: ResultCache | None = None) -> None:
        self._sessions = sessions
        self._invoker = invoker
        self._inputs = inputs
        self._services = services
        self._results = results

    def services(self, actor: Actor) -> list[ServiceChoice]:
        """Every deployed service with its live state and the parameters of its serving version:
        the manager's one read of the services, plus one read of their versions' manifests."""
        require(actor, Action.VIEW_SHOWCASE)
        views = self._services.list(actor, resources=False)
        titles, manifests = self._versions(views)
        return [_choice(v, titles.get(v.algorithm, v.algorithm), manifests.get((v.algorithm, v.version_number)))
                for v in views]

    def _versions(self, views: list[ServiceView]) -> tuple[dict[str, str], dict[tuple[str, int], dict]]:
        """Titles by algorithm, and manifests by (algorithm, version number), of the views' versions."""
        if not views:
            return {}, {}
        numbers = {v.version_number for v in views if v.version_number is not None}
        q = (select(Algorithm.name, Algorithm.title, AlgorithmVersion.number, AlgorithmVersion.manifest)
             .outerjoin(AlgorithmVersion, and_(AlgorithmVersion.algorithm_id == Algorithm.id,
                                               AlgorithmVersion.number.in_(numbers)))
             .where(Algorithm.name.in_({v.algorithm for v in views})))
        with self._sessions() as s:
            rows = s.execute(q).all()
        return {r.name: r.title for r in rows}, {(r.name, r.number): r.manifest for r in rows if r.number is not None}

    def prepare(self, actor: Actor, service: str, params: Mapping[str, Any] | None, *,
                field_prefix: str = "") -> Resolved:
        """`service` looked up once and `params` checked against its manifest (defaults filled in).
        ValidationFailed: no such service ("service"), or each bad parameter (`field_prefix` + name)."""
        require(actor, Action.VIEW_SHOWCASE)
        target = self._invoker.target(actor, service)
        if target.manifest is None:
            return Resolved(target, dict(params or {}))
        try:
            return Resolved(target, validate_params(Manifest.model_validate(target.manifest), params))
        except ParamError as e:
            raise ValidationFailed([Problem(field_prefix + p.field, p.reason) for p in e.problems]) from None

    def run(self, actor: Actor, column: Resolved, input: InputRef | InputData | str | bytes, *,
            force: bool = False) -> RunResult:
        """The resolved column on one input (checked: ValidationFailed before any call), or the
        cached result of an identical earlier run; see the module contract for failures."""
        require(actor, Action.VIEW_SHOWCASE)
        data = self._inputs.coerce(actor, input)
        target, params = column.target, column.params
        check_fits(target, data)
        sent = payload(data, as_json=target.input_kind == "json")
        key = input_hash([sent])
        if not force and (hit := self._cached(target.version_id, target.name, params, key)) is not None:
            return _cached_result(target, params, data.ref, hit)
        try:
            call = self._invoker.invoke(actor, target, [sent], params, input_ref=data.ref)
        except InvokeError as e:
            hit = self._cached(target.version_id, target.name, params, key)
            base = _cached_result(target, params, data.ref, hit) if hit else \
                RunResult(target.name, target.version, target.task, params, data.ref, None)
            return replace(base, error=e.message)
        if self._results is not None and call.call_id is not None and target.version_id is not None:
            self._results.put(_cache_key(target.version_id, params, key),
                              CachedCall(call.call_id, call.outputs, call.total_ms, call.predict_ms, utcnow()).to_dict())
        return RunResult(target.name, call.version, target.task, params, data.ref, call.outputs, call.total_ms,
                         call.predict_ms, False, call.call_id)

    def gone(self, actor: Actor, column: Column, data: InputData, why: str) -> RunResult:
        """A column whose service was removed (or whose parameters no longer check): the latest ok
        call of that service name on `data` with those parameters, marked cached, or no outputs;
        `error` says `why`."""
        require(actor, Action.VIEW_SHOWCASE)
        params = dict(column.params)
        hit = self._cached(None, column.service, params, input_hash([payload(data, as_json=False)]))
        base = RunResult(column.service, "?", "", params, data.ref, None)
        if hit is not None:
            base = replace(base, outputs=hit.outputs, total_ms=hit.total_ms, predict_ms=hit.predict_ms,
                           cached=True, call_id=hit.id, cached_at=hit.created_at)
        return replace(base, error=why)

    def _cached(self, version_id: int | None, service: str, params: dict[str, Any], key: str) -> CachedCall | None:
        """The latest ok call with the same version (or, for a service that no longer exists, the
        same service name), params and input hash; None when there is none. The shared cache is
        asked first; a hit from the call history is put in it."""
        cache_key = _cache_key(version_id, params, key) if version_id is not None and self._results else None
        if cache_key and (found := self._results.get(cache_key)) is not None:
            return CachedCall.of(found)
        q = select(AlgorithmCall).where(AlgorithmCall.params_hash == content_hash(params),
                                        AlgorithmCall.input_hash == key, AlgorithmCall.status == "ok")
        q = q.where(AlgorithmCall.version_id == version_id) if version_id is not None else \
            q.where(AlgorithmCall.service_name == service)
        with self._sessions() as s:
            call = s.scalar(q.order_by(AlgorithmCall.id.desc()).limit(1))
        if call is None or call.output is None or "outputs" not in call.output:
            return None     # (an output too large to keep: see app.invoke.bounded_output)
        hit = CachedCall(call.id, call.output.get("outputs"), call.total_ms, call.predict_ms, call.created_at)
        if cache_key:
            self._results.put(cache_key, hit.to_dict())
        return hit


def _cache_key(version_id: int, params: dict[str, Any], input_key: str) -> str:
    return f"v{version_id}:{content_hash(params)}:{input_key}"


def _cached_result(target: Target, params: dict[str, Any], ref: str, call: CachedCall) -> RunResult:
    return RunResult(target.name, target.version, target.task, params, ref, call.outputs,
                     call.total_ms, call.predict_ms, True, call.id, None, call.created_at)


def _choice(view: ServiceView, title: str, manifest: dict[str, Any] | None) -> ServiceChoice:
    parsed = Manifest.model_validate(manifest) if manifest else None
    return ServiceChoice(view.name, title, view.task, view.version, view.state.value,
                         parsed.params if parsed else {}, parsed)
