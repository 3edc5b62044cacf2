"""A steady load through the gateway that counts every request: `Load(url, key, rate)` sends
POST /ai/<service>/predict at `rate` requests per second from several threads until stopped, and
reports every outcome (status, replica that answered, latency, or the exception)."""
from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx


@dataclass
class Outcome:
    at: float
    status: int | None
    replica: str
    latency_s: float
    error: str = ""


@dataclass
class LoadReport:
    outcomes: list[Outcome] = field(default_factory=list)
    resent: int = 0     # requests sent again on a new connection after an idle one was closed under them

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status != 200]

    @property
    def total(self) -> int:
        return len(self.outcomes)

    def replicas(self, since: float = 0.0) -> Counter:
        return Counter(o.replica for o in self.outcomes if o.status == 200 and o.at >= since)

    def summary(self) -> str:
        kinds = Counter(o.error or str(o.status) for o in self.failed)
        slowest = max((o.latency_s for o in self.outcomes), default=0)
        return (f"{self.total} requests, {len(self.failed)} failed {dict(kinds)}, {self.resent} sent again "
                f"after a reload closed their connection, slowest {slowest:.2f} s")


class Load:
    """`rate` requests/s in all, spread over `workers` threads, each with its own keep-alive client
    (or a new connection per request with `keepalive=False`)."""

    def __init__(self, url: str, key: str, *, rate: float = 50, workers: int = 8, timeout: float = 30,
                 body: dict | None = None, keepalive: bool = True) -> None:
        self.url, self.key, self.rate, self.workers, self.timeout = url, key, rate, workers, timeout
        self.body = body or {"inputs": ["a steady stream of calls"]}
        self.keepalive = keepalive
        self.report = LoadReport()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Load:
        self._threads = [threading.Thread(target=self._work, args=(i,), daemon=True) for i in range(self.workers)]
        for th in self._threads:
            th.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for th in self._threads:
            th.join(self.timeout + 5)

    def _work(self, index: int) -> None:
        period = self.workers / self.rate
        limits = httpx.Limits(max_keepalive_connections=1 if self.keepalive else 0)
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(timeout=self.timeout, limits=limits, headers=headers) as client:
            next_at = time.monotonic() + period * index / self.workers
            while not self._stop.is_set():
                self._stop.wait(max(0.0, next_at - time.monotonic()))
                if self._stop.is_set():
                    break
                next_at = max(next_at + period, time.monotonic())   # a slow call delays, never bunches, the next
                self._one(client)

    def _one(self, client: httpx.Client) -> None:
        t0 = time.monotonic()
        try:
            try:
                reply = client.post(self.url, json=self.body)
            except (httpx.RemoteProtocolError, httpx.ReadError) as e:
                if "without sending a response" not in str(e) and "Connection reset by peer" not in str(e):
                    raise
                # A kept-alive connection closed under the request before nginx read it: a graceful
                # reload (each withdrawal is one) closes the old workers' idle connections, and one
                # can cross a request on its way in — the client sees the close (FIN) or, when the
                # request's bytes were already in the closed socket's buffer, a reset (RST). Nothing
                # reached a replica; clients send it again on a new connection, as Go's transport
                # and urllib3 do for such a connection.
                with self._lock:
                    self.report.resent += 1
                reply = client.post(self.url, json=self.body)
            outcome = Outcome(time.time(), reply.status_code, reply.headers.get("x-algostage-replica", ""),
                              time.monotonic() - t0, "" if reply.status_code == 200 else reply.text[:200])
        except httpx.HTTPError as e:
            outcome = Outcome(time.time(), None, "", time.monotonic() - t0, f"{type(e).__name__}: {e}")
        with self._lock:
            self.report.outcomes.append(outcome)
