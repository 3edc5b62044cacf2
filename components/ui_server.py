"""The UI's server: Streamlit's ASGI app (app/main.py) plus the one endpoint a browser session
needs that Streamlit has no API for — setting and clearing the HttpOnly session cookie.

Login (pages/login.py) starts a session in the core and hands this browser a one-time ticket;
the page's script POSTs it here, and the answer sets the cookie with the session's token, which
the script never sees. Every later page load (a refresh, a bookmark, a second tab) reads the
cookie in app/main.py and resumes the session; logout revokes it in the core and DELETEs here.
"""
from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from app.auth import SESSION_TTL  # noqa: E402
from app.platform import Platform  # noqa: E402
from components.session import SESSION_PATH, cookie_name  # noqa: E402

MAX_TICKET = 200

@lru_cache(maxsize=1)
def _platform() -> Platform:
    return Platform.open(migrate=False)


async def session_endpoint(request: Request) -> Response:
    """POST {"ticket": …}: set the cookie of the session the ticket names (once, within a minute).
    DELETE: end the session the cookie names and clear the cookie."""
    from starlette.concurrency import run_in_threadpool
    auth = _platform().auth
    if request.method == "DELETE":
        if token := request.cookies.get(cookie_name()):
            await run_in_threadpool(auth.end_session, token=token)
        response = JSONResponse({"signed_out": True})
        response.delete_cookie(cookie_name(), path="/", httponly=True, samesite="lax")
        return response
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return JSONResponse({"error": {"code": "forbidden", "message": "cross-site request"}}, status_code=403)
    try:
        ticket = (await request.json())["ticket"]
        assert isinstance(ticket, str) and 0 < len(ticket) <= MAX_TICKET
    except Exception:  # noqa: BLE001 - any malformed body is the same refusal
        return JSONResponse({"error": {"code": "invalid", "message": 'expected {"ticket": "…"}'}}, status_code=400)
    token = await run_in_threadpool(auth.claim_session, ticket)
    if token is None:
        return JSONResponse({"error": {"code": "invalid_ticket", "message": "unknown, used or expired ticket"}},
                            status_code=401)
    response = JSONResponse({"signed_in": True})
    response.set_cookie(cookie_name(), token, max_age=int(SESSION_TTL.total_seconds()), path="/", httponly=True,
                        samesite="lax", secure=request.url.scheme == "https")
    return response


app = st.App(str(ROOT / "app" / "main.py"),
             routes=[Route(SESSION_PATH, session_endpoint, methods=["POST", "DELETE"])])
