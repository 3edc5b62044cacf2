"""The Showcase: run deployed algorithms on demo media, uploads or typed text, compare them side by
side, cache results and replay saved scenarios even when a service is down.

Contracts:
- Inputs are referenced as `bucket/key` (a whole object) or `bucket/key#n` (line n, from 1, of a
  demo text file). Demo media lives in the demo bucket under `media/` and `text/`; uploads and
  typed texts are stored under `uploads/` so that scenarios can name them.
- Bad input never reaches a service: an unsupported, oversized, corrupt or over-long input and a
  parameter outside its manifest range raise `ValidationFailed` naming the input or parameter.
- The result cache is `algorithm_calls`: a hit is the latest ok call with the same version,
  params hash and input hash. `run` returns a hit (`cached=True`) unless `force`; when the
  service fails (stopped, timed out, error in predict) `run` does not raise: it returns the
  cached result with `error` set, or no outputs and `error` when nothing is cached.
- Videos go frame by frame through an image service (app.media.run_video); the annotated H.264
  MP4 and the per-frame rows are stored in the results bucket, keyed like the cache.
- How columns differ is computed by app.compare_metrics (pure functions).
"""
from __future__ import annotations

import hashlib
import json
import re
import tempfile
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from itertools import combinations
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from app import media
from app.auth import Action, Actor, can, require
from app.compare_metrics import PairSummary, pair_summary, result_count
from app.db import transaction
from app.errors import PermissionDenied, Problem, ValidationFailed
from app.invoke import InvokeError, Invoker, content_hash, input_hash
from app.manifest import Manifest, ParamError, ParamSpec, validate_params
from app.models import AlgorithmCall, AlgorithmService, Scenario
from app.storage import DEMO_BUCKET, RESULTS_BUCKET, ObjectNotFound, ObjectStore, StorageError

MAX_TEXT_CHARS = 10_000
MAX_COLUMNS = 4
GALLERY_PREFIXES = ("media/", "text/", "uploads/")
UPLOAD_PREFIX = "uploads/"
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".avi", ".mp4", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})
TEXT_EXTENSIONS = frozenset({".txt"})
if TYPE_CHECKING:
    from orchestration.manager import ServiceManager

SCENARIO_NAME_RE = re.compile(r"\S.{0,99}", re.S)
DOC_FILE_RE = re.compile(r"(readme|licen[cs]e|copying|notice|sources|authors)\b", re.I)


# --- inputs ---------------------------------------------------------------------------------------

def media_kind(key: str) -> str | None:
    """"image", "video" or "text" from the key's extension; None for anything else."""
    ext = PurePosixPath(key).suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    return "text" if ext in TEXT_EXTENSIONS else None


@dataclass(frozen=True)
class InputRef:
    """An input in the object store: a whole object, or one line (from 1) of a text object."""
    bucket: str
    key: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.bucket}/{self.key}" + (f"#{self.line}" if self.line else "")

    @property
    def kind(self) -> str | None:
        return media_kind(self.key)

    @classmethod
    def parse(cls, text: str) -> InputRef:
        """`bucket/key` or `bucket/key#n`; ValidationFailed for anything else."""
        path, _, line = text.partition("#")
        bucket, _, key = path.partition("/")
        if not bucket or not key or (line and not line.isdigit()) or line == "0":
            raise ValidationFailed([Problem("input", f"{text!r} is not an input reference (bucket/key[#line])")])
        return cls(bucket, key, int(line) if line else None)


@dataclass(frozen=True)
class MediaItem:
    """One choice of the gallery: its reference, kind, a label to show and the object's size."""
    ref: InputRef
    kind: str
    label: str
    size: int


@dataclass(frozen=True)
class InputData:
    """A loaded, checked input: `text` for text, `data` (bytes) for images and videos."""
    ref: str
    kind: str
    text: str | None = None
    data: bytes | None = None


@dataclass(frozen=True)
class Limits:
    max_upload_bytes: int = 200 * 1024 * 1024
    max_text_chars: int = MAX_TEXT_CHARS
    max_pixels: int = media.DEFAULT_MAX_PIXELS


# --- results -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    """One side of a comparison: a service and its parameters (missing ones take the defaults)."""
    service: str
    params: dict[str, Any] = field(default_factory=dict)


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
class Comparison:
    """Columns run over one input: results aligned with `columns`, counts and pairwise metrics
    (pairs where either side has no output are left out)."""
    input: InputData
    task: str
    columns: list[Column]
    results: list[RunResult]
    counts: list[int | None]
    pairs: list[PairSummary]


@dataclass(frozen=True)
class ServiceChoice:
    """A deployed service as the Showcase offers it."""
    name: str
    title: str
    task: str
    version: str
    state: str
    params: dict[str, ParamSpec]

    @property
    def input_kind(self) -> str:
        return "json" if self.task == "json" else ("text" if self.task.startswith("text.") else "image")

    @property
    def running(self) -> bool:
        return self.state == "RUNNING"


@dataclass(frozen=True)
class ScenarioSpec:
    """Inputs and columns; `every_nth` and `max_frames` choose the frames of its video inputs."""
    inputs: list[str]
    columns: list[Column]
    every_nth: int = 1
    max_frames: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"inputs": list(self.inputs), "columns": [asdict(c) for c in self.columns],
                "frames": {"every_nth": self.every_nth, "max_frames": self.max_frames}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScenarioSpec:
        frames = data.get("frames") or {}
        return cls(list(data.get("inputs", [])), [Column(c["service"], dict(c.get("params") or {}))
                                                   for c in data.get("columns", [])],
                   int(frames.get("every_nth") or 1), frames.get("max_frames"))


@dataclass(frozen=True)
class ScenarioInfo:
    name: str
    spec: ScenarioSpec
    created_by: str
    created_at: datetime
    updated_at: datetime


@dataclass
class VideoResult:
    """A video run. `video_key` names the annotated MP4 in the results bucket (None when no frame
    was done); `frames` has one row per frame done: frame, count, mean_score, latency_ms,
    predict_ms. A cancelled or failed run keeps what was done and is not cached."""
    service: str
    version: str
    task: str
    params: dict[str, Any]
    input_ref: str
    video_key: str | None
    frames: list[dict[str, Any]]
    frames_total: int
    cancelled: bool = False
    error: str | None = None
    cached: bool = False
    wall_s: float = 0.0
    outputs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.cancelled and self.error is None and len(self.frames) == self.frames_total


@dataclass(frozen=True)
class _Target:
    name: str
    version_id: int | None
    version: str
    task: str
    manifest: Manifest | None


@dataclass(frozen=True)
class VideoPlan:
    """A checked video run, ready to execute (see `Showcase.plan_video`)."""
    actor: Actor
    target: _Target
    params: dict[str, Any]
    data: InputData
    every_nth: int
    max_frames: int | None
    cache_key: str


# --- the service ------------------------------------------------------------------------------------

class Showcase:
    """Runs, compares, caches and replays. `services` is the ServiceManager (live states);
    `workdir` holds temporary video files."""

    def __init__(self, sessions: sessionmaker[Session], invoker: Invoker, objects: ObjectStore,
                 services: ServiceManager, *, workdir: Path, limits: Limits | None = None) -> None:
        self._sessions = sessions
        self._invoker = invoker
        self._objects = objects
        self._services = services
        self._workdir = workdir
        self.limits = limits or Limits()

    # --- what can be chosen ---------------------------------------------------------------------

    def services(self, actor: Actor) -> list[ServiceChoice]:
        """Every deployed service with its live state and the parameters of its serving version."""
        require(actor, Action.VIEW_SHOWCASE)
        states = {v.name: v.state.value for v in self._services.list(actor, resources=False)}
        with self._sessions() as s:
            rows = s.scalars(select(AlgorithmService).options(selectinload(AlgorithmService.version),
                                                              selectinload(AlgorithmService.algorithm))
                             .order_by(AlgorithmService.name)).all()
            return [ServiceChoice(r.name, r.algorithm.title, r.algorithm.task, r.version.tag if r.version else "?",
                                  states.get(r.name, "STOPPED"), _manifest(r).params if r.version else {})
                    for r in rows]

    def gallery(self, kind: str) -> list[MediaItem]:
        """Demo media and uploads of `kind` ("image", "video", "text"); text files give one item
        per non-empty line, except uploaded texts, which are one input each."""
        items: list[MediaItem] = []
        for info in self._objects.list(DEMO_BUCKET):
            if not info.key.startswith(GALLERY_PREFIXES) or media_kind(info.key) != kind:
                continue
            if kind == "text" and not info.key.startswith(UPLOAD_PREFIX):
                items += self._text_lines(info.key, info.size)
            else:
                items.append(MediaItem(InputRef(DEMO_BUCKET, info.key), kind, info.key, info.size))
        return items

    def _text_lines(self, key: str, size: int) -> list[MediaItem]:
        if DOC_FILE_RE.match(PurePosixPath(key).name):   # licences and notes beside the demo media
            return []
        text = self._objects.get(DEMO_BUCKET, key).decode("utf-8", errors="replace")
        return [MediaItem(InputRef(DEMO_BUCKET, key, n), "text", f"{PurePosixPath(key).name}: {line.strip()[:80]}",
                          len(line.encode())) for n, line in enumerate(text.splitlines(), 1) if line.strip()]

    # --- adding inputs ---------------------------------------------------------------------------

    def add_media(self, actor: Actor, filename: str, data: bytes) -> MediaItem:
        """Check an upload (type, size, decodable) and store it under `uploads/`; returns its item.
        ValidationFailed ("file") when it is refused; identical uploads share one object."""
        require(actor, Action.VIEW_SHOWCASE)
        kind = self._upload_kind(filename, data)
        self._check(InputData(filename, kind, data.decode("utf-8") if kind == "text" else None,
                              None if kind == "text" else data), field_name="file")
        return self._store(filename, data, kind)

    def add_text(self, actor: Actor, text: str) -> MediaItem:
        """Store typed text (checked: not empty, at most `max_text_chars`) as an input."""
        require(actor, Action.VIEW_SHOWCASE)
        self._check(InputData("text", "text", text))
        return self._store("text.txt", text.encode("utf-8"), "text")

    def _upload_kind(self, filename: str, data: bytes) -> str:
        if len(data) > self.limits.max_upload_bytes:
            raise ValidationFailed([Problem("file", f"{filename} is {len(data) / 2**20:.1f} MiB; at most "
                                                    f"{self.limits.max_upload_bytes / 2**20:g} MiB allowed")])
        sniffed = media.sniff(data) or ""
        if sniffed.startswith("image/") or sniffed.startswith("video/"):
            return sniffed.partition("/")[0]
        if media_kind(filename) == "text" or (media_kind(filename) is None and media.looks_like_text(data)):
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                raise ValidationFailed([Problem("file", f"{filename} is not UTF-8 text")]) from None
            return "text"
        if media_kind(filename) in ("image", "video"):
            return media_kind(filename) or ""
        raise ValidationFailed([Problem("file", f"{filename}: unsupported type; images (JPEG, PNG, BMP, GIF, WebP, "
                                                "TIFF), videos (AVI, MP4, MOV, MKV, WebM) or UTF-8 text expected")])

    def _store(self, filename: str, data: bytes, kind: str) -> MediaItem:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", PurePosixPath(filename).name).strip("-.")[:80] or "upload"
        ext = {"image": ".png", "video": ".mp4", "text": ".txt"}[kind]
        if media_kind(stem) != kind:
            stem += ext if kind != "image" else _IMAGE_EXT.get(media.sniff(data) or "", ".png")
        key = f"{UPLOAD_PREFIX}{hashlib.sha256(data).hexdigest()[:12]}-{stem}"
        if self._objects.stat(DEMO_BUCKET, key) is None:
            self._objects.put(DEMO_BUCKET, key, data)
        return MediaItem(InputRef(DEMO_BUCKET, key), kind, key, len(data))

    # --- loading and checking inputs ---------------------------------------------------------------

    def load(self, ref: InputRef | str) -> InputData:
        """The input `ref` names, checked as an input of its kind. ValidationFailed ("input") when
        it is missing, of an unknown type, or not usable."""
        ref = InputRef.parse(ref) if isinstance(ref, str) else ref
        kind = ref.kind
        if kind is None:
            raise ValidationFailed([Problem("input", f"{ref.key}: unsupported type")])
        try:
            raw = self._objects.get(ref.bucket, ref.key)
        except ObjectNotFound:
            raise ValidationFailed([Problem("input", f"{ref} does not exist")]) from None
        except StorageError as e:
            raise ValidationFailed([Problem("input", str(e))]) from None
        data = self._decode_ref(ref, kind, raw)
        self._check(data)
        return data

    @staticmethod
    def _decode_ref(ref: InputRef, kind: str, raw: bytes) -> InputData:
        if kind != "text":
            return InputData(str(ref), kind, data=raw)
        text = raw.decode("utf-8", errors="replace")
        if ref.line is not None:
            lines = text.splitlines()
            if ref.line > len(lines):
                raise ValidationFailed([Problem("input", f"{ref.key} has no line {ref.line}")])
            text = lines[ref.line - 1]
        return InputData(str(ref), "text", text=text.strip())

    def _check(self, data: InputData, field_name: str = "input") -> None:
        """Refuses empty or over-long text, undecodable images and unreadable videos."""
        reason = None
        if data.kind == "text":
            n = len(data.text or "")
            if not (data.text or "").strip():
                reason = "the text is empty"
            elif n > self.limits.max_text_chars:
                reason = f"the text is {n:,} characters long; at most {self.limits.max_text_chars:,} are allowed"
        elif data.kind == "image":
            try:
                media.decode_image(data.data or b"", max_pixels=self.limits.max_pixels)
            except media.MediaError as e:
                reason = str(e)
        elif data.kind == "video":
            reason = self._video_problem(data.data or b"")
        if reason:
            raise ValidationFailed([Problem(field_name, reason)])

    def _video_problem(self, data: bytes) -> str | None:
        with self._temp_file(data) as path:
            try:
                media.probe_video(path)
            except media.MediaError as e:
                return str(e).replace(path.name, "the video")
        return None

    def video_poster(self, data: InputData) -> tuple[media.VideoInfo, bytes]:
        """A video's size, length, rate and codec, and its first frame as JPEG: a preview every
        browser shows (browsers play H.264 MP4 and WebM, not the AVI files of the demo gallery).
        ValidationFailed ("input") when the video is unreadable."""
        with self._temp_file(data.data or b"") as path:
            try:
                info, first = media.video_poster(path)
            except media.MediaError as e:
                raise ValidationFailed([Problem("input", f"{data.ref}: no frame to show ({e})")]) from None
        return info, media.encode_jpeg(first, quality=85)

    def _temp_file(self, data: bytes) -> _TempFile:
        return _TempFile(self._workdir, data)

    def _coerce_input(self, value: InputRef | InputData | str | bytes) -> InputData:
        """InputRef/InputData as they are (refs loaded); str is typed text; bytes an uploaded image."""
        if isinstance(value, InputData):
            return value
        if isinstance(value, InputRef):
            return self.load(value)
        data = InputData("typed text", "text", text=value) if isinstance(value, str) else \
            InputData("upload", "image", data=value)
        self._check(data)
        return data

    # --- parameters -----------------------------------------------------------------------------

    def check_params(self, service: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """The parameters `service` would receive: defaults filled in, every value checked against
        its manifest. ValidationFailed names each bad parameter (field = its name)."""
        return self._params(self._target(service), params)

    @staticmethod
    def _params(target: _Target, params: Mapping[str, Any] | None, prefix: str = "") -> dict[str, Any]:
        if target.manifest is None:
            return dict(params or {})
        try:
            return validate_params(target.manifest, params)
        except ParamError as e:
            raise ValidationFailed([Problem(prefix + p.field, p.reason) for p in e.problems]) from None

    def _target(self, name: str) -> _Target:
        with self._sessions() as s:
            row = s.scalar(select(AlgorithmService).where(AlgorithmService.name == name).options(
                selectinload(AlgorithmService.version), selectinload(AlgorithmService.algorithm)))
            if row is None:
                raise ValidationFailed([Problem("service", f"no service {name!r}")])
            return _Target(name, row.version_id, row.version.tag if row.version else "?", row.algorithm.task,
                           _manifest(row) if row.version else None)

    # --- running --------------------------------------------------------------------------------

    def run(self, actor: Actor, service: str, input: InputRef | InputData | str | bytes,
            params: Mapping[str, Any] | None = None, *, force: bool = False) -> RunResult:
        """Run `service` on one input, or return the cached result of an identical earlier run."""
        require(actor, Action.VIEW_SHOWCASE)
        target = self._target(service)
        checked = self._params(target, params)
        data = self._coerce_input(input)
        self._check_fits(target, data)
        return self._run(actor, target, checked, data, force)

    def _run(self, actor: Actor, target: _Target, params: dict[str, Any], data: InputData, force: bool) -> RunResult:
        payload = self._payload(target, data)
        key = input_hash([payload])
        if not force:
            hit = self._cached(target, params, key, data.ref)
            if hit is not None:
                return hit
        try:
            call = self._invoker.invoke(actor, target.name, [payload], params, input_ref=data.ref)
        except InvokeError as e:
            hit = self._cached(target, params, key, data.ref)
            base = hit or RunResult(target.name, target.version, target.task, params, data.ref, None)
            return replace(base, error=str(e))
        return RunResult(target.name, call.version, target.task, params, data.ref, call.outputs, call.total_ms,
                         call.predict_ms, False, call.call_id)

    @staticmethod
    def _check_fits(target: _Target, data: InputData) -> None:
        wanted = "json" if target.task == "json" else ("text" if target.task.startswith("text.") else "image")
        if data.kind == "video":
            reason = "videos run through the video view, frame by frame" if wanted == "image" else None
            reason = reason or f"{target.name} takes {wanted} input, not a video"
        elif wanted == "json" and data.kind == "text":
            return
        elif data.kind != wanted:
            reason = f"{target.name} takes {wanted} input, not {data.kind}"
        else:
            return
        raise ValidationFailed([Problem("input", reason)])

    @staticmethod
    def _payload(target: _Target, data: InputData) -> Any:
        """What goes to the service: text, a dict (json tasks), or JPEG/PNG bytes (other image
        formats are converted to PNG, which every runner decodes)."""
        if data.kind == "text":
            if target.task != "json":
                return data.text
            try:
                return json.loads(data.text or "")
            except ValueError as e:
                raise ValidationFailed([Problem("input", f"not JSON: {e}")]) from None
        raw = data.data or b""
        return raw if media.sniff(raw) in ("image/jpeg", "image/png") else media.to_png(media.decode_image(raw))

    def _cached(self, target: _Target, params: dict[str, Any], input_hash: str, ref: str) -> RunResult | None:
        """The latest ok call with the same version (or, for a service that no longer exists, the
        same service name), params and input; None when there is none."""
        q = select(AlgorithmCall).where(AlgorithmCall.params_hash == content_hash(params),
                                        AlgorithmCall.input_hash == input_hash, AlgorithmCall.status == "ok")
        q = q.where(AlgorithmCall.version_id == target.version_id) if target.version_id is not None else \
            q.where(AlgorithmCall.service_name == target.name)
        with self._sessions() as s:
            call = s.scalar(q.order_by(AlgorithmCall.id.desc()).limit(1))
        if call is None or call.output is None:
            return None
        return RunResult(target.name, target.version, target.task, params, ref, call.output.get("outputs"),
                         call.total_ms, call.predict_ms, True, call.id, None, call.created_at)

    # --- comparing --------------------------------------------------------------------------------

    def compare(self, actor: Actor, input: InputRef | InputData | str | bytes, columns: Sequence[Column], *,
                force: bool = False) -> Comparison:
        """Every column over the same input, one after the other (so they do not slow each other),
        then counts and pairwise metrics. ValidationFailed before any call when a column's service
        or parameters are refused, the columns take different inputs, or there are not 1–4 columns."""
        require(actor, Action.VIEW_SHOWCASE)
        targets, params = self._check_columns(columns)
        data = self._coerce_input(input)
        for target in targets:
            self._check_fits(target, data)
        results = [self._run(actor, tg, p, data, force) for tg, p in zip(targets, params)]
        return _comparison(data, targets, columns, results)

    def _check_columns(self, columns: Sequence[Column]) -> tuple[list[_Target], list[dict[str, Any]]]:
        """1 to MAX_COLUMNS columns of existing services with valid parameters, all taking the same
        kind of input: their targets and checked parameters."""
        if not 1 <= len(columns) <= MAX_COLUMNS:
            raise ValidationFailed([Problem("columns", f"1 to {MAX_COLUMNS} columns, got {len(columns)}")])
        problems: list[Problem] = []
        targets: list[_Target] = []
        params: list[dict[str, Any]] = []
        for i, col in enumerate(columns, 1):
            try:
                target = self._target(col.service)
                targets.append(target)
                params.append(self._params(target, col.params, prefix=f"column {i} · "))
            except ValidationFailed as e:
                problems += [Problem(f"column {i} · {p.field}", p.reason) if not p.field.startswith("column") else p
                             for p in e.problems]
        kinds = {t.task.partition(".")[0] for t in targets}
        if len(kinds) > 1:
            problems.append(Problem("columns", f"the services take different inputs ({', '.join(sorted(kinds))})"))
        if problems:
            raise ValidationFailed(problems)
        return targets, params

    # --- scenarios -------------------------------------------------------------------------------

    def save_scenario(self, actor: Actor, name: str, spec: ScenarioSpec) -> ScenarioInfo:
        """Save (or overwrite) a scenario. Its inputs must exist and its columns be valid; params
        are stored with defaults filled in, so a replay hits the same cache entries."""
        require(actor, Action.VIEW_SHOWCASE)
        name = name.strip()
        problems = [] if SCENARIO_NAME_RE.fullmatch(name) else [Problem("name", "1 to 100 characters")]
        if not spec.inputs:
            problems.append(Problem("inputs", "at least one input"))
        loaded = []
        for ref in spec.inputs:
            try:
                loaded.append(self.load(ref))
            except ValidationFailed as e:
                problems += e.problems
        try:
            targets, params = self._check_columns(spec.columns)
            for data in loaded:
                if data.kind == "video":
                    self._video_plans(actor, targets, params, data, spec.every_nth, spec.max_frames)
                else:
                    self._check_fits(targets[0], data)
        except ValidationFailed as e:
            problems += e.problems
        if problems:
            raise ValidationFailed(problems)
        stored = ScenarioSpec(list(spec.inputs), [Column(c.service, p) for c, p in zip(spec.columns, params)],
                              spec.every_nth, spec.max_frames)
        with transaction(self._sessions) as s:
            row = s.scalar(select(Scenario).where(Scenario.name == name))
            if row is None:
                row = Scenario(name=name, spec=stored.to_json(), created_by=actor.username)
                s.add(row)
            else:
                row.spec = stored.to_json()
            s.flush()
            return _scenario_info(row)

    def scenarios(self, actor: Actor) -> list[ScenarioInfo]:
        require(actor, Action.VIEW_SHOWCASE)
        with self._sessions() as s:
            return [_scenario_info(r) for r in s.scalars(select(Scenario).order_by(Scenario.name))]

    def scenario(self, actor: Actor, name: str) -> ScenarioInfo:
        found = [sc for sc in self.scenarios(actor) if sc.name == name]
        if not found:
            raise ValidationFailed([Problem("scenario", f"no scenario {name!r}")])
        return found[0]

    def delete_scenario(self, actor: Actor, name: str) -> None:
        """Delete a scenario: its author, or an operator/admin. Deleting a missing one is a no-op."""
        require(actor, Action.VIEW_SHOWCASE)
        with transaction(self._sessions) as s:
            row = s.scalar(select(Scenario).where(Scenario.name == name))
            if row is None:
                return
            if row.created_by != actor.username and not can(actor, Action.VIEW_ALL_HISTORY):
                raise PermissionDenied(f"{actor.username} may not delete {row.created_by}'s scenario")
            s.delete(row)

    def replay(self, actor: Actor, name: str, *, force: bool = False) -> list[Comparison]:
        """One comparison per image or text input of the scenario (videos: `plan_replay_videos`).
        A column whose service is down (or gone) shows its cached result, marked cached, with the
        failure in `error`."""
        spec = self.scenario(actor, name).spec
        return [self._replay_input(actor, ref, spec.columns, force) for ref in spec.inputs
                if InputRef.parse(ref).kind != "video"]

    def plan_replay_videos(self, actor: Actor, name: str) -> list[list[VideoPlan]]:
        """The planned video comparisons of the scenario, one per video input, for
        `start_video_compare`; [] when it has none. A service that is down replays from the video
        cache; one that was removed is refused (ValidationFailed)."""
        spec = self.scenario(actor, name).spec
        return [self.plan_video_compare(actor, self.load(ref), spec.columns, every_nth=spec.every_nth,
                                        max_frames=spec.max_frames)
                for ref in spec.inputs if InputRef.parse(ref).kind == "video"]

    def _replay_input(self, actor: Actor, ref: str, columns: list[Column], force: bool) -> Comparison:
        data = self.load(ref)
        targets, results = [], []
        for col in columns:
            try:
                target = self._target(col.service)
                params = self._params(target, col.params)
            except ValidationFailed as e:   # the service was removed or its parameters changed
                target, params = _Target(col.service, None, "?", "", None), dict(col.params)
                results.append(self._gone(target, params, data, str(e)))
            else:
                results.append(self._run(actor, target, params, data, force))
            targets.append(target)
        return _comparison(data, targets, columns, results)

    def _gone(self, target: _Target, params: dict[str, Any], data: InputData, why: str) -> RunResult:
        hit = self._cached(target, params, input_hash([self._payload(target, data)]), data.ref)
        base = hit or RunResult(target.name, "?", target.task, params, data.ref, None)
        return replace(base, error=why)

    # --- video ----------------------------------------------------------------------------------

    def run_video(self, actor: Actor, service: str, input: InputRef | InputData, params: Mapping[str, Any] | None,
                  *, every_nth: int = 1, max_frames: int | None = None, force: bool = False,
                  progress: media.Progress | None = None, cancel: threading.Event | None = None) -> VideoResult:
        """Run an image service over a video, frame by frame; the annotated MP4 goes to the results
        bucket. A complete earlier run with the same version, params, video and frame choice is
        returned from the results bucket (`cached`) unless `force`; when the service is down and
        such a run exists, it is returned with `error` set."""
        plan = self.plan_video(actor, service, input, params, every_nth=every_nth, max_frames=max_frames)
        return self.execute_video(plan, force=force, progress=progress, cancel=cancel)

    def plan_video(self, actor: Actor, service: str, input: InputRef | InputData, params: Mapping[str, Any] | None,
                   *, every_nth: int = 1, max_frames: int | None = None) -> VideoPlan:
        """Every check of a video run, before any frame is sent (ValidationFailed)."""
        require(actor, Action.VIEW_SHOWCASE)
        target = self._target(service)
        checked = self._params(target, params)
        return self._video_plans(actor, [target], [checked], self._coerce_input(input), every_nth, max_frames)[0]

    def _video_plans(self, actor: Actor, targets: Sequence[_Target], params: Sequence[dict[str, Any]],
                     data: InputData, every_nth: int, max_frames: int | None) -> list[VideoPlan]:
        """One plan per (target, checked params) over the video `data`; ValidationFailed when it is
        not a video, a target does not take images, or the frame choice is impossible."""
        if data.kind != "video":
            raise ValidationFailed([Problem("input", f"{data.ref} is not a video")])
        for target in targets:
            if not target.task.startswith(("image.", "video.")):
                raise ValidationFailed([Problem("service", f"{target.name} takes {target.task.partition('.')[0]} "
                                                           "input, not video frames")])
        if every_nth < 1 or (max_frames is not None and max_frames < 1):
            raise ValidationFailed([Problem("frames", "every n-th frame needs n >= 1 and at most >= 1 frames")])
        digest = hashlib.sha256(data.data or b"").hexdigest()[:24]
        return [VideoPlan(actor, target, checked, data, every_nth, max_frames,
                          f"video/{target.version_id}/{content_hash(checked)[:16]}/{digest}-n{every_nth}"
                          f"-m{max_frames or 0}") for target, checked in zip(targets, params)]

    def plan_video_compare(self, actor: Actor, input: InputRef | InputData, columns: Sequence[Column], *,
                           every_nth: int = 1, max_frames: int | None = None) -> list[VideoPlan]:
        """Every check of a video comparison (1–4 columns of image services, their parameters, the
        video, the frame choice) before any frame is sent; ValidationFailed names what is refused."""
        require(actor, Action.VIEW_SHOWCASE)
        targets, params = self._check_columns(columns)
        return self._video_plans(actor, targets, params, self._coerce_input(input), every_nth, max_frames)

    def start_video_compare(self, plan_sets: Sequence[Sequence[VideoPlan]], *, force: bool = False) -> VideoJob:
        """Each set of planned columns (one video comparison) runs column after column in a
        background thread; `job.result` is a list of `app.video_compare.VideoComparison`, one per
        set, and `job.stage` the column running (1-based, counted over every set, of n)."""
        from app.video_compare import run_comparisons  # imports this module

        job = VideoJob()

        def progress(stage: int, stages: int, done: int, frames: int) -> None:
            job.stage = (stage, stages)
            job.update(done, frames)
        job.start(lambda: run_comparisons(plan_sets, self.execute_video, force=force, progress=progress,
                                          cancel=job.cancel_event))
        return job

    def start_video(self, plan: VideoPlan, *, force: bool = False) -> VideoJob:
        """`execute_video` in a background thread, for pages that poll progress and offer cancel."""
        job = VideoJob()
        job.start(lambda: self.execute_video(plan, force=force, progress=job.update, cancel=job.cancel_event))
        return job

    def execute_video(self, plan: VideoPlan, *, force: bool = False, progress: media.Progress | None = None,
                      cancel: threading.Event | None = None) -> VideoResult:
        cached = None if force else self._cached_video(plan)
        if cached is not None:
            return cached
        with self._temp_file(plan.data.data or b"") as src:
            out = src.with_suffix(".mp4")
            try:
                run = media.run_video(src, self._frame_predict(plan), task=plan.target.task, out_path=out,
                                      every_nth=plan.every_nth, max_frames=plan.max_frames,
                                      progress=progress or (lambda done, total: None), cancel=cancel)
            except media.MediaError as e:
                raise ValidationFailed([Problem("input", str(e).replace(src.name, "the video"))]) from None
            result = self._video_result(plan, run)
            out.unlink(missing_ok=True)
        if result.frames == [] and result.error:
            hit = self._cached_video(plan)
            return replace(hit, error=result.error) if hit is not None else result
        return result

    def _frame_predict(self, plan: VideoPlan) -> media.Predict:
        def predict(jpeg: bytes) -> dict:
            call = self._invoker.invoke(plan.actor, plan.target.name, [jpeg], plan.params,
                                        input_ref=f"{plan.data.ref} (video frame)")
            output = call.outputs[0]
            return {**output, "_predict_ms": call.predict_ms} if isinstance(output, dict) else output
        return predict

    def _video_result(self, plan: VideoPlan, run: media.VideoRun) -> VideoResult:
        predict_ms = [o.pop("_predict_ms", None) for o in run.outputs]
        rows = [{**row, "predict_ms": ms} for row, ms in zip(run.summary(plan.target.task), predict_ms)]
        result = VideoResult(plan.target.name, plan.target.version, plan.target.task, plan.params, plan.data.ref,
                             None, rows, run.frames_total, run.cancelled, run.error, False, run.wall_s, run.outputs)
        if run.out_path is None:
            return result
        key = f"{plan.cache_key}.mp4" if result.complete else f"video/partial/{uuid.uuid4().hex}.mp4"
        self._objects.put(RESULTS_BUCKET, key, run.out_path.read_bytes(), "video/mp4")
        result.video_key = key
        if result.complete:
            self._objects.put(RESULTS_BUCKET, f"{plan.cache_key}.json", json.dumps(_video_json(result)).encode(),
                              "application/json")
        return result

    def _cached_video(self, plan: VideoPlan) -> VideoResult | None:
        try:
            data = json.loads(self._objects.get(RESULTS_BUCKET, f"{plan.cache_key}.json"))
        except (ObjectNotFound, ValueError):
            return None
        if self._objects.stat(RESULTS_BUCKET, data.get("video_key") or "-") is None:
            return None
        return VideoResult(**{**data, "cached": True})

    def video_bytes(self, result: VideoResult) -> bytes | None:
        """The annotated MP4 of a video run, None when there is none."""
        return self._objects.get(RESULTS_BUCKET, result.video_key) if result.video_key else None


_IMAGE_EXT = {"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/bmp": ".bmp",
              "image/webp": ".webp", "image/tiff": ".tiff"}


def _manifest(row: AlgorithmService) -> Manifest:
    return Manifest.model_validate(row.version.manifest)


def _scenario_info(row: Scenario) -> ScenarioInfo:
    return ScenarioInfo(row.name, ScenarioSpec.from_json(row.spec), row.created_by, row.created_at, row.updated_at)


def _video_json(result: VideoResult) -> dict[str, Any]:
    data = asdict(result)
    data.pop("cached")
    return data


def _comparison(data: InputData, targets: list[_Target], columns: Sequence[Column],
                results: list[RunResult]) -> Comparison:
    task = next((t.task for t in targets if t.task), "")
    counts = [result_count(task, r.output) if r.ok else None for r in results]
    pairs = [pair_summary(task, i, j, results[i].output, results[j].output)
             for i, j in combinations(range(len(results)), 2)
             if isinstance(results[i].output, Mapping) and isinstance(results[j].output, Mapping)]
    return Comparison(data, task, list(columns), results, counts, pairs)


class _TempFile:
    """Context manager: `data` in a temporary file under `workdir`, removed on exit."""

    def __init__(self, workdir: Path, data: bytes) -> None:
        self._workdir, self._data = workdir, data

    def __enter__(self) -> Path:
        self._workdir.mkdir(parents=True, exist_ok=True)
        self._dir = Path(tempfile.mkdtemp(prefix="showcase-", dir=self._workdir))
        path = self._dir / "input.bin"
        path.write_bytes(self._data)
        return path

    def __exit__(self, *exc: object) -> None:
        for p in self._dir.iterdir():
            p.unlink(missing_ok=True)
        self._dir.rmdir()


class VideoJob:
    """A video run in a background thread: `progress` (done, total) of the column running, `stage`
    (column, columns) for a comparison, `cancel()`, and when `done`, `result` (a VideoResult, or a
    VideoComparison) or `error` (the message of a refused input or unexpected failure)."""

    def __init__(self) -> None:
        self.cancel_event = threading.Event()
        self.progress: tuple[int, int] = (0, 0)
        self.stage: tuple[int, int] | None = None
        self.result: Any = None
        self.error: str | None = None
        self._thread: threading.Thread | None = None

    def start(self, work: Callable[[], Any]) -> None:
        def body() -> None:
            try:
                self.result = work()
            except ValidationFailed as e:
                self.error = "; ".join(str(p) for p in e.problems)
            except Exception as e:  # noqa: BLE001 - shown on the page instead of dying unseen in a thread
                self.error = f"{type(e).__name__}: {e}"
        self._thread = threading.Thread(target=body, name="showcase-video", daemon=True)
        self._thread.start()

    def update(self, done: int, total: int) -> None:
        self.progress = (done, total)

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def done(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.done
