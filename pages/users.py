"""Users and roles (admins only). An action reruns the page with its outcome, so the table above
the forms is read after the change, never before it."""
import pandas as pd
import streamlit as st

from app.auth import Action, Role
from app.errors import AlgoStageError
from components.session import guard, platform, show_error, t

who = guard(Action.MANAGE_USERS)
auth = platform().auth
st.title(t("users.title"))
st.caption(t("users.roles_help"))
for message in st.session_state.pop("users-done", []):   # what the previous run's action did
    st.success(message)


def done(message: str) -> None:
    """After a change: show `message` on a fresh run, which reads the users again."""
    st.session_state["users-done"] = [message]
    st.rerun()

users = auth.list_users(who)
st.dataframe(pd.DataFrame([{t("login.username"): u.username, t("users.role"): t(f"role.{u.role.value}"),
                            t("users.active"): u.is_active, t("users.last_login"): u.last_login_at}
                           for u in users]), hide_index=True, width="stretch", placeholder="–")

left, right = st.columns(2)
with left.form("add-user", clear_on_submit=True):
    st.subheader(t("users.add"))
    username = st.text_input(t("login.username"))
    password = st.text_input(t("login.password"), type="password")
    role = st.selectbox(t("users.role"), [r.value for r in Role], index=2, format_func=lambda r: t(f"role.{r}"))
    if st.form_submit_button(t("users.add"), type="primary"):
        try:
            auth.create_user(who, username.strip(), password, role)
        except AlgoStageError as e:
            show_error(e)
        else:
            done(t("users.created", user=username))

with right:
    st.subheader(t("users.change"))
    target = st.selectbox(t("users.user"), [u.username for u in users], key="users-target")
    current = next(u for u in users if u.username == target)
with right.form("change-user"):
    new_role = st.selectbox(t("users.role"), [r.value for r in Role], index=list(Role).index(current.role),
                            format_func=lambda r: t(f"role.{r}"))
    active = st.checkbox(t("users.active"), value=current.is_active)
    new_password = st.text_input(t("users.new_password"), type="password")
    if st.form_submit_button(t("users.apply")):
        try:
            auth.update_user(who, target, role=new_role, active=active, password=new_password or None)
        except AlgoStageError as e:
            show_error(e)
        else:
            done(t("users.updated", user=target))
