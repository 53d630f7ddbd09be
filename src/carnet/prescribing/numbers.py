"""The prescription number (Carnet's design; docs/PRESCRIPTIONS.md, "The number").

16 characters of Crockford's base 32 (digits and capitals without I, L, O, U: nothing to misread over the phone or
on a worn print-out), shown in four groups of four: 15 random characters (75 bits from ``secrets``: unguessable,
a pharmacist needs the patient's INS or the 2D code with it anyway) and a check character, Luhn mod 32 over the
other 15, which catches every single wrong character and every swap of two neighbours. Typed numbers are read
leniently (case, spaces, dashes, ``O``→``0``, ``I``/``L``→``1``) and then checked.

The 2D code carries ``CARNET-RX:<number>:<secret>``: the number finds the prescription, the secret (128 bits, only
its SHA-256 stored) stands for the INS as proof that the pharmacist holds the prescription itself.
"""

from __future__ import annotations

import hashlib
import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base 32
RANDOM_CHARS = 15
SCAN_PREFIX = "CARNET-RX:"
_READ = str.maketrans({"O": "0", "I": "1", "L": "1"})


def check_char(body: str) -> str:
    """Luhn mod 32 over ``body`` (characters of :data:`ALPHABET`)."""
    factor, total, n = 2, 0, len(ALPHABET)
    for ch in reversed(body):
        addend = factor * ALPHABET.index(ch)
        factor = 1 if factor == 2 else 2
        total += addend // n + addend % n
    return ALPHABET[(n - total % n) % n]


def new_number() -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_CHARS))
    return body + check_char(body)


def format_number(number: str) -> str:
    return "-".join(number[i:i + 4] for i in range(0, len(number), 4))


def normalise(typed: str) -> str | None:
    """The number as stored, from what was typed or scanned; None if it is not a valid number (wrong check)."""
    text = "".join(ch for ch in typed.upper() if ch.isalnum()).translate(_READ)
    if len(text) != RANDOM_CHARS + 1 or any(ch not in ALPHABET for ch in text):
        return None
    return text if check_char(text[:-1]) == text[-1] else None


def new_scan_secret() -> str:
    return secrets.token_urlsafe(16)


def scan_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def scan_text(number: str, secret: str) -> str:
    return f"{SCAN_PREFIX}{number}:{secret}"


def read_scan(text: str) -> tuple[str, str] | None:
    """(number, secret) from a scanned code, or None."""
    text = text.strip()
    if not text.upper().startswith(SCAN_PREFIX):
        return None
    number, _, secret = text[len(SCAN_PREFIX):].partition(":")
    found = normalise(number)
    if found is None or not secret or len(secret) > 64:
        return None
    return found, secret
