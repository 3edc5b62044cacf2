"""Result viewers by task (DESIGN §2 shapes): label and score bars; entities highlighted in the
text with a table; boxes drawn on the image with a table; OCR lines over the image with a table
of text; the annotated video with per-frame charts; a comparison with its summary.

Runs side by side are drawn one row per part (header, status, times, output, table), so that
each part starts at the same height in every column whatever the banners above it. Names come
from the service's manifest in the page's language (`Manifest.localized`): parameter labels,
result labels and what a score means."""
from __future__ import annotations

import html
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from app import media
from app.auth import Actor
from app.catalog.manifest import Manifest
from app.errors import ValidationFailed
from app.jobs import JobView
from app.platform import Platform
from app.showcase.compare import Comparison
from app.showcase.inputs import InputData
from app.showcase.metrics import PairSummary
from app.showcase.runs import Column, RunResult
from app.showcase.video import VideoResult
from components.catalog_view import value_name
from components.charts import latency_columns, score_bars, video_frames_figure
from components.session import say, t
from components.video_sync import sync_videos

ENTITY_COLORS = ("#fde68a", "#bfdbfe", "#bbf7d0", "#fecaca", "#e9d5ff", "#fed7aa", "#c7d2fe", "#fbcfe8")
Manifests = Mapping[str, Manifest]
MISSING = "–"
MARKDOWN_ANYWHERE = re.compile(r"([\\`*_\[\]<>$~|:])")        # emphasis, code, links, html, math, directives
MARKDOWN_LEADING = re.compile(r"^(\s*)([#+-]|\d+(?=\.(?:\s|$)))")  # headings, lists ("1. " escaped at its dot)


# --- names from the manifest ---------------------------------------------------------------------------

def label_name(manifest: Manifest | None, value: Any) -> str:
    """A result's label or entity type as the manifest names it in the page's language."""
    return manifest.label(value) if manifest else str(value)


def params_text(manifest: Manifest | None, params: Mapping[str, Any]) -> str:
    """"Model=LBP (improved), Scale step=1.1": parameters by their labels, choices by theirs."""
    return ", ".join(f"{name}={value}" for name, value in named_params(manifest, params))


def named_params(manifest: Manifest | None, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    specs = manifest.params if manifest else {}
    return [(specs[k].display(k), value_name(specs[k], v)) if k in specs else (k, str(v)) for k, v in params.items()]


def score_name(manifest: Manifest | None) -> str:
    """"Score · neighbours": what a score column holds, with the meaning the manifest gives it."""
    if manifest is None or manifest.score is None:
        return t("results.score")
    return f"{t('results.score')} · {t('score.kind.' + manifest.score.kind)}"


def score_help(manifest: Manifest | None) -> str | None:
    """What the score means: the manifest's words for it (else those of its kind), and its range."""
    if manifest is None or manifest.score is None:
        return None
    spec = manifest.score
    if spec.min is not None and spec.max is not None:
        bounds = f" ({spec.min:g}–{spec.max:g})"
    elif spec.min is not None or spec.max is not None:
        bounds = f" (≥ {spec.min:g})" if spec.min is not None else f" (≤ {spec.max:g})"
    else:
        bounds = ""
    return (spec.help or t("score.kind_help." + spec.kind)) + bounds


# --- one run, and runs side by side ----------------------------------------------------------------------

def show_run(result: RunResult, data: InputData, *, key: str, manifest: Manifest | None = None) -> None:
    """One run: its status (cached, service down, failed), times, then the output by task."""
    show_runs([result], data, key=key, manifests={result.service: manifest} if manifest else {})


def show_runs(results: Sequence[RunResult], data: InputData, *, key: str, manifests: Manifests,
              headers: Sequence[tuple[str, str]] | None = None, counts: Sequence[int | None] | None = None) -> None:
    """Runs over the same input side by side, one row per part, so that parts line up: each
    column's header (title, caption), status, times (and count), output, then its table."""
    n = len(results)
    if headers:
        for col, (title, caption) in zip(st.columns(n), headers):
            col.subheader(title)
            col.caption(caption)
    for col, result in zip(st.columns(n), results):
        with col:
            run_status(result)
    for i, (col, result) in enumerate(zip(st.columns(n), results)):
        with col:
            run_times(result, counts[i] if counts else None)
    for i, (col, result) in enumerate(zip(st.columns(n), results)):
        if result.ok:
            with col:
                output_main(result.task, data, result.output, key=f"{key}-{i}", manifest=manifests.get(result.service))
    for i, (col, result) in enumerate(zip(st.columns(n), results)):
        if result.ok:
            with col:
                output_table(result.task, data, result.output, key=f"{key}-{i}", manifest=manifests.get(result.service))


def run_status(result: RunResult) -> None:
    st.markdown(f"**{result.service}** · {result.version}")
    if result.cached and result.error:
        st.warning(t("results.cached_service_down", error=say(result.error)), icon=":material/cloud_off:")
    elif result.error:
        st.error(t("results.failed", error=say(result.error)))
    if result.cached:
        when = result.cached_at.strftime("%Y-%m-%d %H:%M:%S") if result.cached_at else "?"
        st.info(t("results.cached", when=when), icon=":material/cached:")


def run_times(result: RunResult, count: int | None = None) -> None:
    """Total and predict time (and the count), side by side while they fit, wrapped otherwise."""
    if not result.ok:
        return
    with st.container(horizontal=True, gap="medium"):
        st.metric(t("results.total_ms"), _ms(result.total_ms), width="content")
        st.metric(t("results.predict_ms"), _ms(result.predict_ms), width="content")
        if count is not None:
            st.metric(t("results.count_axis"), count, width="content")


def _ms(value: float | None) -> str:
    """Milliseconds; seconds from one second on (a slow call reads as the wait it was)."""
    if value is None:
        return MISSING
    return f"{value / 1000:,.2f} s" if value >= 1000 else f"{value:,.1f} ms"


def _number(value: Any) -> str:
    """A score as a table shows it: whole numbers as they are, others to 3 significant digits."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return MISSING if value is None else str(value)
    return str(value) if isinstance(value, int) else f"{value:.3g}"


def literal(text: str) -> str:
    """`text` escaped so that Markdown shows it as it is (st.table renders its cells and headers
    as Markdown: a "#" header was an empty heading, an entity "*x*" would turn italic)."""
    escaped = MARKDOWN_ANYWHERE.sub(r"\\\1", text)
    return MARKDOWN_LEADING.sub(lambda m: m[1] + (m[2] + "\\" if m[2][0].isdigit() else "\\" + m[2]), escaped)


def small_table(rows: list[dict[str, Any]], *, key: str) -> None:
    """A result's table: every column shown, long cells wrapped (a column of a comparison is
    narrow), at most ~12 rows high with the header kept while it scrolls. Cells read literally."""
    frame = pd.DataFrame(rows)
    frame = frame.loc[:, [c for c in frame.columns if frame[c].notna().any()]].fillna(MISSING)
    frame = frame.astype(str).map(literal).rename(columns=lambda c: literal(str(c)))
    with st.container(key=key):
        st.table(frame, hide_index=True, height=min(40 * (len(frame) + 1), 480))


# --- outputs by task -------------------------------------------------------------------------------------

def show_output(task: str, data: InputData, output: Any, *, key: str, manifest: Manifest | None = None) -> None:
    """The output of `task` on `data`; an output of an unexpected shape is shown as JSON."""
    output_main(task, data, output, key=key, manifest=manifest)
    output_table(task, data, output, key=key, manifest=manifest)


def output_main(task: str, data: InputData, output: Any, *, key: str, manifest: Manifest | None = None) -> None:
    """The picture of an output: label and score bars, highlighted text, or the annotated image."""
    kind = task.partition(".")[2]
    if not isinstance(output, Mapping):
        st.json(output)
    elif kind == "classification":
        _classification(task, data, output, key, manifest)
    elif kind == "ner":
        st.markdown(highlight(data.text or "", _entities(output), lambda k: label_name(manifest, k)),
                    unsafe_allow_html=True)
    elif kind in ("detection", "ocr") and data.kind == "image":
        _annotated(task, data, output)
    else:
        st.json(dict(output))


def output_table(task: str, data: InputData, output: Any, *, key: str, manifest: Manifest | None = None) -> None:
    """The table under an output: entities, boxes or text lines (nothing for a classification)."""
    kind = task.partition(".")[2]
    if not isinstance(output, Mapping):
        return
    if kind == "ner":
        _entity_table(_entities(output), key, manifest)
    elif kind in ("detection", "ocr") and data.kind == "image":
        _image_table(task, output, key, manifest)


def top_class(label: Any, scores: Mapping[str, float]) -> str:
    """The class a classification's headline shows: the top of its score bars (the output's own
    label on a tie), or the label when there are no scores."""
    if not scores:
        return str(label)
    best = max(scores.values())
    return str(label) if scores.get(str(label)) == best else max(scores, key=lambda k: scores[k])


def numeric_scores(output: Mapping[str, Any]) -> dict[str, float]:
    scores = output.get("scores")
    if not isinstance(scores, Mapping):
        return {}
    return {str(k): float(v) for k, v in scores.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _classification(task: str, data: InputData, output: Mapping[str, Any], key: str,
                    manifest: Manifest | None) -> None:
    if data.kind == "image":
        _annotated(task, data, output)
    scores = numeric_scores(output)
    top = top_class(output.get("label"), scores)
    score = scores.get(top, output.get("score") if not scores else None)
    c1, c2 = st.columns(2)
    c1.metric(t("results.label"), label_name(manifest, top))
    if isinstance(score, (int, float)):
        c2.metric(score_name(manifest), f"{score:.3f}", help=score_help(manifest))
    if output.get("label") is not None and str(output.get("label")) != top:
        st.caption(t("results.label_differs", label=label_name(manifest, output.get("label"))))
    if scores:
        named = {label_name(manifest, k): v for k, v in scores.items()}
        st.plotly_chart(score_bars(named, t("results.scores"), highlight=label_name(manifest, top)),
                        key=f"{key}-scores")


def _entities(output: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [e for e in output.get("entities") or [] if isinstance(e, Mapping)]


def _entity_table(entities: list[Mapping[str, Any]], key: str, manifest: Manifest | None) -> None:
    if not entities:
        st.caption(t("results.none"))
        return
    small_table([{t("results.text"): e.get("text"), t("results.type"): label_name(manifest, e.get("type")),
                  t("results.start"): e.get("start"), t("results.end"): e.get("end"),
                  score_name(manifest): None if e.get("score") is None else _number(e.get("score"))}
                 for e in entities], key=f"{key}-entities")   # no Score column without scores


def entity_color(kind: str) -> str:
    return ENTITY_COLORS[zlib.crc32(kind.encode()) % len(ENTITY_COLORS)]


def highlight(text: str, entities: list[Mapping[str, Any]], name: Callable[[str], str] = str) -> str:
    """HTML of `text` with each entity (by start/end offsets; overlaps after the first are
    skipped) in a coloured mark labelled with `name(type)`, coloured by type. Everything is escaped."""
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
                     f'{html.escape(name(kind))}</sub></mark>')
        pos = end
    parts.append(html.escape(text[pos:]))
    return '<div style="line-height:2">' + "".join(parts) + "</div>"


def _annotated(task: str, data: InputData, output: Mapping[str, Any]) -> None:
    try:
        image = media.decode_image(data.data or b"")
    except media.MediaError as e:
        st.warning(say(e.message))
        return
    st.image(media.draw(image, task, output), channels="BGR", width="stretch")


def _image_table(task: str, output: Mapping[str, Any], key: str, manifest: Manifest | None) -> None:
    """Boxes (label, score, box) or OCR lines (text, score), compact enough for a column."""
    score = score_name(manifest)
    if task.endswith(".ocr"):
        rows = [{"#": i, t("results.text"): line.get("text"), score: _number(line.get("score"))}
                for i, line in enumerate(output.get("lines") or [], 1) if isinstance(line, Mapping)]
    else:
        rows = [{"#": i, t("results.label"): label_name(manifest, b.get("label")),
                 score: None if b.get("score") is None else _number(b.get("score")), t("results.box"): box_text(b)}
                for i, b in enumerate(output.get("boxes") or [], 1) if isinstance(b, Mapping)]
    st.caption(t("results.count", n=len(rows)) + (f" · {score}: {help_}" if (help_ := score_help(manifest)) else ""))
    if rows:
        small_table(rows, key=f"{key}-table")


def box_text(box: Mapping[str, Any]) -> str:
    """"x, y · w×h" of a box (a dash for a missing coordinate)."""
    x, y, w, h = (box.get(k, MISSING) for k in ("x", "y", "w", "h"))
    return f"{x}, {y} · {w}×{h}"


# --- video -----------------------------------------------------------------------------------------

def show_video(result: VideoResult, video: bytes | None, *, key: str, charts: bool = True) -> None:
    """The annotated video (H.264 MP4, plays in the browser) and, with `charts`, per-frame charts."""
    video_status(result)
    video_metrics(result)
    if video:
        st.video(video, format="video/mp4")
    if result.frames and charts:
        st.plotly_chart(video_frames_figure(result.frames, count=t("results.count_axis"), latency=t("results.total_ms"),
                                            predict=t("results.predict_ms"), title=t("results.per_frame"),
                                            frame=t("results.frame")), key=f"{key}-frames")


def video_status(result: VideoResult) -> None:
    st.markdown(f"**{result.service}** · {result.version}")
    if result.cached and result.error:
        st.warning(t("results.cached_service_down", error=say(result.error)), icon=":material/cloud_off:")
    elif result.error:
        st.error(t("results.video_failed", error=say(result.error), done=len(result.frames), total=result.frames_total))
    elif result.cancelled:
        st.warning(t("results.video_cancelled", done=len(result.frames), total=result.frames_total))
    if result.cached:
        st.info(t("results.cached_video"), icon=":material/cached:")


def video_metrics(result: VideoResult) -> None:
    c1, c2, c3 = st.columns(3)
    c1.metric(t("results.frames"), f"{len(result.frames)}/{result.frames_total}")
    c2.metric(t("results.detections"), sum(r.get("count") or 0 for r in result.frames))
    c3.metric(t("results.fps"), f"{len(result.frames) / result.wall_s:.1f}" if result.wall_s else MISSING,
              help=t("results.fps_help"))


# --- comparison --------------------------------------------------------------------------------------

def column_labels(columns: Sequence[Column], manifests: Manifests | None = None) -> list[str]:
    """"1. service" per column, followed by the parameters that set it apart from the other
    columns of the same service ("2. face-detect · model=lbp"), named by the manifests."""
    labels = []
    for i, col in enumerate(columns):
        same = [c for c in columns if c.service == col.service]
        differ = {k: col.params[k] for k in sorted(col.params) if len({repr(c.params.get(k)) for c in same}) > 1}
        extra = params_text((manifests or {}).get(col.service), differ)
        labels.append(f"{i + 1}. {col.service}" + (f" · {extra}" if extra else ""))
    return labels


def show_comparison(cmp: Comparison, *, key: str, manifests: Manifests | None = None) -> None:
    """The columns side by side (same input), then how they differ, then their latencies."""
    manifests = manifests or {}
    labels = column_labels(cmp.columns, manifests)
    headers = [(label, params_text(manifests.get(r.service), r.params) or t("compare.no_params"))
               for label, r in zip(labels, cmp.results)]
    with st.container(key=key):   # one comparison: its input and its columns
        st.caption(t("compare.input", ref=cmp.input.ref))
        if cmp.input.kind == "text":
            st.markdown(f"> {html.escape(cmp.input.text or '')}")
        show_runs(cmp.results, cmp.input, key=key, manifests=manifests, headers=headers, counts=cmp.counts)
    st.subheader(t("compare.summary"))
    rows = [pair_row(p) for p in cmp.pairs]
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key=f"{key}-summary", placeholder=MISSING)
    else:
        st.caption(t("compare.no_pairs"))
    ran = [(label, r) for label, r in zip(labels, cmp.results) if r.ok]
    if ran:
        st.plotly_chart(latency_columns([lb for lb, _ in ran], [r for _, r in ran], total=t("results.total_ms"),
                                        predict=t("results.predict_ms"), title=t("compare.latency"),
                                        cached=t("results.cached_mark")), key=f"{key}-latency")


def pair_row(p: PairSummary) -> dict[str, Any]:
    """One pair of columns ("1 ↔ 2": the numbers of the column headings) and how they differ."""
    row: dict[str, Any] = {t("compare.pair"): f"{p.left + 1} ↔ {p.right + 1}"}
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
    return MISSING if value is None else f"{value:.0%}"


def watch_video_jobs(p: Platform, who: Actor, jobs: Mapping[str, str]) -> None:
    """Progress bars and a cancel button while the video jobs (service → job id, app.jobs) run,
    refreshed every second; their results side by side once every job has finished, one row per
    part, with one play/pause/seek for all the videos."""
    views = job_views(p, who, jobs)
    if views is None:
        return
    if not all(v.finished for v in views.values()):
        _video_progress(p, who, jobs)
        return
    results = {name: v.result for name, v in views.items()}
    n = len(results)
    for col, (name, view) in zip(st.columns(n), views.items()):
        with col:
            if view.error or view.result is None:
                st.error(t("results.failed", error=say(view.error or "?")))
            else:
                video_status(view.result)
    for col, result in zip(st.columns(n), results.values()):
        if result is not None:
            with col:
                video_metrics(result)
    with st.container(key="sc-videos"):
        for col, result in zip(st.columns(n), results.values()):
            if result is not None and (video := p.showcase.video_bytes(who, result)):
                col.video(video, format="video/mp4")
    sync_videos("sc-videos")
    for col, (name, result) in zip(st.columns(n), results.items()):
        if result is not None and result.frames:
            col.plotly_chart(video_frames_figure(result.frames, count=t("results.count_axis"),
                                                 latency=t("results.total_ms"), predict=t("results.predict_ms"),
                                                 title=t("results.per_frame"), frame=t("results.frame")),
                             key=f"video-{name}-frames")


def job_views(p: Platform, who: Actor, jobs: Mapping[str, str]) -> dict[str, JobView] | None:
    """The jobs as they are now, by name; None (with a message) when one is no longer known (it
    finished long ago, or the platform restarted since)."""
    try:
        return {name: p.jobs.get(who, job_id) for name, job_id in jobs.items()}
    except ValidationFailed as e:
        st.warning(say(e.message))
        return None


@st.fragment(run_every="1s")
def _video_progress(p: Platform, who: Actor, jobs: Mapping[str, str]) -> None:
    views = job_views(p, who, jobs) or {}
    for name, view in views.items():
        done, total = view.progress
        st.progress(min(done / total, 1.0) if total else 0.0,
                    text=t("results.video_progress", service=name, done=done, total=total or "?"))
    if st.button(t("results.cancel"), icon=":material/stop_circle:"):
        for job_id in jobs.values():
            p.jobs.cancel(who, job_id)
    if all(v.finished for v in views.values()):
        st.rerun()
