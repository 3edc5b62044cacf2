"""API keys: what the gateway and the management API accept as `Authorization: Bearer <key>`.

One key concept, one table. A key is shown once, when it is created; only its SHA-256 is stored
(keys are 256 random bits, so a fast hash is as safe as a slow one and lets the gateway check one
per request). A key may be limited to some services and may expire. A key **bound to a user**
acts as that user on the API (the user's role, checked at every request, so a demoted or
deactivated user's keys change or stop at once) and may invoke every service through the
gateway; a key without a user may only invoke (through the gateway or the API's invoke).

Contracts:
- `check(raw_key, service)` (the gateway's question) returns the key's `KeyInfo` when it may call
  `service` (or, with `service=None`, any route); raises KeyRefused(401) for a missing, unknown,
  revoked or expired key or one whose user is deactivated, KeyRefused(403) for a valid key that
  may not call `service`.
- `actor_for(raw_key)` (the API's question) returns who the key acts as: the bound user's Actor,
  or for a key without a user an invoke-only Actor `key:<name>`; KeyRefused(401) as above.
  An accepted key's answer is kept ACTOR_CACHE_S seconds (never past the key's expiry): a change
  made in this process (a revoke, a user's new role or deactivation, through the API or any other
  code of the process) applies at the next request; one made by another process (the CLI, the
  Users page) within ACTOR_CACHE_S. A refused key is not kept: it is read again every time.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload, sessionmaker

from app.auth import Action, Actor, Role, internal, require
from app.changes import Changes
from app.db import transaction
from app.errors import AlgoStageError, Message, Missing, Problem, ValidationFailed
from app.models import AlgorithmService, ApiKey, User, utcnow
from app.models import Role as RoleRow

KEY_PREFIX = "ask_"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
MAX_DAYS = 3650
INVOKE_ONLY = "key:"   # actor names of keys without a user
ACTOR_CACHE_S = 2.0    # how long an accepted key's actor is kept (a change in another process applies after it)
ACTOR_CACHE_MAX = 10_000
KEY_ROWS = Changes(ApiKey, User, RoleRow)   # what an actor is read from


class KeyRefused(AlgoStageError):
    """The request is refused: 401 (no valid key) or 403 (not for this service)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message, code="unauthorized" if status == 401 else "forbidden")
        self.status = status


@dataclass(frozen=True)
class KeyInfo:
    name: str
    prefix: str
    services: list[str] | None
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    state: str                # active | revoked | expired, when it was read
    user: str | None = None   # the user it acts as; None: invoke only

    def may_call(self, service: str) -> bool:
        return self.services is None or service in self.services


@dataclass(frozen=True)
class NewKey:
    """A key just created: `key` is the only time the secret is seen."""
    info: KeyInfo
    key: str


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def is_invoke_only(actor: Actor) -> bool:
    return actor.username.startswith(INVOKE_ONLY)


class ApiKeys:
    """Create, list, revoke and check API keys. `clock` is a seam for tests."""

    def __init__(self, sessions: sessionmaker[Session], *, clock: Callable[[], datetime] = utcnow) -> None:
        self._sessions = sessions
        self._clock = clock
        self._actors: dict[str, tuple[datetime, int, Actor]] = {}   # key hash → (kept until, KEY_ROWS, actor)

    def create(self, actor: Actor, name: str, *, services: Iterable[str] | None = None,
               expires_days: float | None = None, user: str | None = None) -> NewKey:
        """A new key called `name` for `services` (None: every service), valid for `expires_days`
        (None: until revoked), acting as `user` (None: invoke only). Admins create any key; any
        signed-in user may create keys for themselves. ValidationFailed names each refused field."""
        if not (user is not None and user == actor.username and actor.user_id is not None):
            require(actor, Action.MANAGE_USERS)
        services = None if services is None else sorted(set(services))
        user_id = self._check_new(name, services, expires_days, user)
        return self._insert(actor, name, services, expires_days, user_id)

    @internal("the login of `POST /api/v1/auth/token`: the password it was given is the check")
    def create_for_login(self, user: Actor, name: str, expires_days: float) -> NewKey:
        """A key for `user`, who has just proved their password (app.auth.authenticate)."""
        self._check_new(name, None, expires_days, user.username)
        return self._insert(user, name, None, expires_days, user.user_id)

    def list(self, actor: Actor) -> list[KeyInfo]:
        """Every key for an admin; a user's own keys for anyone else signed in."""
        require(actor, Action.VIEW_CATALOG)
        q = select(ApiKey).options(selectinload(ApiKey.user)).order_by(ApiKey.name)
        if not _is_admin(actor):
            q = q.where(ApiKey.user_id == actor.user_id) if actor.user_id else q.where(ApiKey.id < 0)
        with self._sessions() as s:
            return [_info(r, self._clock()) for r in s.scalars(q)]

    def revoke(self, actor: Actor, name: str) -> KeyInfo:
        """Revoke the key `name` (already revoked: unchanged): admins any key, users their own.
        ValidationFailed if there is no such key (or none of the user's)."""
        require(actor, Action.VIEW_CATALOG)
        with transaction(self._sessions) as s:
            row = s.scalar(select(ApiKey).where(ApiKey.name == name).options(selectinload(ApiKey.user)))
            if row is None or not (_is_admin(actor) or (actor.user_id and row.user_id == actor.user_id)):
                raise Missing([Problem("name", Message("key.missing", "no key named {name!r}", name=name))])
            row.revoked_at = row.revoked_at or self._clock()
            return _info(row, self._clock())

    @internal("the gateway's own check of a request: the key it carries is who is acting")
    def check(self, raw_key: str | None, service: str | None) -> KeyInfo:
        info, _ = self._valid(raw_key)
        if service is not None and not info.may_call(service):
            raise KeyRefused(403, f"this API key may not call {service}")
        return info

    @internal("the API's authentication: the key it carries is who is acting")
    def actor_for(self, raw_key: str | None) -> Actor:
        digest = hash_key(raw_key) if raw_key else ""
        hit = self._actors.get(digest)
        now = self._clock()
        if hit is not None and hit[1] == KEY_ROWS.value and now < hit[0]:
            return hit[2]
        seen = KEY_ROWS.value   # before the read: a change during it makes the entry stale at once
        info, user = self._valid(raw_key)
        actor = Actor(f"{INVOKE_ONLY}{info.name}", Role.VIEWER) if user is None else \
            Actor(user.username, Role(user.role.name), user.id)
        until = now + timedelta(seconds=ACTOR_CACHE_S)
        if info.expires_at is not None:
            until = min(until, _aware(info.expires_at))
        if len(self._actors) >= ACTOR_CACHE_MAX:
            self._actors.clear()
        self._actors[digest] = (until, seen, actor)
        return actor

    @internal("the gateway records when a key was last used; changes nothing protected")
    def touch(self, name: str) -> None:
        with transaction(self._sessions) as s:
            s.execute(update(ApiKey).where(ApiKey.name == name).values(last_used_at=self._clock()))

    # --- internals ------------------------------------------------------------------------------

    def _valid(self, raw_key: str | None) -> tuple[KeyInfo, User | None]:
        if not raw_key:
            raise KeyRefused(401, "a valid API key is required (Authorization: Bearer <key>)")
        with self._sessions() as s:   # one round trip: the key, its user and the user's role
            row = s.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(raw_key))
                           .options(joinedload(ApiKey.user).joinedload(User.role)))
            info = _info(row, self._clock()) if row is not None else None
            user = row.user if row is not None else None
        if info is None or info.state != "active" or (user is not None and not user.is_active):
            raise KeyRefused(401, "this API key is unknown, revoked or expired")
        return info, user

    def _insert(self, actor: Actor, name: str, services: list[str] | None, expires_days: float | None,
                user_id: int | None) -> NewKey:
        raw = KEY_PREFIX + secrets.token_urlsafe(32)
        now = self._clock()
        expires = now + timedelta(days=expires_days) if expires_days else None
        try:
            with transaction(self._sessions) as s:
                row = ApiKey(name=name, prefix=raw[:12], key_hash=hash_key(raw), services=services, user_id=user_id,
                             created_by=actor.username, created_at=now, expires_at=expires)
                s.add(row)
                s.flush()
                s.refresh(row, ["user"])
                info = _info(row, now)
        except IntegrityError:
            raise ValidationFailed([Problem("name", Message("key.exists", "a key named {name!r} already exists", name=name))]) from None
        return NewKey(info, raw)

    def _check_new(self, name: str, services: list[str] | None, expires_days: float | None,
                   user: str | None) -> int | None:
        problems = [] if NAME_RE.fullmatch(name) else [Problem("name", Message("key.name_rule", "1-64 letters, digits, _ . -"))]
        if expires_days is not None and not 0 < expires_days <= MAX_DAYS:
            problems.append(Problem("expires", Message("key.expires", "between 0 and {max} days, got {days:g}", max=MAX_DAYS,
                                                        days=expires_days)))
        with self._sessions() as s:
            if services:
                known = set(s.scalars(select(AlgorithmService.name)))
                problems += [Problem("services", Message("service.missing", "no service {name!r}", name=svc)) for svc in services if svc not in known]
            user_id = s.scalar(select(User.id).where(User.username == user)) if user else None
        if user and user_id is None:
            problems.append(Problem("user", Message("user.missing", "no user {name!r}", name=user)))
        if problems:
            raise ValidationFailed(problems)
        return user_id


def bearer(header: str | None) -> str | None:
    """The key of an `Authorization: Bearer <key>` header; None when there is none."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def _is_admin(actor: Actor) -> bool:
    from app.auth import can
    return can(actor, Action.MANAGE_USERS)


def _info(row: ApiKey, now: datetime) -> KeyInfo:
    state = "revoked" if row.revoked_at else \
        "expired" if row.expires_at and _aware(row.expires_at) <= now else "active"
    return KeyInfo(row.name, row.prefix, list(row.services) if row.services is not None else None, row.created_by,
                   row.created_at, row.expires_at, row.revoked_at, row.last_used_at, state,
                   row.user.username if row.user is not None else None)


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
