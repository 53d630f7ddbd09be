"""The audit table's monthly partitions on PostgreSQL (issue 10 §3; docs/AUDIT.md "Partitions").

On PostgreSQL ``audit`` is partitioned by RANGE on ``recorded``, one partition a month (``audit_y2026m12``: from the
first instant of the month, UTC, to the first of the next), plus a DEFAULT partition (``audit_default``) that catches
a record whose month has no partition yet, so that an append never fails for want of one. The worker makes the
partitions of the current month and the next ``CARNET_AUDIT_PARTITIONS_AHEAD`` ahead (:func:`make_ahead`), so that
the default partition stays empty in practice.

A partition is made as a plain table then ATTACHed: attaching takes a SHARE UPDATE EXCLUSIVE lock on ``audit``,
which does not wait for (nor block) the appends that hold it in ROW EXCLUSIVE, where ``CREATE TABLE … PARTITION OF``
would take ACCESS EXCLUSIVE and queue every append behind the longest transaction in flight. If the default
partition holds records of that month (the worker did not run in time, or a clock far off), they are moved into the
new partition in the same transaction, as they are (same values: the hash chains are untouched). Makers on several
nodes are serialised by a transaction-scoped advisory lock; the loser finds the partition made and does nothing.
``lock_timeout`` bounds the wait: a maker that cannot get its locks in time gives up and the next pass retries.

On SQLite ``audit`` is one plain table: nothing here does anything there.
"""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import Connection, Engine, text

DEFAULT_PARTITION = "audit_default"
LOCK_ID = 0x43A4_D17A  # pg_advisory_xact_lock: one partition maker (or archiver) at a time
_TAKE_FROM_DEFAULT = "DELETE FROM audit_default WHERE recorded >= :a AND recorded < :b RETURNING *"
_NAME = re.compile(r"audit_y(\d{4})m(\d{2})")


def month_of(ts: dt.datetime | dt.date) -> dt.date:
    return dt.date(ts.year, ts.month, 1)


def add_months(month: dt.date, n: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + n
    return dt.date(index // 12, index % 12 + 1, 1)


def parse_month(text_: str) -> dt.date:
    """``YYYY-MM`` → the month's first day; ValueError otherwise."""
    if not re.fullmatch(r"\d{4}-\d{2}", text_):
        raise ValueError("a month is written YYYY-MM")
    year, month = int(text_[:4]), int(text_[5:])
    if not 1 <= month <= 12 or year < 1:
        raise ValueError("a month is written YYYY-MM")
    return dt.date(year, month, 1)


def month_text(month: dt.date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def bounds(month: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The month's range ``[start, end)`` in UTC."""
    start = dt.datetime(month.year, month.month, 1, tzinfo=dt.UTC)
    nxt = add_months(month, 1)
    return start, dt.datetime(nxt.year, nxt.month, 1, tzinfo=dt.UTC)


def partition_name(month: dt.date) -> str:
    return f"audit_y{month.year:04d}m{month.month:02d}"


def is_partition_name(name: str) -> bool:
    """A table this module makes (the schema check leaves them out: they are not in the metadata)."""
    return name == DEFAULT_PARTITION or bool(_NAME.fullmatch(name))


def partitioned(conn: Connection) -> bool:
    """Whether ``audit`` is a partitioned table here (PostgreSQL after migration 0018)."""
    if conn.dialect.name != "postgresql":
        return False
    return conn.execute(text("SELECT relkind FROM pg_class WHERE oid = to_regclass('audit')")).scalar() == "p"


def attached(conn: Connection) -> list[dt.date]:
    """The months that have a partition attached to ``audit``, in order."""
    if not partitioned(conn):
        return []
    names = conn.execute(text("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                              "WHERE i.inhparent = to_regclass('audit')")).scalars()
    months = []
    for name in names:
        m = _NAME.fullmatch(name)
        if m:
            months.append(dt.date(int(m.group(1)), int(m.group(2)), 1))
    return sorted(months)


def make(conn: Connection, months: list[dt.date], *, lock_timeout_ms: int = 5000) -> list[dt.date]:
    """Make the partitions of ``months`` that do not exist yet, in the caller's transaction; returns those made.
    Records of those months found in the default partition are moved into them."""
    if not partitioned(conn) or not months:
        return []
    conn.execute(text(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}"))
    conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": LOCK_ID})
    have = set(attached(conn))
    made = []
    for month in sorted(set(months)):
        if month in have:
            continue
        name = partition_name(month)
        start, end = bounds(month)
        conn.execute(text(f"CREATE TABLE {name} (LIKE audit INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"))
        move = f"WITH moved AS ({_TAKE_FROM_DEFAULT}) INSERT INTO {name} SELECT * FROM moved"  # noqa: S608 - digits
        conn.execute(text(move), {"a": start, "b": end})
        conn.execute(text(f"ALTER TABLE audit ATTACH PARTITION {name} "
                          f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"))
        made.append(month)
    return made


def make_ahead(engine: Engine, now: dt.datetime, ahead: int) -> list[dt.date]:
    """The worker's job: the partitions of this month and the ``ahead`` next ones (idempotent; safe on several nodes
    at once). Returns the months made."""
    current = month_of(now.astimezone(dt.UTC))
    with engine.begin() as conn:
        return make(conn, [add_months(current, i) for i in range(max(ahead, 0) + 1)])


def default_months(conn: Connection, before: dt.date | None = None) -> list[dt.date]:
    """The months of the records in the default partition (before ``before``): months that need a partition."""
    if not partitioned(conn):
        return []
    where, params = "", {}
    if before is not None:
        where, params = "WHERE recorded < :b", {"b": bounds(before)[0]}
    query = f"SELECT DISTINCT date_trunc('month', recorded AT TIME ZONE 'UTC') FROM audit_default {where}"  # noqa: S608
    rows = conn.execute(text(query), params).scalars()
    return sorted(month_of(r) for r in rows)


__all__ = ["DEFAULT_PARTITION", "add_months", "attached", "bounds", "default_months", "is_partition_name",
           "make", "make_ahead", "month_of", "month_text", "parse_month", "partition_name", "partitioned"]
