"""Manage services: live status, actions one by one or in bulk, logs, history, ports, settings."""
import pandas as pd
import streamlit as st

from app.auth import Action, can
from app.errors import ValidationFailed
from app.service_config import SERVICE_SPECS
from components.services_view import action_results, failed_replicas, log_viewer, services_table
from components.session import guard, platform, show_problems, t

who = guard(Action.VIEW_SERVICES)
p = platform()
may_manage = can(who, Action.MANAGE_SERVICES)
st.title(t("manage.title"))


@st.fragment(run_every="3s")
def live_table() -> None:
    views = p.services.list(who)
    if not views:
        st.info(t("manage.empty"))
        return
    services_table(views, p.services.health(views))
    failed_replicas(views)


live_table()
names = p.services.all_names()
if not names:
    st.stop()

if may_manage:
    with st.container(border=True):
        st.subheader(t("manage.bulk"))
        groups = p.services.groups()
        c1, c2 = st.columns([3, 1])
        chosen = c1.multiselect(t("manage.select"), names)
        group = c2.selectbox(t("manage.group"), ["", *groups], format_func=lambda g: g or t("manage.no_group"))
        targets = list(dict.fromkeys(chosen + (groups.get(group, []) if group else [])))
        cols = st.columns(5)
        for col, action in zip(cols, ("start", "stop", "restart", "remove")):
            if col.button(t(f"svc.action.{action}"), key=f"bulk-{action}", disabled=not targets, width="stretch"):
                action_results(action, getattr(p.services, action)(who, targets))
        if cols[4].button(t("manage.restart_all"), width="stretch"):
            action_results("restart", p.services.restart(who, names))

name = st.selectbox(t("manage.service"), names)
tab_logs, tab_history, tab_settings, tab_ports = st.tabs(
    [t("manage.logs"), t("manage.history"), t("manage.settings"), t("manage.ports")])
with tab_logs:
    view = p.services.get(who, name)
    c1, c2, c3, c4 = st.columns(4)
    replica = c1.selectbox(t("manage.replica"), [None, *[r.index for r in view.replicas]],
                           format_func=lambda i: t("manage.all_replicas") if i is None else f"#{i}")
    stream = c2.radio(t("manage.stream"), ["stdout", "stderr"], horizontal=True, index=1)
    lines = c3.number_input(t("manage.lines"), 10, 5000, 200, 10)
    search = c4.text_input(t("manage.search"))
    log_viewer(p.services.logs(who, name, replica=replica, lines=int(lines), stream=stream), search, name)
with tab_history:
    deps = p.services.deployments(who, name)
    st.dataframe(pd.DataFrame([{"#": d.id, t("manage.when"): d.started_at, t("col.actor"): d.actor,
                                t("svc.runtime"): d.runtime, t("svc.replicas"): d.replicas,
                                t("svc.state"): d.status, t("manage.failed_phase"): d.failed_phase,
                                t("manage.phases"): ", ".join(f"{k} {v:.2f}s" for k, v in d.phases.items()),
                                t("svc.error"): d.error} for d in deps]), hide_index=True, width="stretch")
with tab_settings:
    configs = p.service_configs.list(name)
    st.dataframe(pd.DataFrame([{t("settings.key"): c.key, t("settings.value"): c.raw,
                                t("settings.source"): t(f"source.{c.source.value}"),
                                t("settings.help"): SERVICE_SPECS[c.key].help} for c in configs]),
                 hide_index=True, width="stretch")
    if may_manage:
        with st.form("service-setting"):
            key = st.selectbox(t("settings.key"), list(SERVICE_SPECS))
            value = st.text_input(t("settings.new_value"))
            if st.form_submit_button(t("settings.save")):
                try:
                    p.service_configs.set(who, name, key, value)
                    st.success(t("settings.saved", key=key, source=t("source.database")))
                except ValidationFailed as e:
                    show_problems(e)
with tab_ports:
    st.dataframe(pd.DataFrame([{t("svc.port"): port, t("manage.owner"): owner}
                               for port, owner in p.ports.reservations().items()]), hide_index=True, width="stretch")
