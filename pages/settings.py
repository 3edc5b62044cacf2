"""Settings: every setting with its source; change with validation; history and restore.

An action (save, reset, restore) reruns the page with its outcome, so the table and the history
above the form are read after the change, never before it."""
import pandas as pd
import streamlit as st

from app.auth import Action
from app.errors import AlgoStageError
from app.settings import SPECS, Source
from app.i18n import term
from components.session import guard, lang, platform, say, show_error, t

who = guard(Action.MANAGE_SETTINGS)


def done(*messages: tuple[str, str]) -> None:
    """After a change: show its outcome (kind, text) on a fresh run, which reads the new values."""
    st.session_state["settings-done"] = list(messages)
    st.rerun()


def help_text(key: str) -> str:
    translated = t(f"setting.{key}")
    return SPECS[key].help if translated == f"setting.{key}" else translated


store = platform().settings
st.title(t("settings.title"))
st.caption(t("settings.intro"))
for kind, message in st.session_state.pop("settings-done", []):   # what the previous run's action did
    getattr(st, kind)(message)

rows = [{t("settings.key"): r.key, t("settings.value"): r.display, t("settings.source"): t(f"source.{r.source.value}"),
         t("settings.group"): term("setting_group", SPECS[r.key].group, lang()), t("settings.help"): help_text(r.key),
         t("settings.error"): say(r.error)}
        for r in store.all(who)]
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", placeholder="–",
             height=35 * (len(rows) + 1) + 3)   # every setting in view: no scrolling inside the table

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
        r = store.set(who, key, value) if do_save else store.unset(who, key)
    except AlgoStageError as e:
        show_error(e)
    else:
        done(("success", t("settings.saved", key=key, source=t(f"source.{r.source.value}"))),
             *([("warning", t("settings.env_overrides", key=key))] if r.source is Source.ENV else []))

with st.container(border=True):
    st.subheader(t("settings.codestore"))
    st.caption(t("settings.codestore_help"))
    if st.button(t("settings.test_connection"), icon=":material/cable:"):
        try:
            st.success(platform().test_codestore(who))
        except AlgoStageError as e:
            st.error(t("settings.connection_failed", error=say(e.message)))

st.subheader(t("settings.history"))
history = store.history(who)
if not history:
    st.info(t("settings.no_history"))
else:
    st.dataframe(pd.DataFrame([{"#": h.id, t("settings.key"): h.key, t("col.old"): h.old, t("col.new"): h.new,
                                t("col.actor"): h.actor, t("col.when"): h.changed_at} for h in history]),
                 hide_index=True, width="stretch", placeholder="–")
    with st.form("restore"):
        entry = st.selectbox(t("settings.restore"), [h.id for h in history],
                             format_func=lambda i: next(f"#{h.id} {h.key} → {h.new}" for h in history if h.id == i))
        if st.form_submit_button(t("settings.restore_button")):
            try:
                r = store.restore(who, entry)
            except AlgoStageError as e:
                show_error(e)
            else:
                done(("success", t("settings.restored", key=r.key)))
