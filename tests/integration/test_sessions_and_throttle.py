"""Issue 11, findings 1 and 2 in the core, on both databases: the login throttle under parallel
attempts (at most 3 of 20 checked, all 20 counted, no other database call of the process kept
waiting), browser sessions that follow the user (role, deactivation, password change, logout,
expiry, one-time tickets) and the audit log of user changes."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from app.auth import (FREE_ATTEMPTS, INVALID_LOGIN, SESSION_TTL, TICKET_TTL, AuthService, DatabaseThrottle,
                      LoginError, Role)
from app.platform import Platform
from tests.conftest import ADMIN, VIEWER


class CountingHasher:
    """argon2's hasher, counting the verifications (a verification is the expensive check)."""

    def __init__(self) -> None:
        from argon2 import PasswordHasher
        self._inner = PasswordHasher()
        self.verified = 0
        self._lock = threading.Lock()

    def hash(self, password: str) -> str:
        return self._inner.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        with self._lock:
            self.verified += 1
        return self._inner.verify(password_hash, password)


def test_twenty_parallel_wrong_logins_check_at_most_three_and_count_all(platform: Platform) -> None:
    hasher = CountingHasher()
    auth = AuthService(platform.sessions, hasher=hasher)
    auth.create_user(ADMIN, "alice", "password-1", Role.OPERATOR)
    hasher.verified = 0

    stop = threading.Event()
    waits: list[float] = []

    def probe() -> None:   # another caller of the same process's database
        while not stop.is_set():
            started = time.perf_counter()
            with platform.sessions() as s:
                s.execute(sa.text("SELECT count(*) FROM users")).scalar()
            waits.append(time.perf_counter() - started)
            time.sleep(0.02)

    prober = threading.Thread(target=probe)
    prober.start()
    barrier = threading.Barrier(20)

    def attempt(_: int) -> LoginError:
        barrier.wait()
        try:
            auth.authenticate("alice", "wrong-password")
        except LoginError as e:
            return e
        raise AssertionError("a wrong password logged in")

    try:
        with ThreadPoolExecutor(20) as pool:
            errors = list(pool.map(attempt, range(20)))
    finally:
        stop.set()
        prober.join()

    assert hasher.verified <= FREE_ATTEMPTS, hasher.verified
    assert sum(1 for e in errors if e.retry_after) >= 20 - FREE_ATTEMPTS
    assert all(str(e) == INVALID_LOGIN for e in errors if not e.retry_after)
    assert DatabaseThrottle(platform.sessions).failures("alice") == 20
    assert waits and max(waits) < 1.0, f"another database call waited {max(waits):.2f} s"


def test_the_throttle_lets_the_right_password_in_after_the_wait(platform: Platform) -> None:
    now = [datetime(2026, 1, 1, tzinfo=timezone.utc)]
    auth = AuthService(platform.sessions, clock=lambda: now[0])
    auth.create_user(ADMIN, "alice", "password-1", Role.VIEWER)
    for _ in range(FREE_ATTEMPTS):
        with pytest.raises(LoginError, match=INVALID_LOGIN):
            auth.authenticate("alice", "nope-nope")
    with pytest.raises(LoginError) as refused:
        auth.authenticate("alice", "password-1")
    assert refused.value.retry_after == 2
    now[0] += timedelta(seconds=2)
    assert auth.authenticate("alice", "password-1").username == "alice"
    assert DatabaseThrottle(platform.sessions).failures("alice") == 0


# --- sessions ------------------------------------------------------------------------------------

@pytest.fixture
def clock() -> list[datetime]:
    return [datetime(2026, 1, 1, tzinfo=timezone.utc)]


@pytest.fixture
def auth(platform: Platform, clock: list[datetime]) -> AuthService:
    service = AuthService(platform.sessions, clock=lambda: clock[0])
    service.create_user(ADMIN, "olga", "password-1", Role.OPERATOR)
    return service


def signed_in(auth: AuthService, password: str = "password-1") -> tuple[int, str]:
    """Log olga in as a browser does: (session id, cookie token)."""
    actor, ticket = auth.start_session(auth.authenticate("olga", password))
    token = auth.claim_session(ticket)
    assert token and actor.session_id is not None
    return actor.session_id, token


def test_a_session_follows_role_changes_and_ends_on_deactivation(auth: AuthService) -> None:
    session_id, token = signed_in(auth)
    assert auth.resume_session(token).role is Role.OPERATOR
    auth.update_user(ADMIN, "olga", role=Role.VIEWER)
    assert auth.session_actor(session_id).role is Role.VIEWER
    assert auth.resume_session(token).role is Role.VIEWER
    auth.update_user(ADMIN, "olga", active=False)
    assert auth.session_actor(session_id) is None and auth.resume_session(token) is None
    auth.update_user(ADMIN, "olga", active=True)
    assert auth.resume_session(token) is None, "deactivation revoked the session for good"


def test_a_password_change_ends_the_other_sessions_only(auth: AuthService) -> None:
    here, _ = signed_in(auth)
    _, elsewhere = signed_in(auth)
    me = auth.session_actor(here)
    auth.set_password(me, "olga", "password-2")
    assert auth.session_actor(here) is not None
    assert auth.resume_session(elsewhere) is None
    auth.set_password(ADMIN, "olga", "password-3")  # an admin's reset ends them all
    assert auth.session_actor(here) is None


def test_tickets_are_single_use_and_short_lived_and_logout_revokes(auth: AuthService, clock: list[datetime]) -> None:
    actor, ticket = auth.start_session(auth.authenticate("olga", "password-1"))
    assert auth.resume_session(ticket) is None, "a ticket is not a cookie"
    token = auth.claim_session(ticket)
    assert token and auth.claim_session(ticket) is None
    late_actor, late_ticket = auth.start_session(auth.authenticate("olga", "password-1"))
    clock[0] += TICKET_TTL + timedelta(seconds=1)
    assert auth.claim_session(late_ticket) is None
    assert auth.resume_session(token).session_id == actor.session_id
    auth.end_session(token=token)
    assert auth.resume_session(token) is None and auth.session_actor(actor.session_id) is None
    assert auth.session_actor(late_actor.session_id) is not None
    auth.end_session(late_actor.session_id)
    assert auth.session_actor(late_actor.session_id) is None


def test_sessions_expire_and_only_digests_are_stored(auth: AuthService, platform: Platform,
                                                     clock: list[datetime]) -> None:
    session_id, token = signed_in(auth)
    with platform.engine.connect() as c:
        stored = c.execute(sa.text("SELECT token_hash, ticket_hash FROM sessions")).one()
    assert token not in stored and stored.ticket_hash is None
    clock[0] += SESSION_TTL
    assert auth.resume_session(token) is None and auth.session_actor(session_id) is None


def test_user_changes_are_audited(auth: AuthService) -> None:
    auth.update_user(ADMIN, "olga", role=Role.VIEWER, active=False)
    auth.set_password(ADMIN, "olga", "password-9")
    records = auth.audit_log(ADMIN)
    assert [(r.actor, r.action, r.target) for r in records] == [
        (ADMIN.username, "user.password", "olga"), (ADMIN.username, "user.update", "olga"),
        (ADMIN.username, "user.create", "olga")]
    assert records[1].detail == "role operator -> viewer; deactivated"
    with pytest.raises(Exception, match="may not manage users"):
        auth.audit_log(VIEWER)
