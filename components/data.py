"""Page data that changes slowly, cached per platform and actor with short TTLs (`st.cache_data`),
and cleared by the actions that change it (`changed(...)`), so a rerun — a click, a live refresh
— does not read the database and every runtime again, and a table never lags behind an action.

Each reader is keyed by the platform it reads (home and database) and by the actor (what an
actor may see depends on its role). Values are copies: callers may not mutate shared state.
"""
from __future__ import annotations

import os

import streamlit as st

from app.auth import Actor
from app.catalog.catalog import AlgorithmInfo
from app.overview import Overview, overview
from app.platform import resolve_home
from app.services.manager import ServiceView
from components.session import platform


def scope() -> tuple[str, str]:
    """Which platform this process's pages read: the cache key's first part."""
    return str(resolve_home()), os.environ.get("DATABASE_URL", "")


@st.cache_data(ttl=30, show_spinner=False)
def _algorithms(scope_key: tuple[str, str], who: Actor) -> list[AlgorithmInfo]:
    return platform().catalog.list(who)


def algorithms(who: Actor) -> list[AlgorithmInfo]:
    """The catalog (algorithms and versions); cleared by uploads."""
    return _algorithms(scope(), who)


@st.cache_data(ttl=2, show_spinner=False)
def _services(scope_key: tuple[str, str], who: Actor, resources: bool) -> list[ServiceView]:
    return platform().services.list(who, resources=resources)


def services(who: Actor, *, resources: bool = True) -> list[ServiceView]:
    """Every service with live replica states: one status read (and one usage read) per runtime,
    at most every 2 s however many widgets and fragments ask; cleared by every service action."""
    return _services(scope(), who, resources)


@st.cache_data(ttl=30, show_spinner=False)
def _groups(scope_key: tuple[str, str], who: Actor) -> dict[str, list[str]]:
    return platform().services.groups(who)


def groups(who: Actor) -> dict[str, list[str]]:
    return _groups(scope(), who)


@st.cache_data(ttl=10, show_spinner=False)
def _overview(scope_key: tuple[str, str], who: Actor) -> Overview:
    return overview(platform(), who)


def home(who: Actor) -> Overview:
    """The Home page's figures and engine checks (each engine is asked at most every 10 s)."""
    return _overview(scope(), who)


READERS = {"algorithms": _algorithms, "services": _services, "groups": _groups, "overview": _overview}


def changed(*what: str) -> None:
    """Forget cached page data after an action changed it ("algorithms", "services", "groups", "overview")."""
    for name in what:
        READERS[name].clear()
