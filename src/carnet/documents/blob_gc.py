"""The blob garbage collector: removes the blobs that no row references, once they are older than a grace period.

A blob without a row is what a crash between the blob write and the commit leaves behind (``kill -9``, a lost node):
:func:`carnet.context.run` removes the blobs of a transaction that fails, but a process that dies cannot. One pass
(:func:`collect`, run by ``carnet blobs gc`` and every ``CARNET_BLOB_GC_INTERVAL_HOURS`` by ``carnet worker``):

1. list the store (``iter_blobs``) and keep the blobs last written before ``now - grace``;
2. ask the database, in batches, which of them a row references (:func:`carnet.documents.blob_refs.referenced`, an
   index lookup per batch), in a transaction that starts after ``now``;
3. delete the others; then remove the leftovers of interrupted writes older than the grace period (local temp
   files, unfinished S3 multipart uploads).

Why it never removes a blob that a transaction in flight may still commit: a transaction that writes a blob writes it
after it starts, and commits within ``CARNET_TRANSACTION_SECONDS`` of its start or rolls back
(:func:`carnet.context.run` enforces it before the commit). A blob written before ``now - grace`` with ``grace`` at
least that bound belongs to a transaction that has committed by ``now`` (its row is then seen by step 2, which reads
after ``now``) or never will. The CLI refuses a grace shorter than four times the bound (the margin covers clock skew
between the store and this host, and a commit that is slow to return), unless forced. Keys are the SHA-256 of a
ciphertext sealed with a fresh random data key, so no later transaction re-puts an old orphan's key.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import structlog

from carnet.blobs import BlobStore
from carnet.context import Services
from carnet.documents.blob_refs import BATCH, referenced

__all__ = ["GcReport", "collect", "minimum_grace"]

logger = structlog.get_logger("carnet")


@dataclass
class GcReport:
    scanned: int = 0  # blobs listed
    old: int = 0  # older than the grace period
    removed: int = 0  # unreferenced, removed (or, in a dry run, that would be)
    leftovers: int = 0  # temp files or unfinished uploads removed
    dry_run: bool = False


def minimum_grace(services: Services) -> dt.timedelta:
    """The shortest grace period the CLI accepts without ``--force``: four times the transaction bound."""
    return 4 * dt.timedelta(seconds=services.settings.transaction_seconds)


def _old_batches(store: BlobStore, cutoff: dt.datetime, report: GcReport) -> Iterator[list[str]]:
    batch: list[str] = []
    for key, modified in store.iter_blobs():
        report.scanned += 1
        if modified < cutoff:
            report.old += 1
            batch.append(key)
            if len(batch) >= BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


def collect(services: Services, *, grace: dt.timedelta | None = None, dry_run: bool = False,
            now: dt.datetime | None = None, on_batch: Callable[[GcReport], None] | None = None) -> GcReport:
    """One pass (see the module docstring). ``now`` is the wall clock, which the store's timestamps follow."""
    if grace is None:
        grace = dt.timedelta(hours=services.settings.blob_gc_grace_hours)
    if grace < dt.timedelta(0):
        raise ValueError("the grace period cannot be negative")
    cutoff = (now or dt.datetime.now(dt.UTC)) - grace
    store = services.blobs
    report = GcReport(dry_run=dry_run)
    for batch in _old_batches(store, cutoff, report):
        with services.engine.connect() as conn:
            keep = referenced(conn, batch)
        for key in batch:
            if key in keep:
                continue
            if not dry_run:
                store.delete(key)
            report.removed += 1
        if on_batch:
            on_batch(report)
    report.leftovers = store.remove_leftovers(cutoff, dry_run=dry_run)
    logger.info("blob_gc.pass", scanned=report.scanned, old=report.old, removed=report.removed,
                leftovers=report.leftovers, dry_run=dry_run)
    return report
