"""Experiments: parameter sweeps of one deployed algorithm version over one labelled dataset.

Contracts:
- `plan` checks everything before any call: the service and version ("algorithm"), the dataset
  and that its task is the algorithm's ("dataset"), the parameter space against the manifest
  (each bad value named, e.g. "grid.threshold[1]"), and at most `max_configs` configurations.
- `start` records the experiment and runs it as a job (app.jobs); a plan of more calls than
  `confirm_calls` raises ConfirmationNeeded unless `confirm`. It returns the experiment's id.
- States: RUNNING → DONE | CANCELLED | FAILED. A RUNNING experiment whose heartbeat is older than
  `STALE_S` (its process ended: the UI or the platform restarted) reads INTERRUPTED.
- `resume` runs a CANCELLED, FAILED or INTERRUPTED experiment again: finished items are kept and
  only the rest is called. It is refused when the service now serves another version.
- `cancel` asks the run to stop, from any process (`cancel_requested`); items finished are kept.
- Everyone who may use the Showcase sees every experiment; only its owner, or an actor who may see
  everyone's history, cancels or resumes it.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import PurePosixPath
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.auth import Action, Actor, can, require
from app.catalog.manifest import Manifest
from app.db import transaction
from app.errors import AlgoStageError, Message, PermissionDenied, Problem, ValidationFailed
from app.experiments import report
from app.experiments.datasets import DatasetContent, DatasetInfo, Datasets
from app.experiments.results import ExperimentView, ItemResult, item_results, summarise
from app.experiments.runner import SweepLimits, SweepRun
from app.experiments.space import Space, defaults, expand
from app.invoke import Invoker, Target
from app.jobs import JobContext, Jobs
from app.models import Experiment, ExperimentItem
from app.services.routing import Router
from orchestration.errors import kept, restored

STALE_S = 15.0


class ConfirmationNeeded(AlgoStageError):
    """The sweep makes more calls than the confirmation limit; start it again with `confirm`."""
    code = "confirmation_needed"

    def __init__(self, calls: int, limit: int) -> None:
        super().__init__(Message("sweep.confirm", "this sweep makes {calls} calls, more than {limit} "
                                 "(ALGOSTAGE_SWEEP_CONFIRM_CALLS)", calls=calls, limit=limit),
                         hint=Message("sweep.confirm.hint", "confirm to run it anyway (--yes on the command line)"))
        self.calls, self.limit = calls, limit


@dataclass(frozen=True)
class Plan:
    """A sweep checked and expanded, ready to start."""
    target: Target
    algorithm: str
    dataset: DatasetInfo
    space: Space
    configs: list[dict[str, Any]]

    @property
    def calls(self) -> int:
        return len(self.configs) * self.dataset.items


@dataclass(frozen=True)
class ComparePreset:
    """A comparison to open on the Compare page: `columns` are parameter sets of `service`
    (the best configuration first, then the defaults) and `input` a Showcase input reference."""
    service: str
    task: str
    columns: list[dict[str, Any]]
    input: str


@dataclass(frozen=True)
class ExperimentSummary:
    id: int
    algorithm: str
    version: str
    dataset: str
    state: str
    configs: int
    done: int
    total: int
    errors: int
    created_by: str
    created_at: datetime


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Experiments:
    """Sweeps as jobs of this process, their state and results in the database. `limits` is read
    when a sweep is planned or started (settings may change in between)."""

    def __init__(self, sessions: sessionmaker[Session], invoker: Invoker, datasets: Datasets, jobs: Jobs,
                 router: Router, limits: Callable[[], SweepLimits], *, clock: Callable[[], datetime] = _utcnow,
                 store_input: Callable[[Actor, str | bytes, str], str] | None = None) -> None:
        self._sessions = sessions
        self._invoker = invoker
        self._datasets = datasets
        self._jobs = jobs
        self._router = router
        self._limits = limits
        self._clock = clock
        self._running: dict[int, str] = {}   # experiment id → job id, in this process
        self._store_input = store_input or _no_inputs

    # --- starting -----------------------------------------------------------------------------------

    def plan(self, actor: Actor, algorithm: str, dataset: str, space: Space) -> Plan:
        """`algorithm` is NAME or NAME@VERSION (v3 or 3); see the module contract for refusals."""
        require(actor, Action.VIEW_SHOWCASE)
        name, _, version = algorithm.partition("@")
        target = self._invoker.target(actor, name)
        if version and version.lstrip("v") != target.version.lstrip("v"):
            raise ValidationFailed([Problem("algorithm", Message("sweep.other_version", "{name} serves {served}, not {version}",
                                                                 name=name, served=target.version, version=version))],
                                   hint=Message("sweep.other_version.hint", "deploy {name}@{version} first", name=name,
                                                version=version))
        info = self._datasets.content(actor, dataset).info
        if info.task != target.task:
            raise ValidationFailed([Problem("dataset", Message("sweep.task_mismatch", "{dataset} is a {task} dataset; {name} does {served}",
                                                               dataset=dataset, task=info.task, name=name,
                                                               served=target.task))])
        specs = Manifest.model_validate(target.manifest).params if target.manifest else {}
        configs = expand(specs, space)
        limit = self._limits().max_configs
        if len(configs) > limit:
            raise ValidationFailed([Problem(space.kind, Message("sweep.too_many", "{count} configurations; at most {limit} "
                                                                "(ALGOSTAGE_SWEEP_MAX_CONFIGS)", count=len(configs),
                                                                limit=limit))])
        return Plan(target, name, info, space, configs)

    def start(self, actor: Actor, plan: Plan, *, confirm: bool = False) -> int:
        """Records the experiment and starts it; its id."""
        require(actor, Action.VIEW_SHOWCASE)
        limits = self._limits()
        if plan.calls > limits.confirm_calls and not confirm:
            raise ConfirmationNeeded(plan.calls, limits.confirm_calls)
        with transaction(self._sessions) as s:
            row = Experiment(service_name=plan.target.name, algorithm=plan.algorithm, version=plan.target.version,
                             version_id=plan.target.version_id, dataset_id=plan.dataset.id,
                             dataset_name=plan.dataset.name, task=plan.target.task, space=plan.space.to_json(),
                             configs=plan.configs, state="RUNNING", total=plan.calls, created_by=actor.username,
                             heartbeat_at=self._clock())
            s.add(row)
            s.flush()
            experiment_id = row.id
        self._submit(actor, experiment_id, plan.target)
        return experiment_id

    def resume(self, actor: Actor, experiment_id: int) -> int:
        """Runs the items not done yet (see the module contract); the experiment's id."""
        require(actor, Action.VIEW_SHOWCASE)
        row = self._owned(actor, experiment_id)
        state = self._state(row)
        if not (state in ("CANCELLED", "FAILED", "INTERRUPTED") or (state == "DONE" and row.errors)):
            raise ValidationFailed([Problem("experiment", Message("experiment.nothing_to_resume", "experiment {id} is {state}: "
                                                                  "nothing to resume", id=experiment_id, state=state))])
        target = self._invoker.target(actor, row.service_name)
        if target.version_id != row.version_id:
            raise ValidationFailed([Problem("experiment", Message("experiment.version_changed", "{name} now serves {served}; "
                                                                  "the experiment is of {version}", name=row.service_name,
                                                                  served=target.version, version=row.version))],
                                   hint=Message("experiment.version_changed.hint",
                                                "start a new experiment on the version served now"))
        with transaction(self._sessions) as s:
            exp = s.get(Experiment, experiment_id)
            assert exp is not None
            exp.state, exp.cancel_requested, exp.error, exp.summary = "RUNNING", False, "", None
            exp.heartbeat_at, exp.finished_at = self._clock(), None
        self._submit(actor, experiment_id, target)
        return experiment_id

    def cancel(self, actor: Actor, experiment_id: int) -> None:
        """Asks the run to stop (in whichever process runs it); an experiment not running is left alone."""
        require(actor, Action.VIEW_SHOWCASE)
        self._owned(actor, experiment_id)
        with transaction(self._sessions) as s:
            exp = s.get(Experiment, experiment_id)
            if exp is not None and exp.state == "RUNNING":
                exp.cancel_requested = True
        job = self._running.get(experiment_id)
        if job is not None:
            self._jobs.cancel(actor, job)

    # --- reading ------------------------------------------------------------------------------------

    def list(self, actor: Actor) -> list[ExperimentSummary]:
        """Every experiment, newest first."""
        require(actor, Action.VIEW_SHOWCASE)
        with self._sessions() as s:
            rows = s.scalars(select(Experiment).order_by(Experiment.id.desc())).all()
            return [ExperimentSummary(r.id, r.algorithm, r.version, r.dataset_name, self._state(r), len(r.configs),
                                      r.done, r.total, r.errors, r.created_by, r.created_at) for r in rows]

    def get(self, actor: Actor, experiment_id: int) -> ExperimentView:
        """The experiment with its runs (over the items done so far)."""
        require(actor, Action.VIEW_SHOWCASE)
        row, content = self._row_and_content(actor, experiment_id)
        if row.summary is not None:
            runs, extras = _from_summary(row.summary, row.configs)
        else:
            runs, extras = summarise(row.task, content.info.labels, row.configs, [i.target for i in content.items],
                                     self._item_rows(experiment_id))
        return ExperimentView(row.id, row.service_name, row.algorithm, row.version, row.dataset_name, row.task,
                              dict(row.space), self._state(row), row.done, row.total, row.errors,
                              restored(row.error_message, row.error),
                              row.created_by, row.created_at, row.finished_at, runs, extras)

    def items(self, actor: Actor, experiment_id: int, config: int) -> list[ItemResult]:
        """The items of configuration `config` (from 0), worst first."""
        require(actor, Action.VIEW_SHOWCASE)
        row, content = self._row_and_content(actor, experiment_id)
        if not 0 <= config < len(row.configs):
            raise ValidationFailed([Problem("config", Message("experiment.configs", "experiment {id} has configurations 0-{last}",
                                                              id=experiment_id, last=len(row.configs) - 1))])
        rows = [r for r in self._item_rows(experiment_id) if r["config"] == config]
        return item_results(row.task, content.info.labels, [i.target for i in content.items],
                            [content.ref_of(i) for i in content.items], rows)

    def dataset_of(self, actor: Actor, experiment_id: int) -> DatasetContent:
        """The dataset the experiment ran on (to draw an item's input)."""
        require(actor, Action.VIEW_SHOWCASE)
        return self._row_and_content(actor, experiment_id)[1]

    def compare_preset(self, actor: Actor, experiment_id: int, item: int) -> ComparePreset:
        """What "open in Compare" takes there: the experiment's service with its best and its
        default configuration, on item `item` stored as a Showcase input."""
        require(actor, Action.VIEW_SHOWCASE)
        view = self.get(actor, experiment_id)
        content = self.dataset_of(actor, experiment_id)
        if not 0 <= item < len(content.items):
            raise ValidationFailed([Problem("item", Message("experiment.items", "the dataset has items 0-{last}", last=len(content.items) - 1))])
        target = self._invoker.target(actor, view.service)
        specs = Manifest.model_validate(target.manifest).params if target.manifest else {}
        best_params = view.best.params if view.best else view.runs[0].params
        data, entry = content.input_of(content.items[item]), content.items[item]
        ref = self._store_input(actor, data, PurePosixPath(entry.file or "item.txt").name)
        return ComparePreset(view.service, view.task, [best_params, defaults(specs)], ref)

    def csv(self, actor: Actor, experiment_id: int) -> str:
        """The runs as CSV: one row per configuration (parameters, metrics, latency)."""
        require(actor, Action.VIEW_SHOWCASE)
        return report.to_csv(self.get(actor, experiment_id))

    def report(self, actor: Actor, experiment_id: int) -> str:
        """A self-contained HTML report (tables and charts; plotly.js inlined)."""
        require(actor, Action.VIEW_SHOWCASE)
        return report.to_html(self.get(actor, experiment_id))

    def wait(self, actor: Actor, experiment_id: int, *, timeout: float | None = None, poll_s: float = 0.5,
             progress: Callable[[int, int], None] | None = None) -> ExperimentView:
        """The experiment once it is no longer RUNNING (or after `timeout` seconds), reporting
        (done, total) to `progress` as it goes."""
        require(actor, Action.VIEW_SHOWCASE)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._sessions() as s:
                row = s.get(Experiment, experiment_id)
                state, done, total = (self._state(row), row.done, row.total) if row else ("?", 0, 0)
            if progress:
                progress(done, total)
            if state != "RUNNING" or (deadline is not None and time.monotonic() > deadline):
                return self.get(actor, experiment_id)
            time.sleep(poll_s)

    # --- internals -----------------------------------------------------------------------------------

    def _state(self, row: Experiment | None) -> str:
        if row is None:
            return "?"
        beat = row.heartbeat_at
        if beat is not None and beat.tzinfo is None:
            beat = beat.replace(tzinfo=timezone.utc)
        stale = beat is None or self._clock() - beat > timedelta(seconds=STALE_S)
        return "INTERRUPTED" if row.state == "RUNNING" and stale and row.id not in self._running else row.state

    def _get_row(self, experiment_id: int) -> Experiment:
        with self._sessions() as s:
            row = s.get(Experiment, experiment_id)
            if row is None:
                raise ValidationFailed([Problem("experiment", Message("experiment.missing", "no experiment {id}", id=experiment_id))])
            s.expunge(row)
        return row

    def _owned(self, actor: Actor, experiment_id: int) -> Experiment:
        row = self._get_row(experiment_id)
        if row.created_by != actor.username and not can(actor, Action.VIEW_ALL_HISTORY):
            raise PermissionDenied(Message("experiment.not_yours", "{who} may not change {owner}'s experiment",
                                           who=actor.username, owner=row.created_by))
        return row

    def _row_and_content(self, actor: Actor, experiment_id: int) -> tuple[Experiment, DatasetContent]:
        row = self._get_row(experiment_id)
        return row, self._datasets.content(actor, row.dataset_name)

    def _item_rows(self, experiment_id: int) -> list[dict[str, Any]]:
        cols = (ExperimentItem.config, ExperimentItem.item, ExperimentItem.status, ExperimentItem.output,
                ExperimentItem.error, ExperimentItem.error_message, ExperimentItem.total_ms, ExperimentItem.cached,
                ExperimentItem.started, ExperimentItem.ended)
        with self._sessions() as s:
            rows = [r._asdict() for r in s.execute(select(*cols).where(ExperimentItem.experiment_id == experiment_id))]
        for row in rows:   # the error as the message it was (a page says it in its reader's language)
            row["error"] = restored(row.pop("error_message"), row["error"])
        return rows

    def _submit(self, actor: Actor, experiment_id: int, target: Target) -> None:
        content = self._datasets.content(actor, self._get_row(experiment_id).dataset_name)
        job = self._jobs.submit(actor, "experiment", lambda ctx: self._work(actor, experiment_id, target, content, ctx))
        self._running[experiment_id] = job

    def _work(self, actor: Actor, experiment_id: int, target: Target, content: DatasetContent,
              ctx: JobContext) -> int:
        row = self._get_row(experiment_id)
        run = SweepRun(self._sessions, self._invoker, actor, experiment_id, target, content, row.configs,
                       self._limits(), ctx, len(self._router.routes(target.name)))
        state, error = "FAILED", ""
        try:
            state = run.run()
            error = run.last_error if state == "FAILED" else ""
        except Exception as e:  # noqa: BLE001 - the experiment says why it stopped; the job logs it too
            error = f"{type(e).__name__}: {e}"
            raise
        finally:
            self._finish(experiment_id, state, error, content)
            self._running.pop(experiment_id, None)
        return experiment_id

    def _finish(self, experiment_id: int, state: str, error: str, content: DatasetContent) -> None:
        row = self._get_row(experiment_id)
        runs, extras = summarise(row.task, content.info.labels, row.configs, [i.target for i in content.items],
                                 self._item_rows(experiment_id))
        with transaction(self._sessions) as s:
            exp = s.get(Experiment, experiment_id)
            assert exp is not None
            exp.state, exp.finished_at = state, self._clock()
            exp.error, exp.error_message = kept(error, 4000)
            exp.summary = {"runs": [r.to_json() for r in runs], "extras": {str(k): v for k, v in extras.items()}}


def _no_inputs(actor: Actor, data: str | bytes, filename: str) -> str:
    raise ValidationFailed([Problem("item", "this platform keeps no Showcase inputs")])


def _from_summary(summary: dict[str, Any], configs: list[dict[str, Any]]) -> tuple[list[Any], dict[int, dict]]:
    from app.experiments.results import Run
    runs = [Run(i, r["params"], r["metrics"], r["latency_ms"], r["items"], r["errors"])
            for i, r in enumerate(summary.get("runs") or [])]
    extras = {int(k): v for k, v in (summary.get("extras") or {}).items()}
    return runs, extras
