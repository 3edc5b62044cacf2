"""Experiments: sweep a deployed algorithm's parameters over a labelled dataset, then read the
metrics against ground truth and latency — table, Pareto front, per-item drill-down, exports —
and compare two experiments."""
import streamlit as st

from app.auth import Action, can
from app.errors import AlgoStageError
from app.experiments.sweeps import ConfirmationNeeded
from components.experiment_forms import dataset_form, space_form
from components.experiments_view import (charts, config_charts, experiment, item, items_table, progress, runs,
                                         side_by_side, to_compare)
from components.session import guard, platform, say, show_error, t
from components.showcase_inputs import localize_uploader

who = guard(Action.VIEW_SHOWCASE)
localize_uploader(int(st.get_option("server.maxUploadSize")))   # the dataset form's uploader
p = platform()
st.title(t("exp.title"))
tab_run, tab_results, tab_compare = st.tabs([t("exp.tab_run"), t("exp.tab_results"), t("exp.tab_compare")])

with tab_run:
    datasets = {d.name: d for d in p.datasets.list(who)}
    if can(who, Action.UPLOAD):
        with st.expander(t("exp.datasets", n=len(datasets)), expanded=not datasets):
            if st.button(t("exp.add_demo"), icon=":material/dataset:"):
                try:
                    st.success(t("exp.added", names=", ".join(d.name for d in p.datasets.add_demo(who)) or "–"))
                    st.rerun()
                except AlgoStageError as e:
                    show_error(e)
            try:
                if (up := dataset_form(key="exp-ds")) is not None:
                    info = p.datasets.upload_archive(who, up.filename, up.data, name=up.name, task=up.task)
                    st.success(t("exp.dataset_added", name=info.name, n=info.items))
            except AlgoStageError as e:
                show_error(e)
    services = {s.name: s for s in p.showcase.services(who) if s.task in {d.task for d in datasets.values()}}
    if not services:
        st.info(t("exp.nothing_to_run"))
    else:
        c1, c2 = st.columns(2)
        service = c1.selectbox(t("exp.algorithm"), list(services), key="exp-service",
                               format_func=lambda s: f"{s} · {services[s].version} · {services[s].state}")
        offered = [n for n, d in datasets.items() if d.task == services[service].task]
        dataset = c2.selectbox(t("exp.dataset"), offered, key="exp-dataset",
                               format_func=lambda n: f"{n} · {datasets[n].items} {t('exp.items')}")
        space = space_form(services[service].params, key=f"exp-space-{service}")
        confirm = st.session_state.get("exp-confirm") == (service, dataset, repr(space))
        if confirm:
            st.warning(say(st.session_state["exp-confirm-text"]))
        if st.button(t("exp.run_anyway") if confirm else t("exp.run"), type="primary", icon=":material/science:"):
            try:
                plan = p.experiments.plan(who, f"{service}@{services[service].version}", dataset, space)
                st.session_state["exp-open"] = p.experiments.start(who, plan, confirm=confirm)
                st.session_state.pop("exp-confirm", None)
                st.success(t("exp.started", id=st.session_state["exp-open"]))
            except ConfirmationNeeded as e:
                st.session_state["exp-confirm"] = (service, dataset, repr(space))
                st.session_state["exp-confirm-text"] = e.message
                st.rerun()
            except AlgoStageError as e:
                show_error(e)

with tab_results:
    listed = {e.id: e for e in p.experiments.list(who)}
    if not listed:
        st.info(t("exp.none"))
    else:
        ids = list(listed)
        opened = st.session_state.get("exp-open")
        chosen = st.selectbox(t("exp.experiment"), ids, index=ids.index(opened) if opened in ids else 0,
                              key="exp-chosen", format_func=lambda i: f"#{i} {listed[i].algorithm} {listed[i].version}"
                              f" · {listed[i].dataset} · {listed[i].created_at:%Y-%m-%d %H:%M}")
        summary = listed[chosen]
        if summary.state == "RUNNING":
            progress(p, who, chosen)
        elif summary.state in ("CANCELLED", "FAILED", "INTERRUPTED") or summary.errors:
            if st.button(t("exp.resume"), icon=":material/play_arrow:"):
                try:
                    p.experiments.resume(who, chosen)
                    st.rerun()
                except AlgoStageError as e:
                    show_error(e)
        view = experiment(p, who, chosen)
        if view.error:
            st.error(say(view.error))
        runs(view, key=f"exp-{chosen}")
        c1, c2 = st.columns(2)
        c1.download_button(t("exp.csv"), p.experiments.csv(who, chosen), f"experiment-{chosen}.csv", "text/csv",
                           icon=":material/download:")
        c2.download_button(t("exp.html"), p.experiments.report(who, chosen), f"experiment-{chosen}.html",
                           "text/html", icon=":material/description:")
        if view.runs:
            charts(view, key=f"exp-{chosen}")
            st.subheader(t("exp.drill"))
            best = view.best.index if view.best else 0
            config = st.selectbox(t("exp.config"), [r.index for r in view.runs], index=best, key=f"exp-cfg-{chosen}",
                                  format_func=lambda i: f"#{i} " + ", ".join(f"{k}={v}" for k, v in
                                                                            view.runs[i].params.items()))
            config_charts(view, config, key=f"exp-{chosen}-{config}")
            worst = p.experiments.items(who, chosen, config)
            if worst:
                items_table(worst, key=f"exp-{chosen}-{config}")
                shown = st.selectbox(t("exp.item"), range(len(worst)), key=f"exp-item-{chosen}-{config}",
                                     format_func=lambda k: f"#{worst[k].index} · {worst[k].ref} · {worst[k].score:.3f}")
                content = p.experiments.dataset_of(who, chosen)
                item(view, content.input_of(content.items[worst[shown].index]), worst[shown])
                if st.button(t("exp.open_compare"), icon=":material/compare:"):
                    try:
                        to_compare(p.experiments.compare_preset(who, chosen, worst[shown].index))
                    except AlgoStageError as e:
                        show_error(e)

with tab_compare:
    done = {e.id: e for e in p.experiments.list(who) if e.done}
    if len(done) < 2:
        st.info(t("exp.compare_needs_two"))
    else:
        c1, c2 = st.columns(2)
        label = {i: f"#{i} {e.algorithm} {e.version} · {e.dataset}" for i, e in done.items()}
        a = c1.selectbox(t("exp.first"), list(done), format_func=label.get, key="exp-cmp-a")
        b = c2.selectbox(t("exp.second"), [i for i in done if i != a], format_func=label.get, key="exp-cmp-b")
        side_by_side(experiment(p, who, a), experiment(p, who, b), key="exp-cmp")
