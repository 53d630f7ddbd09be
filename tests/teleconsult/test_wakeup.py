"""The NOTIFY listener (carnet.teleconsult.wakeup): it lives as long as its engine, says once that its database went
away (not at every attempt), backs off, and listens again when the database is back."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from sqlalchemy import text

from carnet.db.engine import make_engine
from carnet.logs import configure
from carnet.teleconsult import wakeup
from carnet.teleconsult.wakeup import Wakeups, wakeups
from tests.conftest import World

UNREACHABLE = "postgresql://carnet@127.0.0.1:1/nothing"  # port 1: refused at once, no server needed


def until(condition: Callable[[], bool], tries: int = 400) -> bool:
    """Whether ``condition`` holds within ``tries`` looks (a bound on a background thread, not a timing)."""
    for _ in range(tries):
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def log_lines(err: str, event: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in err.splitlines() if f'"{event}"' in line]


def postgres_only(world: World) -> None:
    if world.services.engine.dialect.name != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")


class Recorded(Wakeups):
    """A listener whose pauses are recorded instead of waited, closed after ``tries`` of them."""

    def __init__(self, url: str, tries: int) -> None:
        self.pauses: list[float] = []
        self.tries = tries
        super().__init__(url)

    def _pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        if len(self.pauses) >= self.tries:
            self.close()


def test_a_database_that_cannot_be_reached_is_logged_once_and_tried_again_less_and_less_often(
        capsys: pytest.CaptureFixture[str]) -> None:
    configure(json_lines=True)
    capsys.readouterr()
    listener = Recorded(UNREACHABLE, tries=8)
    listener.thread.join(timeout=60)
    assert not listener.thread.is_alive() and listener.closed
    assert listener.pauses == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert listener.failures == 8 and listener.connections == 0
    err = capsys.readouterr().err
    assert [x["error_type"] for x in log_lines(err, "teleconsult.wakeup_failed")] == ["OperationalError"]
    assert "carnet@127.0.0.1" not in err


def test_disposing_the_engine_stops_its_listener_and_the_next_socket_starts_another(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    postgres_only(world)
    monkeypatch.setattr(wakeup, "STOP_CHECK", 0.1)
    engine = make_engine(world.services.settings.effective_database_url, pool_size=1)
    try:
        first = wakeups(engine)
        assert first is not None and wakeups(engine) is first
        assert until(lambda: first.connections == 1)
        engine.dispose()
        assert first.closed
        first.thread.join(timeout=30)
        assert not first.thread.is_alive()
        second = wakeups(engine)
        assert second is not None and second is not first and until(lambda: second.connections == 1)
    finally:
        engine.dispose()
    second.thread.join(timeout=30)
    assert not second.thread.is_alive()


def test_a_lost_connection_is_logged_once_and_the_listener_wakes_sockets_again(
        world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    postgres_only(world)
    configure(json_lines=True)
    monkeypatch.setattr(wakeup, "FIRST_PAUSE", 0.01)
    monkeypatch.setattr(wakeup, "STOP_CHECK", 0.1)
    engine = make_engine(world.services.settings.effective_database_url, pool_size=1)
    try:
        listener = wakeups(engine)
        assert listener is not None
        seen: list[str] = []
        listener.wake = seen.append  # type: ignore[method-assign]
        assert until(lambda: listener.connections == 1)
        capsys.readouterr()
        with world.services.engine.begin() as conn:  # what a restart of the server does to its connection
            conn.execute(text("SELECT pg_terminate_backend(CAST(:pid AS integer))"),  # Citus adds a bigint one
                         {"pid": listener.backend_pid})
        assert until(lambda: listener.connections == 2)
        assert until(lambda: _notified(world, "visit-after-restart", seen))
        err = capsys.readouterr().err
        assert len(log_lines(err, "teleconsult.wakeup_failed")) == 1
        assert len(log_lines(err, "teleconsult.wakeup_restored")) == 1
        assert listener.failures == 0
    finally:
        engine.dispose()
    listener.thread.join(timeout=30)
    assert not listener.thread.is_alive()


def _notified(world: World, visit: str, seen: list[str]) -> bool:
    """Send a NOTIFY (again: one sent before the listener's LISTEN is lost, as the relay allows) and say whether the
    listener passed it on."""
    if visit in seen:
        return True
    with world.services.engine.begin() as conn:
        conn.execute(text("SELECT pg_notify(:channel, :visit)"), {"channel": wakeup.CHANNEL, "visit": visit})
    time.sleep(0.05)
    return visit in seen
