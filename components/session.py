"""Per-browser-session helpers for pages: the platform, the logged-in actor, language, texts.

Only pages and app/main.py call these; the core never sees st.session_state.
"""
from __future__ import annotations

import os

import streamlit as st

from app import i18n
from app.auth import Action, Actor, can
from app.errors import ValidationFailed
from app.platform import Platform, resolve_home


@st.cache_resource(show_spinner=False)
def _platform(home: str, database_url: str) -> Platform:
    return Platform.open()


def platform() -> Platform:
    """The platform of this process's `$ALGOSTAGE_HOME` and database (one per process)."""
    return _platform(str(resolve_home()), os.environ.get("DATABASE_URL", ""))


def actor() -> Actor | None:
    return st.session_state.get("actor")


def lang() -> str:
    return st.session_state.get("lang", "en")


def t(key: str, /, **values: object) -> str:
    return i18n.t(key, lang(), **values)


def guard(action: Action) -> Actor:
    """Stop rendering the page unless the logged-in actor may perform `action`."""
    who = actor()
    if not can(who, action):
        st.error(t("auth.denied"))
        st.stop()
    assert who is not None
    return who


def show_problems(error: ValidationFailed) -> None:
    """Every reason an input was refused, each with its field."""
    st.error(t("error.problems") + "\n" + "\n".join(f"- **{p.field}**: {p.reason}" for p in error.problems))
