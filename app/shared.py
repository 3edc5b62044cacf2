"""State that several platform processes share (DESIGN §9): the login throttle's counters, the
result cache and the replicas' live health. With `REDIS_URL` set it lives in Redis, so several UI
and API processes behind a load balancer behave as one; without it, embedded (the throttle in the
database, the cache and the health board in the process).

Redis holds nothing that matters for good: the database stays the record (calls, sessions,
settings, routes). If Redis restarts or cannot be reached, each part falls back — the throttle to
the database, the cache to the database's call history, the health board to probing — logs it
once, and uses Redis again when it answers.

Keys are namespaced by the database the platform uses (`algostage:<digest>:…`), so platforms that
share one Redis never meet, and processes of one platform always do.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from app.auth import FREE_ATTEMPTS, MAX_DELAY_S, DatabaseThrottle, LoginThrottle, internal
from orchestration.health import Health

log = logging.getLogger("algostage.shared")

RESULT_TTL_S = 3600
RESULT_MAX_ENTRIES = 5000
RESULT_MAX_BYTES = 256 * 1024       # larger results are served from the database only
THROTTLE_TTL_S = MAX_DELAY_S * 4    # a name's counter is forgotten this long after its last attempt


class ResultCache(Protocol):
    """Recent successful results by cache key (version, parameters and input digests)."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, value: dict[str, Any]) -> None: ...


class HealthBoard(Protocol):
    """The agent's latest health check of each replica, for every process to read."""

    def publish(self, results: Mapping[str, Health], ttl_s: float) -> None: ...

    def read(self, replicas: list[str]) -> dict[str, Health]: ...


class SharedState(Protocol):
    kind: str

    def throttle(self, sessions: sessionmaker[Session]) -> LoginThrottle: ...

    @property
    def results(self) -> ResultCache: ...

    @property
    def health(self) -> HealthBoard: ...


# --- embedded -------------------------------------------------------------------------------------

class LocalResults:
    """A bounded LRU with a TTL, in this process."""

    def __init__(self, max_entries: int = RESULT_MAX_ENTRIES, ttl_s: float = RESULT_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._max, self._ttl, self._clock = max_entries, ttl_s, clock
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            if found[0] <= self._clock():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return found[1]

    def put(self, key: str, value: dict[str, Any]) -> None:
        if len(json.dumps(value, default=str)) > RESULT_MAX_BYTES:
            return
        with self._lock:
            self._entries[key] = (self._clock() + self._ttl, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)


class LocalHealth:
    """Health known in this process only (the agent's own); other processes probe."""

    def __init__(self) -> None:
        self._board: dict[str, tuple[float, Health]] = {}

    def publish(self, results: Mapping[str, Health], ttl_s: float) -> None:
        until = time.monotonic() + ttl_s
        self._board.update({name: (until, h) for name, h in results.items()})

    def read(self, replicas: list[str]) -> dict[str, Health]:
        now = time.monotonic()
        return {n: h for n in replicas if (found := self._board.get(n)) and (h := found[1]) and found[0] > now}


class EmbeddedState:
    kind = "embedded"

    def __init__(self) -> None:
        self.results: ResultCache = LocalResults()
        self.health: HealthBoard = LocalHealth()

    @internal("wiring: the platform builds its AuthService with it")
    def throttle(self, sessions: sessionmaker[Session]) -> LoginThrottle:
        return DatabaseThrottle(sessions)


# --- Redis ------------------------------------------------------------------------------------------

_RESERVE = """
local now = tonumber(ARGV[1])
local locked = tonumber(redis.call('HGET', KEYS[1], 'locked_until') or '0')
local n = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('EXPIRE', KEYS[1], ARGV[4])
if locked > now then
  return tostring(locked - now)
end
local free, cap = tonumber(ARGV[2]), tonumber(ARGV[3])
local delay = 0
if n >= free then delay = math.min(2 ^ (n - free + 1), cap) end
redis.call('HSET', KEYS[1], 'locked_until', tostring(now + delay))
return '0'
"""


class _Guard:
    """Runs Redis calls; on a Redis error says so once (until Redis answers again) and returns None."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._down = False

    def __call__(self, fn: Callable[[], Any]) -> Any:
        import redis
        try:
            result = fn()
        except (redis.RedisError, OSError) as e:
            if not self._down:
                log.warning("Redis unavailable for the %s (%s); falling back until it answers", self._what, e)
            self._down = True
            return None
        if self._down:
            log.warning("Redis answers again; the %s uses it", self._what)
        self._down = False
        return result


class RedisThrottle:
    """The login throttle as one atomic Lua script per attempt (count, lock, expiry); while Redis
    cannot be reached, the database's throttle stands in."""

    def __init__(self, client: Any, prefix: str, fallback: DatabaseThrottle) -> None:
        self._client, self._prefix, self._fallback = client, prefix, fallback
        self._script = client.register_script(_RESERVE)
        self._guard = _Guard("login throttle")

    def reserve(self, username: str, now: datetime) -> int:
        wait = self._guard(lambda: self._script(keys=[self._key(username)],
                                                args=[now.timestamp(), FREE_ATTEMPTS, MAX_DELAY_S, THROTTLE_TTL_S]))
        if wait is None:
            return self._fallback.reserve(username, now)
        seconds = float(wait)
        return max(1, int(seconds + 0.999)) if seconds > 0 else 0

    def clear(self, username: str) -> None:
        if self._guard(lambda: self._client.delete(self._key(username))) is None:
            self._fallback.clear(username)

    def failures(self, username: str) -> int:
        return int(self._client.hget(self._key(username), "failures") or 0)

    def _key(self, username: str) -> str:
        return f"{self._prefix}login:{username}"


class RedisResults:
    """The result cache in Redis: each entry a string with a TTL, an LRU index (a sorted set by
    last use) trimmed to `max_entries` on every insert."""

    def __init__(self, client: Any, prefix: str, max_entries: int = RESULT_MAX_ENTRIES,
                 ttl_s: int = RESULT_TTL_S) -> None:
        self._client, self._prefix, self._max, self._ttl = client, prefix, max_entries, ttl_s
        self._guard = _Guard("result cache")

    def get(self, key: str) -> dict[str, Any] | None:
        def read() -> Any:
            pipe = self._client.pipeline()
            pipe.get(self._key(key))
            pipe.zadd(self._index, {key: time.time()}, xx=True)
            return pipe.execute()[0]
        raw = self._guard(read)
        return json.loads(raw) if raw else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        raw = json.dumps(value, default=str)
        if len(raw) > RESULT_MAX_BYTES:
            return

        def write() -> None:
            pipe = self._client.pipeline()
            pipe.set(self._key(key), raw, ex=self._ttl)
            pipe.zadd(self._index, {key: time.time()})
            pipe.zcard(self._index)
            size = pipe.execute()[-1]
            if size > self._max:
                evicted = [k.decode() if isinstance(k, bytes) else k
                           for k, _ in self._client.zpopmin(self._index, size - self._max)]
                if evicted:
                    self._client.delete(*(self._key(k) for k in evicted))
        self._guard(write)

    @property
    def _index(self) -> str:
        return f"{self._prefix}results:lru"

    def _key(self, key: str) -> str:
        return f"{self._prefix}results:{key}"


class RedisHealth:
    def __init__(self, client: Any, prefix: str) -> None:
        self._client, self._prefix = client, prefix
        self._guard = _Guard("health board")

    def publish(self, results: Mapping[str, Health], ttl_s: float) -> None:
        def write() -> None:
            pipe = self._client.pipeline()
            for name, health in results.items():
                pipe.set(f"{self._prefix}health:{name}", json.dumps(asdict(health)), px=max(1, int(ttl_s * 1000)))
            pipe.execute()
        if results:
            self._guard(write)

    def read(self, replicas: list[str]) -> dict[str, Health]:
        if not replicas:
            return {}
        raw = self._guard(lambda: self._client.mget([f"{self._prefix}health:{n}" for n in replicas])) or []
        return {n: Health(**json.loads(r)) for n, r in zip(replicas, raw) if r}


class RedisState:
    kind = "redis"

    def __init__(self, url: str, namespace: str) -> None:
        import redis
        self.client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5,
                                           health_check_interval=10)
        self.prefix = f"algostage:{namespace}:"
        self.results: ResultCache = RedisResults(self.client, self.prefix)
        self.health: HealthBoard = RedisHealth(self.client, self.prefix)

    @internal("wiring: the platform builds its AuthService with it")
    def throttle(self, sessions: sessionmaker[Session]) -> LoginThrottle:
        return RedisThrottle(self.client, self.prefix, DatabaseThrottle(sessions))


def open_shared(redis_url: str, database_url: str) -> SharedState:
    """Redis when `redis_url` is set, else embedded; namespaced by the database's URL."""
    if not redis_url:
        return EmbeddedState()
    return RedisState(redis_url, hashlib.sha256(database_url.encode()).hexdigest()[:12])
