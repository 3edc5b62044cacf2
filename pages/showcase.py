"""Showcase: run one or more deployed algorithms on demo media, an upload or typed text."""
import streamlit as st

from app.auth import Action
from app.errors import ValidationFailed
from components.results import show_run, watch_video_jobs
from components.session import guard, platform, t
from components.showcase_inputs import input_picker, param_form, refused

who = guard(Action.VIEW_SHOWCASE)
p = platform()
st.title(t("showcase.title"))
choices = {c.name: c for c in p.showcase.services(who)}
if not choices:
    st.info(t("showcase.no_services"))
    st.stop()

left, right = st.columns([1, 2])
task = left.selectbox(t("showcase.task"), sorted({c.task for c in choices.values()}), key="sc-task")
offered = [n for n, c in choices.items() if c.task == task]
running = [n for n in offered if choices[n].running]
names = right.multiselect(t("showcase.services"), offered, default=(running or offered)[:1], key=f"sc-services-{task}",
                          format_func=lambda n: f"{n} · {choices[n].version} · {choices[n].state}")
data = input_picker(p, who, choices[offered[0]].input_kind, key="sc-input", allow_video=True)
params = {}
for name in names:
    with st.expander(t("showcase.params", service=name), expanded=len(names) == 1):
        params[name] = param_form(choices[name].params, key=f"sc-{task}-{name}")
video = data is not None and data.kind == "video"
if video:
    c1, c2 = st.columns(2)
    every_nth = int(c1.number_input(t("showcase.every_nth"), 1, 100, 1))
    max_frames = int(c2.number_input(t("showcase.max_frames"), 0, 100_000, 0, help=t("showcase.max_frames_help")))
force = st.toggle(t("showcase.force"), help=t("showcase.force_help"), key="sc-force")

if st.button(t("showcase.run"), type="primary", icon=":material/play_arrow:", disabled=not names or data is None):
    st.session_state.pop("sc-results", None)
    st.session_state.pop("sc-video", None)
    try:
        if video:
            plans = [p.showcase.plan_video(who, n, data, params[n], every_nth=every_nth, max_frames=max_frames or None)
                     for n in names]
            st.session_state["sc-video"] = {plan.target.name: p.showcase.start_video(plan, force=force)
                                            for plan in plans}
        else:
            with st.spinner(t("showcase.running")):
                st.session_state["sc-results"] = (data, [p.showcase.run(who, n, data, params[n], force=force)
                                                         for n in names])
    except ValidationFailed as e:
        refused(e)

if "sc-results" in st.session_state:
    shown, runs = st.session_state["sc-results"]
    for i, (col, run) in enumerate(zip(st.columns(len(runs)), runs)):
        with col:
            show_run(run, shown, key=f"sc-run-{i}")
if "sc-video" in st.session_state:
    watch_video_jobs(st.session_state["sc-video"], p.showcase.video_bytes)
