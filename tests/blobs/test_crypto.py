from __future__ import annotations

import base64
import json
import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carnet.blobs import crypto
from carnet.blobs.crypto import IntegrityError, KeyRing, Sealed, open_sealed, rewrap, seal

AAD = b"dossier-123/doc-456"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing.generate()


def flip(data: bytes, index: int, mask: int) -> bytes:
    out = bytearray(data)
    out[index % len(out)] ^= mask
    return bytes(out)


# -- seal / open -------------------------------------------------------------------------------------------------------

_RING = KeyRing.generate()  # hypothesis does not mix with function-scoped fixtures


@given(plaintext=st.binary(max_size=4096), aad=st.binary(max_size=256))
def test_sealed_contents_open_to_the_same_bytes(plaintext: bytes, aad: bytes) -> None:
    sealed = seal(_RING, plaintext, aad)
    assert open_sealed(_RING, sealed, aad) == plaintext


@given(plaintext=st.binary(min_size=16, max_size=1024))
def test_ciphertext_does_not_contain_the_plaintext(plaintext: bytes) -> None:
    assert plaintext not in seal(_RING, plaintext, AAD).ciphertext


def test_ciphertext_is_nonce_then_ciphertext_then_tag(ring: KeyRing) -> None:
    sealed = seal(ring, b"hello", AAD)
    assert len(sealed.ciphertext) == crypto.NONCE_BYTES + 5 + crypto.TAG_BYTES
    assert len(sealed.wrapped_key) == crypto.WRAPPED_KEY_BYTES
    assert sealed.key_id == ring.current_id == "k1"


def test_each_seal_uses_a_fresh_data_key_and_a_fresh_nonce(ring: KeyRing) -> None:
    sealed = [seal(ring, b"same contents", AAD) for _ in range(20)]
    nonces = {s.ciphertext[: crypto.NONCE_BYTES] for s in sealed}
    wrapped = {s.wrapped_key for s in sealed}
    ciphertexts = {s.ciphertext for s in sealed}
    assert len(nonces) == len(wrapped) == len(ciphertexts) == 20  # AES-KW is deterministic: new wrap = new data key


def test_each_seal_draws_a_new_256_bit_data_key(ring: KeyRing, monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[int] = []
    real = crypto.AESGCM.generate_key

    def spy(bit_length: int) -> bytes:
        drawn.append(bit_length)
        return real(bit_length)

    monkeypatch.setattr(crypto.AESGCM, "generate_key", staticmethod(spy))
    seal(ring, b"a", AAD)
    seal(ring, b"a", AAD)
    assert drawn == [256, 256]


def test_empty_contents_seal_and_open(ring: KeyRing) -> None:
    assert open_sealed(ring, seal(ring, b"", AAD), AAD) == b""


def test_sealed_repr_shows_no_bytes(ring: KeyRing) -> None:
    sealed = seal(ring, b"secret diagnosis", AAD)
    assert "secret" not in repr(sealed) and repr(sealed.ciphertext) not in repr(sealed)


# -- tampering ---------------------------------------------------------------------------------------------------------

_SEALED = seal(_RING, b"a medical report, in PDF" * 10, AAD)


@given(index=st.integers(min_value=0), mask=st.integers(min_value=1, max_value=255))
def test_changing_any_byte_of_the_ciphertext_is_an_integrity_error(index: int, mask: int) -> None:
    tampered = replace(_SEALED, ciphertext=flip(_SEALED.ciphertext, index, mask))
    with pytest.raises(IntegrityError):
        open_sealed(_RING, tampered, AAD)


@given(index=st.integers(min_value=0), mask=st.integers(min_value=1, max_value=255))
def test_changing_any_byte_of_the_wrapped_key_is_an_integrity_error(index: int, mask: int) -> None:
    tampered = replace(_SEALED, wrapped_key=flip(_SEALED.wrapped_key, index, mask))
    with pytest.raises(IntegrityError):
        open_sealed(_RING, tampered, AAD)


@given(index=st.integers(min_value=0), mask=st.integers(min_value=1, max_value=255))
def test_changing_any_byte_of_the_associated_data_is_an_integrity_error(index: int, mask: int) -> None:
    with pytest.raises(IntegrityError):
        open_sealed(_RING, _SEALED, flip(AAD, index, mask))


@given(cut=st.integers(min_value=1, max_value=len(_SEALED.ciphertext)))
def test_a_truncated_ciphertext_is_an_integrity_error(cut: int) -> None:
    with pytest.raises(IntegrityError):
        open_sealed(_RING, replace(_SEALED, ciphertext=_SEALED.ciphertext[:-cut]), AAD)


def test_extra_bytes_after_the_ciphertext_are_an_integrity_error() -> None:
    with pytest.raises(IntegrityError):
        open_sealed(_RING, replace(_SEALED, ciphertext=_SEALED.ciphertext + b"\0"), AAD)


def test_a_wrapped_key_of_the_wrong_length_is_an_integrity_error() -> None:
    for wrapped in (b"", _SEALED.wrapped_key[:-8], _SEALED.wrapped_key + bytes(8)):
        with pytest.raises(IntegrityError):
            open_sealed(_RING, replace(_SEALED, wrapped_key=wrapped), AAD)


def test_a_blob_cannot_be_swapped_between_documents(ring: KeyRing) -> None:
    a = seal(ring, b"report A", b"dossier-1/doc-a")
    b = seal(ring, b"report B", b"dossier-1/doc-b")
    with pytest.raises(IntegrityError):
        open_sealed(ring, Sealed(b.ciphertext, a.wrapped_key, a.key_id), b"dossier-1/doc-a")
    with pytest.raises(IntegrityError):
        open_sealed(ring, b, b"dossier-1/doc-a")


def test_an_unknown_key_id_is_an_integrity_error(ring: KeyRing) -> None:
    sealed = seal(ring, b"x", AAD)
    with pytest.raises(IntegrityError, match="unknown master key"):
        open_sealed(ring, replace(sealed, key_id="k9"), AAD)


def test_a_key_id_swapped_to_another_master_key_is_an_integrity_error(ring: KeyRing) -> None:
    sealed = seal(ring, b"x", AAD)
    ring.add_new_key()
    with pytest.raises(IntegrityError):
        open_sealed(ring, replace(sealed, key_id=ring.current_id), AAD)


def test_opening_with_another_key_ring_is_an_integrity_error(ring: KeyRing) -> None:
    sealed = seal(ring, b"x", AAD)
    with pytest.raises(IntegrityError):
        open_sealed(KeyRing.generate(), sealed, AAD)


# -- rotation ----------------------------------------------------------------------------------------------------------


def test_rewrap_after_rotation_opens_with_the_new_key_and_the_old_key_can_be_removed(ring: KeyRing) -> None:
    sealed = seal(ring, b"old document", AAD)
    new_kid = ring.add_new_key()
    assert new_kid == "k2" and ring.current_id == "k2"
    assert open_sealed(ring, sealed, AAD) == b"old document"  # old key still in the ring

    wrapped, kid = rewrap(ring, sealed.wrapped_key, sealed.key_id)
    assert kid == "k2" and wrapped != sealed.wrapped_key
    ring.remove("k1")
    assert ring.key_ids == ("k2",)

    rewrapped = Sealed(sealed.ciphertext, wrapped, kid)  # ciphertext untouched
    assert open_sealed(ring, rewrapped, AAD) == b"old document"
    with pytest.raises(IntegrityError):
        open_sealed(ring, sealed, AAD)


def test_new_seals_after_rotation_use_the_new_key(ring: KeyRing) -> None:
    ring.add_new_key()
    assert seal(ring, b"x", AAD).key_id == "k2"


def test_rewrap_under_the_current_key_changes_nothing(ring: KeyRing) -> None:
    sealed = seal(ring, b"x", AAD)
    assert rewrap(ring, sealed.wrapped_key, sealed.key_id) == (sealed.wrapped_key, "k1")


def test_rewrap_of_a_tampered_wrapped_key_is_an_integrity_error(ring: KeyRing) -> None:
    sealed = seal(ring, b"x", AAD)
    ring.add_new_key()
    with pytest.raises(IntegrityError):
        rewrap(ring, flip(sealed.wrapped_key, 3, 1), sealed.key_id)
    with pytest.raises(IntegrityError):
        rewrap(ring, sealed.wrapped_key, "k7")


def test_the_current_key_cannot_be_removed(ring: KeyRing) -> None:
    with pytest.raises(ValueError, match="current"):
        ring.remove("k1")


def test_new_key_ids_follow_the_highest_existing_one() -> None:
    ring = KeyRing.from_spec(f"k1:{b64(bytes(32))},k7:{b64(bytes(range(32)))},main:{b64(b'x' * 32)}")
    assert ring.add_new_key() == "k8"


def test_add_new_key_persists_the_ring_before_using_the_new_key(tmp_path: Path) -> None:
    path = tmp_path / "var" / "master.keys"
    ring = KeyRing.load_or_create(path)
    sealed = seal(ring, b"x", AAD)
    ring.add_new_key(path)
    reloaded = KeyRing.load(path)
    assert reloaded.key_ids == ("k1", "k2") and reloaded.current_id == "k2"
    assert open_sealed(reloaded, sealed, AAD) == b"x"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_failed_persist_leaves_the_ring_unchanged(ring: KeyRing, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(OSError):
        ring.add_new_key(blocker / "master.keys")
    assert ring.key_ids == ("k1",) and ring.current_id == "k1"


# -- key ring construction ---------------------------------------------------------------------------------------------


def test_a_spec_makes_the_last_key_current() -> None:
    ring = KeyRing.from_spec(f"k1:{b64(bytes(32))}, k2:{b64(bytes(range(32)))}")
    assert ring.key_ids == ("k1", "k2") and ring.current_id == "k2"


@pytest.mark.parametrize("spec", [
    "",
    " , ",
    "k1",
    f"k1:{b64(bytes(16))}",
    "k1:not base64!",
    f"k1:{b64(bytes(32))},k1:{b64(bytes(32))}",
    f"bad/id:{b64(bytes(32))}",
    f":{b64(bytes(32))}",
])
def test_a_bad_spec_is_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        KeyRing.from_spec(spec)


def test_errors_about_a_bad_key_do_not_echo_the_key() -> None:
    with pytest.raises(ValueError) as info:
        KeyRing.from_spec("k1:c2VjcmV0LWtleQ==")
    assert "c2VjcmV0" not in str(info.value)


def test_the_key_ring_repr_shows_ids_but_no_keys() -> None:
    key = bytes(range(32))
    ring = KeyRing.from_spec(f"k1:{b64(key)}")
    assert "k1" in repr(ring) and b64(key) not in repr(ring) and repr(key) not in repr(ring)


def test_to_json_round_trips(ring: KeyRing) -> None:
    ring.add_new_key()
    doc = json.loads(ring.to_json())
    assert doc["current"] == "k2" and set(doc["keys"]) == {"k1", "k2"}
    again = KeyRing.from_json(ring.to_json())
    sealed = seal(ring, b"x", AAD)
    assert open_sealed(again, sealed, AAD) == b"x"


# -- the key file ------------------------------------------------------------------------------------------------------


def test_the_key_file_is_created_on_first_run_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "var" / "master.keys"
    old_umask = os.umask(0)
    try:
        ring = KeyRing.load_or_create(path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ring.current_id == "k1"
    assert [p.name for p in path.parent.iterdir()] == ["master.keys"]  # no temp file left
    doc = json.loads(path.read_text())
    assert doc["current"] == "k1" and len(base64.b64decode(doc["keys"]["k1"])) == 32


def test_the_key_file_is_reused_on_later_runs(tmp_path: Path) -> None:
    path = tmp_path / "master.keys"
    sealed = seal(KeyRing.load_or_create(path), b"x", AAD)
    assert open_sealed(KeyRing.load_or_create(path), sealed, AAD) == b"x"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606])
def test_a_key_file_readable_or_writable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "master.keys"
    KeyRing.load_or_create(path)
    path.chmod(mode)
    with pytest.raises(PermissionError, match="chmod 600"):
        KeyRing.load_or_create(path)
    with pytest.raises(PermissionError):
        KeyRing.load(path)


def test_an_invalid_key_file_is_refused_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "master.keys"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"{not json")
    os.close(fd)
    with pytest.raises(ValueError):
        KeyRing.load_or_create(path)
    assert path.read_bytes() == b"{not json"


def test_a_key_file_whose_current_key_is_missing_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="current"):
        KeyRing.from_json(json.dumps({"current": "k2", "keys": {"k1": b64(bytes(32))}}))


def test_a_symlinked_key_file_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real.keys"
    KeyRing.load_or_create(real)
    link = tmp_path / "master.keys"
    link.symlink_to(real)
    with pytest.raises(OSError):
        KeyRing.load(link)


def test_a_key_file_created_meanwhile_by_another_process_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "master.keys"
    other = KeyRing.generate()
    real_link = os.link

    def racing_link(src: str, dst: str) -> None:
        crypto._write_private_file(Path(dst), other.to_json().encode(), overwrite=True)
        real_link(src, dst)

    monkeypatch.setattr(crypto.os, "link", racing_link)
    ring = KeyRing.load_or_create(path)
    sealed = seal(other, b"x", AAD)
    assert open_sealed(ring, sealed, AAD) == b"x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["master.keys"]


@settings(max_examples=25)
@given(st.lists(st.binary(max_size=64), min_size=1, max_size=5))
def test_every_document_survives_any_number_of_rotations(contents: list[bytes]) -> None:
    ring = KeyRing.generate()
    stored = [(c, seal(ring, c, AAD)) for c in contents]
    for _ in range(3):
        ring.add_new_key()
        stored = [(c, Sealed(s.ciphertext, *rewrap(ring, s.wrapped_key, s.key_id))) for c, s in stored]
        for kid in ring.key_ids[:-1]:
            ring.remove(kid)
    assert all(open_sealed(ring, s, AAD) == c for c, s in stored)
