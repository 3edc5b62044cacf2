"""Tokens, users, keys, settings and groups."""
from __future__ import annotations

import secrets
import time
from typing import Annotated

from fastapi import APIRouter, Body, Path, Request

from api.deps import P, Who
from app.schemas import (KeyIn, KeyOut, NewKeyOut, SettingHistoryOut, SettingIn, SettingOut, Shape, TokenIn, UserChange,
                         UserIn, UserOut)

router = APIRouter(prefix="/api/v1")
MAX_ID = 2**31 - 1   # database ids are 32-bit


class MeOut(Shape):
    username: str
    role: str


class GroupIn(Shape):
    name: str
    description: str = ""


@router.post("/auth/token", response_model=NewKeyOut, status_code=201, tags=["auth"])
def token(body: TokenIn, request: Request, p: P) -> NewKeyOut:
    """A key acting as the user whose name and password are given (shown once). Failed attempts
    are throttled per name, as on the login page."""
    user = p.auth.authenticate(body.username, body.password)
    name = body.name or f"{user.username}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    return NewKeyOut.of(p.keys.create_for_login(user, name, body.expires_days))


@router.get("/me", response_model=MeOut, tags=["auth"])
def me(who: Who) -> MeOut:
    return MeOut(username=who.username, role=who.role.value)


@router.get("/keys", response_model=list[KeyOut], tags=["keys"])
def keys(p: P, who: Who) -> list[KeyOut]:
    return [KeyOut.of(k) for k in p.keys.list(who)]


@router.post("/keys", response_model=NewKeyOut, status_code=201, tags=["keys"])
def create_key(body: KeyIn, p: P, who: Who) -> NewKeyOut:
    return NewKeyOut.of(p.keys.create(who, body.name, services=body.services, expires_days=body.expires_days,
                                      user=body.user))


@router.delete("/keys/{name}", response_model=KeyOut, tags=["keys"])
def revoke_key(name: str, p: P, who: Who) -> KeyOut:
    return KeyOut.of(p.keys.revoke(who, name))


@router.get("/users", response_model=list[UserOut], tags=["users"])
def users(p: P, who: Who) -> list[UserOut]:
    return [UserOut.of(u) for u in p.auth.list_users(who)]


@router.post("/users", response_model=UserOut, status_code=201, tags=["users"])
def create_user(body: UserIn, p: P, who: Who) -> UserOut:
    return UserOut.of(p.auth.create_user(who, body.username, body.password, body.role))


@router.patch("/users/{username}", response_model=UserOut, tags=["users"])
def change_user(username: str, body: UserChange, p: P, who: Who) -> UserOut:
    p.auth.update_user(who, username, role=body.role, active=body.active, password=body.password)
    return next(UserOut.of(u) for u in p.auth.list_users(who) if u.username == username)


@router.get("/settings", response_model=list[SettingOut], tags=["settings"])
def settings(p: P, who: Who) -> list[SettingOut]:
    """Every setting with its source (environment, database, default); secrets masked."""
    return [SettingOut.of(r) for r in p.settings.all(who)]


@router.get("/settings/history", response_model=list[SettingHistoryOut], tags=["settings"])
def settings_history(p: P, who: Who, key: str | None = None) -> list[SettingHistoryOut]:
    return [SettingHistoryOut.of(h) for h in p.settings.history(who, key)]


@router.post("/settings/history/{entry}/restore", response_model=SettingOut, tags=["settings"])
def restore_setting(entry: Annotated[int, Path(ge=1, le=MAX_ID)], p: P, who: Who) -> SettingOut:
    return SettingOut.of(p.settings.restore(who, entry))


@router.get("/settings/{key}", response_model=SettingOut, tags=["settings"])
def setting(key: str, p: P, who: Who) -> SettingOut:
    return SettingOut.of(p.settings.get(who, key))


@router.put("/settings/{key}", response_model=SettingOut, tags=["settings"])
def set_setting(key: str, body: SettingIn, p: P, who: Who) -> SettingOut:
    return SettingOut.of(p.settings.set(who, key, body.value))


@router.delete("/settings/{key}", response_model=SettingOut, tags=["settings"])
def unset_setting(key: str, p: P, who: Who) -> SettingOut:
    return SettingOut.of(p.settings.unset(who, key))


@router.get("/groups", response_model=dict[str, list[str]], tags=["groups"])
def groups(p: P, who: Who) -> dict[str, list[str]]:
    return p.services.groups(who)


@router.post("/groups", response_model=dict[str, list[str]], status_code=201, tags=["groups"])
def create_group(body: GroupIn, p: P, who: Who) -> dict[str, list[str]]:
    p.services.create_group(who, body.name, body.description)
    return p.services.groups(who)


@router.put("/services/{name}/group", response_model=dict[str, list[str]], tags=["groups"])
def assign_group(name: str, p: P, who: Who, group: Annotated[str | None, Body(embed=True)] = None) \
        -> dict[str, list[str]]:
    p.services.set_group(who, name, group)
    return p.services.groups(who)
