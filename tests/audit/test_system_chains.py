"""Events about no dossier spread over several system chains, each whole; the PostgreSQL append calls only IMMUTABLE
functions in its UPDATE (Citus refuses a STABLE one next to column references)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import func, select, text

from carnet.access.actors import Actor, ActorKind
from carnet.audit import log
from carnet.context import Services
from carnet.db.tables import audit
from carnet.ids import SYSTEM_CHAIN, SYSTEM_CHAINS, is_system_chain, new_id


def test_events_about_no_dossier_spread_over_the_system_chains(services: Services) -> None:
    operator = Actor(ActorKind.OPERATOR, id="cli:test")
    now = dt.datetime.now(dt.UTC)
    with services.engine.begin() as conn:
        before = dict(conn.execute(select(audit.c.dossier_key, func.count()).where(
            audit.c.dossier_key.in_(SYSTEM_CHAINS)).group_by(audit.c.dossier_key)).all())
        for _ in range(64):
            log.record(conn, dossier_key=SYSTEM_CHAIN, actor=operator, action="E", event="test.system", now=now)
    with services.engine.connect() as conn:
        after = dict(conn.execute(select(audit.c.dossier_key, func.count()).where(
            audit.c.dossier_key.in_(SYSTEM_CHAINS)).group_by(audit.c.dossier_key)).all())
        grown = [k for k in after if after[k] > before.get(k, 0)]
        assert sum(after.values()) - sum(before.values()) == 64
        assert len(grown) >= 4  # 64 events over 16 chains: never all on a few
        assert all(log.verify_chain(conn, k) == [] for k in SYSTEM_CHAINS)


def test_a_dossier_key_is_never_a_system_chain() -> None:
    assert all(is_system_chain(k) for k in SYSTEM_CHAINS)
    assert not any(is_system_chain(new_id()) for _ in range(100))


def test_the_postgresql_append_updates_with_immutable_functions_only(services: Services) -> None:
    if services.engine.dialect.name != "postgresql":
        pytest.skip("the one-statement append is PostgreSQL's")
    update = str(log._APPEND_PG).split("RETURNING")[0]
    names = set(re.findall(r"([a-z_0-9]+)\s*\(", update.lower())) - {"cast", "as"}
    assert names  # the statement still hashes in SQL
    with services.engine.connect() as conn:
        volatility = dict(conn.execute(text("SELECT proname, max(provolatile) FROM pg_proc "
                                            "WHERE proname = ANY(:n) GROUP BY proname"), {"n": sorted(names)}).all())
    assert set(volatility) == names
    assert set(volatility.values()) == {"i"}, volatility
