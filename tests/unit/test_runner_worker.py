"""PredictThread: calls run one at a time, in submission order, in one thread other than the loop's,
while the event loop stays free; results and exceptions reach their own awaiters."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from orchestration.runner.worker import PredictThread


def run(coro):
    return asyncio.run(coro)


def test_calls_run_in_order_one_at_a_time_in_one_other_thread() -> None:
    active, seen, threads, lock = [0], [], set(), threading.Lock()

    def call(i: int) -> int:
        with lock:
            active[0] += 1
            assert active[0] == 1, "two calls overlapped"
        threads.add(threading.get_ident())
        time.sleep(0.002 if i % 3 else 0)
        seen.append(i)
        with lock:
            active[0] -= 1
        return i * 10

    async def main() -> list[int]:
        worker = PredictThread()
        try:
            return await asyncio.gather(*(worker.run(call, i) for i in range(30)))
        finally:
            worker.close()

    assert run(main()) == [i * 10 for i in range(30)]
    assert seen == list(range(30))
    assert len(threads) == 1 and threading.get_ident() not in threads


def test_exceptions_reach_their_own_caller_and_the_thread_goes_on() -> None:
    def call(x: int) -> int:
        if x == 2:
            raise ValueError("two")
        return x

    async def main() -> list[object]:
        worker = PredictThread()
        try:
            return await asyncio.gather(*(worker.run(call, i) for i in range(4)), return_exceptions=True)
        finally:
            worker.close()

    results = run(main())
    assert results[:2] == [0, 1] and results[3] == 3
    assert isinstance(results[2], ValueError) and str(results[2]) == "two"


def test_loop_stays_free_and_pending_counts_while_a_slow_call_runs() -> None:
    async def main() -> tuple[list[int], int, int]:
        worker = PredictThread()
        try:
            task = asyncio.ensure_future(worker.run(time.sleep, 0.3))
            ticks = 0
            await asyncio.sleep(0.01)
            during = worker.pending
            while not task.done():  # the loop keeps running other work meanwhile
                ticks += 1
                await asyncio.sleep(0.01)
            return [ticks], during, worker.pending
        finally:
            worker.close()

    (ticks,), during, after = run(main())
    assert ticks >= 10 and during == 1 and after == 0


def test_a_slow_call_is_delivered_without_waiting_for_the_rest_of_its_batch() -> None:
    async def main() -> tuple[float, float]:
        worker = PredictThread()
        t0 = time.perf_counter()
        try:
            first = asyncio.ensure_future(worker.run(time.sleep, 0.2))
            rest = [asyncio.ensure_future(worker.run(time.sleep, 0.2)) for _ in range(3)]
            await first
            first_at = time.perf_counter() - t0
            await asyncio.gather(*rest)
            return first_at, time.perf_counter() - t0
        finally:
            worker.close()

    first_at, all_at = run(main())
    assert first_at < 0.4 and all_at >= 0.8


def test_a_call_cancelled_before_it_starts_is_skipped() -> None:
    ran: list[str] = []

    async def main() -> None:
        worker = PredictThread()
        try:
            slow = asyncio.ensure_future(worker.run(time.sleep, 0.2))
            await asyncio.sleep(0.05)  # the slow call is running
            skipped = asyncio.ensure_future(worker.run(ran.append, "skipped"))
            await asyncio.sleep(0)
            skipped.cancel()
            await slow
            assert await worker.run(ran.append, "after") is None
        finally:
            worker.close()

    run(main())
    assert ran == ["after"]


def test_closed_refuses_new_calls_and_drops_queued_ones() -> None:
    ran: list[int] = []

    async def main() -> tuple[bool, bool]:
        worker = PredictThread()
        slow = asyncio.ensure_future(worker.run(time.sleep, 0.2))
        await asyncio.sleep(0.05)
        queued = asyncio.ensure_future(worker.run(ran.append, 1))
        await asyncio.sleep(0.01)
        worker.close()
        await slow
        with pytest.raises(asyncio.CancelledError):
            await queued
        with pytest.raises(RuntimeError, match="closed"):
            await worker.run(ran.append, 2)
        return slow.done(), queued.cancelled()

    assert run(main()) == (True, True)
    assert ran == []
