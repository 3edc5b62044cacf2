"""Comparing video runs: one video through two to four (service, params) columns, then how the
columns differ frame by frame.

Contracts:
- Frames are aligned by their source frame index; a pair is compared over the frames both
  columns did (a cancelled or failed column still counts with the frames it did).
- Detection (and any task with boxes): per frame, boxes are matched one to one by IoU
  (`app.showcase.metrics.match_boxes`); the pair's `matched`, `only_left` and `only_right` are sums over
  frames, `mean_iou` the mean over every matched pair, `agreement` = 2·matched / (boxes on both
  sides) (1.0 when neither side found anything), `frames_agreeing` the frames where every box of
  each side found a partner.
- Classification: `label_agreement` is the share of frames with the same label. OCR: `line_jaccard`
  is the mean over frames of the Jaccard index of the recognised line texts.
- `run_columns` runs the planned columns one after the other (so they do not slow each other);
  after a cancel the remaining columns are not run and read as None with `errors[i]` set.
  `run_comparisons` does that for several comparisons in turn, counting stages (columns) over all.
- `VideoComparisons.plan` makes every check of a comparison before any frame is sent (1–4 columns
  of image services, each resolved once, their parameters, the video, the frame choice);
  `start` runs sets of planned columns as one background job (app.jobs) and returns its id: its
  result is a list of VideoComparison, one per set, its stage the column running (1-based,
  counted over every set) with that column's service as the stage's name.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from app.auth import Action, Actor, require
from app.jobs import JobContext, Jobs, Stage
from app.showcase.compare import Comparisons
from app.showcase.inputs import InputData, InputRef, Inputs
from app.showcase.metrics import entries, label_agreement, line_overlap, match_boxes
from app.showcase.runs import Column
from app.showcase.video import VideoPlan, VideoResult, Videos

ColumnProgress = Callable[[int, int, int], None]   # (column index, frames done, frames total)
StageProgress = Callable[[int, int, int, int], None]   # (stage from 1, stages, frames done, frames total)


@dataclass(frozen=True)
class VideoPairSummary:
    """How columns `left` and `right` (indices) differ over the `frames` both did."""
    left: int
    right: int
    frames: int
    matched: int = 0
    only_left: int = 0
    only_right: int = 0
    mean_iou: float | None = None
    frames_agreeing: int = 0
    label_agreement: float | None = None
    line_jaccard: float | None = None

    @property
    def agreement(self) -> float | None:
        """2·matched / (boxes on both sides); 1.0 when neither side found a box; None without frames."""
        if not self.frames:
            return None
        found = 2 * self.matched + self.only_left + self.only_right
        return 2 * self.matched / found if found else 1.0


@dataclass(frozen=True)
class VideoComparison:
    """The columns' video runs over one input, aligned with `columns` (None: not run, see
    `errors`), with pairwise summaries over the columns that ran."""
    input_ref: str
    task: str
    columns: list[Column]
    results: list[VideoResult | None]
    errors: list[str | None]
    pairs: list[VideoPairSummary]

    @property
    def cancelled(self) -> bool:
        return any(r is None or r.cancelled for r in self.results)


def frames_by_index(result: VideoResult) -> dict[int, Mapping[str, Any]]:
    """Source frame index → that frame's output (outputs that are not mappings read as empty)."""
    return {int(row["frame"]): out if isinstance(out, Mapping) else {}
            for row, out in zip(result.frames, result.outputs)}


def video_pair_summary(task: str, left: int, right: int, a: VideoResult, b: VideoResult) -> VideoPairSummary:
    """The frame-by-frame metrics of two video runs of `task` (see the module contract)."""
    fa, fb = frames_by_index(a), frames_by_index(b)
    shared = sorted(fa.keys() & fb.keys())
    kind = task.partition(".")[2]
    if kind == "classification":
        agree = label_agreement([fa[i].get("label") for i in shared], [fb[i].get("label") for i in shared])
        return VideoPairSummary(left, right, len(shared), label_agreement=agree)
    if kind == "ocr":
        scores = [line_overlap(entries(fa[i], "lines"), entries(fb[i], "lines")) for i in shared]
        return VideoPairSummary(left, right, len(shared), line_jaccard=sum(scores) / len(scores) if scores else None)
    return _box_summary(left, right, [(fa[i], fb[i]) for i in shared])


def _box_summary(left: int, right: int, frames: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]
                 ) -> VideoPairSummary:
    matched = only_left = only_right = agreeing = 0
    ious: list[float] = []
    for out_a, out_b in frames:
        m = match_boxes(entries(out_a, "boxes"), entries(out_b, "boxes"))
        matched += len(m.pairs)
        only_left += len(m.unmatched_a)
        only_right += len(m.unmatched_b)
        agreeing += not m.unmatched_a and not m.unmatched_b
        ious += [p[2] for p in m.pairs]
    return VideoPairSummary(left, right, len(frames), matched, only_left, only_right,
                            sum(ious) / len(ious) if ious else None, agreeing)


def compare_results(input_ref: str, task: str, columns: Sequence[Column], results: Sequence[VideoResult | None],
                    errors: Sequence[str | None]) -> VideoComparison:
    """A VideoComparison with a summary for every pair of columns that both have frames."""
    pairs = [video_pair_summary(task, i, j, ra, rb) for (i, ra), (j, rb) in combinations(enumerate(results), 2)
             if ra is not None and rb is not None and ra.frames and rb.frames]
    return VideoComparison(input_ref, task, list(columns), list(results), list(errors), pairs)


def run_columns(plans: Sequence[VideoPlan], execute: Callable[..., VideoResult], *, force: bool = False,
                progress: ColumnProgress | None = None, cancel: threading.Event | None = None) -> VideoComparison:
    """Runs each plan with `execute(plan, force=…, progress=…, cancel=…)` (Videos.execute for an actor),
    one after the other, and compares the results. A cancel stops after the column running."""
    results: list[VideoResult | None] = []
    errors: list[str | None] = []
    for i, plan in enumerate(plans):
        if cancel is not None and cancel.is_set():
            results.append(None)
            errors.append("cancelled before it started")
            continue
        report = (lambda done, total, i=i: progress(i, done, total)) if progress else None
        if report:
            report(0, 0)   # the column starts (a cached one reports nothing else)
        result = execute(plan, force=force, progress=report, cancel=cancel)
        results.append(result)
        errors.append(result.error)
    columns = [Column(p.target.name, p.params) for p in plans]
    return compare_results(plans[0].data.ref if plans else "", plans[0].target.task if plans else "", columns,
                           results, errors)


def run_comparisons(plan_sets: Sequence[Sequence[VideoPlan]], execute: Callable[..., VideoResult], *,
                    force: bool = False, progress: StageProgress | None = None,
                    cancel: threading.Event | None = None) -> list[VideoComparison]:
    """`run_columns` for each set of plans in turn; `progress` counts stages (columns) over every set."""
    stages = sum(len(plans) for plans in plan_sets)
    comparisons, base = [], 0
    for plans in plan_sets:
        report = (lambda i, done, total, base=base: progress(base + i + 1, stages, done, total)) if progress else None
        comparisons.append(run_columns(plans, execute, force=force, progress=report, cancel=cancel))
        base += len(plans)
    return comparisons


class VideoComparisons:
    """Plans video comparisons and runs them as background jobs."""

    def __init__(self, videos: Videos, comparisons: Comparisons, inputs: Inputs, jobs: Jobs) -> None:
        self._videos = videos
        self._comparisons = comparisons
        self._inputs = inputs
        self._jobs = jobs

    def plan(self, actor: Actor, input: InputRef | InputData, columns: Sequence[Column], *, every_nth: int = 1,
             max_frames: int | None = None) -> list[VideoPlan]:
        """Every check of a video comparison before any frame is sent; ValidationFailed names what
        is refused."""
        require(actor, Action.VIEW_SHOWCASE)
        resolved = self._comparisons.check_columns(actor, columns)
        return self._videos.plans(actor, resolved, self._inputs.coerce(actor, input), every_nth, max_frames)

    def start(self, actor: Actor, plan_sets: Sequence[Sequence[VideoPlan]], *, force: bool = False) -> str:
        """Each set of planned columns (one video comparison), column after column, as one
        background job owned by `actor`; returns the job's id (see the module contract)."""
        require(actor, Action.VIEW_SHOWCASE)
        names = [plan.target.name for plans in plan_sets for plan in plans]

        def execute(plan: VideoPlan, **kw: Any) -> VideoResult:
            return self._videos.execute(actor, plan, **kw)

        def work(job: JobContext) -> list[VideoComparison]:
            def progress(stage: int, stages: int, done: int, frames: int) -> None:
                job.progress(done, frames, Stage(stage, stages, names[stage - 1]))
            return run_comparisons(plan_sets, execute, force=force, progress=progress, cancel=job.cancel_event)
        return self._jobs.submit(actor, "video-compare", work)
