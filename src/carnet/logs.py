"""Logging: structured, and limited to an allow-list of fields, so that no health data reaches a log.

A log line may carry only the fields in :data:`ALLOWED`: what kind of request it was, its status and timing, an error
type and a request id. Anything else a caller passes is dropped before rendering (and counted in ``dropped``), so a
mistaken ``logger.info(..., patient=...)`` cannot leak. URLs are never logged: they carry ids and search values.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog

ALLOWED = frozenset({"event", "level", "timestamp", "interaction", "resource", "status", "ms", "error_type",
                     "request_id", "route", "dropped"})


def allow_list(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    dropped = [k for k in event if k not in ALLOWED]
    for k in dropped:
        del event[k]
    if dropped:
        event["dropped"] = len(dropped)
    return event


_SECOND: tuple[int, str] = (0, "")  # the last second stamped, and its text: one formatting per second, not per line


def timestamp(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The line's time in UTC, ISO 8601 to the microsecond (``2026-12-05T12:45:38.012345Z``; structlog's own
    ``TimeStamper`` formats a datetime for every line, a request's log line's largest part)."""
    global _SECOND
    now = time.time()
    second = int(now)
    last = _SECOND
    if last[0] != second:
        last = _SECOND = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    event["timestamp"] = f"{last[1]}.{int((now - second) * 1_000_000):06d}Z"
    return event


def json_line(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> str:
    """The line as compact JSON (orjson); a value JSON cannot hold becomes its ``str``."""
    return orjson.dumps(event, default=str).decode()


class _Stderr:
    """Writes each line to the current ``sys.stderr`` (looked up per line, so redirections apply), in one write
    with its newline: the processes of a node share their standard error, and a line written in one piece (of less
    than a pipe's atomic size) is never cut by another process's."""

    def msg(self, message: str) -> None:
        stream = sys.stderr
        stream.write(message + "\n")
        stream.flush()

    debug = info = warning = error = critical = log = msg


def configure(json_lines: bool | None = None) -> None:
    """JSON lines when the output is not a terminal (servers, CI), readable lines otherwise."""
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    renderer: Any = json_line if json_lines else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[structlog.processors.add_log_level, timestamp, allow_list, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=lambda *_args: _Stderr(),
        cache_logger_on_first_use=True,
    )
