"""The database knows the check value of every master key (carnet.admin.check_master_keys): a process given another
key, or lacking one registered after a rotation, is refused; nodes racing to register the first key agree."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from carnet.admin import KeyMismatch, check_master_keys, retire_master_key
from carnet.blobs import KeyRing
from carnet.db.engine import make_engine
from carnet.db.migrate import upgrade
from carnet.db.tables import master_key


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'carnet.db'}"
    upgrade(url)
    eng = make_engine(url, pool_size=2)
    yield eng
    eng.dispose()


def test_the_first_process_registers_its_keys_and_the_same_keys_pass_again(engine: Engine) -> None:
    ring = KeyRing.generate()
    assert check_master_keys(engine, ring) == ["k1"]
    assert check_master_keys(engine, KeyRing.from_json(ring.to_json())) == []
    with engine.connect() as conn:
        row = conn.execute(select(master_key)).one()
    assert row.key_id == "k1" and row.fingerprint == ring.fingerprint("k1")


def test_a_process_with_a_key_of_its_own_is_refused_and_told_what_to_do(engine: Engine) -> None:
    check_master_keys(engine, KeyRing.generate())
    with pytest.raises(KeyMismatch, match="give every node the same keys"):
        check_master_keys(engine, KeyRing.generate())


def test_a_process_lacking_a_key_registered_by_a_rotation_is_refused(engine: Engine) -> None:
    ring = KeyRing.generate()
    old = KeyRing.from_json(ring.to_json())
    check_master_keys(engine, ring)
    ring.add_new_key()
    assert check_master_keys(engine, ring) == ["k2"]
    with pytest.raises(KeyMismatch, match="lacks the master keys k2"):
        check_master_keys(engine, old)


def test_a_database_without_the_table_asks_for_an_upgrade(tmp_path: Path) -> None:
    eng = make_engine(f"sqlite:///{tmp_path / 'empty.db'}", pool_size=1)
    with pytest.raises(KeyMismatch, match="carnet db upgrade"):
        check_master_keys(eng, KeyRing.generate())
    eng.dispose()


def test_nodes_starting_together_with_different_keys_agree_on_one(engine: Engine) -> None:
    rings = [KeyRing.generate() for _ in range(4)]

    def start(ring: KeyRing) -> str:
        try:
            check_master_keys(engine, ring)
            return "started"
        except KeyMismatch:
            return "refused"

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(start, rings))
    assert outcomes.count("started") == 1


def test_a_key_that_wraps_no_document_is_retired(engine: Engine, tmp_path: Path) -> None:
    ring = KeyRing.generate()
    ring.add_new_key()
    check_master_keys(engine, ring)
    with engine.begin() as conn:
        assert retire_master_key(conn, ring, "k1") == 0  # no document uses it
        assert "k1" not in set(conn.execute(select(master_key.c.key_id)).scalars())
