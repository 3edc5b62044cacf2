"""Settings: every setting with its source; change with validation; history and restore."""
import pandas as pd
import streamlit as st

from app.auth import Action
from app.codestore.base import CodeStoreError
from app.errors import ValidationFailed
from app.settings import SPECS, Source
from components.session import guard, platform, show_problems, t

who = guard(Action.MANAGE_SETTINGS)


def help_text(key: str) -> str:
    translated = t(f"setting.{key}")
    return SPECS[key].help if translated == f"setting.{key}" else translated


store = platform().settings
st.title(t("settings.title"))
st.caption(t("settings.intro"))

rows = [{t("settings.key"): r.key, t("settings.value"): r.display, t("settings.source"): t(f"source.{r.source.value}"),
         t("settings.group"): SPECS[r.key].group, t("settings.help"): help_text(r.key), t("settings.error"): r.error}
        for r in store.all()]
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")

editable = [k for k, spec in SPECS.items() if not spec.env_only]
with st.form("edit-setting"):
    st.subheader(t("settings.edit"))
    key = st.selectbox(t("settings.key"), editable, format_func=lambda k: f"{k} — {help_text(k)}")
    value = st.text_input(t("settings.new_value"), type="password" if SPECS[key].secret else "default")
    save, reset = st.columns(2)
    do_save = save.form_submit_button(t("settings.save"), type="primary")
    do_reset = reset.form_submit_button(t("settings.reset"))
if do_save or do_reset:
    try:
        r = store.set(key, value, who.username) if do_save else store.unset(key, who.username)
        st.success(t("settings.saved", key=key, source=t(f"source.{r.source.value}")))
        if r.source is Source.ENV:
            st.warning(t("settings.env_overrides", key=key))
    except ValidationFailed as e:
        show_problems(e)

with st.container(border=True):
    st.subheader(t("settings.codestore"))
    st.caption(t("settings.codestore_help"))
    if st.button(t("settings.test_connection"), icon=":material/cable:"):
        try:
            st.success(platform().build_codestore().test_connection())
        except (CodeStoreError, ValueError) as e:
            st.error(t("settings.connection_failed", error=str(e)))

st.subheader(t("settings.history"))
history = store.history()
if not history:
    st.info(t("settings.no_history"))
else:
    st.dataframe(pd.DataFrame([{"#": h.id, t("settings.key"): h.key, t("col.old"): h.old, t("col.new"): h.new,
                                t("col.actor"): h.actor, t("col.when"): h.changed_at} for h in history]),
                 hide_index=True, width="stretch")
    with st.form("restore"):
        entry = st.selectbox(t("settings.restore"), [h.id for h in history],
                             format_func=lambda i: next(f"#{h.id} {h.key} → {h.new}" for h in history if h.id == i))
        if st.form_submit_button(t("settings.restore_button")):
            try:
                r = store.restore(entry, who.username)
                st.success(t("settings.restored", key=r.key))
            except ValidationFailed as e:
                show_problems(e)
