"""The Showcase as interfaces use it: one method per user action, each handed to the part that owns
it — inputs (app.showcase.inputs), runs and the result cache (runs), comparisons (compare),
scenarios (scenarios), video runs (video) and video comparisons (video_compare). Long video work
runs as background jobs of the core (app.jobs): the `start_*` methods return a job id.

Every method checks the actor in the part it hands to, before anything else; the contracts are
in those modules.
"""
from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

from app import media
from app.auth import Actor, internal
from app.invoke import Invoker
from app.jobs import Jobs
from app.showcase.compare import Comparison, Comparisons
from app.showcase.inputs import InputData, InputRef, Inputs, Limits, MediaItem
from app.showcase.runs import Column, RunResult, Runs, ServiceChoice
from app.showcase.scenarios import ScenarioInfo, Scenarios, ScenarioSpec
from app.showcase.video import VideoPlan, VideoResult, Videos
from app.showcase.video_compare import VideoComparisons
from app.storage import ObjectStore

if TYPE_CHECKING:
    from app.services.manager import ServiceManager
    from app.shared import ResultCache

Input = InputRef | InputData | str | bytes


class Showcase:
    """`services` is the ServiceManager (live states); `workdir` holds temporary video files;
    `results` the shared result cache in front of the call history."""

    def __init__(self, sessions: sessionmaker[Session], invoker: Invoker, objects: ObjectStore,
                 services: ServiceManager, jobs: Jobs, *, workdir: Path, limits: Limits | None = None,
                 results: ResultCache | None = None) -> None:
        self._inputs = Inputs(objects, workdir, limits)
        self._runs = Runs(sessions, invoker, self._inputs, services, results)
        self._comparisons = Comparisons(self._runs, self._inputs)
        self._videos = Videos(invoker, objects, self._inputs, self._runs, jobs, workdir=workdir)
        self._video_comparisons = VideoComparisons(self._videos, self._comparisons, self._inputs, jobs)
        self._scenarios = Scenarios(sessions, self._inputs, self._runs, self._comparisons, self._videos,
                                    self._video_comparisons)

    @property
    def limits(self) -> Limits:
        return self._inputs.limits

    # --- inputs -----------------------------------------------------------------------------------

    def services(self, actor: Actor) -> list[ServiceChoice]:
        return self._runs.services(actor)

    def gallery(self, actor: Actor, kind: str) -> list[MediaItem]:
        return self._inputs.gallery(actor, kind)

    def add_media(self, actor: Actor, filename: str, data: bytes) -> MediaItem:
        return self._inputs.add_media(actor, filename, data)

    def add_text(self, actor: Actor, text: str) -> MediaItem:
        return self._inputs.add_text(actor, text)

    def load(self, actor: Actor, ref: InputRef | str) -> InputData:
        return self._inputs.load(actor, ref)

    @internal("decodes the video it is given; reads nothing stored")
    def video_poster(self, data: InputData) -> tuple[media.VideoInfo, bytes]:
        return self._inputs.video_poster(data)

    # --- runs and comparisons ---------------------------------------------------------------------

    def check_params(self, actor: Actor, service: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """The parameters `service` would receive: defaults filled in, every value checked."""
        return self._runs.prepare(actor, service, params).params

    def run(self, actor: Actor, service: str, input: Input, params: Mapping[str, Any] | None = None, *,
            force: bool = False) -> RunResult:
        """`service` on one input, or the cached result of an identical earlier run (app.showcase.runs)."""
        return self._runs.run(actor, self._runs.prepare(actor, service, params), input, force=force)

    def compare(self, actor: Actor, input: Input, columns: Sequence[Column], *, force: bool = False) -> Comparison:
        return self._comparisons.compare(actor, input, columns, force=force)

    # --- scenarios ----------------------------------------------------------------------------------

    def save_scenario(self, actor: Actor, name: str, spec: ScenarioSpec) -> ScenarioInfo:
        return self._scenarios.save(actor, name, spec)

    def scenarios(self, actor: Actor) -> list[ScenarioInfo]:
        return self._scenarios.list(actor)

    def scenario(self, actor: Actor, name: str) -> ScenarioInfo:
        return self._scenarios.get(actor, name)

    def delete_scenario(self, actor: Actor, name: str) -> None:
        self._scenarios.delete(actor, name)

    def replay(self, actor: Actor, name: str, *, force: bool = False) -> list[Comparison]:
        return self._scenarios.replay(actor, name, force=force)

    def plan_replay_videos(self, actor: Actor, name: str) -> list[list[VideoPlan]]:
        return self._scenarios.plan_videos(actor, name)

    # --- video --------------------------------------------------------------------------------------

    def plan_video(self, actor: Actor, service: str, input: InputRef | InputData, params: Mapping[str, Any] | None,
                   *, every_nth: int = 1, max_frames: int | None = None) -> VideoPlan:
        return self._videos.plan(actor, service, input, params, every_nth=every_nth, max_frames=max_frames)

    def run_video(self, actor: Actor, service: str, input: InputRef | InputData, params: Mapping[str, Any] | None,
                  *, every_nth: int = 1, max_frames: int | None = None, force: bool = False,
                  progress: media.Progress | None = None, cancel: threading.Event | None = None) -> VideoResult:
        return self._videos.run(actor, service, input, params, every_nth=every_nth, max_frames=max_frames,
                                force=force, progress=progress, cancel=cancel)

    def start_video(self, actor: Actor, plan: VideoPlan, *, force: bool = False) -> str:
        """A job id (app.jobs); the job's result is a VideoResult."""
        return self._videos.start(actor, plan, force=force)

    def plan_video_compare(self, actor: Actor, input: InputRef | InputData, columns: Sequence[Column], *,
                           every_nth: int = 1, max_frames: int | None = None) -> list[VideoPlan]:
        return self._video_comparisons.plan(actor, input, columns, every_nth=every_nth, max_frames=max_frames)

    def start_video_compare(self, actor: Actor, plan_sets: Sequence[Sequence[VideoPlan]], *,
                            force: bool = False) -> str:
        """A job id (app.jobs); the job's result is a list of VideoComparison, one per set."""
        return self._video_comparisons.start(actor, plan_sets, force=force)

    def video_bytes(self, actor: Actor, result: VideoResult) -> bytes | None:
        return self._videos.video_bytes(actor, result)
