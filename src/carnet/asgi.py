"""ASGI entry point: ``uvicorn carnet.asgi:app``.

The application answers an unexpected error itself (a 500 OperationOutcome with an error id, logged as an
allow-listed line); Starlette then re-raises it, and uvicorn would log the whole traceback, whose text may hold health
data (a database error quotes the values it refused). The wrapper here stops it there: one more allow-listed line,
and never a traceback (issue 15 §1). An error after the response has started (a streamed document found damaged)
cuts the response short, as it should.
"""

from __future__ import annotations

from typing import Any

import structlog

from carnet.app import create_app

logger = structlog.get_logger("carnet")


def quiet(inner: Any) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            await inner(scope, receive, send)
        except Exception as exc:  # noqa: BLE001 - answered (or cut short) already; only its type may be logged
            logger.error("request.aborted", error_type=type(exc).__name__)

    return app


app = quiet(create_app())
