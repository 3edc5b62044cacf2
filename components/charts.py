"""Plotly figures of the Showcase, Compare and History pages. Pure: data in, figure out (texts
come in as arguments, so the figures carry no Streamlit state and are testable)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.history import LatencyBucket
from app.showcase import RunResult

TOTAL_COLOR, PREDICT_COLOR = "#1f77b4", "#ff7f0e"
LAYOUT = {"margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "legend": {"orientation": "h", "y": -0.2}}


def score_bars(scores: Mapping[str, Any], title: str = "") -> go.Figure:
    """Horizontal bars of label → score, highest on top (non-numeric scores are left out)."""
    items = sorted(((str(k), float(v)) for k, v in scores.items() if isinstance(v, (int, float))),
                   key=lambda kv: kv[1])
    fig = go.Figure(go.Bar(x=[v for _, v in items], y=[k for k, _ in items], orientation="h",
                           text=[f"{v:.3f}" for _, v in items], textposition="auto", marker_color=TOTAL_COLOR))
    fig.update_layout(title=title, height=max(160, 40 * len(items) + 80), xaxis={"range": [0, max(1.0, *(
        v for _, v in items))] if items else [0, 1]}, **LAYOUT)
    return fig


def latency_columns(labels: Sequence[str], results: Sequence[RunResult], *, total: str, predict: str,
                    title: str = "") -> go.Figure:
    """Grouped bars per column: total ms (platform round trip) and predict ms (inside the model)."""
    fig = go.Figure([
        go.Bar(name=total, x=list(labels), y=[r.total_ms for r in results], marker_color=TOTAL_COLOR,
               text=[_ms(r.total_ms) for r in results], textposition="auto"),
        go.Bar(name=predict, x=list(labels), y=[r.predict_ms for r in results], marker_color=PREDICT_COLOR,
               text=[_ms(r.predict_ms) for r in results], textposition="auto"),
    ])
    fig.update_layout(barmode="group", title=title, yaxis_title="ms", **LAYOUT)
    return fig


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def percentiles_figure(buckets: Sequence[LatencyBucket], *, total: str, predict: str, title: str = "") -> go.Figure:
    """p50/p95/p99 of total (solid) and predict (dashed) ms over time, one point per bucket."""
    fig = go.Figure()
    x = [b.start for b in buckets]
    for q, width in (("p50", 3), ("p95", 2), ("p99", 1)):
        fig.add_trace(go.Scatter(x=x, y=[getattr(b, f"total_{q}") for b in buckets], name=f"{total} {q}",
                                 mode="lines+markers", line={"color": TOTAL_COLOR, "width": width}))
        fig.add_trace(go.Scatter(x=x, y=[getattr(b, f"predict_{q}") for b in buckets], name=f"{predict} {q}",
                                 mode="lines+markers", line={"color": PREDICT_COLOR, "width": width, "dash": "dash"}))
    fig.update_layout(title=title, yaxis_title="ms", hovermode="x unified", **LAYOUT)
    return fig


def video_frames_figure(rows: Sequence[Mapping[str, Any]], *, count: str, latency: str, predict: str,
                        title: str = "") -> go.Figure:
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
    fig.update_layout(title=title, height=460, **LAYOUT)
    return fig


COLUMN_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def video_counts_figure(labels: Sequence[str], frames: Sequence[Sequence[Mapping[str, Any]]], *, count: str,
                        title: str = "") -> go.Figure:
    """Detections per frame, one line per column (`frames[i]` = column i's per-frame rows)."""
    fig = go.Figure([go.Scatter(x=[r.get("frame") for r in rows], y=[r.get("count") for r in rows], name=label,
                                mode="lines", line={"color": COLUMN_COLORS[i % len(COLUMN_COLORS)], "shape": "hv"})
                     for i, (label, rows) in enumerate(zip(labels, frames))])
    fig.update_layout(title=title, xaxis_title="frame", yaxis_title=count, hovermode="x unified", **LAYOUT)
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
