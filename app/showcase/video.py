"""Video runs: an image service over a video, frame by frame (app.media.run_video).

Contracts:
- `plan`/`plans` make every check before any frame is sent (ValidationFailed): the input is a
  video, every service takes images (`input_kind` "image": image and video tasks), the
  parameters fit the manifest, the frame choice is possible. A plan holds its service's Target,
  looked up once: every frame's call reuses it.
- The annotated H.264 MP4 and the per-frame rows of a complete run are stored in the results
  bucket, keyed by version, params, video and frame choice (the video cache). `execute` returns
  such a run (`cached`) unless `force`; when the service is down and one exists it is returned
  with `error` set. A cancelled or failed run keeps what was done and is not cached.
- `start` runs a plan as a background job (app.jobs) and returns the job's id; the job's result
  is the VideoResult.
- A run (not one from the video cache) is recorded as ONE call in `algorithm_calls` (History: a video
  run): its frames' requests are not recorded one by one; the row holds every frame's detail
  (frame, count, mean score, latency, predict time) and the key of the annotated MP4
  (`app.history.video_output`), status "error" with the run's error when it failed. Its input hash
  is the video's and the frame choice's, so no single-image run can take it for a cached result.
  A result returned from the video cache records nothing.
- Frames go to the service raw (their pixels, NPY; the invoker sends JPEG to another host), at
  the width the algorithm shrinks them to itself when its manifest names that parameter
  (`resize_param`), and its results are scaled back to the frame.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from app import media
from app.auth import Action, Actor, require
from app.catalog.manifest import Manifest
from app.errors import Message, Problem, ValidationFailed
from app.history import video_output
from app.invoke import Invoker, Target, content_hash
from app.jobs import JobContext, Jobs
from app.showcase.inputs import InputData, InputRef, Inputs, temp_file
from app.showcase.runs import Resolved, Runs
from app.storage import RESULTS_BUCKET, ObjectNotFound, ObjectStore, StorageError

log = logging.getLogger("algostage.showcase")


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
class VideoPlan:
    """A checked video run, ready to execute: the service resolved once, its checked parameters,
    the video, the frame choice and the key of its entry in the video cache."""
    target: Target
    params: dict[str, Any]
    data: InputData
    every_nth: int
    max_frames: int | None
    cache_key: str


class Videos:
    """Plans, runs (in the foreground or as jobs) and caches video runs."""

    def __init__(self, invoker: Invoker, objects: ObjectStore, inputs: Inputs, runs: Runs, jobs: Jobs, *,
                 workdir: Path) -> None:
        self._invoker = invoker
        self._objects = objects
        self._inputs = inputs
        self._runs = runs
        self._jobs = jobs
        self._workdir = workdir

    # --- planning ---------------------------------------------------------------------------------

    def plan(self, actor: Actor, service: str, input: InputRef | InputData, params: Mapping[str, Any] | None,
             *, every_nth: int = 1, max_frames: int | None = None) -> VideoPlan:
        """Every check of a video run of `service`, before any frame is sent (ValidationFailed)."""
        require(actor, Action.VIEW_SHOWCASE)
        column = self._runs.prepare(actor, service, params)
        return self.plans(actor, [column], self._inputs.coerce(actor, input), every_nth, max_frames)[0]

    def plans(self, actor: Actor, columns: Sequence[Resolved], data: InputData, every_nth: int,
              max_frames: int | None) -> list[VideoPlan]:
        """One plan per resolved column over the video `data`; ValidationFailed when it is not a
        video, a column's service does not take images, or the frame choice is impossible."""
        require(actor, Action.VIEW_SHOWCASE)
        if data.kind != "video":
            raise ValidationFailed([Problem("input", Message("input.not_video", "{ref} is not a video", ref=data.ref))])
        for column in columns:
            if column.target.input_kind != "image":
                raise ValidationFailed([Problem("service", Message("video.not_frames", "{name} takes {kind} input, not video "
                                                               "frames", name=column.target.name,
                                                               kind=column.target.input_kind))])
        if every_nth < 1 or (max_frames is not None and max_frames < 1):
            raise ValidationFailed([Problem("frames", Message("video.frames", "every n-th frame needs n >= 1 and at most >= 1 frames"))])
        digest = hashlib.sha256(data.data or b"").hexdigest()[:24]
        return [VideoPlan(c.target, c.params, data, every_nth, max_frames,
                          f"video/{c.target.version_id}/{content_hash(c.params)[:16]}/{digest}-n{every_nth}"
                          f"-m{max_frames or 0}") for c in columns]

    # --- running ----------------------------------------------------------------------------------

    def run(self, actor: Actor, service: str, input: InputRef | InputData, params: Mapping[str, Any] | None,
            *, every_nth: int = 1, max_frames: int | None = None, force: bool = False,
            progress: media.Progress | None = None, cancel: threading.Event | None = None) -> VideoResult:
        """`plan` then `execute`, in the foreground."""
        plan = self.plan(actor, service, input, params, every_nth=every_nth, max_frames=max_frames)
        return self.execute(actor, plan, force=force, progress=progress, cancel=cancel)

    def start(self, actor: Actor, plan: VideoPlan, *, force: bool = False) -> str:
        """`execute` as a background job owned by `actor`; returns the job's id (see app.jobs)."""
        require(actor, Action.VIEW_SHOWCASE)

        def work(job: JobContext) -> VideoResult:
            return self.execute(actor, plan, force=force, progress=job.progress, cancel=job.cancel_event)
        return self._jobs.submit(actor, "video", work)

    def execute(self, actor: Actor, plan: VideoPlan, *, force: bool = False, progress: media.Progress | None = None,
                cancel: threading.Event | None = None) -> VideoResult:
        """The planned run (see the module contract); ValidationFailed ("input") when the video
        cannot be decoded."""
        require(actor, Action.VIEW_SHOWCASE)
        cached = None if force else self._cached(plan)
        if cached is not None:
            return cached
        with temp_file(self._workdir, plan.data.data or b"") as src:
            try:
                run = media.run_video(src, self._frame_predict(actor, plan), task=plan.target.task,
                                      out_path=src.with_suffix(".mp4"), every_nth=plan.every_nth,
                                      max_frames=plan.max_frames, progress=progress or (lambda done, total: None),
                                      cancel=cancel, opencv_threads=1,   # the frames' predicts are service calls
                                      frame_format="raw",   # as JPEG to another host: see app.invoke
                                      frame_width=frame_width(plan))
            except media.MediaError as e:
                raise ValidationFailed([Problem("input", str(e).replace(src.name, "the video"))]) from None
            result, replicas = self._store(plan, run)
        self._record(actor, plan, result, replicas)
        if result.frames == [] and result.error:
            hit = self._cached(plan)
            return replace(hit, error=result.error) if hit is not None else result
        return result

    def video_bytes(self, actor: Actor, result: VideoResult) -> bytes | None:
        """The annotated MP4 of a video run, None when there is none."""
        require(actor, Action.VIEW_SHOWCASE)
        return self._objects.get(RESULTS_BUCKET, result.video_key) if result.video_key else None

    # --- internals ----------------------------------------------------------------------------------

    def _frame_predict(self, actor: Actor, plan: VideoPlan) -> media.Predict:
        """One frame's call, not recorded on its own (the run is, by `_record`); its predict time and
        replica ride along in the output until `_store` takes them out."""
        def predict(jpeg: bytes) -> dict:
            call = self._invoker.invoke(actor, plan.target, [jpeg], plan.params, record=False)
            output = call.outputs[0]
            return {**output, "_predict_ms": call.predict_ms, "_replica": call.replica} if isinstance(output, dict) \
                else output
        return predict

    def _store(self, plan: VideoPlan, run: media.VideoRun) -> tuple[VideoResult, list[str]]:
        """The VideoResult of `run`, its annotated MP4 stored (and, when complete, cached), and the
        replicas that answered its frames."""
        predict_ms = [o.pop("_predict_ms", None) for o in run.outputs]
        replicas = list(dict.fromkeys(r for o in run.outputs if (r := o.pop("_replica", None))))
        rows = [{**row, "predict_ms": ms} for row, ms in zip(run.summary(plan.target.task), predict_ms)]
        result = VideoResult(plan.target.name, plan.target.version, plan.target.task, plan.params, plan.data.ref,
                             None, rows, run.frames_total, run.cancelled, run.error, False, run.wall_s, run.outputs)
        if run.out_path is None:
            return result, replicas
        key = f"{plan.cache_key}.mp4" if result.complete else f"video/partial/{uuid.uuid4().hex}.mp4"
        try:
            self._objects.put(RESULTS_BUCKET, key, run.out_path.read_bytes(), "video/mp4")
        except StorageError as e:   # the run is recorded as failed, naming no video
            result.error = "; ".join(filter(None, [result.error, f"the annotated video was not stored: {e}"]))
            return result, replicas
        result.video_key = key
        if result.complete:
            try:
                self._objects.put(RESULTS_BUCKET, f"{plan.cache_key}.json", json.dumps(_video_json(result)).encode(),
                                  "application/json")
            except StorageError as e:   # the video is stored whole; the run is just not cached
                log.warning("video run of %s not cached: %s", plan.target.name, e)
        return result, replicas

    def _record(self, actor: Actor, plan: VideoPlan, result: VideoResult, replicas: list[str]) -> None:
        """The run as one recorded call (see the module contract)."""
        known = [ms for ms in (row.get("predict_ms") for row in result.frames) if isinstance(ms, (int, float))]
        output = video_output(result.frames, video_key=result.video_key, frames_total=result.frames_total,
                              every_nth=plan.every_nth, max_frames=plan.max_frames, cancelled=result.cancelled,
                              wall_s=result.wall_s)
        self._invoker.record(actor, plan.target, plan.params, input_ref=plan.data.ref,
                             input_hash=content_hash(f"video:{plan.cache_key}"), output=output,
                             error=result.error or "", total_ms=result.wall_s * 1000,
                             predict_ms=sum(known) if known else None, replica=",".join(replicas))

    def _cached(self, plan: VideoPlan) -> VideoResult | None:
        try:
            data = json.loads(self._objects.get(RESULTS_BUCKET, f"{plan.cache_key}.json"))
        except (ObjectNotFound, ValueError):
            return None
        if self._objects.stat(RESULTS_BUCKET, data.get("video_key") or "-") is None:
            return None
        return VideoResult(**{**data, "cached": True})


def frame_width(plan: VideoPlan) -> int | None:
    """The width the plan's algorithm shrinks each frame to itself (its manifest's `resize_param`),
    so frames are sent at that width and its results scaled back to the frame; None to send them
    whole."""
    manifest = plan.target.manifest
    return Manifest.model_validate(manifest).resize_width(plan.params) if manifest else None


def _video_json(result: VideoResult) -> dict[str, Any]:
    data = asdict(result)
    data.pop("cached")
    return data
