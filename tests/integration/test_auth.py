"""Users and logins on both databases: hashing, duplicates, throttling, same error for unknown users."""
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from app.auth import INVALID_LOGIN, AuthService, LoginError, Role
from app.errors import PermissionDenied, ValidationFailed
from app.models import User
from tests.conftest import ADMIN, OPERATOR, VIEWER


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def auth(platform, clock):
    return AuthService(platform.sessions, clock=clock)


def test_bootstrap_admin_only_once_and_password_is_hashed(platform, auth):
    assert auth.bootstrap_admin("first-password") == ("admin", "first-password")
    assert auth.bootstrap_admin("other-password") is None
    with platform.sessions() as s:
        stored = s.scalar(sa.select(User.password_hash))
    assert stored.startswith("$argon2") and "first-password" not in stored
    assert auth.authenticate("admin", "first-password").role is Role.ADMIN


def test_generated_admin_password_logs_in(auth):
    user, password = auth.bootstrap_admin(None)
    assert len(password) >= 12
    assert auth.authenticate(user, password).username == "admin"


def test_duplicate_user_is_refused_and_changes_nothing(platform, auth):
    auth.create_user(ADMIN, "alice", "password-1", Role.OPERATOR)
    with pytest.raises(ValidationFailed, match="already exists"):
        auth.create_user(ADMIN, "alice", "password-2", Role.VIEWER)
    assert auth.authenticate("alice", "password-1").role is Role.OPERATOR


def test_bad_user_input_reports_every_problem(auth):
    with pytest.raises(ValidationFailed) as e:
        auth.create_user(ADMIN, "A!", "short", "superuser")
    assert {p.field for p in e.value.problems} == {"username", "password", "role"}
    assert auth.list_users(ADMIN) == []


def test_only_admins_manage_users(auth):
    for actor in (OPERATOR, VIEWER, None):
        with pytest.raises(PermissionDenied):
            auth.create_user(actor, "mallory", "password-1", Role.ADMIN)
    with pytest.raises(PermissionDenied):
        auth.list_users(OPERATOR)


def test_wrong_password_and_unknown_user_read_the_same(auth):
    auth.create_user(ADMIN, "alice", "password-1", Role.VIEWER)
    with pytest.raises(LoginError) as wrong:
        auth.authenticate("alice", "nope")
    with pytest.raises(LoginError) as unknown:
        auth.authenticate("nobody", "nope")
    assert str(wrong.value) == str(unknown.value) == INVALID_LOGIN


def test_disabled_user_cannot_log_in(auth):
    auth.create_user(ADMIN, "alice", "password-1", Role.VIEWER)
    auth.update_user(ADMIN, "alice", active=False)
    with pytest.raises(LoginError, match=INVALID_LOGIN):
        auth.authenticate("alice", "password-1")


@pytest.mark.parametrize("exists", [True, False])
def test_repeated_failures_are_slowed_down_for_existing_and_unknown_names(auth, clock, exists):
    if exists:
        auth.create_user(ADMIN, "alice", "password-1", Role.VIEWER)
    for _ in range(3):
        with pytest.raises(LoginError, match=INVALID_LOGIN):
            auth.authenticate("alice", "wrong")
    with pytest.raises(LoginError) as e:
        auth.authenticate("alice", "password-1")  # even the right password waits
    assert e.value.retry_after == 2
    clock.now += timedelta(seconds=3)
    with pytest.raises(LoginError, match=INVALID_LOGIN):
        auth.authenticate("alice", "wrong")
    with pytest.raises(LoginError) as e:
        auth.authenticate("alice", "wrong")
    assert e.value.retry_after == 8  # doubling per attempt, the refused one counted too (5 so far)
    clock.now += timedelta(seconds=9)
    if exists:
        assert auth.authenticate("alice", "password-1").username == "alice"
        auth.authenticate("alice", "password-1")  # the counter was reset by the success


def test_update_user_checks_everything_before_changing_anything(auth):
    auth.create_user(ADMIN, "alice", "password-1", Role.VIEWER)
    with pytest.raises(ValidationFailed):
        auth.update_user(ADMIN, "alice", role="operator", password="short")
    assert auth.authenticate("alice", "password-1").role is Role.VIEWER
    auth.update_user(ADMIN, "alice", role="operator", password="password-2")
    assert auth.authenticate("alice", "password-2").role is Role.OPERATOR


def test_admin_cannot_lock_themselves_out(auth):
    auth.create_user(ADMIN, "boss", "password-1", Role.ADMIN)
    me = auth.authenticate("boss", "password-1")
    with pytest.raises(ValidationFailed, match="yourself"):
        auth.update_user(me, "boss", active=False)
    with pytest.raises(ValidationFailed, match="admin role"):
        auth.update_user(me, "boss", role="viewer")


def test_users_change_their_own_password_but_not_others(auth):
    auth.create_user(ADMIN, "alice", "password-1", Role.VIEWER)
    auth.create_user(ADMIN, "bob", "password-1", Role.VIEWER)
    alice = auth.authenticate("alice", "password-1")
    auth.set_password(alice, "alice", "password-new")
    with pytest.raises(PermissionDenied):
        auth.set_password(alice, "bob", "password-new")
    assert auth.authenticate("alice", "password-new")
