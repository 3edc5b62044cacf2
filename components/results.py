"""Result viewers by task (DESIGN §2 shapes): label and score bars; entities highlighted in the
text with a table; boxes drawn on the image with a table; OCR lines over the image with a table
of text; the annotated video with per-frame charts; a comparison with its summary."""
from __future__ import annotations

import html
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from app import media
from app.compare_metrics import PairSummary
from app.showcase import Column, Comparison, InputData, RunResult, VideoResult
from components.charts import latency_columns, score_bars, video_frames_figure
from components.session import t

ENTITY_COLORS = ("#fde68a", "#bfdbfe", "#bbf7d0", "#fecaca", "#e9d5ff", "#fed7aa", "#c7d2fe", "#fbcfe8")


def show_run(result: RunResult, data: InputData, *, key: str) -> None:
    """One run: its status (cached, service down, failed), times, then the output by task."""
    run_status(result)
    if result.ok:
        show_output(result.task, data, result.output, key=key)


def run_status(result: RunResult) -> None:
    st.markdown(f"**{result.service}** · {result.version}")
    if result.cached and result.error:
        st.warning(t("results.cached_service_down", error=result.error), icon=":material/cloud_off:")
    elif result.error:
        st.error(t("results.failed", error=result.error))
    if result.cached:
        when = result.cached_at.strftime("%Y-%m-%d %H:%M:%S") if result.cached_at else "?"
        st.info(t("results.cached", when=when), icon=":material/cached:")
    if result.ok:
        c1, c2 = st.columns(2)
        c1.metric(t("results.total_ms"), _ms(result.total_ms))
        c2.metric(t("results.predict_ms"), _ms(result.predict_ms))


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} ms"


def show_output(task: str, data: InputData, output: Any, *, key: str) -> None:
    """The output of `task` on `data`; an output of an unexpected shape is shown as JSON."""
    kind = task.partition(".")[2]
    if not isinstance(output, Mapping):
        st.json(output)
    elif kind == "classification":
        _classification(task, data, output, key)
    elif kind == "ner":
        _entities(data, output, key)
    elif kind in ("detection", "ocr") and data.kind == "image":
        _image_result(task, data, output, key)
    else:
        st.json(dict(output))


def _classification(task: str, data: InputData, output: Mapping[str, Any], key: str) -> None:
    if data.kind == "image":
        _annotated(task, data, output)
    score = output.get("score")
    st.metric(t("results.label"), str(output.get("label")),
              f"{score:.3f}" if isinstance(score, (int, float)) else None, delta_color="off")
    scores = output.get("scores")
    if isinstance(scores, Mapping) and scores:
        st.plotly_chart(score_bars(scores, t("results.scores")), key=f"{key}-scores")


def _entities(data: InputData, output: Mapping[str, Any], key: str) -> None:
    entities = [e for e in output.get("entities") or [] if isinstance(e, Mapping)]
    st.markdown(highlight(data.text or "", entities), unsafe_allow_html=True)
    if entities:
        st.dataframe(pd.DataFrame([{t("results.text"): e.get("text"), t("results.type"): e.get("type"),
                                    t("results.start"): e.get("start"), t("results.end"): e.get("end"),
                                    t("results.score"): e.get("score")} for e in entities]).dropna(axis=1, how="all"),
                     hide_index=True, width="stretch", key=f"{key}-entities")   # no Score column without scores
    else:
        st.caption(t("results.none"))


def entity_color(kind: str) -> str:
    return ENTITY_COLORS[zlib.crc32(kind.encode()) % len(ENTITY_COLORS)]


def highlight(text: str, entities: list[Mapping[str, Any]]) -> str:
    """HTML of `text` with each entity (by start/end offsets; overlaps after the first are
    skipped) in a coloured mark labelled with its type. Everything is escaped."""
    parts, pos = [], 0
    spans = sorted((e for e in entities if isinstance(e.get("start"), int) and isinstance(e.get("end"), int)),
                   key=lambda e: (e["start"], -e["end"]))
    for e in spans:
        start, end = e["start"], e["end"]
        if start < pos or end > len(text) or start >= end:
            continue
        kind = str(e.get("type", ""))
        parts.append(html.escape(text[pos:start]))
        parts.append(f'<mark style="background:{entity_color(kind)};padding:0 2px;border-radius:3px">'
                     f'{html.escape(text[start:end])}<sub style="font-size:0.65em;margin-left:2px">'
                     f'{html.escape(kind)}</sub></mark>')
        pos = end
    parts.append(html.escape(text[pos:]))
    return '<div style="line-height:2">' + "".join(parts) + "</div>"


def _annotated(task: str, data: InputData, output: Mapping[str, Any]) -> None:
    try:
        image = media.decode_image(data.data or b"")
    except media.MediaError as e:
        st.warning(str(e))
        return
    st.image(media.draw(image, task, output), channels="BGR", width="stretch")


def _image_result(task: str, data: InputData, output: Mapping[str, Any], key: str) -> None:
    _annotated(task, data, output)
    if task.endswith(".ocr"):
        rows = [{"#": i, t("results.text"): line.get("text"), t("results.score"): line.get("score")}
                for i, line in enumerate(output.get("lines") or [], 1) if isinstance(line, Mapping)]
    else:
        rows = [{"#": i, t("results.label"): b.get("label"), t("results.score"): b.get("score"),
                 "x": b.get("x"), "y": b.get("y"), "w": b.get("w"), "h": b.get("h")}
                for i, b in enumerate(output.get("boxes") or [], 1) if isinstance(b, Mapping)]
    st.caption(t("results.count", n=len(rows)))
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key=f"{key}-table")


# --- video -----------------------------------------------------------------------------------------

def show_video(result: VideoResult, video: bytes | None, *, key: str, charts: bool = True) -> None:
    """The annotated video (H.264 MP4, plays in the browser) and, with `charts`, per-frame charts."""
    st.markdown(f"**{result.service}** · {result.version}")
    if result.cached and result.error:
        st.warning(t("results.cached_service_down", error=result.error), icon=":material/cloud_off:")
    elif result.error:
        st.error(t("results.video_failed", error=result.error, done=len(result.frames), total=result.frames_total))
    elif result.cancelled:
        st.warning(t("results.video_cancelled", done=len(result.frames), total=result.frames_total))
    if result.cached:
        st.info(t("results.cached_video"), icon=":material/cached:")
    c1, c2, c3 = st.columns(3)
    c1.metric(t("results.frames"), f"{len(result.frames)}/{result.frames_total}")
    counts = [r.get("count") or 0 for r in result.frames]
    c2.metric(t("results.detections"), sum(counts))
    c3.metric(t("results.fps"), f"{len(result.frames) / result.wall_s:.1f}" if result.wall_s else "–")
    if video:
        st.video(video, format="video/mp4")
    if result.frames and charts:
        st.plotly_chart(video_frames_figure(result.frames, count=t("results.count_axis"), latency=t("results.total_ms"),
                                            predict=t("results.predict_ms"), title=t("results.per_frame")),
                        key=f"{key}-frames")


# --- comparison --------------------------------------------------------------------------------------

def column_labels(columns: Sequence[Column]) -> list[str]:
    """"1. service" per column, followed by the parameters that set it apart from the other
    columns of the same service ("2. face-detect · model=lbp")."""
    labels = []
    for i, col in enumerate(columns):
        same = [c for c in columns if c.service == col.service]
        differ = [k for k in sorted(col.params) if len({repr(c.params.get(k)) for c in same}) > 1]
        extra = ", ".join(f"{k}={col.params[k]}" for k in differ)
        labels.append(f"{i + 1}. {col.service}" + (f" · {extra}" if extra else ""))
    return labels


def show_comparison(cmp: Comparison, *, key: str) -> None:
    """The columns side by side (same input), then how they differ, then their latencies."""
    labels = column_labels(cmp.columns)
    st.caption(t("compare.input", ref=cmp.input.ref))
    if cmp.input.kind == "text":
        st.markdown(f"> {html.escape(cmp.input.text or '')}")
    for i, (col, column, result) in enumerate(zip(st.columns(len(cmp.results)), cmp.columns, cmp.results)):
        with col:
            st.subheader(labels[i])
            st.caption(", ".join(f"{k}={v}" for k, v in result.params.items()) or t("compare.no_params"))
            if cmp.counts[i] is not None:
                st.metric(t("results.count_axis"), cmp.counts[i])
            show_run(result, cmp.input, key=f"{key}-{i}")
    st.subheader(t("compare.summary"))
    rows = [pair_row(p, labels) for p in cmp.pairs]
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key=f"{key}-summary")
    else:
        st.caption(t("compare.no_pairs"))
    ran = [(label, r) for label, r in zip(labels, cmp.results) if r.ok]
    if ran:
        st.plotly_chart(latency_columns([lb for lb, _ in ran], [r for _, r in ran], total=t("results.total_ms"),
                                        predict=t("results.predict_ms"), title=t("compare.latency")),
                        key=f"{key}-latency")


def pair_row(p: PairSummary, labels: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {t("compare.pair"): f"{labels[p.left]} ↔ {labels[p.right]}"}
    if p.boxes is not None:
        row[t("compare.matched")] = len(p.boxes.pairs)
        row[t("compare.only_left")] = len(p.boxes.unmatched_a)
        row[t("compare.only_right")] = len(p.boxes.unmatched_b)
        row[t("compare.mean_iou")] = None if p.boxes.mean_iou is None else round(p.boxes.mean_iou, 3)
        row[t("compare.label_agreement")] = pct(p.box_label_agreement)
    if p.label_agrees is not None:
        row[t("compare.labels_agree")] = t("compare.yes") if p.label_agrees else t("compare.no")
    if p.entity_jaccard is not None:
        row[t("compare.entity_overlap")] = round(p.entity_jaccard, 3)
    if p.line_jaccard is not None:
        row[t("compare.line_overlap")] = round(p.line_jaccard, 3)
    return row


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def watch_video_jobs(jobs: Mapping[str, Any], video_bytes: Any) -> None:
    """Progress bars and a cancel button while video jobs (service → app.showcase.VideoJob) run,
    refreshed every second; their results side by side once every job is done.
    `video_bytes(result)` returns the annotated MP4 of a result."""
    if not all(job.done for job in jobs.values()):
        _video_progress(jobs)
        return
    for col, (name, job) in zip(st.columns(len(jobs)), jobs.items()):
        with col:
            if job.error or job.result is None:
                st.error(t("results.failed", error=job.error or "?"))
            else:
                show_video(job.result, video_bytes(job.result), key=f"video-{name}")


@st.fragment(run_every="1s")
def _video_progress(jobs: Mapping[str, Any]) -> None:
    for name, job in jobs.items():
        done, total = job.progress
        st.progress(min(done / total, 1.0) if total else 0.0,
                    text=t("results.video_progress", service=name, done=done, total=total or "?"))
    if st.button(t("results.cancel"), icon=":material/stop_circle:"):
        for job in jobs.values():
            job.cancel()
    if all(job.done for job in jobs.values()):
        st.rerun()
