"""Per-browser-session helpers for pages: the platform, the logged-in actor, language, texts.

Only pages and app/main.py call these; the core never sees st.session_state.

Who is signed in is a session of the core (AuthService), never only what st.session_state says:
app/main.py calls `current_actor()` first on every rerun, which re-reads the session's user at
most RECHECK_S seconds after the last read (a role change applies, a deactivated or signed-out
user is shown the login form) and, in a new browser tab or after a refresh, resumes the session
from its HttpOnly cookie (set by components/ui_server.py). Pages read the result through `actor()`.
"""
from __future__ import annotations

import json
import os
import time

import streamlit as st

from app import i18n
from app.auth import Action, Actor, can
from app.errors import AlgoStageError, ValidationFailed
from app.platform import Platform, resolve_home


@st.cache_resource(show_spinner=False)
def _platform(home: str, database_url: str) -> Platform:
    return Platform.open()


def platform() -> Platform:
    """The platform of this process's `$ALGOSTAGE_HOME` and database (one per process)."""
    return _platform(str(resolve_home()), os.environ.get("DATABASE_URL", ""))


RECHECK_S = 2.0
COOKIE_SCRIPT_S = 30.0     # how long after a login the page keeps asking the browser to store the cookie
SESSION_PATH = "/_algostage/session"


def cookie_name() -> str:
    """One cookie per platform: browsers share cookies between the ports of one host."""
    return f"algostage_session_{os.environ.get('ALGOSTAGE_UI_PORT', '8501')}"


def actor() -> Actor | None:
    """Who is signed in, as `current_actor()` last established it this rerun."""
    return st.session_state.get("actor")


def current_actor() -> Actor | None:
    """The signed-in actor, re-validated against the core (see the module's docstring)."""
    state = st.session_state
    session_id = state.get("session_id")
    if session_id is None:
        state.pop("actor", None)
        token = st.context.cookies.get(cookie_name()) if not state.get("signed_out") else None
        found = platform().auth.resume_session(token) if isinstance(token, str) and token else None
    elif time.monotonic() - state.get("checked_at", 0.0) >= RECHECK_S:
        found = platform().auth.session_actor(session_id)
        if found is None:
            state["session_ended"] = True
    else:
        return state.get("actor")
    _remember(found)
    return found


def sign_in(who: Actor) -> None:
    """Start a session for an actor the login form authenticated; the next render hands the
    browser the session's one-time ticket (see `session_scripts`)."""
    who, ticket = platform().auth.start_session(who)
    _remember(who)
    st.session_state["cookie_ticket"] = (ticket, time.monotonic())
    st.session_state.pop("signed_out", None)
    st.session_state.pop("session_ended", None)


def sign_out() -> None:
    """End this browser's session in the core and ask the browser to drop its cookie."""
    if (session_id := st.session_state.get("session_id")) is not None:
        platform().auth.end_session(session_id)
    _remember(None)
    st.session_state.pop("cookie_ticket", None)
    st.session_state["signed_out"] = True


def session_scripts() -> None:
    """The browser side of the cookie: after a login, POST the ticket to the UI server (which
    answers with the HttpOnly cookie); after a logout, DELETE it. Invisible."""
    state = st.session_state
    ticket = state.get("cookie_ticket")
    if ticket and time.monotonic() - ticket[1] > COOKIE_SCRIPT_S:
        state.pop("cookie_ticket")
        ticket = None
    if ticket:
        call = f"{{method: 'POST', headers: {{'Content-Type': 'application/json'}}, body: {json.dumps(json.dumps({'ticket': ticket[0]}))}}}"
    elif state.get("signed_out"):
        call = "{method: 'DELETE'}"
    else:
        return
    import streamlit.components.v1 as components
    components.html(f"<script>fetch(new URL({SESSION_PATH!r}, window.parent.location.href), "
                    f"Object.assign({call}, {{credentials: 'same-origin'}}));</script>", height=0)


def _remember(who: Actor | None) -> None:
    state = st.session_state
    if who is None:
        for key in ("actor", "session_id", "checked_at"):
            state.pop(key, None)
        return
    state["actor"], state["session_id"], state["checked_at"] = who, who.session_id, time.monotonic()


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


def say(text: str) -> str:
    """A text of the core (an error's message, hint or reason) in the UI's language: translated
    when it carries a key the catalogue knows in that language, as it is (English) otherwise."""
    return i18n.say(text, lang())


def problem_lines(error: ValidationFailed) -> str:
    """Every reason an input was refused, one Markdown bullet each, with its field."""
    return "\n".join(f"- **{i18n.field_name(p.field, lang())}**: {say(p.reason)}" for p in error.problems)


def show_problems(error: ValidationFailed) -> None:
    """Every reason an input was refused, each with its field."""
    st.error(t("error.problems") + "\n" + problem_lines(error))


def show_error(error: AlgoStageError) -> None:
    """The one way a page shows a refused or failed action, in the UI's language: each problem of
    a refused input with its field, otherwise the message, and the hint (what to do about it)
    when there is one."""
    if isinstance(error, ValidationFailed):
        show_problems(error)
    else:
        st.error(say(error.message))
    if error.hint:
        st.caption(say(error.hint))
