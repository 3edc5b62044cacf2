"""Running a sweep: every (configuration, item) cell that is not done yet, through the normal
invocation path (`Invoker.invoke` with a Target resolved once), with enough calls in flight to keep
every replica in rotation busy.

Contracts:
- Cells already done (status ok) are never redone; cells that failed are tried again. A cell whose
  result the cache has — an ok result of the same version, parameters and input, from an earlier
  sweep (`experiment_items`) or any recorded call (`algorithm_calls`) — is copied, marked `cached`.
- Calls in flight: `inflight_per_replica` × the replicas in rotation (read when the run starts).
  One call in `record_every` (the first item of each configuration among them) is recorded in the
  call history; the others are kept only as experiment items.
- Results are written by the run's own thread in small batches (at most `FLUSH_S` apart), with
  the experiment's progress and heartbeat; a cancel (the job's, or `cancel_requested` set by any
  process) stops new calls, waits for those in flight and keeps their results.
- `STOP_AFTER_FAILURES` calls failing in a row (the service went away) end the run FAILED with the
  last error; what was done is kept and the sweep can be resumed.
"""
from __future__ import annotations

import concurrent.futures as cf
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from app.auth import Actor
from app.db import transaction
from app.experiments.datasets import DatasetContent
from app.invoke import InvokeError, Invoker, Target, content_hash, input_hash
from app.jobs import JobContext
from app.models import AlgorithmCall, Experiment, ExperimentItem
from orchestration.errors import kept, restored

FLUSH_S = 0.5
STOP_AFTER_FAILURES = 20
IN_CHUNK = 500


@dataclass(frozen=True)
class SweepLimits:
    """`confirm_calls`: a sweep of more calls asks for confirmation; `max_configs`: most
    configurations in one sweep; calls in flight per replica; one call in `record_every` recorded."""
    confirm_calls: int = 2000
    max_configs: int = 256
    inflight_per_replica: int = 2
    record_every: int = 50


@dataclass(frozen=True)
class Cell:
    config: int
    item: int


def _now() -> datetime:
    return datetime.now(timezone.utc)


class SweepRun:
    """One run of one experiment in a job's thread; `run()` returns the state it ended in."""

    def __init__(self, sessions: sessionmaker[Session], invoker: Invoker, actor: Actor, experiment_id: int,
                 target: Target, content: DatasetContent, configs: list[dict[str, Any]], limits: SweepLimits,
                 ctx: JobContext, replicas: int) -> None:
        self._sessions = sessions
        self._invoker = invoker
        self._actor = actor
        self._id = experiment_id
        self._target = target
        self._content = content
        self._configs = configs
        self._limits = limits
        self._ctx = ctx
        self._inflight = max(1, replicas) * max(1, limits.inflight_per_replica)
        self._hashes: list[str] = []
        self._pending: list[ExperimentItem] = []
        self._failures = 0
        self._last_error = ""

    def run(self) -> str:
        done = self._done_cells()
        self._hashes = self._hash_inputs()
        todo = [Cell(c, i) for c in range(len(self._configs)) for i in range(len(self._content.items))
                if (c, i) not in done]
        todo = self._from_cache(todo)
        self._flush()
        stopped = self._call_all(todo)
        self._flush()
        if stopped == "failed":
            return "FAILED"
        return "CANCELLED" if stopped == "cancelled" else "DONE"

    @property
    def last_error(self) -> str:
        return self._last_error

    # --- what is done, what is cached ----------------------------------------------------------------

    def _hash_inputs(self) -> list[str]:
        """The cache key of every item's input (each read once), with a heartbeat now and then: a
        large dataset takes a while and must not read as interrupted meanwhile."""
        hashes, beat = [], time.monotonic()
        for item in self._content.items:
            hashes.append(input_hash([self._content.input_of(item)]))
            if time.monotonic() - beat >= FLUSH_S:
                self._flush()
                beat = time.monotonic()
        return hashes

    def _done_cells(self) -> set[tuple[int, int]]:
        """Cells done before (ok); failed cells are dropped so they are tried again."""
        with transaction(self._sessions) as s:
            s.execute(delete(ExperimentItem).where(ExperimentItem.experiment_id == self._id,
                                                   ExperimentItem.status != "ok"))
            rows = s.execute(select(ExperimentItem.config, ExperimentItem.item)
                             .where(ExperimentItem.experiment_id == self._id)).all()
            exp = s.get(Experiment, self._id)
            assert exp is not None
            exp.done, exp.errors = len(rows), 0
        return {(r.config, r.item) for r in rows}

    def _from_cache(self, todo: list[Cell]) -> list[Cell]:
        """Cells whose result the cache has become items (cached); the others are returned."""
        left: list[Cell] = []
        for config, cells in _by_config(todo):
            hits = self._cached(content_hash(self._configs[config]), {self._hashes[c.item] for c in cells})
            for cell in cells:
                hit = hits.get(self._hashes[cell.item])
                if hit is None:
                    left.append(cell)
                else:
                    self._pending.append(self._row(cell, "ok", hit[0], "", hit[1], hit[2], "", True, None, None))
        return left

    def _cached(self, params_hash: str, hashes: set[str]) -> dict[str, tuple[Any, float | None, float | None]]:
        """input hash → (output, total_ms, predict_ms) of ok results of this version with these params."""
        found: dict[str, tuple[Any, float | None, float | None]] = {}
        version = self._target.version_id
        if version is None:
            return found
        for chunk in _chunks(sorted(hashes)):
            with self._sessions() as s:
                calls = s.execute(select(AlgorithmCall.input_hash, AlgorithmCall.output, AlgorithmCall.total_ms,
                                         AlgorithmCall.predict_ms).where(
                    AlgorithmCall.version_id == version, AlgorithmCall.params_hash == params_hash,
                    AlgorithmCall.status == "ok", AlgorithmCall.input_hash.in_(chunk))).all()
                items = s.execute(select(ExperimentItem.input_hash, ExperimentItem.output, ExperimentItem.total_ms,
                                         ExperimentItem.predict_ms).where(
                    ExperimentItem.version_id == version, ExperimentItem.params_hash == params_hash,
                    ExperimentItem.status == "ok", ExperimentItem.input_hash.in_(chunk))).all()
            for r in calls:
                if r.output and r.output.get("outputs"):
                    found[r.input_hash] = (r.output["outputs"][0], r.total_ms, r.predict_ms)
            for r in items:
                found[r.input_hash] = (r.output, r.total_ms, r.predict_ms)
        return found

    # --- calls ------------------------------------------------------------------------------------

    def _call_all(self, todo: list[Cell]) -> str:
        """Calls every cell, `self._inflight` at a time; "done", "cancelled" or "failed"."""
        queue: Iterator[Cell] = iter(todo)
        stop = ""
        last_flush = time.monotonic()
        with cf.ThreadPoolExecutor(self._inflight, thread_name_prefix=f"sweep-{self._id}") as pool:
            running: set[cf.Future] = set()
            while True:
                while not stop and len(running) < self._inflight and (cell := next(queue, None)) is not None:
                    running.add(pool.submit(self._call, cell))
                if not running:
                    return stop or "done"
                finished, running = cf.wait(running, timeout=FLUSH_S, return_when=cf.FIRST_COMPLETED)
                for future in finished:
                    row = future.result()
                    self._failures = self._failures + 1 if row.status != "ok" else 0
                    self._last_error = restored(row.error_message, row.error) or self._last_error   # a Message
                    self._pending.append(row)
                if self._failures >= STOP_AFTER_FAILURES:
                    stop = "failed"
                if time.monotonic() - last_flush >= FLUSH_S:
                    stop = stop or ("cancelled" if self._flush() else "")
                    last_flush = time.monotonic()

    def _call(self, cell: Cell) -> ExperimentItem:
        item = self._content.items[cell.item]
        params = self._configs[cell.config]
        record = cell.item % max(1, self._limits.record_every) == 0
        started = time.time()
        try:
            call = self._invoker.invoke(self._actor, self._target, [self._content.input_of(item)], params,
                                        input_ref=self._content.ref_of(item), record=record)
        except InvokeError as e:
            return self._row(cell, "error", None, e.message, None, None, "", False, started, time.time())
        return self._row(cell, "ok", call.outputs[0] if call.outputs else None, "", call.total_ms, call.predict_ms,
                         call.replica, False, started, time.time())

    def _row(self, cell: Cell, status: str, output: Any, error: str, total_ms: float | None,
             predict_ms: float | None, replica: str, cached: bool, started: float | None,
             ended: float | None) -> ExperimentItem:
        text, message = kept(error, 4000)
        return ExperimentItem(experiment_id=self._id, config=cell.config, item=cell.item,
                              version_id=self._target.version_id, params_hash=content_hash(self._configs[cell.config]),
                              input_hash=self._hashes[cell.item], status=status, output=output, error=text,
                              error_message=message,
                              total_ms=total_ms, predict_ms=predict_ms, replica=replica[:120], cached=cached,
                              started=started, ended=ended)

    # --- progress -----------------------------------------------------------------------------------

    def _flush(self) -> bool:
        """Writes the results waiting, the progress and the heartbeat; True when a cancel was asked."""
        rows, self._pending = self._pending, []
        with transaction(self._sessions) as s:
            s.add_all(rows)
            exp = s.get(Experiment, self._id)
            assert exp is not None
            exp.done += len(rows)
            exp.errors += sum(r.status != "ok" for r in rows)
            exp.heartbeat_at = _now()
            done, total, asked = exp.done, exp.total, exp.cancel_requested
        self._ctx.progress(done, total)
        return asked or self._ctx.cancelled


def _by_config(cells: list[Cell]) -> Iterator[tuple[int, list[Cell]]]:
    groups: dict[int, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(cell.config, []).append(cell)
    yield from groups.items()


def _chunks(values: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), IN_CHUNK):
        yield values[start:start + IN_CHUNK]

