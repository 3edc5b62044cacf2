"""What an experiment found: its configurations' metrics and latencies, the best one, and its items
worst first — computed from the per-item results (`experiment_items`) with app.experiments.metrics.

Contract: `summarise(task, labels, configs, targets, rows)` gives one `Run` per configuration, over
the items that configuration has finished (all of them once the sweep is done), plus the charts'
extras per configuration; `best(runs, task)` is the run with the best primary metric (ties: the
earlier configuration), None when no run has it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.experiments.metrics import latency, primary_metric, score


@dataclass(frozen=True)
class Run:
    """One configuration: its full parameters, metrics, latency p50/p95 (ms), items done and errors."""
    index: int
    params: dict[str, Any]
    metrics: dict[str, float | None]
    latency_ms: dict[str, float | None]
    items: int
    errors: int

    def to_json(self) -> dict[str, Any]:
        """The stable shape of a run in `experiment show --json`."""
        return {"params": self.params, "metrics": self.metrics, "latency_ms": self.latency_ms, "items": self.items,
                "errors": self.errors}


@dataclass(frozen=True)
class ExperimentView:
    """An experiment as interfaces show it. `runs` are over the items done so far; `partial` says
    that some items are not done (running, cancelled, interrupted or failed)."""
    id: int
    service: str
    algorithm: str
    version: str
    dataset: str
    task: str
    space: dict[str, Any]
    state: str
    done: int
    total: int
    errors: int
    error: str
    created_by: str
    created_at: datetime
    finished_at: datetime | None
    runs: list[Run] = field(default_factory=list)
    extras: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def partial(self) -> bool:
        return self.done < self.total

    @property
    def primary(self) -> tuple[str, bool]:
        return primary_metric(self.task)

    @property
    def best(self) -> Run | None:
        return best(self.runs, self.task)

    def to_json(self) -> dict[str, Any]:
        """The stable shape of `experiment run|show --json` (issue 12)."""
        top = self.best
        name = self.primary[0]
        return {"experiment": self.id, "algorithm": self.algorithm, "version": self.version, "dataset": self.dataset,
                "runs": [r.to_json() for r in self.runs],
                "best": {"params": top.params, "metric": name, "value": top.metrics.get(name)} if top else None}


@dataclass(frozen=True)
class ItemResult:
    """One item under one configuration, for the drill-down: `score` in [0, 1] (1 = right)."""
    index: int
    ref: str
    score: float
    target: Any
    output: Any
    error: str
    total_ms: float | None
    cached: bool


def best(runs: Sequence[Run], task: str) -> Run | None:
    name, higher = primary_metric(task)
    scored = [r for r in runs if r.metrics.get(name) is not None]
    if not scored:
        return None
    return max(scored, key=lambda r: (r.metrics[name] if higher else -r.metrics[name], -r.index))  # type: ignore[operator]


def summarise(task: str, labels: Sequence[str], configs: Sequence[dict[str, Any]], targets: Sequence[Any],
              rows: Sequence[Mapping[str, Any]]) -> tuple[list[Run], dict[int, dict[str, Any]]]:
    """Runs and chart extras per configuration from the item rows (dicts with config, item, status,
    output, total_ms, cached, started, ended)."""
    by_config: dict[int, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_config.setdefault(row["config"], []).append(row)
    runs, extras = [], {}
    for index, params in enumerate(configs):
        mine = sorted(by_config.get(index, []), key=lambda r: r["item"])
        run, extra = _run(task, labels, index, params, targets, mine)
        runs.append(run)
        extras[index] = extra
    return runs, extras


def _run(task: str, labels: Sequence[str], index: int, params: dict[str, Any], targets: Sequence[Any],
         rows: Sequence[Mapping[str, Any]]) -> tuple[Run, dict[str, Any]]:
    if not rows:
        return Run(index, params, {}, {"p50": None, "p95": None}, 0, 0), {}
    outputs = [r["output"] if r["status"] == "ok" else None for r in rows]
    scores = score(task, [targets[r["item"]] for r in rows], outputs, labels)
    called = [(r["started"], r["ended"]) for r in rows if not r["cached"] and r["started"] is not None]
    lat = latency([r["total_ms"] for r in rows if r["status"] == "ok"], called)
    metrics = {**scores.metrics, "throughput_per_s": lat.pop("throughput_per_s")}
    errors = sum(r["status"] != "ok" for r in rows)
    return Run(index, params, metrics, lat, len(rows), errors), scores.extras


def item_results(task: str, labels: Sequence[str], targets: Sequence[Any], refs: Sequence[str],
                 rows: Sequence[Mapping[str, Any]]) -> list[ItemResult]:
    """The items of one configuration, worst first (ties: by item)."""
    rows = sorted(rows, key=lambda r: r["item"])
    outputs = [r["output"] if r["status"] == "ok" else None for r in rows]
    scores = score(task, [targets[r["item"]] for r in rows], outputs, labels).items if rows else []
    out = [ItemResult(r["item"], refs[r["item"]], s, targets[r["item"]], o, r["error"], r["total_ms"], r["cached"])
           for r, s, o in zip(rows, scores, outputs)]
    return sorted(out, key=lambda i: (i.score, i.index))
