"""Streamlit entry point: page config, login gate, language switch, navigation. Routing only."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app.auth import Action, can  # noqa: E402
from app.i18n import LANGUAGES  # noqa: E402
from components.session import actor, lang, t  # noqa: E402

PAGES = ROOT / "pages"
# (file, title key, icon, section key, action needed to see it)
PAGE_TABLE = [
    ("home.py", "nav.home", ":material/home:", "nav.section.platform", Action.VIEW_CATALOG),
    ("algorithms.py", "nav.algorithms", ":material/category:", "nav.section.platform", Action.VIEW_CATALOG),
    ("upload.py", "nav.upload", ":material/upload:", "nav.section.platform", Action.UPLOAD),
    ("deploy.py", "nav.deploy", ":material/rocket_launch:", "nav.section.platform", Action.DEPLOY),
    ("manage.py", "nav.manage", ":material/dns:", "nav.section.platform", Action.VIEW_SERVICES),
    ("showcase.py", "nav.showcase", ":material/slideshow:", "nav.section.showcase", Action.VIEW_SHOWCASE),
    ("compare.py", "nav.compare", ":material/compare:", "nav.section.showcase", Action.VIEW_SHOWCASE),
    ("history.py", "nav.history", ":material/history:", "nav.section.showcase", Action.VIEW_HISTORY),
    ("settings.py", "nav.settings", ":material/settings:", "nav.section.admin", Action.MANAGE_SETTINGS),
    ("users.py", "nav.users", ":material/group:", "nav.section.admin", Action.MANAGE_USERS),
]

st.set_page_config(page_title="AlgoStage", page_icon=":material/deployed_code:", layout="wide")

st.session_state.setdefault("lang", lang())
with st.sidebar:
    st.selectbox(t("lang.label"), list(LANGUAGES), format_func=LANGUAGES.get, key="lang")

who = actor()
if who is None:
    nav = st.navigation([st.Page(PAGES / "login.py", title=t("nav.login"), icon=":material/login:")])
else:
    sections: dict[str, list] = {}
    for file, title, icon, section, action in PAGE_TABLE:
        if can(who, action):
            sections.setdefault(t(section), []).append(st.Page(PAGES / file, title=t(title), icon=icon))
    nav = st.navigation(sections)
    with st.sidebar:
        st.caption(t("auth.signed_in_as", user=who.username, role=t(f"role.{who.role.value}")))
        if st.button(t("auth.logout"), icon=":material/logout:"):
            del st.session_state["actor"]
            st.rerun()
nav.run()
