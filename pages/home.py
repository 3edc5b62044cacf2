"""Home: the real state of the platform."""
import streamlit as st

from app.auth import Action
from app.overview import overview
from components.session import guard, platform, t

guard(Action.VIEW_CATALOG)
st.title(t("home.title"))
ov = overview(platform())

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
        st.markdown(f"{':green[●]' if r.reachable else ':red[●]'} `{r.name}` {state}")
        st.caption(r.detail)
