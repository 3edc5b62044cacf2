"""API keys for the gateway (admins): create (shown once), list, revoke; how to call a service."""
import pandas as pd
import streamlit as st

from app.auth import Action
from app.errors import AlgoStageError
from components import data
from components.session import guard, platform, show_error, t

who = guard(Action.MANAGE_USERS)
p = platform()
st.title(t("keys.title"))
gateway = p.router.base_url()
st.caption(t("keys.intro", gateway=gateway))

created = st.session_state.pop("keys-created", None)
if created:
    st.success(t("keys.created", name=created[0]))
    st.code(created[1], language=None)
    st.caption(t("keys.shown_once"))
    st.code(f"curl -H 'Authorization: Bearer {created[1]}' -H 'Content-Type: application/json' \\\n"
            f"     -d '{{\"inputs\": [\"hello\"]}}' {gateway}/ai/<service>/predict", language="bash")

keys = p.keys.list(who)
if keys:
    st.dataframe(pd.DataFrame([{t("keys.name"): k.name, t("keys.prefix"): k.prefix + "…",
                                t("keys.state"): t(f"keys.state.{k.state}"),
                                t("keys.services"): ", ".join(k.services) if k.services is not None else t("keys.all"),
                                t("keys.user"): k.user or t("keys.invoke_only"),
                                t("keys.expires"): k.expires_at, t("keys.last_used"): k.last_used_at,
                                t("col.actor"): k.created_by} for k in keys]), hide_index=True, width="stretch",
                 placeholder="–")
else:
    st.info(t("keys.none"))

left, right = st.columns(2)
with left.form("create-key", clear_on_submit=True):
    st.subheader(t("keys.create"))
    name = st.text_input(t("keys.name"))
    services = st.multiselect(t("keys.services"), [v.name for v in data.services(who, resources=False)],
                              help=t("keys.services_help"), placeholder=t("input.choose_options"))
    days = st.number_input(t("keys.expires_days"), 0, 3650, 0, help=t("keys.expires_help"))
    user = st.selectbox(t("keys.user"), [None, *[u.username for u in p.auth.list_users(who)]],
                        format_func=lambda u: t("keys.invoke_only") if u is None else u, help=t("keys.user_help"))
    if st.form_submit_button(t("keys.create"), type="primary"):
        try:
            new = p.keys.create(who, name.strip(), services=services or None, expires_days=days or None, user=user)
            st.session_state["keys-created"] = (new.info.name, new.key)
            st.rerun()
        except AlgoStageError as e:
            show_error(e)
active = [k.name for k in keys if k.state == "active"]
with right.form("revoke-key"):
    st.subheader(t("keys.revoke"))
    chosen = st.selectbox(t("keys.name"), active, disabled=not active, placeholder=t("input.no_options"))
    if st.form_submit_button(t("keys.revoke"), disabled=not active):
        try:
            p.keys.revoke(who, chosen)
            st.rerun()
        except AlgoStageError as e:
            show_error(e)
