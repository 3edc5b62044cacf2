"""Shared state (app/shared.py) against the real Redis on 127.0.0.1:6379 — never skipped: the run
fails if it is not there — and embedded: the login throttle (atomic, shared by processes, falling
back to the database when Redis is down), the result cache (bounded LRU with a TTL) and the
health board."""
from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
import redis

from app.auth import FREE_ATTEMPTS, AuthService, DatabaseThrottle, LoginError, Role
from app.platform import Platform
from app.shared import EmbeddedState, LocalResults, RedisResults, RedisState, open_shared
from orchestration.health import Health
from tests.conftest import ADMIN
from tests.integration.test_sessions_and_throttle import CountingHasher

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_state() -> RedisState:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as e:
        pytest.fail(f"Redis on 127.0.0.1:6379 is required by these tests and is not reachable: {e}")
    state = RedisState(REDIS_URL, f"test-{uuid.uuid4().hex[:10]}")
    yield state
    keys = list(client.scan_iter(f"{state.prefix}*"))
    if keys:
        client.delete(*keys)


def test_twenty_parallel_wrong_logins_through_two_processes_redis_counters(platform: Platform,
                                                                           redis_state: RedisState) -> None:
    """Two AuthServices (as two UI processes would have) over one Redis namespace: 20 parallel
    wrong passwords split between them are checked at most FREE_ATTEMPTS times and all counted."""
    hasher = CountingHasher()
    first = AuthService(platform.sessions, hasher=hasher, throttle=redis_state.throttle(platform.sessions))
    other_process = RedisState(REDIS_URL, redis_state.prefix.split(":")[1])
    second = AuthService(platform.sessions, hasher=hasher, throttle=other_process.throttle(platform.sessions))
    first.create_user(ADMIN, "alice", "password-1", Role.OPERATOR)
    hasher.verified = 0
    barrier = threading.Barrier(20)

    def attempt(i: int) -> LoginError:
        barrier.wait()
        try:
            (first if i % 2 else second).authenticate("alice", "wrong-password")
        except LoginError as e:
            return e
        raise AssertionError("a wrong password logged in")

    with ThreadPoolExecutor(20) as pool:
        errors = list(pool.map(attempt, range(20)))
    assert hasher.verified <= FREE_ATTEMPTS
    assert sum(1 for e in errors if e.retry_after) >= 20 - FREE_ATTEMPTS
    assert redis_state.throttle(platform.sessions).failures("alice") == 20
    assert DatabaseThrottle(platform.sessions).failures("alice") == 0, "Redis held the count, not the database"


def test_the_redis_throttle_waits_doubles_and_clears_like_the_database_one(platform: Platform,
                                                                         redis_state: RedisState) -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    throttle = redis_state.throttle(platform.sessions)
    assert [throttle.reserve("bob", now) for _ in range(FREE_ATTEMPTS)] == [0] * FREE_ATTEMPTS
    assert throttle.reserve("bob", now) == 2
    later = datetime.fromtimestamp(now.timestamp() + 2, timezone.utc)
    assert throttle.reserve("bob", later) == 0          # checked once more, locks for 2^3 s
    assert throttle.reserve("bob", later) == 8
    throttle.clear("bob")
    assert throttle.failures("bob") == 0 and throttle.reserve("bob", later) == 0


def test_with_redis_unreachable_the_database_throttle_stands_in(platform: Platform) -> None:
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
    state = open_shared(dead, "test")
    auth = AuthService(platform.sessions, throttle=state.throttle(platform.sessions))
    auth.create_user(ADMIN, "carol", "password-1", Role.VIEWER)
    for _ in range(FREE_ATTEMPTS):
        with pytest.raises(LoginError):
            auth.authenticate("carol", "wrong")
    with pytest.raises(LoginError) as refused:
        auth.authenticate("carol", "password-1")
    assert refused.value.retry_after > 0
    assert DatabaseThrottle(platform.sessions).failures("carol") == FREE_ATTEMPTS + 1
    assert state.results.get("k") is None and state.health.read(["x"]) == {}   # misses, not errors


def test_the_redis_result_cache_is_an_lru_with_a_ttl(redis_state: RedisState) -> None:
    cache = RedisResults(redis_state.client, redis_state.prefix, max_entries=3, ttl_s=1)
    for key in "abc":
        cache.put(key, {"v": key})
    assert cache.get("a") == {"v": "a"}                   # a is now the most recently used
    cache.put("d", {"v": "d"})
    assert cache.get("b") is None and {k: cache.get(k) for k in "acd"} == {k: {"v": k} for k in "acd"}
    assert redis_state.client.zcard(f"{redis_state.prefix}results:lru") == 3
    cache.put("huge", {"v": "x" * 300_000})               # above RESULT_MAX_BYTES: not cached
    assert cache.get("huge") is None
    time.sleep(1.2)
    assert cache.get("c") is None, "expired"


def test_the_embedded_result_cache_is_an_lru_with_a_ttl() -> None:
    now = [0.0]
    cache = LocalResults(max_entries=2, ttl_s=10, clock=lambda: now[0])
    cache.put("a", {"v": 1})
    cache.put("b", {"v": 2})
    assert cache.get("a") == {"v": 1}
    cache.put("c", {"v": 3})
    assert cache.get("b") is None and cache.get("a") == {"v": 1}
    now[0] = 11
    assert cache.get("a") is None and cache.get("c") is None


def test_the_health_board_is_shared_and_expires(redis_state: RedisState) -> None:
    reader = RedisState(REDIS_URL, redis_state.prefix.split(":")[1])
    redis_state.health.publish({"algo-x-1": Health("READY", "", 1.5), "algo-x-2": Health("UNREACHABLE", "boom")}, 0.5)
    assert reader.health.read(["algo-x-1", "algo-x-2", "algo-x-3"]) == {
        "algo-x-1": Health("READY", "", 1.5), "algo-x-2": Health("UNREACHABLE", "boom")}
    time.sleep(0.7)
    assert reader.health.read(["algo-x-1"]) == {}


def test_the_platform_uses_redis_only_when_redis_url_is_set(tmp_path) -> None:
    home = tmp_path / "home"
    embedded = Platform.open(home, {"ALGOSTAGE_HOME": str(home)})
    with_redis = Platform.open(home, {"ALGOSTAGE_HOME": str(home), "REDIS_URL": REDIS_URL})
    try:
        assert isinstance(embedded.shared, EmbeddedState)
        assert with_redis.shared.kind == "redis" and with_redis.shared.client.ping()
        assert embedded.shared is not with_redis.shared
    finally:
        embedded.close()
        with_redis.close()
