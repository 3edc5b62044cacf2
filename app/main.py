"""Streamlit entry point: page config, login gate, language switch, navigation. Routing only."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app.auth import Action, can  # noqa: E402
from app.errors import AlgoStageError  # noqa: E402
from app.i18n import LANGUAGES  # noqa: E402
from components.login_form import login_form  # noqa: E402
from components.session import current_actor, lang, session_scripts, show_error, sign_out, t  # noqa: E402

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
    ("experiments.py", "nav.experiments", ":material/science:", "nav.section.showcase", Action.VIEW_SHOWCASE),
    ("history.py", "nav.history", ":material/history:", "nav.section.showcase", Action.VIEW_HISTORY),
    ("settings.py", "nav.settings", ":material/settings:", "nav.section.admin", Action.MANAGE_SETTINGS),
    ("users.py", "nav.users", ":material/group:", "nav.section.admin", Action.MANAGE_USERS),
    ("keys.py", "nav.keys", ":material/key:", "nav.section.admin", Action.MANAGE_USERS),
]

st.set_page_config(page_title="AlgoStage", page_icon=":material/deployed_code:", layout="wide")

st.session_state.setdefault("lang", lang())
with st.sidebar:
    st.selectbox(t("lang.label"), list(LANGUAGES), format_func=LANGUAGES.get, key="lang")

try:
    who = current_actor()
except AlgoStageError as e:     # the database is down: a message, never a traceback; the next rerun retries
    show_error(e)
    st.stop()
session_scripts()
if who is None:
    # Every page keeps its address while signed out, so a bookmark or a typed URL opens the login
    # form there and, once signed in, the page itself.
    login = st.Page(PAGES / "login.py", title=t("nav.login"), icon=":material/login:", default=True)
    chosen = st.navigation([login, *(st.Page(PAGES / file, title=t(title), icon=icon)
                                     for file, title, icon, _, _ in PAGE_TABLE)], position="hidden")
    if chosen.url_path == login.url_path:
        chosen.run()
    else:
        login_form()
else:
    sections: dict[str, list] = {}
    for file, title, icon, section, action in PAGE_TABLE:
        if can(who, action):
            sections.setdefault(t(section), []).append(st.Page(PAGES / file, title=t(title), icon=icon))
    nav = st.navigation(sections)
    with st.sidebar:
        st.caption(t("auth.signed_in_as", user=who.username, role=t(f"role.{who.role.value}")))
        if st.button(t("auth.logout"), icon=":material/logout:"):
            sign_out()
            st.rerun()
    try:
        nav.run()
    except AlgoStageError as e:  # what a page did not catch itself (the database went away meanwhile)
        show_error(e)
