"""Viewers of the Experiments page: a sweep's progress, its runs (a sortable table), its charts
(metric vs latency with the Pareto front, metric vs each parameter, confusion matrix, PR curve), its
items worst first drawn with their result and ground truth, two experiments side by side, and the
preset "open in Compare" hands to the Compare page."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app import media
from app.auth import Actor
from app.experiments.figures import confusion_figure, metric_vs_param, pareto_figure, pr_curves, pr_figure
from app.experiments.report import runs_table
from app.experiments.results import ExperimentView, ItemResult
from app.experiments.sweeps import ComparePreset
from app.platform import Platform
from components.data import scope
from components.results import highlight
from components.session import platform, say, t

TRUTH_COLOR = [(40, 180, 40)]
COMPARE_PAGE = Path(__file__).resolve().parent.parent / "pages" / "compare.py"


@st.cache_data(ttl=60, show_spinner=False, max_entries=32)
def _view(scope_key: tuple[str, str], who: Actor, experiment_id: int, state: str, done: int) -> ExperimentView:
    return platform().experiments.get(who, experiment_id)


def experiment(p: Platform, who: Actor, experiment_id: int) -> ExperimentView:
    """The experiment, its metrics computed once per (state, items done)."""
    summary = next((e for e in p.experiments.list(who) if e.id == experiment_id), None)
    state, done = (summary.state, summary.done) if summary else ("?", 0)
    return _view(scope(), who, experiment_id, state, done)


@st.fragment(run_every="1s")
def progress(p: Platform, who: Actor, experiment_id: int) -> None:
    """A progress bar and a cancel button while the sweep runs; the page reruns when it ends."""
    summary = next((e for e in p.experiments.list(who) if e.id == experiment_id), None)
    if summary is None or summary.state != "RUNNING":
        st.rerun()
        return
    st.progress(summary.done / summary.total if summary.total else 0.0,
                text=t("exp.progress", done=summary.done, total=summary.total, errors=summary.errors))
    if st.button(t("exp.cancel"), icon=":material/stop_circle:", key=f"exp-cancel-{experiment_id}"):
        p.experiments.cancel(who, experiment_id)


def runs(view: ExperimentView, *, key: str) -> None:
    """The configurations as a table, sortable by any column (click its header); the best marked."""
    metric, _ = view.primary
    best = view.best
    st.caption(t("exp.summary", state=view.state, done=view.done, total=view.total, errors=view.errors,
                 metric=metric, best=f"#{best.index}" if best else "–"))
    rows = runs_table(view.runs)
    for row in rows:
        row["★"] = "★" if best is not None and row["#"] == best.index else ""
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key=f"{key}-table")


def charts(view: ExperimentView, *, key: str) -> None:
    metric, higher = view.primary
    st.plotly_chart(pareto_figure({f"{view.algorithm} {view.version}": view.runs}, metric, higher,
                                  latency=t("exp.latency_axis"), title=t("exp.pareto", metric=metric),
                                  front_name=t("exp.front")), key=f"{key}-pareto")
    varied = [n for n in (view.runs[0].params if view.runs else {})
              if len({repr(r.params.get(n)) for r in view.runs}) > 1]
    for column, name in zip(st.columns(max(1, min(3, len(varied)))), varied):
        with column:
            st.plotly_chart(metric_vs_param(view.runs, name, metric, title=f"{metric} · {name}"),
                            key=f"{key}-param-{name}")


def config_charts(view: ExperimentView, config: int, *, key: str) -> None:
    """The confusion matrix and the PR curve(s) of one configuration, where the task has them."""
    extras = view.extras.get(config, {})
    left, right = st.columns(2)
    if extras.get("confusion"):
        left.plotly_chart(confusion_figure(extras["confusion"], truth=t("exp.truth"), predicted=t("exp.predicted"),
                                           title=t("exp.confusion")), key=f"{key}-confusion")
    if curves := pr_curves(view.task, extras):
        right.plotly_chart(pr_figure(curves, title=t("exp.pr")), key=f"{key}-pr")


def items_table(items: list[ItemResult], *, key: str) -> None:
    st.dataframe(pd.DataFrame([{"#": i.index, t("exp.item"): i.ref, t("exp.score"): round(i.score, 4),
                                t("exp.error"): say(i.error), "ms": i.total_ms, t("exp.cached"): i.cached}
                               for i in items]), hide_index=True, width="stretch", height=240, key=f"{key}-items")


def item(view: ExperimentView, data: str | bytes, result: ItemResult) -> None:
    """One item: its input with the ground truth and the result drawn, side by side."""
    st.markdown(f"**#{result.index}** · {result.ref} · {t('exp.score')} {result.score:.3f}")
    if result.error:
        st.error(say(result.error))
    kind = view.task.partition(".")[2]
    truth, output = _as_output(kind, result.target), result.output
    left, right = st.columns(2)
    with left:
        st.caption(t("exp.truth"))
        _draw(view.task, data, truth, TRUTH_COLOR)
    with right:
        st.caption(t("exp.result"))
        _draw(view.task, data, output, None)


def _as_output(kind: str, target: Any) -> Any:
    """The ground truth in the shape of a result, so it is drawn the same way."""
    if kind == "classification":
        return {"label": target}
    if kind == "ocr":
        return {"lines": [{"text": target}]}
    return target


def _draw(task: str, data: str | bytes, output: Any, palette: list | None) -> None:
    if output is None:
        st.caption("–")
        return
    if isinstance(data, str):
        if task.endswith(".ner"):
            st.markdown(highlight(data, list(output.get("entities") or [])), unsafe_allow_html=True)
        else:
            st.markdown(f"> {data}")
            st.markdown(f"**{output.get('label')}**" + (f" · {output['score']:.3f}" if isinstance(
                output.get("score"), (int, float)) else ""))
        return
    image = media.decode_image(data)
    drawn = media.draw(image, task, output, **({"palette": palette} if palette else {}))
    st.image(drawn, channels="BGR", width="stretch")
    if task.endswith(".ocr"):
        st.code(" ".join(str(line.get("text", "")) for line in output.get("lines") or []) or "–")


def side_by_side(a: ExperimentView, b: ExperimentView, *, key: str) -> None:
    """Two experiments: their best runs in one table, and every configuration of both against latency."""
    metric, higher = a.primary
    rows = []
    for view in (a, b):
        best = view.best
        rows.append({t("exp.experiment"): f"#{view.id} {view.algorithm} {view.version}", t("exp.dataset"): view.dataset,
                     t("exp.configs"): len(view.runs), t("exp.best"): json.dumps(best.params) if best else "–",
                     **(best.metrics if best else {}), "p50_ms": best.latency_ms.get("p50") if best else None})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key=f"{key}-best")
    series = {f"#{a.id} {a.algorithm}": a.runs, f"#{b.id} {b.algorithm}": b.runs}
    st.plotly_chart(pareto_figure(series, metric, higher, latency=t("exp.latency_axis"),
                                  title=t("exp.pareto", metric=metric), front_name=t("exp.front")),
                    key=f"{key}-pareto")


def to_compare(preset: ComparePreset) -> None:
    """Hand `preset` to the Compare page and open it there."""
    st.session_state["compare-preset"] = preset
    st.switch_page(st.Page(COMPARE_PAGE))


def apply_compare_preset() -> None:
    """On the Compare page: set its widgets from a preset handed over by "open in Compare" (once)."""
    preset: ComparePreset | None = st.session_state.pop("compare-preset", None)
    if preset is None:
        return
    st.session_state.update({"cmp-task": preset.task, "cmp-n": len(preset.columns), "cmp-input-source": "gallery",
                             "cmp-input-gallery": preset.input})
    for i, params in enumerate(preset.columns):
        st.session_state[f"cmp-svc-{i}"] = preset.service
        st.session_state.update({f"cmp-{i}-{preset.service}-{name}": value for name, value in params.items()})
