"""carnet.threads: the hop from the event loop to a worker thread that every request's transaction takes."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from carnet.threads import POOL, Pool, in_thread

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


class Refused(Exception):
    pass


def test_a_call_runs_on_another_thread_and_gives_its_result_or_raises_its_error() -> None:
    async def main() -> None:
        loop_thread = threading.get_ident()
        assert await in_thread(lambda a, b: (a + b, threading.get_ident() != loop_thread), 2, 3) == (5, True)

        def refuse() -> None:
            raise Refused("no")

        with pytest.raises(Refused, match="no"):
            await in_thread(refuse)
        assert await in_thread(lambda: "still serving") == "still serving"  # a failed call leaves its thread usable

    asyncio.run(main())


def test_a_call_sees_the_callers_context_variables_and_cannot_change_them() -> None:
    async def main() -> None:
        WHO.set("request 1")

        def look() -> str:
            seen = WHO.get()
            WHO.set("changed in the thread")
            return seen

        assert await in_thread(look) == "request 1"
        assert WHO.get() == "request 1"

    asyncio.run(main())


def test_no_more_calls_run_at_once_than_the_pool_has_threads_and_every_call_runs() -> None:
    pool = Pool(max_threads=3, name="test-pool")
    lock = threading.Lock()
    running, most = 0, 0

    def call(i: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return i

    async def main() -> list[int]:
        return list(await asyncio.gather(*(pool.run(call, i) for i in range(20))))

    assert asyncio.run(main()) == list(range(20))
    assert most == 3
    assert pool.threads == 3


def test_idle_threads_are_used_again_rather_than_new_ones_started() -> None:
    pool = Pool(max_threads=10, name="test-pool")

    async def main() -> None:
        for i in range(50):
            assert await pool.run(lambda n: n * 2, i) == i * 2

    asyncio.run(main())
    assert pool.threads == 1


def test_a_cancelled_request_waits_for_its_call_to_end_and_the_call_is_not_cut_short() -> None:
    """A client that goes away cancels its request; the transaction already on its thread runs to its end (commit or
    rollback), and the request's task ends only then, as with Starlette's ``run_in_threadpool``."""
    started, release = threading.Event(), threading.Event()
    finished: list[str] = []

    def transaction() -> str:
        started.set()
        release.wait(5)
        finished.append("committed")
        return "done"

    async def main() -> None:
        task = asyncio.create_task(in_thread(transaction))
        while not started.is_set():
            await asyncio.sleep(0.001)
        task.cancel()
        await asyncio.sleep(0.05)
        assert not task.done()  # still waiting for its call
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert finished == ["committed"]

    asyncio.run(main())


def test_the_pool_serves_calls_from_one_event_loop_after_another() -> None:
    """uvicorn runs one loop per process, but the tests (and the CLI's embedded runs) start loops one after another:
    a thread that served a loop now closed serves the next."""
    for i in range(3):
        assert asyncio.run(_twice(i)) == i * 2
    assert POOL.threads >= 1


async def _twice(i: int) -> int:
    return await in_thread(lambda: i * 2)
