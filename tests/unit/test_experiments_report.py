"""The Pareto front, and the exports: CSV with a row per configuration, an HTML report that needs
no network (plotly.js inlined once, no external script)."""
from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timezone

from app.experiments.figures import pareto_figure, pareto_front
from app.experiments.report import to_csv, to_html
from app.experiments.results import ExperimentView, Run


def test_the_pareto_front_keeps_what_nothing_beats_on_both_axes():
    points = [(10, 0.9), (5, 0.8), (7, 0.7), (20, 0.95), (5, 0.6), (12, 0.9)]
    assert pareto_front(points) == [1, 0, 3]                          # (5, .8) (10, .9) (20, .95)
    assert pareto_front([(10, 0.1), (5, 0.3), (7, 0.05)], higher=False) == [1, 2]   # CER: lower is better
    assert pareto_front([]) == []


def view() -> ExperimentView:
    runs = [Run(0, {"threshold": 0.1, "mode": "a"}, {"accuracy": 0.5, "macro_f1": 0.4}, {"p50": 5.0, "p95": 9.0}, 4, 0),
            Run(1, {"threshold": 0.5, "mode": "a"}, {"accuracy": 0.75, "macro_f1": 0.7}, {"p50": 6.0, "p95": 8.0}, 4, 1)]
    extras = {1: {"confusion": {"labels": ["x", "y"], "matrix": [[2, 0], [1, 1]]},
                  "pr": {"x": {"recall": [0, 1], "precision": [1, 0.5], "ap": 0.75}}}}
    return ExperimentView(7, "svc", "svc", "v2", "tiny", "text.classification", {"grid": {}}, "DONE", 8, 8, 1, "",
                          "ann", datetime(2026, 12, 2, tzinfo=timezone.utc), None, runs, extras)


def test_csv_has_a_row_per_configuration_with_params_metrics_and_latency():
    rows = list(csv.DictReader(io.StringIO(to_csv(view()))))
    assert [r["threshold"] for r in rows] == ["0.1", "0.5"]
    assert rows[1]["macro_f1"] == "0.7" and rows[1]["p50_ms"] == "6.0" and rows[1]["errors"] == "1"


def test_the_html_report_is_self_contained_and_names_the_best_configuration():
    page = to_html(view())
    assert page.count("<script src=") == 0 and len(re.findall(r"Plotly\.newPlot", page)) >= 4
    assert "Experiment 7: svc v2 on tiny" in page and "configuration #1" in page
    assert "confusion matrix" in page and "precision-recall" in page and "macro_f1 vs threshold" in page


def test_the_pareto_figure_marks_the_front_over_every_experiment():
    fig = pareto_figure({"a": view().runs}, "macro_f1", True, latency="ms")
    assert [t.name for t in fig.data] == ["a", "Pareto front"]
    assert list(fig.data[1].x) == [5.0, 6.0] and list(fig.data[1].y) == [0.4, 0.7]
