"""Liveness and readiness, for a load balancer or an orchestrator in front of several Carnet nodes (docs/SCALE.md).

- ``GET /health/live``: the process is up and its event loop answers. It touches neither the database nor the blob
  store, so a database outage never makes an orchestrator restart every node at once.
- ``GET /health/ready``: this node can serve requests: the database answers a trivial query (under a statement
  timeout on PostgreSQL) and the blob store answers (``exists`` of a key that is never written). ``200`` when both
  do; ``503`` otherwise, naming which one failed. The whole check is bounded by :data:`READY_TIMEOUT`: a hung
  database or store answers ``503`` in time instead of holding the probe.

Both answer a small JSON body with no health data and no exception text (the failure is logged by its type only),
and ``Cache-Control: no-store`` so that no proxy serves a stale answer. Neither needs a token: a load balancer has
none. ``/healthz`` (the embedded default's check, kept) answers as ``/health/live`` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import anyio.to_thread
import structlog
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from carnet.context import Services

logger = structlog.get_logger("carnet")

READY_TIMEOUT = 3.0  # seconds for the whole readiness check (a load balancer's probe usually waits 5)
STATEMENT_TIMEOUT_MS = 2000  # PostgreSQL: the trivial query is cancelled by the server after this
PROBE_KEY = "0000"  # a well-formed blob key that no document ever has (keys are hashes or UUIDs)
_NO_STORE = {"Cache-Control": "no-store"}


def _check_database(services: Services) -> None:
    with services.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
        conn.execute(text("SELECT 1")).scalar_one()
        conn.rollback()


def _check_blobs(services: Services) -> None:
    services.blobs.exists(PROBE_KEY)


async def _passes(name: str, check: Callable[[Services], None], services: Services, timeout: float) -> bool:
    try:
        # abandon_on_cancel: at the timeout the answer goes out; a hung thread is left to finish on its own
        await asyncio.wait_for(anyio.to_thread.run_sync(check, services, abandon_on_cancel=True), timeout)
    except Exception as exc:  # noqa: BLE001 - any failure (or the timeout) means "not ready"; logged by type only
        logger.warning("health.not_ready", check=name, error_type=type(exc).__name__)
        return False
    return True


async def readiness(services: Services, timeout: float = READY_TIMEOUT) -> tuple[bool, dict[str, str]]:
    """Run both checks concurrently, each bounded by ``timeout``; (ready, {"database": "ok"|"fail", ...})."""
    database, blobs = await asyncio.gather(_passes("database", _check_database, services, timeout),
                                           _passes("blobs", _check_blobs, services, timeout))
    checks = {"database": "ok" if database else "fail", "blobs": "ok" if blobs else "fail"}
    return database and blobs, checks


def routes(services: Services) -> list[Route]:
    async def live(_: Request) -> Response:
        return JSONResponse({"status": "ok"}, headers=_NO_STORE)

    async def ready(_: Request) -> Response:
        ok, checks = await readiness(services)
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks},
                            status_code=200 if ok else 503, headers=_NO_STORE)

    return [Route("/health/live", live, methods=["GET"]), Route("/health/ready", ready, methods=["GET"]),
            Route("/healthz", live, methods=["GET"])]
