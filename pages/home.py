"""Home: the real state of the platform. An engine's own words (its version, or why it cannot be
reached) come from the engine and are in English: outside English they are the tooltip of a
translated line rather than a line of their own."""
import streamlit as st

from app.auth import Action
from components import data
from components.session import guard, lang, t

who = guard(Action.VIEW_CATALOG)
st.title(t("home.title"))
ov = data.home(who)

cols = st.columns(4)
for col, key in zip(cols, ["algorithms", "services", "calls", "users"]):
    col.metric(t(f"home.{key}"), ov.counts[key])

left, middle, right = st.columns(3)
with left.container(border=True):
    st.markdown(f"**{t('home.database')}**: `{ov.database}`")
    st.caption(t("home.schema", rev=ov.schema_revision, head=ov.schema_head))
with middle.container(border=True):
    st.markdown(f"**{t('home.codestore')}**: {t('home.store.' + ov.code_store)}")
    st.markdown(f"**{t('home.objectstore')}**: {t('home.store.' + ov.object_store)}")
with right.container(border=True):
    st.markdown(f"**{t('home.runtimes')}**")
    for r in ov.runtimes:
        state = t("home.reachable") if r.reachable else t("home.unreachable")
        english = lang() == "en"
        st.markdown(f"{':green[●]' if r.reachable else ':red[●]'} `{r.name}` {state}", help=None if english else r.detail)
        if english:
            st.caption(r.detail)
