"""The short caches of the invoke path (issue 10): the API's key check (`ApiKeys.actor_for`) and the
invoker's resolved service (a kept `Target`), on each database backend.

A change made in this process applies at the next request; one made by another process — here a
plain SQL statement on the same database, which no ORM event of this process sees, as a CLI's or
a page's would not be — within the documented bound (ACTOR_CACHE_S, TARGET_CACHE_S); an expiring
key is never accepted from the cache past its expiry; a call to a service removed meanwhile is
still recorded."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, insert, select, update

from app.auth import Role
from app.db import transaction
from app.errors import Missing
from app.invoke import TARGET_CACHE_S, Invoker
from app.keys import ACTOR_CACHE_S, ApiKeys, KeyRefused
from app.models import Algorithm, AlgorithmCall, AlgorithmService, AlgorithmVersion, ApiKey, ServiceConfig, User
from app.models import Role as RoleRow
from app.platform import Platform
from app.services.routing import Route
from tests.conftest import ADMIN

PASSWORD = "a-long-password"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def another_process(p: Platform, statement: Any) -> None:
    """A change as another process makes it: SQL on the same database, no session of this one."""
    with p.engine.begin() as conn:
        conn.execute(statement)


# --- the key check --------------------------------------------------------------------------------

def test_a_revoke_applies_at_once_here_and_within_the_bound_from_another_process(platform: Platform) -> None:
    platform.auth.create_user(ADMIN, "ada", PASSWORD, Role.OPERATOR)
    clock = Clock()
    keys = ApiKeys(platform.sessions, clock=clock)
    here, there = (keys.create(ADMIN, name, user="ada").key for name in ("here", "there"))
    assert keys.actor_for(here).username == "ada" and keys.actor_for(there).role is Role.OPERATOR
    keys.revoke(ADMIN, "here")
    with pytest.raises(KeyRefused):
        keys.actor_for(here)
    assert keys.actor_for(there).username == "ada"
    another_process(platform, update(ApiKey).where(ApiKey.name == "there").values(revoked_at=clock.now))
    clock.now += timedelta(seconds=ACTOR_CACHE_S / 2)
    assert keys.actor_for(there).username == "ada"   # kept: not seen yet
    clock.now += timedelta(seconds=ACTOR_CACHE_S / 2)
    with pytest.raises(KeyRefused) as refused:
        keys.actor_for(there)
    assert refused.value.status == 401


def test_a_users_new_role_from_another_process_applies_within_the_bound(platform: Platform) -> None:
    platform.auth.create_user(ADMIN, "otto", PASSWORD, Role.OPERATOR)
    clock = Clock()
    keys = ApiKeys(platform.sessions, clock=clock)
    raw = keys.create(ADMIN, "otto-ci", user="otto").key
    assert keys.actor_for(raw).role is Role.OPERATOR
    with platform.sessions() as s:
        viewer = s.scalar(select(RoleRow.id).where(RoleRow.name == "viewer"))
    another_process(platform, update(User).where(User.username == "otto").values(role_id=viewer))
    assert keys.actor_for(raw).role is Role.OPERATOR
    clock.now += timedelta(seconds=ACTOR_CACHE_S)
    assert keys.actor_for(raw).role is Role.VIEWER
    platform.auth.update_user(ADMIN, "otto", active=False)   # in this process: at the next request
    with pytest.raises(KeyRefused):
        keys.actor_for(raw)


def test_an_expiring_key_is_never_accepted_from_the_cache_past_its_expiry(platform: Platform) -> None:
    platform.auth.create_user(ADMIN, "ada", PASSWORD, Role.ADMIN)
    clock = Clock()
    keys = ApiKeys(platform.sessions, clock=clock)
    raw = keys.create(ADMIN, "short", user="ada", expires_days=1).key
    clock.now += timedelta(days=1) - timedelta(seconds=ACTOR_CACHE_S / 4)
    assert keys.actor_for(raw).username == "ada"
    clock.now += timedelta(seconds=ACTOR_CACHE_S / 4)
    with pytest.raises(KeyRefused, match="expired"):
        keys.actor_for(raw)


# --- the invoker's kept Target ---------------------------------------------------------------------

class OneReplica:
    """A Router with one route, whatever the table says (a replica that keeps answering)."""

    def __init__(self) -> None:
        self.forgotten: list[str] = []

    def routes(self, service: str) -> list[Route]:
        return [Route(f"{service}-1", "http://replica.test")]

    def forget(self, service: str) -> None:
        self.forgotten.append(service)


class Replica:
    def __init__(self) -> None:
        self.requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        inputs = json.loads(request.content)["inputs"]
        return httpx.Response(200, json={"outputs": [{"label": "x"} for _ in inputs], "predict_ms": 1.0})


def service_with_two_versions(p: Platform) -> dict[str, int]:
    with transaction(p.sessions) as s:
        algo = Algorithm(name="algo", title="A", task="text.classification", created_by="t")
        s.add(algo)
        s.flush()
        versions = {}
        for n in (1, 2):
            v = AlgorithmVersion(algorithm_id=algo.id, number=n, tag=f"v{n}", commit_sha="0" * 40, manifest={}, files=[],
                                 created_by="t")
            s.add(v)
            s.flush()
            versions[v.tag] = v.id
        svc = AlgorithmService(name="svc", algorithm_id=algo.id, version_id=versions["v1"], runtime="supervisor",
                               created_by="t")
        s.add(svc)
        s.flush()
        return {**versions, "service": svc.id}


def invoker(p: Platform, replica: Replica, ticks: Ticks) -> Invoker:
    return Invoker(p.sessions, p.service_configs, OneReplica(),  # type: ignore[arg-type]
                   client=httpx.Client(transport=httpx.MockTransport(replica)), clock=ticks)


def test_a_kept_target_sees_this_processs_changes_at_once_and_another_processs_within_the_bound(
        platform: Platform) -> None:
    ids = service_with_two_versions(platform)
    replica, ticks = Replica(), Ticks()
    inv = invoker(platform, replica, ticks)
    assert inv.invoke(ADMIN, "svc", ["a", "b"]).version == "v1" and replica.requests == 1   # max_batch 16
    another_process(platform, insert(ServiceConfig).values(service_id=ids["service"], key="max_batch", value="1",
                                                           updated_by="t", updated_at=datetime.now(timezone.utc)))
    another_process(platform, update(AlgorithmService).where(AlgorithmService.id == ids["service"])
                    .values(version_id=ids["v2"]))
    ticks.now += TARGET_CACHE_S / 2
    assert inv.invoke(ADMIN, "svc", ["a", "b"]).version == "v1" and replica.requests == 2   # kept
    ticks.now += TARGET_CACHE_S / 2
    assert inv.invoke(ADMIN, "svc", ["a", "b"]).version == "v2" and replica.requests == 4   # read again
    platform.service_configs.set(ADMIN, "svc", "max_batch", "2")   # in this process: at the next call
    assert inv.invoke(ADMIN, "svc", ["a", "b"]).version == "v2" and replica.requests == 5
    with transaction(platform.sessions) as s:                        # a switch made here (as a deploy does)
        s.get(AlgorithmService, ids["service"]).version_id = ids["v1"]
    result = inv.invoke(ADMIN, "svc", ["a"])
    assert result.version == "v1"
    recorded = platform.history.calls(ADMIN)
    assert [c.version for c in recorded] == ["v1", "v2", "v2", "v1", "v1"] and recorded[0].id == result.call_id


def test_a_call_to_a_service_removed_meanwhile_is_still_recorded(platform: Platform) -> None:
    ids = service_with_two_versions(platform)
    replica, ticks = Replica(), Ticks()
    inv = invoker(platform, replica, ticks)
    first = inv.invoke(ADMIN, "svc", ["a"])
    another_process(platform, delete(AlgorithmService).where(AlgorithmService.id == ids["service"]))
    second = inv.invoke(ADMIN, "svc", ["a"])   # the kept Target names a service that is gone
    with platform.sessions() as s:
        rows = {c.id: c for c in s.scalars(select(AlgorithmCall))}
    assert set(rows) == {first.call_id, second.call_id}
    assert rows[second.call_id].service_id is None and rows[second.call_id].service_name == "svc"
    assert rows[second.call_id].status == "ok"
    with pytest.raises(Missing):   # and it was forgotten: the next call finds no such service
        inv.invoke(ADMIN, "svc", ["a"])
