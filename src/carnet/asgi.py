"""ASGI entry point: ``uvicorn carnet.asgi:app``.

The application answers an unexpected error itself (a 500 OperationOutcome with an error id, logged as an
allow-listed line); Starlette then re-raises it, and uvicorn would log the whole traceback, whose text may hold health
data (a database error quotes the values it refused). The wrapper here stops it there: one more allow-listed line,
and never a traceback (issue 15 §1). An error after the response has started (a streamed document found damaged)
cuts the response short, as it should.
"""

from __future__ import annotations

import sys
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


def _checked_services() -> Any:
    """The process's services, once its master keys are the ones the database knows: a node given another key (or
    none, so that it made its own) must not start and write documents no other node can open. A database that cannot
    be reached now defers the check (the node starts and waits for the database as before); a mismatch stops it."""
    from sqlalchemy.exc import OperationalError

    from carnet.admin import KeyMismatch, check_master_keys
    from carnet.compose import build_services
    from carnet.config import Settings

    services = build_services(Settings())
    try:
        check_master_keys(services.engine, services.keyring)
    except KeyMismatch as exc:
        print(f"carnet: refusing to start: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(3) from None
    except OperationalError:
        logger.warning("keys.check_deferred")
    return services


app = quiet(create_app(_checked_services()))
