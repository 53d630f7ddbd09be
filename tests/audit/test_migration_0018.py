"""Migration 0018 (the audit partitioned by month on PostgreSQL) on a database that already holds chains spanning
months, upgraded then downgraded: every record keeps its values, every chain verifies, partitions cover the oldest
record's month to three months ahead. A slow test (a fresh database migrated three times): group ``scale``."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import select, text

from carnet.audit import partitions as parts
from carnet.audit.log import verify_all
from carnet.db.tables import audit

MARCH = dt.date(2026, 3, 1)


def _at(month: dt.date, day: int = 10) -> dt.datetime:
    return dt.datetime(month.year, month.month, day, 9, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migration_0018_keeps_every_chain_whole_both_ways(kind: str, tmp_path: Any) -> None:
    from alembic import command

    from carnet.access.actors import Actor, ActorKind
    from carnet.audit.log import record
    from carnet.db.engine import make_engine
    from carnet.db.migrate import alembic_config, upgrade
    from tests.conftest import fresh_postgres_database, require_postgres

    drop = None
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'm.db'}"
    else:
        require_postgres()
        url, drop = fresh_postgres_database()
    try:
        upgrade(url, "0017")
        engine = make_engine(url, pool_size=1)
        key, actor = uuid.uuid4(), Actor(ActorKind.PROFESSIONAL, id="810001045367", profession="10")
        with engine.begin() as conn:  # the statement of 0017's schema (the key without recorded)
            # today's append also sets audit_chain.moved (0024): the column lent for the records' time only
            conn.execute(text("ALTER TABLE audit_chain ADD COLUMN moved BOOLEAN NOT NULL DEFAULT FALSE"))
            for when in (_at(dt.date(2025, 11, 1)), _at(MARCH), _at(MARCH, 11)):
                record(conn, dossier_key=key, actor=actor, action="R", event="ITI-68", now=when)
            conn.execute(text("ALTER TABLE audit_chain DROP COLUMN moved"))
        with engine.connect() as conn:
            before = conn.execute(select(audit.c.seq, audit.c.hash).order_by(audit.c.seq)).all()
        engine.dispose()
        upgrade(url)
        engine = make_engine(url, pool_size=1)
        with engine.connect() as conn:
            assert conn.execute(select(audit.c.seq, audit.c.hash).order_by(audit.c.seq)).all() == before
            assert verify_all(conn)[2] == []
            if kind == "postgresql":
                months = parts.attached(conn)
                assert months[0] == dt.date(2025, 11, 1) and MARCH in months  # oldest record's month onwards
                assert parts.add_months(parts.month_of(dt.datetime.now(dt.UTC)), 3) in months  # and ahead
                assert conn.execute(text("SELECT count(*) FROM audit_default")).scalar() == 0
        engine.dispose()
        command.downgrade(alembic_config(url), "0017")
        engine = make_engine(url, pool_size=1)
        with engine.connect() as conn:
            assert conn.execute(select(audit.c.seq, audit.c.hash).order_by(audit.c.seq)).all() == before
            assert not parts.partitioned(conn)
        engine.dispose()
    finally:
        if drop:
            drop()
