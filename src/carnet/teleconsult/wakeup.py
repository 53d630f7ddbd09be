"""A wake-up for the signalling relay on PostgreSQL: ``LISTEN``/``NOTIFY`` so that a socket reads its peer's message
as soon as it is committed, instead of at its next poll.

The relay table stays the truth (:mod:`carnet.teleconsult.room`): each message's transaction also sends
``pg_notify('carnet_teleconsult', <visit id>)`` (delivered at its commit, to every node listening); one thread per
process and database listens on its own connection and wakes the sockets of that visit on this node, which then read
the table as they always do. A lost notification, a listener down, SQLite, Citus workers that do not pass
notifications on: the sockets still poll every ``CARNET_SIGNAL_POLL_MS``; only the delay grows back.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict

import structlog
from sqlalchemy.engine import make_url

CHANNEL = "carnet_teleconsult"
logger = structlog.get_logger("carnet")


class Wakeups:
    """The sockets of this process waiting for a visit's messages, and the thread that wakes them."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.lock = threading.Lock()
        self.waiting: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = defaultdict(set)
        self.thread = threading.Thread(target=self._listen, name="teleconsult-wakeup", daemon=True)
        self.thread.start()

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

    def _listen(self) -> None:
        import psycopg

        while True:
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    for note in conn.notifies():
                        self.wake(note.payload)
            except Exception as exc:  # noqa: BLE001 - a restarting database: the sockets poll meanwhile
                logger.warning("teleconsult.wakeup_failed", error_type=type(exc).__name__)
                time.sleep(5)


_BY_URL: dict[str, Wakeups] = {}
_BY_URL_LOCK = threading.Lock()


def wakeups(database_url: str) -> Wakeups | None:
    """This process's listener for ``database_url`` (started on first use), or None where there is no NOTIFY."""
    if not database_url.startswith("postgresql"):
        return None
    with _BY_URL_LOCK:
        if database_url not in _BY_URL:
            _BY_URL[database_url] = Wakeups(database_url)
        return _BY_URL[database_url]
