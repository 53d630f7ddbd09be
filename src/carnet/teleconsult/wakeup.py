"""A wake-up for the signalling relay on PostgreSQL: ``LISTEN``/``NOTIFY`` so that a socket reads its peer's message
as soon as it is committed, instead of at its next poll.

The relay table stays the truth (:mod:`carnet.teleconsult.room`): each message's transaction also sends
``pg_notify('carnet_teleconsult', <visit id>)`` (delivered at its commit, to every node listening); one thread per
process and engine listens on its own connection and wakes the sockets of that visit on this node, which then read
the table as they always do. A lost notification, a listener down, SQLite, Citus workers that do not pass
notifications on: the sockets still poll every ``CARNET_SIGNAL_POLL_MS``; only the delay grows back.

The listener lives as long as its engine: :meth:`Engine.dispose` (the end of a process's services, a test's
database about to be dropped) closes it, and the next socket starts a new one. When its connection fails (a database
restarting, a network cut) it says so once (``teleconsult.wakeup_failed``, the error's type only), tries again after
:data:`FIRST_PAUSE`, doubling up to :data:`LONGEST_PAUSE`, and says ``teleconsult.wakeup_restored`` when it listens
again; the sockets poll meanwhile.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import defaultdict

import structlog
from sqlalchemy import Engine
from sqlalchemy import event as sa_event

CHANNEL = "carnet_teleconsult"
APPLICATION_NAME = "carnet-teleconsult-wakeup"  # how its connection shows in pg_stat_activity
FIRST_PAUSE = 1.0  # seconds before trying again after a failure; doubled at each failure in a row...
LONGEST_PAUSE = 30.0  # ...up to this
STOP_CHECK = 2.0  # seconds: how soon a closed listener's thread notices and ends
CONNECT_TIMEOUT = 10  # seconds for one connection attempt
logger = structlog.get_logger("carnet")


class Wakeups:
    """The sockets of this process waiting for a visit's messages, and the thread that wakes them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.lock = threading.Lock()
        self.waiting: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = defaultdict(set)
        self.stopped = threading.Event()
        self.failures = 0  # connection failures in a row (0 while listening)
        self.connections = 0  # how many times it has started listening (for the operator and the tests)
        self.backend_pid: int | None = None  # its connection's server process, while listening
        self.thread = threading.Thread(target=self._listen, name="teleconsult-wakeup", daemon=True)
        self.thread.start()

    @property
    def closed(self) -> bool:
        return self.stopped.is_set()

    def close(self) -> None:
        """Stop listening: the thread closes its connection and ends within :data:`STOP_CHECK` seconds (or at once
        if it is waiting to try again). Idempotent."""
        self.stopped.set()

    def register(self, visit: str, event: asyncio.Event) -> None:
        with self.lock:
            self.waiting[visit].add((asyncio.get_running_loop(), event))

    def unregister(self, visit: str, event: asyncio.Event) -> None:
        with self.lock:
            entries = self.waiting.get(visit, set())
            for entry in [e for e in entries if e[1] is event]:
                entries.discard(entry)
            if not entries:
                self.waiting.pop(visit, None)

    def wake(self, visit: str) -> None:
        with self.lock:
            entries = list(self.waiting.get(visit, ()))
        for loop, event in entries:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that socket's loop is gone
                pass

    def _pause(self, seconds: float) -> None:
        """Wait before trying again; cut short by :meth:`close`."""
        self.stopped.wait(seconds)

    def _listen(self) -> None:
        import psycopg

        pause = FIRST_PAUSE
        while not self.stopped.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                                     application_name=APPLICATION_NAME) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.backend_pid = conn.info.backend_pid
                    if self.failures:
                        logger.info("teleconsult.wakeup_restored")
                    self.failures, pause = 0, FIRST_PAUSE
                    self.connections += 1
                    while not self.stopped.is_set():
                        for note in conn.notifies(timeout=STOP_CHECK):
                            self.wake(note.payload)
            except Exception as exc:  # noqa: BLE001 - a restarting database: the sockets poll meanwhile
                self.backend_pid = None
                if self.stopped.is_set():
                    return
                self.failures += 1
                if self.failures == 1:  # once per outage, not at every attempt
                    logger.warning("teleconsult.wakeup_failed", error_type=type(exc).__name__)
                self._pause(pause)
                pause = min(pause * 2, LONGEST_PAUSE)


_BY_ENGINE: weakref.WeakKeyDictionary[Engine, Wakeups] = weakref.WeakKeyDictionary()
_BY_ENGINE_LOCK = threading.Lock()


def wakeups(engine: Engine) -> Wakeups | None:
    """This process's listener for ``engine``'s database (started on first use, and again after the engine was
    disposed), or None where there is no NOTIFY."""
    if engine.dialect.name != "postgresql":
        return None
    with _BY_ENGINE_LOCK:
        found = _BY_ENGINE.get(engine)
        if found is None or found.closed:
            found = Wakeups(engine.url.set(drivername="postgresql").render_as_string(hide_password=False))
            _BY_ENGINE[engine] = found
            weakref.finalize(engine, found.close)  # an engine dropped without being disposed
            if not sa_event.contains(engine, "engine_disposed", _disposed):
                sa_event.listen(engine, "engine_disposed", _disposed)
        return found


def _disposed(engine: Engine) -> None:
    with _BY_ENGINE_LOCK:
        found = _BY_ENGINE.pop(engine, None)
    if found is not None:
        found.close()
