"""Comparisons: one to four (service, params) columns over the same input, run one after the other
(so they do not slow each other), with counts and pairwise metrics (app.showcase.metrics).

Contracts:
- Every check comes before any call: ValidationFailed when there are not 1–4 columns, a column's
  service or parameters are refused (fields "column i · …"), the columns take different kinds of
  input (`app.catalog.manifest.input_kind`), or the input does not fit them.
- Each column is resolved once (one lookup of its service) and run through the result cache
  (`Runs.run`): a column whose service is down shows its cached result with `error` set.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

from app.auth import Action, Actor, require
from app.errors import Message, Problem, ValidationFailed
from app.showcase.inputs import InputData, InputRef, Inputs
from app.showcase.metrics import PairSummary, pair_summary, result_count
from app.showcase.runs import Column, Resolved, RunResult, Runs, check_fits

MAX_COLUMNS = 4


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


def comparison(data: InputData, columns: Sequence[Column], results: list[RunResult]) -> Comparison:
    """The Comparison of `results` (aligned with `columns`) on `data`; its task is the first
    column's whose service is known."""
    task = next((r.task for r in results if r.task), "")
    counts = [result_count(task, r.output) if r.ok else None for r in results]
    pairs = [pair_summary(task, i, j, results[i].output, results[j].output)
             for i, j in combinations(range(len(results)), 2)
             if isinstance(results[i].output, Mapping) and isinstance(results[j].output, Mapping)]
    return Comparison(data, task, list(columns), results, counts, pairs)


class Comparisons:
    """Checks columns and compares them over one input."""

    def __init__(self, runs: Runs, inputs: Inputs) -> None:
        self._runs = runs
        self._inputs = inputs

    def check_columns(self, actor: Actor, columns: Sequence[Column]) -> list[Resolved]:
        """1 to MAX_COLUMNS columns of existing services with valid parameters, all taking the same
        kind of input, each resolved once; ValidationFailed lists every problem."""
        require(actor, Action.VIEW_SHOWCASE)
        if not 1 <= len(columns) <= MAX_COLUMNS:
            raise ValidationFailed([Problem("columns", Message("compare.columns", "1 to {max} columns, got {count}", max=MAX_COLUMNS,
                                                                count=len(columns)))])
        problems: list[Problem] = []
        resolved: list[Resolved] = []
        for i, col in enumerate(columns, 1):
            try:
                resolved.append(self._runs.prepare(actor, col.service, col.params, field_prefix=f"column {i} · "))
            except ValidationFailed as e:
                problems += [p if p.field.startswith("column") else Problem(f"column {i} · {p.field}", p.reason)
                             for p in e.problems]
        kinds = {r.target.input_kind for r in resolved}
        if len(kinds) > 1:
            problems.append(Problem("columns", Message("compare.kinds", "the services take different inputs ({kinds})",
                                                        kinds=", ".join(sorted(kinds)))))
        if problems:
            raise ValidationFailed(problems)
        return resolved

    def compare(self, actor: Actor, input: InputRef | InputData | str | bytes, columns: Sequence[Column], *,
                force: bool = False) -> Comparison:
        """Every column over the same input (see the module contract)."""
        require(actor, Action.VIEW_SHOWCASE)
        resolved = self.check_columns(actor, columns)
        data = self._inputs.coerce(actor, input)
        for column in resolved:
            check_fits(column.target, data)
        return comparison(data, columns, [self._runs.run(actor, column, data, force=force) for column in resolved])
