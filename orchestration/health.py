"""Health probing of replicas and the deploy smoke test (DESIGN §3-§4)."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

READY_STATES = {"READY", "BUSY"}


@dataclass(frozen=True)
class Health:
    status: str          # STARTING | READY | BUSY | SETUP_FAILED | UNREACHABLE
    error: str = ""
    latency_ms: float = 0.0

    @property
    def ready(self) -> bool:
        return self.status in READY_STATES


def probe(client: httpx.Client, base_url: str, timeout: float = 2.0) -> Health:
    """One GET /health. An unreachable replica is a result (UNREACHABLE), not an exception."""
    t0 = time.perf_counter()
    try:
        r = client.get(f"{base_url}/health", timeout=timeout)
        body = r.json()
    except (httpx.HTTPError, ValueError) as e:
        return Health("UNREACHABLE", f"{type(e).__name__}: {e}"[:300])
    ms = (time.perf_counter() - t0) * 1000
    return Health(str(body.get("status", "UNKNOWN")), str(body.get("error") or ""), ms)


def wait_ready(client: httpx.Client, base_url: str, timeout: float, *,
               alive: Callable[[], str | None] = lambda: None, interval: float = 0.1) -> Health:
    """Poll /health until READY/BUSY, SETUP_FAILED, `alive()` returns a reason the process is
    gone (e.g. "FATAL"), or `timeout` seconds pass. Returns the last Health seen."""
    deadline = time.monotonic() + timeout
    health = Health("UNREACHABLE", "not probed yet")
    while time.monotonic() < deadline:
        health = probe(client, base_url)
        if health.ready or health.status == "SETUP_FAILED":
            return health
        gone = alive()
        if gone:
            return Health("UNREACHABLE", f"the process is {gone}")
        time.sleep(interval)
    return Health(health.status, f"not READY within {timeout:g} s ({health.error or health.status})")
