"""Users, roles, password hashing and the one permission check every page and core action uses.

Deny by default: an action is allowed only if the role's entry in `PERMISSIONS` names it.
Failed logins are throttled per attempted name whether the user exists or not, and every
refusal reads the same, so errors never reveal which users exist. The throttle reserves before
it checks: an attempt is counted (as if it failed) in one atomic statement before its password
is hashed, so parallel attempts cannot all slip past the count, and no database connection is
held while a password is hashed.

A signed-in browser is a session (DESIGN §9): the login page asks for one and hands the browser a
one-time ticket, which the UI server exchanges for an HttpOnly cookie; every page re-reads the
session's user, so a role change applies at once and a deactivated user is signed out.
"""
from __future__ import annotations

import hashlib
import re
import secrets as pysecrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Protocol, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, sessionmaker

from app.db import insert_ignoring_conflict, transaction
from app.errors import AlgoStageError, Message, Missing, PermissionDenied, Problem, ValidationFailed
from app.models import AuditEntry, BrowserSession, LoginFailure, Role as RoleRow, User, utcnow


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
    """Who is acting: a logged-in user, or `cli:<os user>` acting with admin rights. `session_id`
    is the browser session it acts through, if any (a password change keeps that one)."""
    username: str
    role: Role
    user_id: int | None = None
    session_id: int | None = field(default=None, compare=False)


def can(actor: Actor | None, action: Action) -> bool:
    return actor is not None and action in PERMISSIONS.get(actor.role, frozenset())


def require(actor: Actor | None, action: Action) -> Actor:
    """The one permission check. Returns the actor; raises PermissionDenied otherwise."""
    if not can(actor, action):
        who = actor.username if actor else "anonymous"
        raise PermissionDenied(Message("auth.may_not", "{who} may not {action}", who=who,
                                       action=Message(f"action.{action.value}", action.value.replace("_", " "))))
    assert actor is not None
    return actor


F = TypeVar("F", bound=Callable[..., object])


def internal(why: str) -> Callable[[F], F]:
    """Marks a public core method that takes no actor, saying why that is safe: it is called by
    other core services after their own check, or it reads nothing protected. The permission
    walk (tests/unit/test_permission_walk.py) accepts exactly these and methods that check."""
    def mark(fn: F) -> F:
        fn.__internal__ = why  # type: ignore[attr-defined]
        return fn
    return mark


class LoginError(AlgoStageError):
    """Login refused. The message is the same whether or not the user exists;
    `retry_after` (seconds) is set while attempts for that name are throttled."""
    code = "login_failed"

    def __init__(self, message: str, retry_after: int = 0) -> None:
        super().__init__(message, code="login_throttled" if retry_after else None)
        self.retry_after = retry_after


INVALID_LOGIN = Message("login.invalid", "invalid username or password")
USERNAME_RE = re.compile(r"[a-z][a-z0-9_.\-]{1,63}")
MIN_PASSWORD = 8
FREE_ATTEMPTS = 3
MAX_DELAY_S = 300


def lockout_seconds(failures: int) -> int:
    """Wait imposed after `failures` consecutive failures: none for the first few, then doubling."""
    if failures < FREE_ATTEMPTS:
        return 0
    return min(2 ** (failures - FREE_ATTEMPTS + 1), MAX_DELAY_S)


SESSION_TTL = timedelta(hours=12)
TICKET_TTL = timedelta(seconds=60)


def generate_password() -> str:
    return pysecrets.token_urlsafe(12)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class LoginThrottle(Protocol):
    """Counts login attempts per attempted name. `reserve` counts this attempt as a failure before
    it is checked and says whether it may be checked (0) or how many seconds to wait; `clear`
    forgets the name after a success. Implementations: DatabaseThrottle (the default) and
    app.shared.RedisThrottle (when REDIS_URL is set)."""

    def reserve(self, username: str, now: datetime) -> int: ...

    def clear(self, username: str) -> None: ...


class DatabaseThrottle:
    """The throttle in the `login_failures` table: one short atomic statement per attempt. The
    reservation sets the lock an attempt would cause if it failed, in the same statement that
    counts it, so of N parallel attempts only those the count allows are checked."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def reserve(self, username: str, now: datetime) -> int:
        for _ in range(3):   # a row inserted by a parallel attempt in between: try again
            with transaction(self._sessions) as s:
                failures = s.scalar(
                    update(LoginFailure)
                    .where(LoginFailure.username == username,
                           (LoginFailure.locked_until.is_(None)) | (LoginFailure.locked_until <= now))
                    .values(failures=LoginFailure.failures + 1, last_failure_at=now)
                    .returning(LoginFailure.failures))
                if failures is not None:
                    s.execute(update(LoginFailure).where(LoginFailure.username == username)
                              .values(locked_until=now + timedelta(seconds=lockout_seconds(failures))))
                    return 0
                if insert_ignoring_conflict(s, LoginFailure, dict(username=username, failures=1, last_failure_at=now,
                                                                    locked_until=now), ["username"]):
                    return 0
                locked_until = s.scalar(
                    update(LoginFailure).where(LoginFailure.username == username, LoginFailure.locked_until > now)
                    .values(failures=LoginFailure.failures + 1, last_failure_at=now)
                    .returning(LoginFailure.locked_until))
                if locked_until is not None:
                    return max(1, int((_aware(locked_until) - now).total_seconds() + 0.999))
        return 1

    def clear(self, username: str) -> None:
        with transaction(self._sessions) as s:
            failure = s.get(LoginFailure, username)
            if failure is not None:
                s.delete(failure)

    def failures(self, username: str) -> int:
        with self._sessions() as s:
            row = s.get(LoginFailure, username)
            return row.failures if row else 0


def audit(s: Session, actor: Actor, action: str, target: str, detail: str = "") -> None:
    """Record who did what, in the caller's transaction (so it is written exactly when the change is)."""
    s.add(AuditEntry(actor=actor.username, action=action, target=target[:200], detail=detail[:2000]))


@dataclass(frozen=True)
class UserInfo:
    id: int
    username: str
    role: Role
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None


@dataclass(frozen=True)
class AuditRecord:
    actor: str
    action: str
    target: str
    detail: str
    at: datetime


class AuthService:
    """Users, logins and browser sessions. `clock` is a seam for tests (returns an aware UTC
    datetime); `throttle` counts login attempts (in the database unless given)."""

    def __init__(self, sessions: sessionmaker[Session], *, hasher: PasswordHasher | None = None,
                 clock: Callable[[], datetime] = utcnow, throttle: LoginThrottle | None = None) -> None:
        self._sessions = sessions
        self._hasher = hasher or PasswordHasher()
        self._clock = clock
        self._throttle = throttle or DatabaseThrottle(sessions)
        self._dummy_hash = self._hasher.hash(generate_password())

    # --- users --------------------------------------------------------------------------------

    def create_user(self, actor: Actor, username: str, password: str, role: Role | str) -> UserInfo:
        require(actor, Action.MANAGE_USERS)
        return self._create(username, password, role, actor)

    @internal("run by `up` when the platform has no user yet: there is nobody to check")
    def bootstrap_admin(self, password: str | None) -> tuple[str, str] | None:
        """Create the first admin when there is no user. Returns (username, password) if created."""
        with self._sessions() as s:
            if s.scalar(select(func.count()).select_from(User)):
                return None
        password = password or generate_password()
        self._create("admin", password, Role.ADMIN)
        return "admin", password

    def set_password(self, actor: Actor, username: str, password: str) -> None:
        """Admins change anyone's password; others only their own. Ends the user's other
        sessions (all of them when someone else changed it)."""
        if actor.username != username:
            require(actor, Action.MANAGE_USERS)
        self._check_password(password)
        password_hash = self._hasher.hash(password)
        with transaction(self._sessions) as s:
            user = self._get(s, username)
            user.password_hash = password_hash
            keep = actor.session_id if actor.username == username else None
            self._revoke_sessions(s, user.id, keep=keep)
            audit(s, actor, "user.password", username)

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
            problems.append(Problem("username", Message("user.not_yourself", "you cannot deactivate yourself or drop your own admin role")))
        if problems:
            raise ValidationFailed(problems)
        password_hash = self._hasher.hash(password) if password else None
        with transaction(self._sessions) as s:
            user = self._get(s, username)
            changes = []
            if role is not None and Role(user.role.name) is not Role(role):
                changes.append(f"role {user.role.name} -> {Role(role).value}")
                user.role_id = s.scalar(select(RoleRow.id).where(RoleRow.name == Role(role).value))
            if active is not None and user.is_active != active:
                changes.append("activated" if active else "deactivated")
                user.is_active = active
            if password_hash:
                changes.append("password changed")
                user.password_hash = password_hash
            if active is False or password_hash:
                self._revoke_sessions(s, user.id)
            if changes:
                audit(s, actor, "user.update", username, "; ".join(changes))

    def list_users(self, actor: Actor) -> list[UserInfo]:
        require(actor, Action.MANAGE_USERS)
        with self._sessions() as s:
            return [self._info(u) for u in s.scalars(select(User).order_by(User.username))]

    # --- login --------------------------------------------------------------------------------

    @internal("who a trusted caller (git's push hook, run for a key the API checked) acts as")
    def actor_named(self, username: str) -> Actor:
        """The active user `username` as an Actor; LoginError when there is none or it is disabled."""
        with self._sessions() as s:
            user = s.scalar(select(User).where(User.username == username))
            if user is None or not user.is_active:
                raise LoginError(INVALID_LOGIN)
            return Actor(user.username, Role(user.role.name), user.id)

    @internal("the login itself: it establishes who is acting")
    def authenticate(self, username: str, password: str) -> Actor:
        """Return the actor on success. Raises LoginError with the same message for an unknown
        user, a wrong password or a disabled account; while throttled, says how long to wait.
        The attempt is counted before the password is checked (see LoginThrottle)."""
        username = username.strip().lower()[:64]
        now = self._clock()
        wait = self._throttle.reserve(username, now)
        if wait > 0:
            raise LoginError(Message("login.throttled", "too many failed attempts; try again in {seconds} s",
                                     seconds=wait), retry_after=wait)
        with self._sessions() as s:   # read, then let the connection go before hashing
            user = s.scalar(select(User).options(joinedload(User.role)).where(User.username == username))
            found = (user.password_hash, user.is_active, Actor(user.username, Role(user.role.name), user.id)) \
                if user else None
        ok = self._verify(found[0] if found else self._dummy_hash, password)
        if not (ok and found and found[1]):
            raise LoginError(INVALID_LOGIN)
        self._throttle.clear(username)
        with transaction(self._sessions) as s:
            s.execute(update(User).where(User.username == username).values(last_login_at=now))
        return found[2]

    # --- browser sessions -----------------------------------------------------------------------

    @internal("called by the login page with the actor authenticate just established")
    def start_session(self, actor: Actor) -> tuple[Actor, str]:
        """A new session for a signed-in user: (the actor bound to it, a one-time ticket the
        browser exchanges for its cookie within TICKET_TTL; see claim_session)."""
        if actor.user_id is None:
            raise ValidationFailed([Problem("user", Message("session.users_only", "only a user of the platform has a browser session"))])
        ticket = pysecrets.token_urlsafe(32)
        now = self._clock()
        with transaction(self._sessions) as s:
            row = BrowserSession(ticket_hash=digest(ticket), user_id=actor.user_id, created_at=now,
                                 expires_at=now + SESSION_TTL)
            s.add(row)
            s.flush()
            session_id = row.id
        return Actor(actor.username, actor.role, actor.user_id, session_id), ticket

    @internal("the UI server's cookie endpoint: the ticket is the proof, it names the session")
    def claim_session(self, ticket: str) -> str | None:
        """Exchange a login's one-time ticket for the session's cookie token (None when the
        ticket is unknown, used, older than TICKET_TTL or its session ended)."""
        now = self._clock()
        token = pysecrets.token_urlsafe(32)
        with transaction(self._sessions) as s:
            claimed = s.scalar(
                update(BrowserSession)
                .where(BrowserSession.ticket_hash == digest(ticket), BrowserSession.revoked_at.is_(None),
                       BrowserSession.created_at > now - TICKET_TTL)
                .values(ticket_hash=None, token_hash=digest(token))
                .returning(BrowserSession.id))
        return token if claimed is not None else None

    @internal("establishes who is acting from a browser's cookie")
    def resume_session(self, token: str) -> Actor | None:
        """The actor of the session a cookie's token names, or None (unknown, expired, revoked,
        user deactivated)."""
        return self._session_actor(BrowserSession.token_hash == digest(token))

    @internal("re-reads who is acting in a session the UI already holds")
    def session_actor(self, session_id: int) -> Actor | None:
        """The session's user as it is now (role, active), or None when the session ended."""
        return self._session_actor(BrowserSession.id == session_id)

    @internal("ends the caller's own session (logout); a session id is not a credential")
    def end_session(self, session_id: int | None = None, *, token: str | None = None) -> None:
        with transaction(self._sessions) as s:
            where = BrowserSession.id == session_id if session_id is not None \
                else BrowserSession.token_hash == digest(token or "")
            s.execute(update(BrowserSession).where(where, BrowserSession.revoked_at.is_(None))
                      .values(revoked_at=self._clock()))

    def audit_log(self, actor: Actor, *, limit: int = 200) -> list[AuditRecord]:
        """The newest audit records first: who started, stopped, restarted or removed which
        services and who changed which user."""
        require(actor, Action.MANAGE_USERS)
        with self._sessions() as s:
            rows = s.scalars(select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit))
            return [AuditRecord(r.actor, r.action, r.target, r.detail, _aware(r.at)) for r in rows]

    def _session_actor(self, where: object) -> Actor | None:
        now = self._clock()
        with self._sessions() as s:
            row = s.scalar(select(BrowserSession).options(joinedload(BrowserSession.user).joinedload(User.role))
                           .where(where, BrowserSession.revoked_at.is_(None)))
            if row is None or _aware(row.expires_at) <= now or not row.user.is_active:
                return None
            return Actor(row.user.username, Role(row.user.role.name), row.user.id, row.id)

    def _revoke_sessions(self, s: Session, user_id: int, *, keep: int | None = None) -> None:
        where = [BrowserSession.user_id == user_id, BrowserSession.revoked_at.is_(None)]
        if keep is not None:
            where.append(BrowserSession.id != keep)
        s.execute(update(BrowserSession).where(*where).values(revoked_at=self._clock()))

    # --- internals ------------------------------------------------------------------------------

    def _create(self, username: str, password: str, role: Role | str, actor: Actor | None = None) -> UserInfo:
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
                audit(s, actor or Actor("setup", Role.ADMIN), "user.create", username, f"role {role.value}")
        except IntegrityError:
            raise ValidationFailed([Problem("username", Message("user.exists", "user {name!r} already exists", name=username))]) from None
        return info

    @staticmethod
    def _username_problems(username: str) -> list[Problem]:
        if USERNAME_RE.fullmatch(username):
            return []
        return [Problem("username", Message("user.name_rule", "2-64 characters: lower-case letters, digits, _ . -; starting with a letter"))]

    @staticmethod
    def _password_problems(password: str) -> list[Problem]:
        if len(password) < MIN_PASSWORD:
            return [Problem("password", Message("user.password_short", "must be at least {count} characters", count=MIN_PASSWORD))]
        return []

    def _check_password(self, password: str) -> None:
        if problems := self._password_problems(password):
            raise ValidationFailed(problems)

    @staticmethod
    def _check_role(role: Role | str) -> Role:
        try:
            return Role(role)
        except ValueError:
            raise ValidationFailed([Problem("role", Message("user.role_unknown", "must be one of {roles}, got {role!r}", roles=", ".join(Role), role=role))]) from None

    @staticmethod
    def _get(s: Session, username: str) -> User:
        user = s.scalar(select(User).where(User.username == username))
        if user is None:
            raise Missing([Problem("username", Message("user.missing", "no user {name!r}", name=username))])
        return user

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    @staticmethod
    def _info(u: User) -> UserInfo:
        return UserInfo(u.id, u.username, Role(u.role.name), u.is_active, u.created_at, u.last_login_at)


def _aware(dt: datetime) -> datetime:
    """SQLite returns naive datetimes for timezone-aware columns; they are UTC."""
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
