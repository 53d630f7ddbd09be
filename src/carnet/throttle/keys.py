"""The keyed hash that names every counter row: no identifier nor address is stored in clear."""

from __future__ import annotations

import hashlib
import hmac

from carnet.blobs import KeyRing

_DERIVED: dict[int, tuple[KeyRing, bytes]] = {}


def _key(keyring: KeyRing) -> bytes:
    held = _DERIVED.get(id(keyring))
    if held is None or held[0] is not keyring:
        held = (keyring, keyring.derive("throttle"))
        _DERIVED[id(keyring)] = held
    return held[1]


def keyed(keyring: KeyRing, *parts: str) -> str:
    """HMAC-SHA256 (hex) of ``parts`` under a key derived from the master key ring: the same on every node that holds
    the same ring, meaningless without it."""
    return hmac.new(_key(keyring), "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()
