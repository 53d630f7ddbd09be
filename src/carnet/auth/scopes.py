"""SMART scopes: what a client may ask for (:func:`negotiate_scopes`) and what a granted scope permits
(:func:`scope_allows`).

SMART v2 resource scopes ``<patient|user|system>/<Type|*>.<cruds>``; the v1 suffixes ``.read``, ``.write`` and
``.*`` are read as ``rs``, ``cud`` and ``cruds``. A requested scope is granted when one allowed scope covers it
(same context, allowed type ``*`` or the same type, requested permissions a subset of the allowed ones); granted
scopes are returned in v2 form. Scopes with SMART v2 query parameters (``?category=...``) are not supported and
are not granted.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from carnet.auth.errors import TokenError

__all__ = ["negotiate_scopes", "scope_allows"]

_SCOPE = re.compile(r"(patient|user|system)/(\*|[A-Z][A-Za-z]{0,63})\.([a-z*]{1,5})")
_V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": "cruds"}
_PERMISSION_ORDER = "cruds"
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,200}")  # RFC 6749 §3.3 scope-token
_MAX_SCOPE_CHARS = 4096


@dataclass(frozen=True)
class _ResourceScope:
    context: str
    resource_type: str
    permissions: frozenset[str]

    def covers(self, other: _ResourceScope) -> bool:
        return (self.context == other.context
                and self.resource_type in ("*", other.resource_type)
                and other.permissions <= self.permissions)

    def __str__(self) -> str:
        letters = "".join(p for p in _PERMISSION_ORDER if p in self.permissions)
        return f"{self.context}/{self.resource_type}.{letters}"


@functools.lru_cache(maxsize=1024)
def _parse_scope(scope: str) -> _ResourceScope | None:
    """A SMART resource scope (v2, or v1 read/write/*), or None for anything else. Remembered (a pure function of a
    string; the result is frozen): every API request checks its token's scopes, a few dozen distinct strings."""
    match = _SCOPE.fullmatch(scope)
    if match is None:
        return None
    context, resource_type, permissions = match.groups()
    permissions = _V1_PERMISSIONS.get(permissions, permissions)
    if not set(permissions) <= set(_PERMISSION_ORDER) or len(set(permissions)) != len(permissions):
        return None
    return _ResourceScope(context, resource_type, frozenset(permissions))


def negotiate_scopes(requested: str, allowed: Iterable[str]) -> set[str]:
    """The requested scopes that the client's ``allowed`` scopes cover, in SMART v2 form.

    A resource scope is granted when one allowed scope covers it (see the module docstring); any other scope
    token is granted only when it is itself in ``allowed``. Scopes not granted are dropped, as RFC 6749 §3.3 lets
    the server do (the token response then lists what was granted).

    :raises TokenError: ``invalid_scope`` when nothing is granted.
    """
    if not isinstance(requested, str) or len(requested) > _MAX_SCOPE_CHARS:
        raise TokenError("invalid_scope", "the scope parameter is missing or too long")
    allowed = frozenset(allowed)
    allowed_resources = [parsed for parsed in map(_parse_scope, allowed) if parsed is not None]
    granted: set[str] = set()
    for scope in requested.split():
        parsed = _parse_scope(scope)
        if parsed is not None:
            if any(grant.covers(parsed) for grant in allowed_resources):
                granted.add(str(parsed))
        elif _SCOPE_TOKEN.fullmatch(scope) and scope in allowed:
            granted.add(scope)
    if not granted:
        raise TokenError("invalid_scope", "none of the requested scopes is allowed for this client")
    return granted


def scope_allows(scopes: Iterable[str], resource_type: str, interaction: str) -> bool:
    """Whether ``scopes`` permit ``interaction`` (one of c, r, u, d, s) on ``resource_type``.

    The context (patient/user/system) is not considered here: restricting a patient-context token to the
    patient's compartment is the access policy's job.
    """
    if len(interaction) != 1 or interaction not in _PERMISSION_ORDER:
        raise ValueError("interaction must be one of c, r, u, d, s")
    for scope in scopes:
        parsed = _parse_scope(scope)
        if parsed is not None and parsed.resource_type in ("*", resource_type) and interaction in parsed.permissions:
            return True
    return False
