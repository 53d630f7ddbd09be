"""What an access code looks like: 8 characters from an alphabet of 30 with no look-alikes (no 0/O, 1/I/L, no U
that reads as V on a bad line), shown as ``XXXX-XXXX``: 30^8 ≈ 6.6·10^11, about 39.3 bits. Typed in any case, with or
without the dash or spaces. Stored only as a keyed hash (HMAC-SHA256 under a key derived from the master key ring,
bound to the dossier), so a copy of the database reveals no code, and the same code on two dossiers hashes apart."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

from carnet.blobs import KeyRing

ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 8

_DERIVED: dict[int, tuple[KeyRing, bytes]] = {}


def new_code() -> str:
    """A fresh code, 8 characters from :data:`ALPHABET` (the ``secrets`` generator), undashed."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def format_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def normalise(typed: str) -> str | None:
    """The code as stored, from what was typed (case, spaces and dashes ignored); None if it cannot be a code."""
    text = "".join(ch for ch in str(typed or "").upper() if ch not in " -\t")
    if len(text) != LENGTH or any(ch not in ALPHABET for ch in text):
        return None
    return text


def _key(keyring: KeyRing) -> bytes:
    held = _DERIVED.get(id(keyring))
    if held is None or held[0] is not keyring:
        held = (keyring, keyring.derive("access-code"))
        _DERIVED[id(keyring)] = held
    return held[1]


def code_hash(keyring: KeyRing, dossier_key: uuid.UUID, code: str) -> str:
    """HMAC-SHA256 (hex) of the dossier and the normalised code."""
    return hmac.new(_key(keyring), f"{dossier_key}\x1f{code}".encode(), hashlib.sha256).hexdigest()
