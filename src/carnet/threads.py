"""The hop from the event loop to a thread where a request's transaction runs (issue 11).

Carnet's services are synchronous (SQLAlchemy and psycopg connections); a request runs its transaction on a worker
thread so that the event loop keeps serving the process's other requests while it waits on the database.
Starlette's ``run_in_threadpool`` (anyio's worker threads) did this at a cost measured under load: a fifth of the
time a search holds the GIL (docs/PERFORMANCE.md, "Stage 5"), in anyio's capacity limiter, cancel scopes and
backend look-ups, and in the Python ``threading.Condition`` behind its ``queue.Queue``. Here the hop is the least it
can be: the call is put on one C ``queue.SimpleQueue`` that idle workers wait on, and its worker hands the result
back with ``call_soon_threadsafe``.

Semantics kept from anyio's ``run_sync`` as Starlette uses it:

* at most :data:`MAX_THREADS` calls run at once (anyio's default limiter); a call beyond waits in the queue;
* the call sees the caller's ``contextvars`` (a copy, as ``run_sync`` gives);
* a call, once started, runs to its end: cancelling the awaiting task (a client gone) does not stop its transaction,
  which commits or rolls back on its own; the awaiting task waits for it, as ``run_sync`` makes it wait, so that a
  request's work never outlives its request unseen.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

MAX_THREADS = 40  # anyio's default number of worker threads


def _deliver(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.cancelled():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


class Pool:
    """Worker threads started as calls need them, up to ``max_threads``, kept for the process's life."""

    def __init__(self, max_threads: int = MAX_THREADS, name: str = "carnet-worker") -> None:
        self.max_threads, self.name = max_threads, name
        self._calls: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0  # idle threads less the calls queued (below zero: calls wait for a thread to finish)

    @property
    def threads(self) -> int:
        return self._threads

    def _work(self) -> None:
        while True:
            loop, fut, ctx, fn, args = self._calls.get()
            try:
                value, ok = ctx.run(fn, *args), True
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task, which raises it
                value, ok = exc, False
            with self._lock:  # idle from now on: a call submitted once this one's result is seen takes this thread
                self._idle += 1
            try:
                loop.call_soon_threadsafe(_deliver, fut, ok, value)
            except RuntimeError:  # the loop closed meanwhile (the process is stopping): nobody awaits the call
                pass
            del loop, fut, ctx, fn, args, value

    def _submit(self, item: tuple[Any, ...]) -> None:
        with self._lock:
            start = self._idle <= 0 and self._threads < self.max_threads
            if start:
                self._threads += 1
            else:
                self._idle -= 1
        if start:
            threading.Thread(target=self._work, name=self.name, daemon=True).start()
        self._calls.put(item)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a worker thread; its result, or its exception raised here."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._submit((loop, fut, contextvars.copy_context(), fn, args))
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            # The request was cancelled: its call still runs to its end; wait for it, then let the cancellation go on.
            if not fut.done():
                with contextlib.suppress(BaseException):  # its own outcome no longer has anyone to go to
                    await fut
            raise


POOL = Pool()


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on one of the process's worker threads (:data:`POOL`); its result, or its exception raised here."""
    return await POOL.run(fn, *args)
