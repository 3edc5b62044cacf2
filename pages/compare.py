"""Compare: two to four (algorithm, parameters) columns over the same input, aligned, with a
summary of how they differ; save the setup as a scenario and replay it later. Opens on the demo
a manifest suggests for the task (e.g. the three face detectors side by side on a face image)."""
import pandas as pd
import streamlit as st

from app.auth import Action
from app.errors import PermissionDenied, ValidationFailed
from app.i18n import term
from app.showcase.runs import Column, demo_order
from app.showcase.scenarios import ScenarioSpec
from components.experiments_view import apply_compare_preset
from components.results import show_comparison
from components.session import guard, lang, platform, show_error, t
from components.showcase_inputs import (input_picker, param_form, refused, suggest, suggest_columns,
                                        video_sampling)
from components.video_compare_view import watch_video_compare
from components.waiting import waiting

who = guard(Action.VIEW_SHOWCASE)
p = platform()
st.title(t("compare.title"))
ordered = demo_order(c.localized(lang()) for c in p.showcase.services(who))
choices = {c.name: c for c in ordered}
if not choices:
    st.info(t("showcase.no_services"))
    st.stop()
manifests = {n: c.manifest for n, c in choices.items() if c.manifest}

if "compare-preset" in st.session_state:   # "open in Compare" from the Experiments page: its choice wins
    apply_compare_preset()
    suggest("cmp", st.session_state["cmp-task"], None)
    suggest("cmp-input", st.session_state["cmp-task"], None)
tab_run, tab_scenarios = st.tabs([t("compare.tab_run"), t("compare.tab_scenarios")])
with tab_run:
    left, right = st.columns([3, 1])
    tasks = sorted({c.task for c in ordered})
    task = left.selectbox(t("showcase.task"), tasks, index=tasks.index(ordered[0].task), key="cmp-task",
                          format_func=lambda k: term("task", k, lang()))
    offered = [c.name for c in ordered if c.task == task]
    featured = choices[offered[0]]
    suggest_columns(task, featured, offered)
    n = int(right.number_input(t("compare.columns"), 2, 4, 2, key="cmp-n"))
    columns = []
    for i, col in enumerate(st.columns(n)):
        with col:
            name = st.selectbox(t("compare.service", n=i + 1), offered, index=i % len(offered), key=f"cmp-svc-{i}",
                                format_func=lambda s: f"{s} · {term('state', choices[s].state, lang())}")
            columns.append(Column(name, param_form(choices[name].params, key=f"cmp-{i}-{name}")))
    data = input_picker(p, who, featured.input_kind, key="cmp-input", allow_video=True, occasion=task,
                        demo=featured.demo.input if featured.demo else None)
    video = data is not None and data.kind == "video"
    every_nth, max_frames = video_sampling("cmp") if video else (1, 0)
    force = st.toggle(t("showcase.force"), help=t("showcase.force_help"), key="cmp-force")
    c1, c2 = st.columns([1, 4])
    run = c1.button(t("compare.run"), type="primary", icon=":material/compare:", disabled=data is None)
    full = video and c2.button(t("showcase.run_full"), icon=":material/movie:", help=t("showcase.run_full_help"))
    if run or full:
        st.session_state.pop("cmp-results", None)
        st.session_state.pop("cmp-video", None)
        every_nth, max_frames = (1, 0) if full else (every_nth, max_frames)
        try:
            if video:
                plans = p.showcase.plan_video_compare(who, data, columns, every_nth=every_nth,
                                                      max_frames=max_frames or None)
                st.session_state["cmp-video"] = p.showcase.start_video_compare(who, [plans], force=force)
            else:
                with waiting(t("showcase.running"), key="cmp"):
                    st.session_state["cmp-results"] = [p.showcase.compare(who, data, columns, force=force)]
        except ValidationFailed as e:
            refused(e)
    with st.expander(t("compare.save")):
        scenario_name = st.text_input(t("compare.scenario_name"), key="cmp-scenario-name")
        if st.button(t("compare.save_button"), disabled=data is None or not scenario_name.strip()):
            frames = (every_nth, max_frames or None) if video else ()
            try:
                saved = p.showcase.save_scenario(who, scenario_name, ScenarioSpec([data.ref], columns, *frames))
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
            t("col.when"): s.updated_at} for s in scenarios]), hide_index=True, width="stretch", placeholder="–")
        chosen = st.selectbox(t("compare.scenario"), [s.name for s in scenarios], key="cmp-scenario")
        replay_force = st.toggle(t("showcase.force"), key="cmp-replay-force")
        c1, c2 = st.columns(2)
        if c1.button(t("compare.replay"), type="primary", icon=":material/replay:"):
            try:
                with waiting(t("showcase.running"), key="cmp"):
                    st.session_state.pop("cmp-video", None)
                    st.session_state["cmp-results"] = p.showcase.replay(who, chosen, force=replay_force)
                    video_sets = p.showcase.plan_replay_videos(who, chosen)
                    if video_sets:
                        st.session_state["cmp-video"] = p.showcase.start_video_compare(who, video_sets,
                                                                                      force=replay_force)
            except ValidationFailed as e:
                refused(e)
        if c2.button(t("compare.delete"), icon=":material/delete:"):
            try:
                p.showcase.delete_scenario(who, chosen)
                st.rerun()
            except PermissionDenied as e:
                show_error(e)

if "cmp-video" in st.session_state:
    st.divider()
    watch_video_compare(p, who, st.session_state["cmp-video"], key="cmp-video-result", manifests=manifests)
for i, comparison in enumerate(st.session_state.get("cmp-results", [])):
    st.divider()
    show_comparison(comparison, key=f"cmp-result-{i}", manifests=manifests)
