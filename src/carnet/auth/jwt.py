"""Reading JWTs strictly: a compact JWS split into its header and claims, JSON without duplicate members nor NaN,
NumericDates and audiences. Verifying signatures is the caller's job (:mod:`carnet.auth.assertions`,
:mod:`carnet.auth.keys`)."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable
from typing import Any

from carnet.auth.errors import TokenError

__all__ = [
    "CLOCK_SKEW",
    "audience_contains",
    "b64url_object",
    "json_bytes",
    "loads_object",
    "numeric_date",
    "split_jwt",
]

#: Tolerance, in seconds, for a client clock running ahead of Carnet's (``exp``, ``iat`` and ``nbf`` bounds).
CLOCK_SKEW = 60

_MAX_JWT_CHARS = 16_384
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError("duplicate member")
        out[key] = value
    return out


def _reject_constant(_: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


def loads_object(data: bytes) -> dict[str, Any]:
    value = json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def b64url_object(segment: str) -> dict[str, Any]:
    if not _B64URL.fullmatch(segment):
        raise ValueError("not base64url")
    return loads_object(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def split_jwt(token: object, what: str, error: Callable[[str], TokenError]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and the (not yet verified) claims of a compact JWS."""
    if not isinstance(token, str) or not token:
        raise error(f"the {what} is missing")
    if len(token) > _MAX_JWT_CHARS:
        raise error(f"the {what} is too long")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise error(f"the {what} is not a compact JWS")
    try:
        return b64url_object(parts[0]), b64url_object(parts[1])
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise error(f"the {what} is not a well-formed JWT") from exc


def numeric_date(claims: dict[str, Any], name: str, error: Callable[[str], TokenError], *,
                 required: bool) -> int | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise error(f"the '{name}' claim is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise error(f"the '{name}' claim must be a NumericDate")
    return int(value)


def audience_contains(aud: object, expected: str) -> bool:
    if isinstance(aud, str):
        return aud == expected
    if isinstance(aud, list) and all(isinstance(item, str) for item in aud):
        return expected in aud
    return False
