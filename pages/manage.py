"""Manage services: live status, actions one by one or in bulk, scaling, logs, history, ports, settings;
the cluster's nodes."""
import pandas as pd
import streamlit as st

from app.auth import Action, can
from app.errors import AlgoStageError
from app.i18n import term
from app.services.config import SERVICE_SPECS
from components.cluster_view import cluster_section, scale_control
from components.routing_view import canary_caption, replicas_table, traffic
from components.services_view import action_results, failed_replicas, log_viewer, services_table
from components import data
from components.session import guard, lang, platform, say, show_error, t

who = guard(Action.VIEW_SERVICES)
p = platform()
may_manage = can(who, Action.MANAGE_SERVICES)
st.title(t("manage.title"))


for message in st.session_state.pop("manage-done", []):   # what the previous run's action did
    if isinstance(message, tuple):   # a statement: an expression's value (None) would be drawn by magic
        action_results(*message)
    else:
        st.success(message)


def done(message: tuple | str, *changed: str) -> None:
    """After an action: forget the data it changed and show its result on a fresh page."""
    st.session_state["manage-done"] = [message]
    data.changed(*changed)
    st.rerun()


@st.fragment(run_every="3s")
def live_table() -> None:
    views = data.services(who)
    if not views:
        st.info(t("manage.empty"))
        return
    services_table(views, p.services.health(who, views))
    failed_replicas(views)


def setting_help(key: str) -> str:
    translated = t(f"service_setting.{key}")
    return SERVICE_SPECS[key].help if translated == f"service_setting.{key}" else translated


live_table()
views = data.services(who)   # the table's read: one status read per runtime for the whole page
names = [v.name for v in views]
if not names:
    cluster_section(who, done)
    st.stop()

if may_manage:
    with st.container(border=True):
        st.subheader(t("manage.bulk"))
        groups = data.groups(who)
        c1, c2 = st.columns([3, 1])
        chosen = c1.multiselect(t("manage.select"), names, placeholder=t("input.choose_options"))
        group = c2.selectbox(t("manage.group"), ["", *groups], format_func=lambda g: g or t("manage.no_group"))
        targets = list(dict.fromkeys(chosen + (groups.get(group, []) if group else [])))
        cols = st.columns(5)
        for col, action in zip(cols, ("start", "stop", "restart", "remove")):
            if col.button(t(f"svc.action.{action}"), key=f"bulk-{action}", disabled=not targets, width="stretch"):
                done((action, getattr(p.services, action)(who, targets)), "services", "groups")
        if cols[4].button(t("manage.restart_all"), width="stretch"):
            done(("restart", p.services.restart(who, names)), "services")

name = st.selectbox(t("manage.service"), names)
# logs are an operator's right (a service's output may carry its inputs): viewers get no logs tab
*tab_logs, tab_routing, tab_history, tab_settings, tab_ports = st.tabs(
    ([t("manage.logs")] if may_manage else []) + [t("manage.routing"), t("manage.history"), t("manage.settings"),
                                                   t("manage.ports")])
view = next(v for v in views if v.name == name)
for tab in tab_logs:
    with tab:
        c1, c2, c3, c4 = st.columns(4)
        replica = c1.selectbox(t("manage.replica"), [None, *[r.index for r in view.replicas]],
                               format_func=lambda i: t("manage.all_replicas") if i is None else f"#{i}")
        stream = c2.radio(t("manage.stream"), ["stdout", "stderr"], horizontal=True, index=1,
                          format_func=lambda s: term("stream", s, lang()))
        lines = c3.number_input(t("manage.lines"), 10, 5000, 200, 10)
        search = c4.text_input(t("manage.search"))
        log_viewer(p.services.logs(who, name, replica=replica, lines=int(lines), stream=stream), search, name)
with tab_routing:
    scale_control(who, view, done)
    replicas_table(view)
    canary_caption(view)
    if view.canary_version and may_manage:
        c1, c2 = st.columns(2)
        try:
            if c1.button(t("routing.promote"), icon=":material/check:", type="primary"):
                with st.spinner(t("routing.promoting")):
                    result = p.deployer.promote(who, name)
                done(t("routing.promoted", name=name, version=f"v{result.version}"), "services")
            if c2.button(t("routing.abort"), icon=":material/undo:"):
                p.deployer.abort(who, name)
                done(t("routing.aborted", name=name), "services")
        except AlgoStageError as e:
            show_error(e)
    traffic(view, p.traffic.recent(who, 300).get(name), 300)
with tab_history:
    deps = p.services.deployments(who, name)
    st.dataframe(pd.DataFrame([{"#": d.id, t("manage.when"): d.started_at, t("col.actor"): d.actor,
                                t("svc.runtime"): term("runtime", d.runtime, lang()), t("svc.replicas"): d.replicas,
                                t("svc.state"): term("deploy_status", d.status, lang()),
                                t("manage.failed_phase"): term("phase", d.failed_phase, lang()),
                                t("manage.phases"): ", ".join(f"{term('phase', k, lang())} {v:.2f}s"
                                                              for k, v in d.phases.items()),
                                t("svc.error"): say(d.error_text)} for d in deps]), hide_index=True, width="stretch",
                 placeholder="–")
with tab_settings:
    configs = p.service_configs.list(who, name)
    st.dataframe(pd.DataFrame([{t("settings.key"): c.key, t("settings.value"): c.raw,
                                t("settings.source"): t(f"source.{c.source.value}"),
                                t("settings.help"): setting_help(c.key),
                                t("settings.applies"): t(f"settings.applies.{SERVICE_SPECS[c.key].applies}")}
                               for c in configs]),
                 hide_index=True, width="stretch")
    if may_manage:
        with st.form("service-setting"):
            key = st.selectbox(t("settings.key"), list(SERVICE_SPECS))
            value = st.text_input(t("settings.new_value"))
            if st.form_submit_button(t("settings.save")):
                try:
                    p.service_configs.set(who, name, key, value)
                    done(t("settings.saved", key=key, source=t("source.database")))
                except AlgoStageError as e:
                    show_error(e)
with tab_ports:
    st.dataframe(pd.DataFrame([{t("svc.port"): port, t("manage.owner"): owner}
                               for port, owner in p.services.ports(who).items()]), hide_index=True, width="stretch")

cluster_section(who, done)
