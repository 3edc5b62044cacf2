"""Compare: two to four (algorithm, parameters) columns over the same input, aligned, with a
summary of how they differ; save the setup as a scenario and replay it later."""
import pandas as pd
import streamlit as st

from app.auth import Action
from app.errors import PermissionDenied, ValidationFailed
from app.showcase import Column, ScenarioSpec
from components.results import show_comparison
from components.session import guard, platform, t
from components.showcase_inputs import input_picker, param_form, refused

who = guard(Action.VIEW_SHOWCASE)
p = platform()
st.title(t("compare.title"))
choices = {c.name: c for c in p.showcase.services(who)}
if not choices:
    st.info(t("showcase.no_services"))
    st.stop()

tab_run, tab_scenarios = st.tabs([t("compare.tab_run"), t("compare.tab_scenarios")])
with tab_run:
    left, right = st.columns([3, 1])
    task = left.selectbox(t("showcase.task"), sorted({c.task for c in choices.values()}), key="cmp-task")
    n = int(right.number_input(t("compare.columns"), 2, 4, 2, key="cmp-n"))
    offered = [name for name, c in choices.items() if c.task == task]
    columns = []
    for i, col in enumerate(st.columns(n)):
        with col:
            name = st.selectbox(t("compare.service", n=i + 1), offered, index=i % len(offered), key=f"cmp-svc-{i}",
                                format_func=lambda s: f"{s} · {choices[s].state}")
            columns.append(Column(name, param_form(choices[name].params, key=f"cmp-{i}-{name}")))
    data = input_picker(p, who, choices[offered[0]].input_kind, key="cmp-input")
    force = st.toggle(t("showcase.force"), help=t("showcase.force_help"), key="cmp-force")
    if st.button(t("compare.run"), type="primary", icon=":material/compare:", disabled=data is None):
        try:
            with st.spinner(t("showcase.running")):
                st.session_state["cmp-results"] = [p.showcase.compare(who, data, columns, force=force)]
        except ValidationFailed as e:
            refused(e)
    with st.expander(t("compare.save")):
        scenario_name = st.text_input(t("compare.scenario_name"), key="cmp-scenario-name")
        if st.button(t("compare.save_button"), disabled=data is None or not scenario_name.strip()):
            try:
                saved = p.showcase.save_scenario(who, scenario_name, ScenarioSpec([data.ref], columns))
                st.success(t("compare.saved", name=saved.name))
            except ValidationFailed as e:
                refused(e)

with tab_scenarios:
    scenarios = p.showcase.scenarios(who)
    if not scenarios:
        st.info(t("compare.no_scenarios"))
    else:
        st.dataframe(pd.DataFrame([{
            t("compare.scenario"): s.name, t("compare.inputs"): ", ".join(s.spec.inputs),
            t("compare.columns"): " | ".join(c.service for c in s.spec.columns), t("col.actor"): s.created_by,
            t("col.when"): s.updated_at} for s in scenarios]), hide_index=True, width="stretch")
        chosen = st.selectbox(t("compare.scenario"), [s.name for s in scenarios], key="cmp-scenario")
        replay_force = st.toggle(t("showcase.force"), key="cmp-replay-force")
        c1, c2 = st.columns(2)
        if c1.button(t("compare.replay"), type="primary", icon=":material/replay:"):
            try:
                with st.spinner(t("showcase.running")):
                    st.session_state["cmp-results"] = p.showcase.replay(who, chosen, force=replay_force)
            except ValidationFailed as e:
                refused(e)
        if c2.button(t("compare.delete"), icon=":material/delete:"):
            try:
                p.showcase.delete_scenario(who, chosen)
                st.rerun()
            except PermissionDenied as e:
                st.error(str(e))

for i, comparison in enumerate(st.session_state.get("cmp-results", [])):
    st.divider()
    show_comparison(comparison, key=f"cmp-result-{i}")
