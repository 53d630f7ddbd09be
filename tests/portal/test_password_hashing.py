"""The password hasher: production's parameters, and the re-hash when the parameters change.

The suite hashes at Argon2id's lowest cost (tests/conftest.py, ``TEST_HASHER``); these tests hold what production uses
and that a hash made with other parameters is re-hashed on the next sign-in. No database: they run once.
"""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher, Type
from argon2.profiles import RFC_9106_LOW_MEMORY

from carnet.accounts import secrets
from tests.conftest import PRODUCTION_HASHER, TEST_HASHER


def test_production_hashes_with_argon2id_at_rfc_9106_low_memory_profile() -> None:
    assert PRODUCTION_HASHER.type is Type.ID
    assert (PRODUCTION_HASHER.time_cost, PRODUCTION_HASHER.memory_cost, PRODUCTION_HASHER.parallelism) == (
        RFC_9106_LOW_MEMORY.time_cost, RFC_9106_LOW_MEMORY.memory_cost, RFC_9106_LOW_MEMORY.parallelism)
    assert (RFC_9106_LOW_MEMORY.time_cost, RFC_9106_LOW_MEMORY.memory_cost) == (3, 64 * 1024)
    assert secrets._HASHER is TEST_HASHER  # the suite's cheaper hasher is the one in use


def test_a_hash_made_with_other_parameters_verifies_and_asks_for_a_rehash() -> None:
    stored = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1).hash("correct horse battery")
    assert secrets.verify_password(stored, "correct horse battery") == (True, True)
    assert secrets.verify_password(stored, "wrong horse battery") == (False, False)
    fresh = secrets.hash_password("correct horse battery")
    assert fresh.startswith("$argon2id$") and fresh != stored
    assert secrets.verify_password(fresh, "correct horse battery") == (True, False)


@pytest.mark.parametrize("stored", [None, "", "not an argon2 hash"])
def test_no_or_a_broken_stored_hash_never_matches(stored: str | None) -> None:
    assert secrets.verify_password(stored, "correct horse battery") == (False, False)
