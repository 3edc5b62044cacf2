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
from components.video_compare_view import watch_video_compare

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
    data = input_picker(p, who, choices[offered[0]].input_kind, key="cmp-input", allow_video=True)
    video = data is not None and data.kind == "video"
    if video:
        c1, c2 = st.columns(2)
        every_nth = int(c1.number_input(t("showcase.every_nth"), 1, 100, 1, key="cmp-every-nth"))
        max_frames = int(c2.number_input(t("showcase.max_frames"), 0, 100_000, 0, help=t("showcase.max_frames_help"),
                                         key="cmp-max-frames"))
    force = st.toggle(t("showcase.force"), help=t("showcase.force_help"), key="cmp-force")
    if st.button(t("compare.run"), type="primary", icon=":material/compare:", disabled=data is None):
        st.session_state.pop("cmp-results", None)
        st.session_state.pop("cmp-video", None)
        try:
            if video:
                plans = p.showcase.plan_video_compare(who, data, columns, every_nth=every_nth,
                                                      max_frames=max_frames or None)
                st.session_state["cmp-video"] = ([c.service for c in columns],
                                                 p.showcase.start_video_compare([plans], force=force))
            else:
                with st.spinner(t("showcase.running")):
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
            t("col.when"): s.updated_at} for s in scenarios]), hide_index=True, width="stretch")
        chosen = st.selectbox(t("compare.scenario"), [s.name for s in scenarios], key="cmp-scenario")
        replay_force = st.toggle(t("showcase.force"), key="cmp-replay-force")
        c1, c2 = st.columns(2)
        if c1.button(t("compare.replay"), type="primary", icon=":material/replay:"):
            try:
                with st.spinner(t("showcase.running")):
                    st.session_state.pop("cmp-video", None)
                    st.session_state["cmp-results"] = p.showcase.replay(who, chosen, force=replay_force)
                    video_sets = p.showcase.plan_replay_videos(who, chosen)
                    if video_sets:
                        st.session_state["cmp-video"] = ([plan.target.name for plans in video_sets for plan in plans],
                                                         p.showcase.start_video_compare(video_sets, force=replay_force))
            except ValidationFailed as e:
                refused(e)
        if c2.button(t("compare.delete"), icon=":material/delete:"):
            try:
                p.showcase.delete_scenario(who, chosen)
                st.rerun()
            except PermissionDenied as e:
                st.error(str(e))

if "cmp-video" in st.session_state:
    st.divider()
    watched, job = st.session_state["cmp-video"]
    watch_video_compare(job, watched, p.showcase.video_bytes, key="cmp-video-result")
for i, comparison in enumerate(st.session_state.get("cmp-results", [])):
    st.divider()
    show_comparison(comparison, key=f"cmp-result-{i}")
