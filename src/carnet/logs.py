"""Logging: structured, and limited to an allow-list of fields, so that no health data reaches a log.

A log line may carry only the fields in :data:`ALLOWED`: what kind of request it was, its status and timing, an error
type and a request id. Anything else a caller passes is dropped before rendering (and counted in ``dropped``), so a
mistaken ``logger.info(..., patient=...)`` cannot leak. URLs are never logged: they carry ids and search values.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

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


class _Stderr:
    """Writes each line to the current ``sys.stderr`` (looked up per line, so redirections apply)."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    debug = info = warning = error = critical = log = msg


def configure(json_lines: bool | None = None) -> None:
    """JSON lines when the output is not a terminal (servers, CI), readable lines otherwise."""
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    renderer: Any = structlog.processors.JSONRenderer() if json_lines else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso", utc=True),
                    allow_list, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=lambda *_args: _Stderr(),
        cache_logger_on_first_use=True,
    )
