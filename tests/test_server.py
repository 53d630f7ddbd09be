"""The multi-worker server's parent replaces a worker that died (killed, out of memory), and gives up, with the
worker's exit code, when workers die at once again and again (a configuration error)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest

from carnet import server


@dataclass
class FakeWorker:
    alive: bool
    exitcode: int | None = None
    pid: int | None = 1

    def is_alive(self) -> bool:
        return self.alive

    def join(self) -> None:
        self.alive = False


def test_a_dead_worker_is_replaced_and_the_others_are_left_alone() -> None:
    dead, healthy = FakeWorker(False, exitcode=-9), FakeWorker(True)
    procs = [dead, healthy]
    stopping = threading.Event()
    replacements: list[FakeWorker] = []

    def replacement() -> FakeWorker:
        w = FakeWorker(True)
        replacements.append(w)
        stopping.set()  # one pass is enough
        return w

    server.supervise(procs, replacement, stopping, interval=0.01)  # type: ignore[arg-type]
    assert len(replacements) == 1 and procs == [replacements[0], healthy]


def test_workers_that_die_at_once_again_and_again_stop_the_node_with_their_exit_code() -> None:
    stopping = threading.Event()
    calls = []

    def replacement() -> FakeWorker:
        calls.append(1)
        return FakeWorker(False, exitcode=3)  # e.g. refused to start: another master key

    with pytest.raises(SystemExit) as stopped:
        server.supervise([FakeWorker(False, exitcode=3)], replacement, stopping, interval=0.001)  # type: ignore[list-item, arg-type]
    assert stopped.value.code == 3
    assert len(calls) == server.MAX_QUICK_DEATHS


def test_workers_killed_again_and_again_are_always_replaced() -> None:
    stopping = threading.Event()
    calls = []

    def replacement() -> FakeWorker:
        calls.append(1)
        if len(calls) > 3 * server.MAX_QUICK_DEATHS:
            stopping.set()
            return FakeWorker(True)
        return FakeWorker(False, exitcode=-9)  # killed at once, each time

    server.supervise([FakeWorker(False, exitcode=-9)], replacement, stopping, interval=0.001)  # type: ignore[list-item, arg-type]
    assert len(calls) == 3 * server.MAX_QUICK_DEATHS + 1
