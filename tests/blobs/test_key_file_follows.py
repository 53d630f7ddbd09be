"""A key ring read from a file follows the file while the process runs (a rotation made by ``carnet keys rotate`` in
another process), and a key's check value is stable, distinct per key, and not the key."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from carnet.blobs import IntegrityError, KeyRing, open_sealed, seal


def test_a_ring_from_a_file_opens_what_another_process_wrapped_under_a_newer_key(tmp_path: Path) -> None:
    path = tmp_path / "master-key.json"
    KeyRing.generate().save(path)
    server = KeyRing.load(path)  # a node, started before the rotation
    operator = KeyRing.load(path)
    assert operator.add_new_key(path) == "k2"
    sealed = seal(operator, b"%PDF- rotated", b"aad")
    assert sealed.key_id == "k2"
    assert open_sealed(server, sealed, b"aad") == b"%PDF- rotated"  # the miss re-reads the file
    assert server.current_id == "k2"


def test_a_ring_from_a_file_soon_wraps_new_documents_under_the_new_key(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "master-key.json"
    KeyRing.generate().save(path)
    server = KeyRing.load(path)
    KeyRing.load(path).add_new_key(path)
    monkeypatch.setattr(KeyRing, "REFRESH_SECONDS", 0.0)
    assert seal(server, b"x", b"aad").key_id == "k2"


def test_a_ring_from_a_spec_follows_nothing_and_an_unknown_key_stays_an_integrity_error() -> None:
    ring = KeyRing.from_spec(f"k1:{base64.b64encode(bytes(32)).decode()}")
    with pytest.raises(IntegrityError):
        ring.fingerprint("k2")
    assert not ring.refresh(force=True)


def test_a_key_file_unreadable_for_a_moment_leaves_the_ring_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "master-key.json"
    KeyRing.generate().save(path)
    server = KeyRing.load(path)
    path.chmod(0o644)  # refused by load: the ring keeps its keys
    path.touch()
    assert not server.refresh(force=True)
    assert server.key_ids == ("k1",)


def test_check_values_are_stable_distinct_and_not_the_key(tmp_path: Path) -> None:
    a, b = KeyRing.generate(), KeyRing.generate()
    assert a.fingerprint("k1") == KeyRing.from_json(a.to_json()).fingerprint("k1")
    assert a.fingerprint("k1") != b.fingerprint("k1")
    assert len(a.fingerprint("k1")) == 32
    assert a.fingerprint("k1") not in a.to_json() and a._kek("k1").hex()[:32] != a.fingerprint("k1")
