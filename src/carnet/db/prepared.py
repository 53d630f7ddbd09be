"""Prepared statements for the hot requests on PostgreSQL (issue 11, docs/PERFORMANCE.md "Stage 2").

A search, a retrieve and a publish run a handful of statements each; SQLAlchemy Core's execution of each (its
execution context, parameter processing and result wrapping) was the largest Python cost of those requests. Their
statements also exist here as plain SQL text, each beside the Core definition it mirrors, and on PostgreSQL they run
through the psycopg connection of the **same** SQLAlchemy connection, so in the same transaction, prepared on the
server (``prepare=True``: parsed and planned once per connection). SQLite, and every other statement, keep Core.

Rows come back as named tuples (``row.column``, ``getattr(row, name, default)``, ``row[i]``), as Core's rows are
read; the column types are psycopg's own, which Core's PostgreSQL dialect returns unchanged for Carnet's columns
(uuid, timestamptz, date, boolean, text, bytea). ``tests/db/test_prepared.py`` checks that each text gives the rows
its Core statement gives. Engine and connection listeners of ``before_cursor_execute`` see these statements too (the
single-shard guard of ``tests/db/test_hot_paths_colocated.py`` watches them as it watches Core's).
"""

from __future__ import annotations

from typing import Any

from psycopg.rows import namedtuple_row
from sqlalchemy import Connection


def on_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _cursor(conn: Connection, sql: str, params: dict[str, Any]) -> Any:
    raw = conn.connection.driver_connection
    if raw is None:  # pragma: no cover - a live connection always has one
        raise RuntimeError("no database connection")
    cur = raw.cursor(row_factory=namedtuple_row)
    if conn._has_events or conn.engine._has_events:  # noqa: SLF001 - what Connection.execute itself checks
        for listener in conn.dispatch.before_cursor_execute:
            sql, params = listener(conn, cur, sql, params, None, False)
    return cur, sql, params


def fetch_all(conn: Connection, sql: str, params: dict[str, Any]) -> list[Any]:
    """Run ``sql`` (``%(name)s`` parameters) prepared, in ``conn``'s transaction; its rows."""
    cur, sql, params = _cursor(conn, sql, params)
    with cur:
        cur.execute(sql, params, prepare=True)
        return cur.fetchall()


def fetch_one(conn: Connection, sql: str, params: dict[str, Any]) -> Any | None:
    """:func:`fetch_all`'s first row, or None."""
    cur, sql, params = _cursor(conn, sql, params)
    with cur:
        cur.execute(sql, params, prepare=True)
        return cur.fetchone()


def execute(conn: Connection, sql: str, params: dict[str, Any]) -> int:
    """Run ``sql`` prepared, in ``conn``'s transaction; the number of rows it changed."""
    cur, sql, params = _cursor(conn, sql, params)
    with cur:
        cur.execute(sql, params, prepare=True)
        return int(cur.rowcount)
