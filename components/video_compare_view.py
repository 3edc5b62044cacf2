"""The video comparison of the Compare page: progress with cancel while the columns run, then the
annotated videos side by side, how the columns differ frame by frame, and their latencies."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from app.showcase import VideoJob, VideoResult
from app.video_compare import VideoComparison, VideoPairSummary
from components.charts import video_counts_figure, video_latency_figure
from components.results import column_labels, pct, show_video
from components.session import t


def watch_video_compare(job: VideoJob, services: list[str], video_bytes: Callable[[VideoResult], bytes | None],
                        *, key: str) -> None:
    """Progress (refreshed every second, with a cancel button) until `job` is done, then its
    comparisons (a list, see Showcase.start_video_compare), or its error. `services` names the
    column of each stage."""
    if not job.done:
        _progress(job, services)
    elif job.error or job.result is None:
        st.error(t("results.failed", error=job.error or "?"))
    else:
        for i, comparison in enumerate(job.result):
            if i:
                st.divider()
            show_video_comparison(comparison, video_bytes, key=f"{key}-{i}")


@st.fragment(run_every="1s")
def _progress(job: VideoJob, services: list[str]) -> None:
    column, columns = job.stage or (1, len(services))
    done, total = job.progress
    st.progress(min(done / total, 1.0) if total else 0.0,
                text=t("compare.video_progress", column=column, columns=columns, service=services[column - 1],
                       done=done, total=total or "?"))
    if st.button(t("results.cancel"), icon=":material/stop_circle:", key="cmp-video-cancel"):
        job.cancel()
    if job.done:
        st.rerun()


def show_video_comparison(cmp: VideoComparison, video_bytes: Callable[[VideoResult], bytes | None], *,
                          key: str) -> None:
    labels = column_labels(cmp.columns)
    st.caption(t("compare.input", ref=cmp.input_ref))
    for i, col in enumerate(st.columns(len(cmp.results))):
        with col:
            st.subheader(labels[i])
            st.caption(", ".join(f"{k}={v}" for k, v in cmp.columns[i].params.items()) or t("compare.no_params"))
            result = cmp.results[i]
            if result is None:
                st.warning(t("compare.not_run", error=cmp.errors[i] or "?"))
            else:
                show_video(result, video_bytes(result), key=f"{key}-{i}", charts=False)
    st.subheader(t("compare.summary"))
    if cmp.pairs:
        st.dataframe(pd.DataFrame([video_pair_row(p, labels) for p in cmp.pairs]), hide_index=True,
                     width="stretch", key=f"{key}-summary")
    else:
        st.caption(t("compare.no_pairs"))
    ran = [(label, r.frames) for label, r in zip(labels, cmp.results) if r is not None and r.frames]
    if ran:
        names, frames = [lb for lb, _ in ran], [f for _, f in ran]
        st.plotly_chart(video_counts_figure(names, frames, count=t("results.count_axis"),
                                            title=t("compare.video_counts")), key=f"{key}-counts")
        st.plotly_chart(video_latency_figure(names, frames, total=t("results.total_ms"),
                                             predict=t("results.predict_ms"), title=t("compare.video_latency")),
                        key=f"{key}-latency")


def video_pair_row(p: VideoPairSummary, labels: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {t("compare.pair"): f"{labels[p.left]} ↔ {labels[p.right]}",
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
