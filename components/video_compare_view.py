"""The video comparison of the Compare page: progress with cancel while the columns run, then the
annotated videos side by side (one row per part, so they line up whatever the banners above them,
with one play/pause/seek for all), how the columns differ frame by frame, and their latencies."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import streamlit as st

from app.auth import Actor
from app.jobs import JobView
from app.platform import Platform
from app.showcase.video import VideoResult
from app.showcase.video_compare import VideoComparison, VideoPairSummary
from app.catalog.manifest import Manifest
from components.charts import video_counts_figure, video_latency_figure
from components.results import MISSING, column_labels, job_views, params_text, pct, video_metrics, video_status
from components.session import say, t
from components.video_sync import sync_videos


def watch_video_compare(p: Platform, who: Actor, job_id: str, *, key: str,
                        manifests: Mapping[str, Manifest] | None = None) -> None:
    """Progress (refreshed every second, with a cancel button) until the job `job_id` (see
    Showcase.start_video_compare) has finished, then its comparisons, or its error."""
    views = job_views(p, who, {"": job_id})
    if views is None:
        return
    view = views[""]
    if not view.finished:
        _progress(p, who, job_id)
    elif view.error or view.result is None:
        st.error(t("results.failed", error=say(view.error or "?")))
    else:
        for i, comparison in enumerate(view.result):
            if i:
                st.divider()
            show_video_comparison(comparison, lambda r: p.showcase.video_bytes(who, r), key=f"{key}-{i}",
                                  manifests=manifests)


@st.fragment(run_every="1s")
def _progress(p: Platform, who: Actor, job_id: str) -> None:
    view = p.jobs.get(who, job_id)
    _progress_bar(view)
    if st.button(t("results.cancel"), icon=":material/stop_circle:", key="cmp-video-cancel"):
        p.jobs.cancel(who, job_id)
    if view.finished:
        st.rerun()


def _progress_bar(view: JobView) -> None:
    """The column running (the job's stage: column, columns, service) and its frames."""
    done, total = view.progress
    stage = view.stage
    text = t("compare.video_progress", column=stage.index, columns=stage.count, service=stage.name, done=done,
             total=total or "?") if stage else t("showcase.running")
    st.progress(min(done / total, 1.0) if total else 0.0, text=text)


def show_video_comparison(cmp: VideoComparison, video_bytes: Callable[[VideoResult], bytes | None], *,
                          key: str, manifests: Mapping[str, Manifest] | None = None) -> None:
    manifests = manifests or {}
    labels = column_labels(cmp.columns, manifests)
    n = len(cmp.results)
    st.caption(t("compare.input", ref=cmp.input_ref))
    for col, label, column in zip(st.columns(n), labels, cmp.columns):
        col.subheader(label)
        col.caption(params_text(manifests.get(column.service), column.params) or t("compare.no_params"))
    for i, (col, result) in enumerate(zip(st.columns(n), cmp.results)):
        with col:
            if result is None:
                st.warning(t("compare.not_run", error=say(cmp.errors[i] or "?")))
            else:
                video_status(result)
    for col, result in zip(st.columns(n), cmp.results):
        if result is not None:
            with col:
                video_metrics(result)
    with st.container(key=f"{key}-videos"):
        for col, result in zip(st.columns(n), cmp.results):
            if result is not None and (video := video_bytes(result)):
                col.video(video, format="video/mp4")
    sync_videos(f"{key}-videos")
    st.subheader(t("compare.summary"))
    if cmp.pairs:
        st.dataframe(pd.DataFrame([video_pair_row(p) for p in cmp.pairs]), hide_index=True,
                     width="stretch", key=f"{key}-summary", placeholder=MISSING)
    else:
        st.caption(t("compare.no_pairs"))
    ran = [(label, r.frames) for label, r in zip(labels, cmp.results) if r is not None and r.frames]
    if ran:
        names, frames = [lb for lb, _ in ran], [f for _, f in ran]
        st.plotly_chart(video_counts_figure(names, frames, count=t("results.count_axis"),
                                            title=t("compare.video_counts"), frame=t("results.frame")),
                        key=f"{key}-counts")
        st.plotly_chart(video_latency_figure(names, frames, total=t("results.total_ms"),
                                             predict=t("results.predict_ms"), title=t("compare.video_latency")),
                        key=f"{key}-latency")


def video_pair_row(p: VideoPairSummary) -> dict[str, Any]:
    """One pair of columns ("1 ↔ 2": the numbers of the column headings) and how they differ."""
    row: dict[str, Any] = {t("compare.pair"): f"{p.left + 1} ↔ {p.right + 1}",
                           t("compare.video_frames"): p.frames}
    if p.label_agreement is not None:
        row[t("compare.label_agreement")] = pct(p.label_agreement)
    elif p.line_jaccard is not None:
        row[t("compare.line_overlap")] = round(p.line_jaccard, 3)
    else:
        row[t("compare.matched")] = p.matched
        row[t("compare.only_left")] = p.only_left
        row[t("compare.only_right")] = p.only_right
        row[t("compare.mean_iou")] = None if p.mean_iou is None else round(p.mean_iou, 3)
        row[t("compare.box_agreement")] = pct(p.agreement)
        row[t("compare.frames_agreeing")] = f"{p.frames_agreeing}/{p.frames}"
    return row
