"""Users, roles, password hashing and the one permission check every page and core action uses.

Deny by default: an action is allowed only if the role's entry in `PERMISSIONS` names it.
Failed logins are throttled per attempted name whether the user exists or not, and every
refusal reads the same, so errors never reveal which users exist.
"""
from __future__ import annotations

import re
import secrets as pysecrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.db import transaction
from app.errors import PermissionDenied, Problem, ValidationFailed
from app.models import LoginFailure, Role as RoleRow, User, utcnow


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"


class Action(StrEnum):
    VIEW_SHOWCASE = "view_showcase"        # run algorithms on demo media, compare
    VIEW_HISTORY = "view_history"          # own calls
    VIEW_ALL_HISTORY = "view_all_history"  # everyone's calls
    VIEW_CATALOG = "view_catalog"          # list algorithms and versions
    UPLOAD = "upload"
    DEPLOY = "deploy"
    MANAGE_SERVICES = "manage_services"    # start/stop/restart/remove, logs, per-service config
    VIEW_SERVICES = "view_services"
    MANAGE_SETTINGS = "manage_settings"
    MANAGE_USERS = "manage_users"
    ALLOW_REQUIREMENT_REDIRECTS = "allow_requirement_redirects"
    UPLOAD_FROM_SERVER = "upload_from_server"  # folders, local git repos, file:// URLs on the server


_VIEWER = frozenset({Action.VIEW_SHOWCASE, Action.VIEW_HISTORY, Action.VIEW_CATALOG, Action.VIEW_SERVICES})
_OPERATOR = _VIEWER | {Action.VIEW_ALL_HISTORY, Action.UPLOAD, Action.DEPLOY, Action.MANAGE_SERVICES}
PERMISSIONS: dict[Role, frozenset[Action]] = {
    Role.VIEWER: _VIEWER,
    Role.OPERATOR: frozenset(_OPERATOR),
    Role.ADMIN: frozenset(Action),
}


@dataclass(frozen=True)
class Actor:
    """Who is acting: a logged-in user, or `cli:<os user>` acting with admin rights."""
    username: str
    role: Role
    user_id: int | None = None


def can(actor: Actor | None, action: Action) -> bool:
    return actor is not None and action in PERMISSIONS.get(actor.role, frozenset())


def require(actor: Actor | None, action: Action) -> Actor:
    """The one permission check. Returns the actor; raises PermissionDenied otherwise."""
    if not can(actor, action):
        who = actor.username if actor else "anonymous"
        raise PermissionDenied(f"{who} may not {action.value.replace('_', ' ')}")
    assert actor is not None
    return actor


class LoginError(Exception):
    """Login refused. The message is the same whether or not the user exists;
    `retry_after` (seconds) is set while attempts for that name are throttled."""

    def __init__(self, message: str, retry_after: int = 0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


INVALID_LOGIN = "invalid username or password"
USERNAME_RE = re.compile(r"[a-z][a-z0-9_.\-]{1,63}")
MIN_PASSWORD = 8
FREE_ATTEMPTS = 3
MAX_DELAY_S = 300


def lockout_seconds(failures: int) -> int:
    """Wait imposed after `failures` consecutive failures: none for the first few, then doubling."""
    if failures < FREE_ATTEMPTS:
        return 0
    return min(2 ** (failures - FREE_ATTEMPTS + 1), MAX_DELAY_S)


def generate_password() -> str:
    return pysecrets.token_urlsafe(12)


@dataclass(frozen=True)
class UserInfo:
    id: int
    username: str
    role: Role
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None


class AuthService:
    """Users and logins. `clock` is a seam for tests (returns an aware UTC datetime)."""

    def __init__(self, sessions: sessionmaker[Session], *, hasher: PasswordHasher | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self._sessions = sessions
        self._hasher = hasher or PasswordHasher()
        self._clock = clock
        self._dummy_hash = self._hasher.hash(generate_password())

    # --- users --------------------------------------------------------------------------------

    def create_user(self, actor: Actor, username: str, password: str, role: Role | str) -> UserInfo:
        require(actor, Action.MANAGE_USERS)
        return self._create(username, password, role)

    def bootstrap_admin(self, password: str | None) -> tuple[str, str] | None:
        """Create the first admin when there is no user. Returns (username, password) if created."""
        with self._sessions() as s:
            if s.scalar(select(func.count()).select_from(User)):
                return None
        password = password or generate_password()
        self._create("admin", password, Role.ADMIN)
        return "admin", password

    def set_password(self, actor: Actor, username: str, password: str) -> None:
        """Admins change anyone's password; others only their own."""
        if actor.username != username:
            require(actor, Action.MANAGE_USERS)
        self._check_password(password)
        with transaction(self._sessions) as s:
            user = self._get(s, username)
            user.password_hash = self._hasher.hash(password)

    def update_user(self, actor: Actor, username: str, *, role: Role | str | None = None,
                    active: bool | None = None, password: str | None = None) -> None:
        """Change role, active flag and/or password in one transaction; all checked first."""
        require(actor, Action.MANAGE_USERS)
        problems: list[Problem] = []
        if role is not None:
            try:
                role = self._check_role(role)
            except ValidationFailed as e:
                problems += e.problems
        if password:
            problems += self._password_problems(password)
        if actor.username == username and (active is False or (role not in (None, Role.ADMIN))):
            problems.append(Problem("username", "you cannot deactivate yourself or drop your own admin role"))
        if problems:
            raise ValidationFailed(problems)
        with transaction(self._sessions) as s:
            user = self._get(s, username)
            if role is not None:
                user.role_id = s.scalar(select(RoleRow.id).where(RoleRow.name == Role(role).value))
            if active is not None:
                user.is_active = active
            if password:
                user.password_hash = self._hasher.hash(password)

    def list_users(self, actor: Actor) -> list[UserInfo]:
        require(actor, Action.MANAGE_USERS)
        with self._sessions() as s:
            return [self._info(u) for u in s.scalars(select(User).order_by(User.username))]

    # --- login --------------------------------------------------------------------------------

    def authenticate(self, username: str, password: str) -> Actor:
        """Return the actor on success. Raises LoginError with the same message for an unknown
        user, a wrong password or a disabled account; while throttled, says how long to wait."""
        username = username.strip().lower()[:64]
        now = self._clock()
        wait = self._wait_seconds(username, now)
        if wait > 0:
            raise LoginError(f"too many failed attempts; try again in {wait} s", retry_after=wait)
        with self._sessions() as s:
            user = s.scalar(select(User).where(User.username == username))
            ok = self._verify(user.password_hash if user else self._dummy_hash, password)
            if not (ok and user is not None and user.is_active):
                self._record_failure(username, now)
                raise LoginError(INVALID_LOGIN)
            actor = Actor(user.username, Role(user.role.name), user.id)
        self._record_success(username, now)
        return actor

    # --- internals ------------------------------------------------------------------------------

    def _create(self, username: str, password: str, role: Role | str) -> UserInfo:
        problems = self._username_problems(username) + self._password_problems(password)
        try:
            role = self._check_role(role)
        except ValidationFailed as e:
            problems += e.problems
        if problems:
            raise ValidationFailed(problems)
        try:
            with transaction(self._sessions) as s:
                role_id = s.scalar(select(RoleRow.id).where(RoleRow.name == role.value))
                user = User(username=username, password_hash=self._hasher.hash(password), role_id=role_id)
                s.add(user)
                s.flush()
                info = UserInfo(user.id, username, role, True, user.created_at, None)
        except IntegrityError:
            raise ValidationFailed([Problem("username", f"user {username!r} already exists")]) from None
        return info

    @staticmethod
    def _username_problems(username: str) -> list[Problem]:
        if USERNAME_RE.fullmatch(username):
            return []
        return [Problem("username", "2-64 characters: lower-case letters, digits, _ . -; starting with a letter")]

    @staticmethod
    def _password_problems(password: str) -> list[Problem]:
        if len(password) < MIN_PASSWORD:
            return [Problem("password", f"must be at least {MIN_PASSWORD} characters")]
        return []

    def _check_password(self, password: str) -> None:
        if problems := self._password_problems(password):
            raise ValidationFailed(problems)

    @staticmethod
    def _check_role(role: Role | str) -> Role:
        try:
            return Role(role)
        except ValueError:
            raise ValidationFailed([Problem("role", f"must be one of {', '.join(Role)}, got {role!r}")]) from None

    @staticmethod
    def _get(s: Session, username: str) -> User:
        user = s.scalar(select(User).where(User.username == username))
        if user is None:
            raise ValidationFailed([Problem("username", f"no user {username!r}")])
        return user

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def _wait_seconds(self, username: str, now: datetime) -> int:
        with self._sessions() as s:
            row = s.get(LoginFailure, username)
        if row is None or row.locked_until is None:
            return 0
        locked_until = _aware(row.locked_until)
        return max(0, int((locked_until - now).total_seconds() + 0.999))

    def _record_failure(self, username: str, now: datetime) -> None:
        with transaction(self._sessions) as s:
            row = s.get(LoginFailure, username) or LoginFailure(username=username, failures=0)
            row.failures += 1
            row.last_failure_at = now
            delay = lockout_seconds(row.failures)
            row.locked_until = now + timedelta(seconds=delay) if delay else None
            s.merge(row)

    def _record_success(self, username: str, now: datetime) -> None:
        with transaction(self._sessions) as s:
            failure = s.get(LoginFailure, username)
            if failure is not None:
                s.delete(failure)
            user = s.scalar(select(User).where(User.username == username))
            if user is not None:
                user.last_login_at = now

    @staticmethod
    def _info(u: User) -> UserInfo:
        return UserInfo(u.id, u.username, Role(u.role.name), u.is_active, u.created_at, u.last_login_at)


def _aware(dt: datetime) -> datetime:
    """SQLite returns naive datetimes for timezone-aware columns; they are UTC."""
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
