"""Plotly figures of the Showcase, Compare and History pages. Pure: data in, figure out (texts
come in as arguments, so the figures carry no Streamlit state and are testable)."""
from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.history import LatencyBucket
from app.showcase.runs import RunResult

TOTAL_COLOR, PREDICT_COLOR, MUTED_COLOR = "#1f77b4", "#ff7f0e", "#9ecae1"
LAYOUT = {"margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "legend": {"orientation": "h", "y": -0.2}}
DATE_FORMAT = "%Y-%m-%d %H:%M"     # numeric dates: no month names, which Plotly writes in English
LOG_RATIO = 10.0                   # series whose typical values differ this much get a log axis


def score_bars(scores: Mapping[str, Any], title: str = "", *, highlight: str | None = None) -> go.Figure:
    """Horizontal bars of label → score, highest on top (non-numeric scores are left out); the
    bar of `highlight` (the headline's class) in the strong colour, the others muted."""
    items = sorted(((str(k), float(v)) for k, v in scores.items() if isinstance(v, (int, float))),
                   key=lambda kv: kv[1])
    colors = [TOTAL_COLOR if highlight is None or k == highlight else MUTED_COLOR for k, _ in items]
    fig = go.Figure(go.Bar(x=[v for _, v in items], y=[k for k, _ in items], orientation="h",
                           text=[f"{v:.3f}" for _, v in items], textposition="auto", marker_color=colors))
    fig.update_layout(title=title, height=max(160, 40 * len(items) + 80), xaxis={"range": [0, max(1.0, *(
        v for _, v in items))] if items else [0, 1]}, **LAYOUT)
    return fig


def latency_columns(labels: Sequence[str], results: Sequence[RunResult], *, total: str, predict: str,
                    title: str = "", cached: str = "cached") -> go.Figure:
    """Grouped bars per column: total ms (platform round trip) and predict ms (inside the model).
    A cached result's bars are hatched and their figures marked `cached`: they were measured when
    that call ran, not now."""
    pattern = {"shape": ["/" if r.cached else "" for r in results]}
    fig = go.Figure([
        go.Bar(name=total, x=list(labels), y=[r.total_ms for r in results], marker_color=TOTAL_COLOR,
               marker_pattern=pattern, text=[_ms(r.total_ms, r.cached and cached) for r in results],
               textposition="auto"),
        go.Bar(name=predict, x=list(labels), y=[r.predict_ms for r in results], marker_color=PREDICT_COLOR,
               marker_pattern=pattern, text=[_ms(r.predict_ms, r.cached and cached) for r in results],
               textposition="auto"),
    ])
    fig.update_layout(barmode="group", title=title, yaxis_title="ms", **LAYOUT)
    return fig


def _ms(value: float | None, mark: str | bool = "") -> str:
    if value is None:
        return ""
    return f"{value:.1f} ({mark})" if mark else f"{value:.1f}"


def percentiles_figure(buckets: Sequence[LatencyBucket], *, total: str, predict: str, title: str = "",
                       log: str = "log") -> go.Figure:
    """p50/p95/p99 of total (solid) and predict (dashed) ms over time, one point per bucket (one
    service's calls: several services' latencies do not mix, see `service_percentiles_figure`)."""
    fig = go.Figure()
    x = [b.start for b in buckets]
    for q, width in (("p50", 3), ("p95", 2), ("p99", 1)):
        fig.add_trace(go.Scatter(x=x, y=[getattr(b, f"total_{q}") for b in buckets], name=f"{total} {q}",
                                 mode="lines+markers", line={"color": TOTAL_COLOR, "width": width}))
        fig.add_trace(go.Scatter(x=x, y=[getattr(b, f"predict_{q}") for b in buckets], name=f"{predict} {q}",
                                 mode="lines+markers", line={"color": PREDICT_COLOR, "width": width, "dash": "dash"}))
    values = [getattr(b, f"total_{q}") for b in buckets for q in ("p50", "p99")]
    fig.update_layout(title=title, yaxis=value_axis(values, "ms", log), xaxis={"tickformat": DATE_FORMAT},
                      hovermode="x unified", **LAYOUT)
    return fig


def service_percentiles_figure(series: Mapping[str, Sequence[LatencyBucket]], *, quantile: str,
                               title: str = "", log: str = "log") -> go.Figure:
    """One line per service: its `quantile` ("p50", "p95" or "p99") of total ms over time. The
    axis is logarithmic when the services' typical latencies differ by `LOG_RATIO` or more (a
    2 ms text service beside an 8 s OCR)."""
    fig = go.Figure([go.Scatter(x=[b.start for b in buckets], y=[getattr(b, f"total_{quantile}") for b in buckets],
                                name=name, mode="lines+markers")
                     for name, buckets in series.items()])
    typical = [statistics.median(getattr(b, f"total_{quantile}") for b in buckets)
               for buckets in series.values() if buckets]
    fig.update_layout(title=title, yaxis=value_axis(typical, "ms", log), xaxis={"tickformat": DATE_FORMAT},
                      hovermode="x unified", **LAYOUT)
    return fig


def spread(values: Sequence[float]) -> float:
    """max / min of the positive values (1.0 when there are fewer than two)."""
    positive = [v for v in values if v and v > 0]
    return max(positive) / min(positive) if len(positive) > 1 else 1.0


def value_axis(values: Sequence[float], title: str, log_word: str = "log") -> dict[str, Any]:
    """A y axis titled `title`: logarithmic when `values` spread over `LOG_RATIO` or more, and
    then titled "`title` (`log_word`)" (the word in the page's language)."""
    log = spread(values) >= LOG_RATIO
    return {"title": {"text": f"{title} ({log_word})" if log else title}, "type": "log" if log else "linear"}


def video_frames_figure(rows: Sequence[Mapping[str, Any]], *, count: str, latency: str, predict: str,
                        title: str = "", frame: str = "frame") -> go.Figure:
    """Two stacked charts sharing the frame axis: detections (count) per frame, and total and
    predict latency per frame."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    frames = [r.get("frame") for r in rows]
    fig.add_trace(go.Bar(x=frames, y=[r.get("count") for r in rows], name=count, marker_color="#2ca02c"), 1, 1)
    fig.add_trace(go.Scatter(x=frames, y=[r.get("latency_ms") for r in rows], name=latency, mode="lines",
                             line={"color": TOTAL_COLOR}), 2, 1)
    fig.add_trace(go.Scatter(x=frames, y=[r.get("predict_ms") for r in rows], name=predict, mode="lines",
                             line={"color": PREDICT_COLOR, "dash": "dash"}), 2, 1)
    fig.update_yaxes(title_text=count, row=1, col=1)
    fig.update_yaxes(title_text="ms", row=2, col=1)
    fig.update_xaxes(title_text=frame, row=2, col=1)
    fig.update_layout(title=title, height=460, **LAYOUT)
    return fig


COLUMN_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def video_counts_figure(labels: Sequence[str], frames: Sequence[Sequence[Mapping[str, Any]]], *, count: str,
                        title: str = "", frame: str = "frame") -> go.Figure:
    """Detections per frame, one line per column (`frames[i]` = column i's per-frame rows)."""
    fig = go.Figure([go.Scatter(x=[r.get("frame") for r in rows], y=[r.get("count") for r in rows], name=label,
                                mode="lines", line={"color": COLUMN_COLORS[i % len(COLUMN_COLORS)], "shape": "hv"})
                     for i, (label, rows) in enumerate(zip(labels, frames))])
    fig.update_layout(title=title, xaxis_title=frame, yaxis_title=count, hovermode="x unified", **LAYOUT)
    return fig


def video_latency_figure(labels: Sequence[str], frames: Sequence[Sequence[Mapping[str, Any]]], *, total: str,
                         predict: str, title: str = "") -> go.Figure:
    """Per column, the distribution over frames of total ms (round trip) and predict ms (model)."""
    fig = go.Figure()
    for name, field, color in ((total, "latency_ms", TOTAL_COLOR), (predict, "predict_ms", PREDICT_COLOR)):
        xs, ys = [], []
        for label, rows in zip(labels, frames):
            values = [r.get(field) for r in rows if isinstance(r.get(field), (int, float))]
            xs += [label] * len(values)
            ys += values
        fig.add_trace(go.Box(x=xs, y=ys, name=name, marker_color=color, boxmean=True))
    fig.update_layout(boxmode="group", title=title, yaxis_title="ms", **LAYOUT)
    return fig
