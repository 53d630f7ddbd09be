"""The database half of a backup: a consistent snapshot, the blob keys that snapshot references, and its restore.

- PostgreSQL: ``pg_dump --format=custom`` run on a snapshot that this module exports (``pg_export_snapshot()`` in a
  ``REPEATABLE READ`` transaction held open while the dump runs), so the list of blob keys read in the same
  transaction is exactly what the dump references. Restored with ``pg_restore --single-transaction``: all or nothing.
  ``pg_dump`` and ``pg_restore`` must be on the ``PATH``, of the server's major version or newer.
- SQLite: the online backup API (``sqlite3.Connection.backup``), a consistent copy while the server runs; the blob
  keys are read from the copy.

The password of a PostgreSQL URL reaches the tools through ``PGPASSWORD``, never on a command line (``ps`` shows
those).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, make_url, select, text

from carnet.db.tables import document

__all__ = ["DatabaseBackupError", "dialect_of", "is_empty", "restore", "snapshot"]

PG_FILE = "database.pgdump"
SQLITE_FILE = "database.sqlite"
_BATCH = 10_000


class DatabaseBackupError(Exception):
    """The snapshot or the restore failed; the message names the tool and its exit status, never data."""


def dialect_of(url: str) -> str:
    name = make_url(url).get_backend_name()
    if name not in ("postgresql", "sqlite"):
        raise DatabaseBackupError(f"no backup for a {name} database (PostgreSQL or SQLite)")
    return name


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """The URL for libpq's tools (no driver, no password) and the environment that carries the password."""
    u = make_url(url)
    env = dict(os.environ)
    if u.password:
        env["PGPASSWORD"] = str(u.password)
    return u.set(drivername="postgresql", password=None).render_as_string(hide_password=False), env


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise DatabaseBackupError(f"{name} is not on the PATH (install the PostgreSQL client tools)")
    return path


def _run(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        # the tools' messages name objects and SQL errors, not row contents; keep the last line only
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise DatabaseBackupError(f"{Path(args[0]).name} failed with status {done.returncode}: {last}")


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise DatabaseBackupError("an in-memory SQLite database cannot be backed up")
    return Path(database)


def _keys(conn_rows: Iterator[str], out: Path) -> int:
    n = 0
    with out.open("w", encoding="ascii") as f:
        for key in conn_rows:
            f.write(f"{key}\n")
            n += 1
    return n


def snapshot(engine: Engine, url: str, directory: Path, keys_file: Path) -> tuple[str, int]:
    """Write the snapshot into ``directory``; write the blob keys its documents reference (one per line) to
    ``keys_file``. Returns (the snapshot's file name, the number of keys)."""
    blob_keys = select(document.c.blob_key).order_by(document.c.blob_key)
    if dialect_of(url) == "sqlite":
        target = directory / SQLITE_FILE
        source = sqlite3.connect(_sqlite_path(url))
        try:
            copy = sqlite3.connect(target)
            with copy:
                source.backup(copy)
            copy.close()
        finally:
            source.close()
        from carnet.db.engine import make_engine

        snap = make_engine(f"sqlite:///{target}", pool_size=1)
        try:
            with snap.connect() as conn:
                n = _keys(conn.execute(blob_keys).scalars().yield_per(_BATCH), keys_file)
        finally:
            snap.dispose()
        return SQLITE_FILE, n
    libpq, env = _libpq(url)
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            exported = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            _run([_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", f"--snapshot={exported}",
                  "--file", str(directory / PG_FILE), "--dbname", libpq], env)
            n = _keys(conn.execution_options(yield_per=_BATCH).execute(blob_keys).scalars(), keys_file)
    return PG_FILE, n


def is_empty(engine: Engine) -> bool:
    """No table at all (a database just created, or a SQLite file that does not exist yet)."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            q = "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
        else:
            q = "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()"
        return int(conn.execute(text(q)).scalar_one()) == 0


def restore(url: str, source: Path) -> None:
    """Load the snapshot ``source`` into the empty database at ``url`` (the caller checked it is empty)."""
    if dialect_of(url) == "sqlite":
        target = _sqlite_path(url)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        src = sqlite3.connect(source)
        try:
            dst = sqlite3.connect(target)
            with dst:
                src.backup(dst)
            dst.close()
        finally:
            src.close()
        return
    libpq, env = _libpq(url)
    _run([_tool("pg_restore"), "--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error",
          "--dbname", libpq, str(source)], env)
