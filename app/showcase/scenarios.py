"""Scenarios: saved inputs and columns, replayed later — from the caches when a service is down.

Contracts:
- Saving checks everything a run would (inputs exist and fit, columns are valid, a video's frame
  choice is possible) and stores the parameters with their defaults filled in, so a replay hits
  the same cache entries. ValidationFailed lists every problem at once.
- `replay` gives one Comparison per image or text input; a column whose service is down (or
  gone, or whose parameters no longer check) shows its cached result, marked cached, with the
  failure in `error`. Videos are replayed through `plan_videos` and `VideoComparisons.start`.
- Anyone who may use the Showcase saves and replays; a scenario is deleted by its author or by
  whoever may view everyone's history (operators, admins).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.auth import Action, Actor, can, require
from app.db import transaction
from app.errors import Message, Missing, PermissionDenied, Problem, ValidationFailed
from app.models import Scenario
from app.showcase.compare import Comparison, Comparisons, comparison
from app.showcase.inputs import InputData, InputRef, Inputs
from app.showcase.runs import Column, Resolved, RunResult, Runs, check_fits
from app.showcase.video import VideoPlan, Videos
from app.showcase.video_compare import VideoComparisons

SCENARIO_NAME_RE = re.compile(r"\S.{0,99}", re.S)


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


class Scenarios:
    """Saved scenarios in the `scenarios` table, and their replays."""

    def __init__(self, sessions: sessionmaker[Session], inputs: Inputs, runs: Runs, comparisons: Comparisons,
                 videos: Videos, video_comparisons: VideoComparisons) -> None:
        self._sessions = sessions
        self._inputs = inputs
        self._runs = runs
        self._comparisons = comparisons
        self._videos = videos
        self._video_comparisons = video_comparisons

    def save(self, actor: Actor, name: str, spec: ScenarioSpec) -> ScenarioInfo:
        """Save (or overwrite) a scenario (see the module contract)."""
        require(actor, Action.VIEW_SHOWCASE)
        name = name.strip()
        problems = [] if SCENARIO_NAME_RE.fullmatch(name) else [Problem("name", Message("scenario.name_rule", "1 to 100 characters"))]
        if not spec.inputs:
            problems.append(Problem("inputs", Message("scenario.no_inputs", "at least one input")))
        loaded = []
        for ref in spec.inputs:
            try:
                loaded.append(self._inputs.load(actor, ref))
            except ValidationFailed as e:
                problems += e.problems
        try:
            resolved = self._comparisons.check_columns(actor, spec.columns)
            self._check_inputs(actor, resolved, loaded, spec)
        except ValidationFailed as e:
            problems += e.problems
        if problems:
            raise ValidationFailed(problems)
        stored = ScenarioSpec(list(spec.inputs), [Column(c.service, r.params) for c, r in zip(spec.columns, resolved)],
                              spec.every_nth, spec.max_frames)
        return self._upsert(actor, name, stored)

    def _check_inputs(self, actor: Actor, resolved: list[Resolved], loaded: list[InputData],
                      spec: ScenarioSpec) -> None:
        for data in loaded:
            if data.kind == "video":
                self._videos.plans(actor, resolved, data, spec.every_nth, spec.max_frames)
            else:
                check_fits(resolved[0].target, data)

    def _upsert(self, actor: Actor, name: str, spec: ScenarioSpec) -> ScenarioInfo:
        with transaction(self._sessions) as s:
            row = s.scalar(select(Scenario).where(Scenario.name == name))
            if row is None:
                row = Scenario(name=name, spec=spec.to_json(), created_by=actor.username)
                s.add(row)
            else:
                row.spec = spec.to_json()
            s.flush()
            return _info(row)

    def list(self, actor: Actor) -> list[ScenarioInfo]:
        require(actor, Action.VIEW_SHOWCASE)
        with self._sessions() as s:
            return [_info(r) for r in s.scalars(select(Scenario).order_by(Scenario.name))]

    def get(self, actor: Actor, name: str) -> ScenarioInfo:
        """The scenario `name`; ValidationFailed ("scenario") when there is none."""
        require(actor, Action.VIEW_SHOWCASE)
        with self._sessions() as s:
            row = s.scalar(select(Scenario).where(Scenario.name == name))
            if row is None:
                raise Missing([Problem("scenario", Message("scenario.missing", "no scenario {name!r}", name=name))])
            return _info(row)

    def delete(self, actor: Actor, name: str) -> None:
        """Delete a scenario: its author, or an operator/admin. Deleting a missing one is a no-op."""
        require(actor, Action.VIEW_SHOWCASE)
        with transaction(self._sessions) as s:
            row = s.scalar(select(Scenario).where(Scenario.name == name))
            if row is None:
                return
            if row.created_by != actor.username and not can(actor, Action.VIEW_ALL_HISTORY):
                raise PermissionDenied(Message("scenario.not_yours", "{who} may not delete {owner}'s scenario",
                                               who=actor.username, owner=row.created_by))
            s.delete(row)

    def replay(self, actor: Actor, name: str, *, force: bool = False) -> list[Comparison]:
        """One comparison per image or text input of the scenario (see the module contract)."""
        spec = self.get(actor, name).spec
        return [self._replay_input(actor, ref, spec.columns, force) for ref in spec.inputs
                if InputRef.parse(ref).kind != "video"]

    def plan_videos(self, actor: Actor, name: str) -> list[list[VideoPlan]]:
        """The planned video comparisons of the scenario, one per video input, for
        `VideoComparisons.start`; [] when it has none. A service that is down replays from the
        video cache; one that was removed is refused (ValidationFailed)."""
        spec = self.get(actor, name).spec
        return [self._video_comparisons.plan(actor, self._inputs.load(actor, ref), spec.columns,
                                             every_nth=spec.every_nth, max_frames=spec.max_frames)
                for ref in spec.inputs if InputRef.parse(ref).kind == "video"]

    def _replay_input(self, actor: Actor, ref: str, columns: list[Column], force: bool) -> Comparison:
        data = self._inputs.load(actor, ref)
        return comparison(data, columns, [self._replay_column(actor, col, data, force) for col in columns])

    def _replay_column(self, actor: Actor, col: Column, data: InputData, force: bool) -> RunResult:
        try:
            resolved = self._runs.prepare(actor, col.service, col.params)
            check_fits(resolved.target, data)
        except ValidationFailed as e:   # the service was removed, or changed its parameters or input
            return self._runs.gone(actor, col, data, e.message)
        return self._runs.run(actor, resolved, data, force=force)


def _info(row: Scenario) -> ScenarioInfo:
    return ScenarioInfo(row.name, ScenarioSpec.from_json(row.spec), row.created_by, row.created_at, row.updated_at)
