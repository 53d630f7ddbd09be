"""A database of its own for each checkpoint test (the attacks below damage chains; the session's database stays
whole), on SQLite and PostgreSQL, with its own checkpoint directory and key under the test's ``var``."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import pytest

from carnet.access.actors import Actor, ActorKind, Mode
from carnet.audit.log import record
from carnet.compose import build_services
from carnet.config import Settings
from carnet.context import Services
from carnet.db.engine import make_engine
from carnet.db.migrate import upgrade
from tests.conftest import BASE, fresh_postgres_database, require_postgres

T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def own(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    base = tmp_path_factory.mktemp("anchor")
    drop = None
    if request.param == "sqlite":
        url = f"sqlite:///{base / 'carnet.db'}"
    else:
        require_postgres()
        url, drop = fresh_postgres_database()
    upgrade(url)
    settings = Settings(var_dir=base / "var", database_url=url, base_url=BASE, checkpoint_url=None,
                        checkpoint_key=None, checkpoint_key_file=None, checkpoint_public_key=None)
    services = build_services(settings, make_engine(url, pool_size=5))
    yield services
    services.engine.dispose()
    if drop:
        drop()


def fill(services: Services, key: uuid.UUID, n: int, *, start: dt.datetime = T0,
         emergency_at: int | None = None) -> None:
    """``n`` records on chain ``key`` (a professional's reads, one a minute; ``emergency_at``: that one breaks the
    glass), each in its own transaction as requests write them."""
    pro = Actor(ActorKind.PROFESSIONAL, id="810001045367", profession="10")
    glass = Actor(ActorKind.PROFESSIONAL, id="810001045367", profession="10", mode=Mode.EMERGENCY,
                  reason="patient inconscient")
    with services.engine.connect() as conn:
        from sqlalchemy import select

        from carnet.db.tables import audit_chain
        have = conn.execute(select(audit_chain.c.seq).where(audit_chain.c.dossier_key == key)).scalar() or 0
    for i in range(n):
        with services.engine.begin() as conn:
            record(conn, dossier_key=key, actor=glass if have + i + 1 == emergency_at else pro, action="R",
                   event="ITI-68", now=start + dt.timedelta(minutes=have + i), entity_type="DocumentReference",
                   entity_id=str(uuid.UUID(int=i + 1)))
