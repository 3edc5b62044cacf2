"""Plotly figures of experiments, shared by the Experiments page and the HTML report. Pure: runs
in, figure out; texts (axis titles) come in as arguments, so the figures carry no UI state."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from app.experiments.results import Run

LAYOUT = {"margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "legend": {"orientation": "h", "y": -0.2}}
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
FRONT = "#ff7f0e"


def pareto_front(points: Sequence[tuple[float, float]], higher: bool = True) -> list[int]:
    """Indices of the points no other point beats on both axes — lower x (latency) and better y
    (higher, or lower when not `higher`) — in order of x; ties keep the first."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1] if higher else points[i][1]))
    front, best = [], None
    for i in order:
        y = points[i][1]
        if best is None or (y > best if higher else y < best):
            front.append(i)
            best = y
    return front


def _label(run: Run) -> str:
    return f"#{run.index} " + ", ".join(f"{k}={v}" for k, v in run.params.items())


def pareto_figure(series: Mapping[str, Sequence[Run]], metric: str, higher: bool, *, latency: str,
                  title: str = "", front_name: str = "Pareto front") -> go.Figure:
    """Metric (y) against latency p50 (x), one trace per experiment, the Pareto front of all
    their configurations marked and joined."""
    fig = go.Figure()
    everything: list[tuple[float, float, str]] = []
    for n, (name, runs) in enumerate(series.items()):
        scored = [r for r in runs if r.metrics.get(metric) is not None and r.latency_ms.get("p50") is not None]
        everything += [(r.latency_ms["p50"], r.metrics[metric], f"{name} {_label(r)}") for r in scored]  # type: ignore
        fig.add_trace(go.Scatter(x=[r.latency_ms["p50"] for r in scored], y=[r.metrics[metric] for r in scored],
                                 mode="markers", name=name, text=[_label(r) for r in scored],
                                 marker={"size": 10, "color": COLORS[n % len(COLORS)]},
                                 hovertemplate="%{text}<br>%{x:.1f} ms, %{y:.4f}<extra></extra>"))
    front = [everything[i] for i in pareto_front([(x, y) for x, y, _ in everything], higher)]
    fig.add_trace(go.Scatter(x=[p[0] for p in front], y=[p[1] for p in front], mode="lines+markers", name=front_name,
                             text=[p[2] for p in front], line={"color": FRONT, "dash": "dash"},
                             marker={"size": 15, "symbol": "star", "color": FRONT},
                             hovertemplate="%{text}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title=latency, yaxis_title=metric, **LAYOUT)
    return fig


def metric_vs_param(runs: Sequence[Run], param: str, metric: str, *, title: str = "") -> go.Figure:
    """The metric of each configuration against one parameter's value (other parameters vary as
    they do: several points may share a value)."""
    scored = sorted((r for r in runs if r.metrics.get(metric) is not None), key=lambda r: _sortable(r.params.get(param)))
    fig = go.Figure(go.Scatter(x=[_shown(r.params.get(param)) for r in scored], y=[r.metrics[metric] for r in scored],
                               mode="lines+markers", text=[_label(r) for r in scored], marker={"color": COLORS[0]},
                               hovertemplate="%{text}<br>%{y:.4f}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title=param, yaxis_title=metric, **LAYOUT)
    return fig


def _sortable(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, (int, float)) else (1, str(value))


def _shown(value: Any) -> Any:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def confusion_figure(confusion: Mapping[str, Any], *, truth: str, predicted: str, title: str = "") -> go.Figure:
    """The confusion matrix as a heatmap with counts: rows are the truth, columns the prediction."""
    labels = [str(v) for v in confusion["labels"]]
    matrix = confusion["matrix"]
    fig = go.Figure(go.Heatmap(z=matrix, x=labels, y=labels, colorscale="Blues", text=matrix, texttemplate="%{text}",
                               hovertemplate=f"{truth} %{{y}}<br>{predicted} %{{x}}<br>%{{z}}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title=predicted, yaxis_title=truth, yaxis_autorange="reversed",
                      height=max(300, 60 * len(labels) + 120), **LAYOUT)
    return fig


def pr_figure(curves: Mapping[str, Mapping[str, Any]], *, title: str = "") -> go.Figure:
    """Precision against recall, one curve per label (classification) or one curve (detection)."""
    fig = go.Figure()
    for n, (name, curve) in enumerate(curves.items()):
        ap = curve.get("ap")
        fig.add_trace(go.Scatter(x=curve["recall"], y=curve["precision"], mode="lines", line={"shape": "hv"},
                                 name=f"{name} (AP {ap:.3f})" if isinstance(ap, float) else name,
                                 marker={"color": COLORS[n % len(COLORS)]}))
    fig.update_layout(title=title, xaxis_title="recall", yaxis_title="precision", xaxis_range=[0, 1.02],
                      yaxis_range=[0, 1.05], **LAYOUT)
    return fig


def pr_curves(task: str, extras: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The PR curves an experiment's extras hold for one configuration: per label, or one for boxes."""
    pr = extras.get("pr") or {}
    if task.endswith("detection"):
        return {"IoU 0.5": pr} if pr.get("recall") else {}
    return dict(pr)
