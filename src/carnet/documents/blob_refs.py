"""Which blob keys the database references: the garbage collector's question, answered in batches.

Every column that holds a blob key is listed in :data:`REFERENCING_COLUMNS` (today only ``document.blob_key``: a
document's sealed contents; the erase of a dossier deletes its blobs after the commit). Each lookup is one indexed
``WHERE blob_key IN (…)`` per column, for a batch of at most :data:`BATCH` keys, so a gc pass over millions of blobs
costs a few thousand index probes, not a table scan.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Column, Connection, select

from carnet.db.tables import document

__all__ = ["BATCH", "REFERENCING_COLUMNS", "referenced"]

BATCH = 500
REFERENCING_COLUMNS: tuple[Column[str], ...] = (document.c.blob_key,)  # each one indexed (migration 0008)


def referenced(conn: Connection, keys: Iterable[str]) -> set[str]:
    """The subset of ``keys`` that some row references."""
    keys = list(dict.fromkeys(keys))
    found: set[str] = set()
    for start in range(0, len(keys), BATCH):
        batch = keys[start:start + BATCH]
        for column in REFERENCING_COLUMNS:
            found.update(conn.execute(select(column).where(column.in_(batch)).distinct()).scalars())
    return found
