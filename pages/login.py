"""Login: the only page an anonymous visitor sees."""
import streamlit as st

from app.auth import LoginError
from components.session import platform, t

st.title(t("login.title"))
st.caption(t("app.tagline"))
with st.form("login"):
    username = st.text_input(t("login.username"))
    password = st.text_input(t("login.password"), type="password")
    submitted = st.form_submit_button(t("login.submit"), type="primary")
if submitted:
    try:
        st.session_state["actor"] = platform().auth.authenticate(username, password)
        st.rerun()
    except LoginError as e:
        if e.retry_after:
            st.error(t("login.throttled", seconds=e.retry_after))
        else:
            st.error(t("login.invalid username or password"))
