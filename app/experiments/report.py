"""Exports of an experiment: its runs as CSV (one row per configuration: parameters, metrics,
latency), and a self-contained HTML report (plotly.js inlined once; no network needed to read it)."""
from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Sequence

import plotly.io as pio

from app.experiments.figures import confusion_figure, metric_vs_param, pareto_figure, pr_curves, pr_figure
from app.experiments.results import ExperimentView, Run


def runs_table(runs: Sequence[Run]) -> list[dict[str, object]]:
    """One flat row per configuration: `#`, each parameter, each metric, latency p50/p95 (ms), items, errors."""
    params = list(dict.fromkeys(k for r in runs for k in r.params))
    metrics = list(dict.fromkeys(k for r in runs for k in r.metrics))
    return [{"#": r.index, **{p: r.params.get(p) for p in params}, **{m: r.metrics.get(m) for m in metrics},
             "p50_ms": r.latency_ms.get("p50"), "p95_ms": r.latency_ms.get("p95"), "items": r.items,
             "errors": r.errors} for r in runs]


def to_csv(view: ExperimentView) -> str:
    rows = runs_table(view.runs)
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in r.items()} for r in rows)
    return out.getvalue()


def to_html(view: ExperimentView) -> str:
    """The report: what ran, the runs table, the charts of the best configuration."""
    metric, higher = view.primary
    top = view.best
    figures = [pareto_figure({f"{view.algorithm} {view.version}": view.runs}, metric, higher,
                             latency="latency p50 (ms)", title=f"{metric} vs latency")]
    figures += [metric_vs_param(view.runs, p, metric, title=f"{metric} vs {p}") for p in _varied(view.runs)]
    extras = view.extras.get(top.index, {}) if top else {}
    if extras.get("confusion"):
        figures.append(confusion_figure(extras["confusion"], truth="truth", predicted="predicted",
                                        title=f"confusion matrix, configuration #{top.index}"))   # type: ignore[union-attr]
    if curves := pr_curves(view.task, extras):
        figures.append(pr_figure(curves, title="precision-recall"))
    charts = [pio.to_html(f, full_html=False, include_plotlyjs=i == 0) for i, f in enumerate(figures)]
    best = f"<p>Best ({html.escape(metric)}): configuration #{top.index} " \
           f"<code>{html.escape(json.dumps(top.params, ensure_ascii=False))}</code></p>" if top else ""
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Experiment {view.id}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}</style></head><body>"
            f"<h1>Experiment {view.id}: {html.escape(view.algorithm)} {html.escape(view.version)} on "
            f"{html.escape(view.dataset)}</h1><p>{html.escape(view.task)} · {view.state} · {view.done}/{view.total} "
            f"items · {view.errors} errors · by {html.escape(view.created_by)} at {view.created_at:%Y-%m-%d %H:%M}</p>"
            f"{best}{_table(runs_table(view.runs))}{''.join(charts)}</body></html>")


def _varied(runs: Sequence[Run]) -> list[str]:
    """Parameters that take more than one value across the runs."""
    names = list(dict.fromkeys(k for r in runs for k in r.params))
    return [n for n in names if len({repr(r.params.get(n)) for r in runs}) > 1]


def _table(rows: list[dict[str, object]]) -> str:
    if not rows:
        return "<p>No runs.</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "" if value is None else str(value)
