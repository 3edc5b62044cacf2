"""The login form: the login page's content, also shown in place of any page a signed-out visitor
opens by its address (a bookmark, a refresh after the session ended), which then opens itself
once the visitor has signed in."""
from __future__ import annotations

import streamlit as st

from app.auth import LoginError
from components.session import platform, sign_in, t


def login_form() -> None:
    st.title(t("login.title"))
    st.caption(t("app.tagline"))
    if st.session_state.get("session_ended"):
        st.info(t("auth.session_ended"))
    with st.form("login"):
        username = st.text_input(t("login.username"))
        password = st.text_input(t("login.password"), type="password")
        submitted = st.form_submit_button(t("login.submit"), type="primary")
    if submitted:
        try:
            sign_in(platform().auth.authenticate(username, password))
            st.rerun()
        except LoginError as e:
            if e.retry_after:
                st.error(t("login.throttled", seconds=e.retry_after))
            else:
                st.error(t("login.invalid username or password"))
