"""An Apple Health import's progress, kept in the database (``measure_import``) so that the page's poll may land on
any Carnet node (issue 17 §1; docs/MEASUREMENTS.md "Importing from Apple Health").

The node that received the upload runs the import (the file is a temporary file on that node); the row is:

* created when the upload is accepted (:func:`start`, its own transaction, the policy's patient side:
  ``record_measures``; audited ``measures.import.start``);
* updated every 10,000 records by :func:`heartbeat` (counts and bytes read only, never a value) on a connection of
  its own in autocommit, so each update is a short transaction of its own; the import's transaction has not touched
  the row yet (it writes it only at its very end, in :func:`finish`) and the update runs in the import's own thread
  between two batches, so it can neither wait on the import nor make the import wait; a ``lock_timeout`` bounds it
  anyway and a failed update is skipped (progress is best effort). On SQLite there is no such update: the database
  has one writer and the import holds it for its whole transaction (every transaction is ``BEGIN IMMEDIATE``), so
  the row moves from running to done at once — SQLite is the one-machine set-up;
* finished in the import's own transaction (:func:`finish`): the row says done exactly when the readings are
  committed (the import's audit record ``measures.import`` is the end record);
* or marked failed in a transaction of its own when the import fails (:func:`fail`, audited
  ``measures.import.failed``).

A node that dies mid-import leaves the row running with a stale ``updated_at``: after :data:`STALE` without an
update the poll answers failed ("stopped"): nothing was stored, since the import is one transaction.

The rows are kept :data:`KEEP` (7 days) after their last change, so that the page still answers a patient coming
back to it, then removed by the worker's periodic job (:func:`prune`, wired in :mod:`carnet.compose`); a purged
dossier loses its rows with the rest (:func:`carnet.dossier.lifecycle.purge_due` sweeps every table keyed by
``dossier_key``).

Polls (:func:`status`) are not audited: they read counts, not health data, once a second; the start and the end
are. They answer only the patient side of the dossier (``record_measures``), and 404 for an import of another
dossier.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from carnet.access.actors import ActorKind
from carnet.context import Context, Services
from carnet.db.engine import is_postgres
from carnet.db.tables import measure_import
from carnet.errors import forbidden, not_found
from carnet.measures.service import require_writable

if TYPE_CHECKING:
    from carnet.measures.apple import Report

logger = logging.getLogger(__name__)
STALE = dt.timedelta(minutes=2)  # running without an update for this long: the node running it stopped
NODE = f"{socket.gethostname()[:60]}:{os.getpid()}"
ERRORS = ("not-export", "refused", "failed", "stopped")
KEEP = dt.timedelta(days=7)  # a row unchanged for this long goes (finished, or running on a node that died)


@dataclass(frozen=True)
class ImportState:
    """What the page shows: ``status`` running | done | failed; ``error`` (failed) not-export | refused | failed |
    stopped (the node running it stopped: nothing was stored)."""

    import_id: str
    status: str
    error: str | None
    size: int
    bytes_read: int
    records: int
    stored: int
    duplicates: int
    bad: int
    reasons: list[str] = field(default_factory=list)

    @property
    def percent(self) -> int:
        return 100 if self.status != "running" else min(99, self.bytes_read * 100 // max(self.size, 1))


def start(ctx: Context, key: uuid.UUID, size: int) -> str:
    """A new import of ``size`` bytes into dossier ``key`` (the patient side only); its id."""
    require_writable(ctx, key, "measures.import.start")
    import_id = secrets.token_urlsafe(16)
    ctx.conn.execute(insert(measure_import).values(
        dossier_key=key, import_id=import_id, status="running", size=size, bytes_read=0, records=0, stored=0,
        duplicates=0, bad=0, reasons=[], node=NODE, started_at=ctx.now, updated_at=ctx.now))
    ctx.audit(key, "C", "measures.import.start", entity_type="Import", entity_id=import_id, detail={"bytes": size})
    return import_id


def heartbeat(services: Services, key: uuid.UUID, import_id: str) -> Callable[[int, Report], None]:
    """The import's ``progress`` callback: writes the counts to the row in a short transaction of its own (see the
    module docstring); nothing on SQLite."""
    if not is_postgres(services.engine):
        return lambda done, report: None
    t = measure_import.c

    def beat(done: int, report: Report) -> None:
        try:
            with services.engine.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.execute(text("SET lock_timeout = '2s'"))
                conn.execute(update(measure_import).where(
                    t.dossier_key == key, t.import_id == import_id, t.status == "running").values(
                    bytes_read=done, records=report.records, bad=report.bad, reasons=list(report.reasons),
                    updated_at=services.clock()))
        except SQLAlchemyError:  # best effort: the next one may pass; no detail (no data in logs)
            logger.warning("measures.import.heartbeat_failed")

    return beat


def finish(ctx: Context, key: uuid.UUID, import_id: str, report: Report) -> None:
    """In the import's own transaction, after its readings: the row says done with the report's counts."""
    t = measure_import.c
    now = ctx.services.clock()
    ctx.conn.execute(update(measure_import).where(t.dossier_key == key, t.import_id == import_id).values(
        status="done", bytes_read=t.size, records=report.records, stored=report.stored,
        duplicates=report.duplicates, bad=report.bad, reasons=list(report.reasons), updated_at=now,
        finished_at=now))


def fail(ctx: Context, key: uuid.UUID, import_id: str, error: str) -> None:
    """The import failed (its transaction rolled back: nothing stored); ``error`` one of :data:`ERRORS`."""
    assert error in ERRORS
    require_writable(ctx, key, "measures.import.failed")
    t = measure_import.c
    now = ctx.services.clock()
    ctx.conn.execute(update(measure_import).where(
        t.dossier_key == key, t.import_id == import_id, t.status == "running").values(
        status="failed", error=error, updated_at=now, finished_at=now))
    ctx.audit(key, "U", "measures.import.failed", entity_type="Import", entity_id=import_id,
              detail={"error": error})


def status(ctx: Context, key: uuid.UUID, import_id: str) -> ImportState:
    """An import of dossier ``key`` as the page shows it (a running one stale for :data:`STALE`: failed, stopped);
    404 if the dossier has no such import. Not audited (see the module docstring)."""
    require_writable(ctx, key, "measures.import.progress")
    t = measure_import.c
    row = ctx.conn.execute(select(measure_import).where(t.dossier_key == key, t.import_id == import_id)).first()
    if row is None:
        raise not_found("Import")
    state, error = str(row.status), row.error
    updated = row.updated_at if row.updated_at.tzinfo else row.updated_at.replace(tzinfo=dt.UTC)
    if state == "running" and ctx.services.clock() - updated > STALE:
        state, error = "failed", "stopped"
    return ImportState(import_id, state, error, int(row.size), int(row.bytes_read), int(row.records),
                       int(row.stored), int(row.duplicates), int(row.bad), list(row.reasons or []))


def prune(ctx: Context) -> int:
    """Operator job (the worker's, every minute): remove the imports unchanged for :data:`KEEP`: finished ones (done
    or failed; ``updated_at`` is their end) and running ones whose node died long ago (:data:`STALE` shows them
    stopped already). How many went. Not audited, as the polls are not: the rows hold counts, never a value, and the
    dossier's chain keeps each import's start and end records. One statement across dossiers (a batch job, as the
    claims purge is); the table holds about a week of imports, so it stays small."""
    if ctx.actor.kind is not ActorKind.OPERATOR:
        raise forbidden("Only an operator runs the purge")
    gone = ctx.conn.execute(delete(measure_import).where(measure_import.c.updated_at < ctx.now - KEEP)).rowcount
    return int(gone)


__all__ = ["ERRORS", "KEEP", "NODE", "STALE", "ImportState", "fail", "finish", "heartbeat", "prune", "start",
           "status"]
