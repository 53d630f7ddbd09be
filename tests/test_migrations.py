"""The schema is what the migrations build: no model change without a migration (``alembic check``)."""

from __future__ import annotations

from carnet.db.migrate import check


def test_the_tables_match_the_migrations(database_url: str) -> None:
    check(database_url)
