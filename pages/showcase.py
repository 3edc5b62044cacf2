"""Showcase: run one or more deployed algorithms on demo media, an upload or typed text. Opens on
the best demo the manifests suggest (a task, its algorithm and input); videos run as a sampled
preview first, the full run one click away."""
import streamlit as st

from app.auth import Action
from app.errors import ValidationFailed
from app.i18n import term
from app.showcase.runs import demo_order
from components.results import show_runs, watch_video_jobs
from components.session import guard, lang, platform, t
from components.showcase_inputs import input_picker, param_form, refused, video_sampling
from components.waiting import waiting

who = guard(Action.VIEW_SHOWCASE)
p = platform()
st.title(t("showcase.title"))
ordered = demo_order(c.localized(lang()) for c in p.showcase.services(who))
choices = {c.name: c for c in ordered}
if not choices:
    st.info(t("showcase.no_services"))
    st.stop()

left, right = st.columns([1, 2])
tasks = sorted({c.task for c in ordered})
task = left.selectbox(t("showcase.task"), tasks, index=tasks.index(ordered[0].task), key="sc-task",
                      format_func=lambda k: term("task", k, lang()))
offered = [c.name for c in ordered if c.task == task]
names = right.multiselect(t("showcase.services"), offered, default=offered[:1], key=f"sc-services-{task}",
                          placeholder=t("input.choose"),
                          format_func=lambda n: f"{n} · {choices[n].version} · {term('state', choices[n].state, lang())}")
first = choices[(names or offered)[0]]
data = input_picker(p, who, first.input_kind, key="sc-input", allow_video=True, occasion=task,
                    demo=first.demo.input if first.demo else None)
params = {}
for name in names:
    with st.expander(t("showcase.params", service=name), expanded=len(names) == 1):
        params[name] = param_form(choices[name].params, key=f"sc-{task}-{name}")
video = data is not None and data.kind == "video"
every_nth, max_frames = video_sampling("sc") if video else (1, 0)
force = st.toggle(t("showcase.force"), help=t("showcase.force_help"), key="sc-force")

c1, c2 = st.columns([1, 4])
run = c1.button(t("showcase.run"), type="primary", icon=":material/play_arrow:", disabled=not names or data is None)
full = video and c2.button(t("showcase.run_full"), icon=":material/movie:", disabled=not names,
                           help=t("showcase.run_full_help"))
if run or full:
    st.session_state.pop("sc-results", None)
    st.session_state.pop("sc-video", None)
    every_nth, max_frames = (1, 0) if full else (every_nth, max_frames)
    try:
        if video:
            plans = [p.showcase.plan_video(who, n, data, params[n], every_nth=every_nth, max_frames=max_frames or None)
                     for n in names]
            st.session_state["sc-video"] = {plan.target.name: p.showcase.start_video(who, plan, force=force)
                                            for plan in plans}
        else:
            with waiting(t("showcase.running"), key="sc"):
                st.session_state["sc-results"] = (data, [p.showcase.run(who, n, data, params[n], force=force)
                                                         for n in names])
    except ValidationFailed as e:
        refused(e)

if "sc-results" in st.session_state:
    shown, runs = st.session_state["sc-results"]
    show_runs(runs, shown, key="sc-run", manifests={n: c.manifest for n, c in choices.items() if c.manifest})
if "sc-video" in st.session_state:
    watch_video_jobs(p, who, st.session_state["sc-video"])
