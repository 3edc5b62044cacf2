"""One thread that runs the algorithm's calls, one after the other, for an asyncio event loop.

`await PredictThread.run(fn, *args)` queues `fn(*args)`; the thread runs queued calls in
submission order and never two at once, and the awaiting coroutine gets the return value or the
exception. While a call runs the event loop is free to answer other requests (`/health`).

How calls are handed over: the calls submitted during one turn of the event loop go to the thread
as one batch; when the thread was idle the loop then waits (at most `HANDOVER_WAIT_S`, without the
GIL) until the thread has taken the batch, so the GIL changes hands now. Otherwise a woken thread
rarely wins the GIL from a busy loop (which takes it back between callbacks) before CPython's 5 ms
switch interval forces a switch: under wrk -c32 calls then waited 5-10 ms each way (p90 10-12 ms
for a trivial predict). The thread hands finished calls back
with one `call_soon_threadsafe` per batch (or per `DELIVER_AFTER_S`, so a slow call's caller does
not wait for the rest of its batch) and releases the GIL as it waits for the next batch.
Measured against `ThreadPoolExecutor(max_workers=1)` + `asyncio.wrap_future`, which creates a
`concurrent.futures.Future` with a `threading.Condition` and takes three Python locks per call:
see docs/BENCHMARKS.md, "Runner against peers".

Contract:
- `run` raises `RuntimeError` after `close()`; calls still queued at `close()` never run and
  their awaiters are cancelled (the process is about to exit anyway).
- A call whose awaiter was cancelled before the call started is skipped.
- `pending` counts calls submitted and not yet delivered back to the loop (running included);
  read and written on the loop only.
"""
from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
Job = tuple[asyncio.Future, Callable[..., Any], tuple[Any, ...]]
Done = list[tuple[asyncio.Future, bool, Any]]
HANDOVER_WAIT_S = 0.005   # the GIL switch interval: a thread that takes longer gets no extra wait
DELIVER_AFTER_S = 0.001   # a call slower than this is handed back without waiting for its batch
_STOP = None


class PredictThread:
    def __init__(self, name: str = "predict") -> None:
        self.pending = 0
        self._batch: list[Job] = []          # submitted during this turn of the loop
        self._batches: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, list[Job], bool] | None] = \
            queue.SimpleQueue()
        self._taken: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._idle = True                    # the thread waits for a batch (written by the thread)
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """The value of `fn(*args)` computed in the thread, after every call queued before it."""
        if self._closed:
            raise RuntimeError("the predict thread is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if not self._batch:
            loop.call_soon(self._hand_over, loop)
        self._batch.append((future, fn, args))
        self.pending += 1
        try:
            return await future
        finally:
            self.pending -= 1

    def close(self) -> None:
        """Stop after the call in progress; calls still queued are dropped."""
        self._closed = True
        self._batches.put(_STOP)

    # --- on the event loop ----------------------------------------------------------------------

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._batch = self._batch, []
        if self._closed:
            for future, _, _ in batch:
                future.cancel()
            return
        idle = self._idle
        self._batches.put((loop, batch, idle))
        if idle:  # give the GIL to the thread now rather than after a forced switch
            try:
                self._taken.get(timeout=HANDOVER_WAIT_S)
            except queue.Empty:
                pass

    def _delivered(self, done: Done) -> None:
        for future, ok, value in done:
            if future.done():  # cancelled while the call ran
                continue
            if ok:
                future.set_result(value)
            elif isinstance(value, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(value)

    # --- in the thread --------------------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            self._idle = True
            item = self._batches.get()
            self._idle = False
            if item is _STOP:
                self._drop_queued()
                return
            loop, batch, acknowledge = item
            if acknowledge:
                self._taken.put(None)
            if not self._run_batch(loop, batch):
                self._drop_queued()
                return

    def _run_batch(self, loop: asyncio.AbstractEventLoop, batch: list[Job]) -> bool:
        """Run `batch`, handing results back at the end, or as soon as a call took over
        `DELIVER_AFTER_S` (a slow call's caller does not wait for the rest of the batch).
        False if the thread was closed (the calls not run are cancelled) or the loop is closed."""
        done: Done = []
        since = time.perf_counter()
        for i, (future, fn, args) in enumerate(batch):
            if self._closed:
                self._deliver(loop, done)
                self._cancel(loop, batch[i:])
                return False
            if not future.cancelled():  # read without the loop's lock: at worst a cancelled call runs
                try:
                    done.append((future, True, fn(*args)))
                except BaseException as e:  # noqa: BLE001 - handed to the awaiter, which re-raises it
                    done.append((future, False, e))
            if i == len(batch) - 1 or time.perf_counter() - since > DELIVER_AFTER_S:
                if not self._deliver(loop, done):
                    return False
                done, since = [], time.perf_counter()
        return True

    def _deliver(self, loop: asyncio.AbstractEventLoop, done: Done) -> bool:
        """Hand `done` to the loop; False if the loop is closed (nobody is waiting any more)."""
        try:
            loop.call_soon_threadsafe(self._delivered, done)
        except RuntimeError:
            return False
        return True

    def _cancel(self, loop: asyncio.AbstractEventLoop, jobs: list[Job]) -> bool:
        return self._deliver(loop, [(future, False, asyncio.CancelledError()) for future, _, _ in jobs])

    def _drop_queued(self) -> None:
        while True:
            try:
                item = self._batches.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP and not self._cancel(item[0], item[1]):
                return
