"""Passwords and one-time codes.

Passwords are hashed with Argon2id (argon2-cffi's defaults: RFC 9106's second recommended profile) and re-hashed when
the parameters change. One-time codes are random, stored only as a keyed SHA-256 (HMAC with the code's own id, so
two equal codes never share a hash), compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


def N_(message: str) -> str:  # noqa: N802 - marks a message id for extraction; the portal translates it
    return message


_HASHER = PasswordHasher()
_DUMMY = _HASHER.hash("not a password, spends the same time for unknown identifiers")
MIN_PASSWORD = 10
MAX_PASSWORD = 200
# Activation codes are typed from a letter: no 0/O, 1/I/L.
_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> tuple[bool, bool]:
    """(matches, needs_rehash). With no stored hash, a dummy verification keeps the timing of a real one."""
    try:
        ok = _HASHER.verify(stored or _DUMMY, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, False
    if stored is None:
        return False, False
    return ok, _HASHER.check_needs_rehash(stored)


def password_problem(password: str, *others: str) -> str | None:
    """Why a new password is refused (an English message id), or None. Length over complexity (NIST SP 800-63B)."""
    if len(password) < MIN_PASSWORD:
        return N_("Choose a password of at least 10 characters.")
    if len(password) > MAX_PASSWORD:
        return N_("This password is too long.")
    low = password.lower()
    if any(o and o.lower() in low for o in others if len(o) >= 4):
        return N_("Your password must not contain your identifier or your name.")
    if len(set(password)) < 4:
        return N_("This password is too easy to guess.")
    return None


def numeric_code(digits: int = 6) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(digits))


def activation_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def normalise_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def code_hash(code_id: uuid.UUID, code: str) -> str:
    return hmac.new(code_id.bytes, normalise_code(code).encode(), hashlib.sha256).hexdigest()


def code_matches(code_id: uuid.UUID, stored: str, presented: str) -> bool:
    return hmac.compare_digest(stored, code_hash(code_id, presented))
