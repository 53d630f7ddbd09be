"""The databases the suite makes on PostgreSQL carry the run's prefix and process id, and none outlives the run: two
runs on one server never share or drop each other's (README, "Running part of the tests")."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import tests.conftest as conftest
from tests.conftest import fresh_postgres_database, require_postgres


def databases() -> set[str]:
    eng = create_engine(make_url(conftest.pg_admin_url()).set(drivername="postgresql+psycopg"))
    try:
        with eng.connect() as conn:
            return set(conn.scalars(text("SELECT datname FROM pg_database")))
    finally:
        eng.dispose()


def test_a_database_is_named_with_the_prefix_and_the_process_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARNET_TEST_DB_PREFIX", "scope_check_")
    name = conftest.fresh_database_name()
    assert name.startswith(f"scope_check_{os.getpid()}_")
    assert name != conftest.fresh_database_name()


@pytest.mark.parametrize("prefix", ["Upper_", "with-dash_", "x" * 41, "1starts_with_a_digit"])
def test_a_prefix_postgresql_would_not_take_as_is_is_refused(monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    monkeypatch.setenv("CARNET_TEST_DB_PREFIX", prefix)
    with pytest.raises(pytest.UsageError, match="CARNET_TEST_DB_PREFIX"):
        conftest.db_prefix()


def test_the_default_prefix_is_carnet_test(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARNET_TEST_DB_PREFIX", raising=False)
    assert conftest.fresh_database_name().startswith(f"carnet_test_{os.getpid()}_")


def test_a_database_left_behind_is_dropped_at_the_end_and_another_runs_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    require_postgres()
    monkeypatch.setattr(conftest, "_created", set())  # this test's bookkeeping, not the session's
    monkeypatch.setenv("CARNET_TEST_DB_PREFIX", "scope_other_")
    other_url, drop_other = fresh_postgres_database()  # another run's, on the same server
    monkeypatch.setattr(conftest, "_created", set())
    monkeypatch.setenv("CARNET_TEST_DB_PREFIX", "scope_mine_")
    left_url, _ = fresh_postgres_database()  # a test of this run failing before its drop()
    other, left = make_url(other_url).database, make_url(left_url).database
    try:
        assert {other, left} <= databases()
        conftest.drop_leftovers()
        assert left not in databases()
        assert other in databases()
    finally:
        drop_other()
    assert other not in databases()
