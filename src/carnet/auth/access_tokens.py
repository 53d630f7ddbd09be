"""Access tokens: issued at the token endpoint (:func:`issue_access_token`), checked on every API request
(:func:`verify_access_token`, then :func:`access_token_actor` for who is calling).

An RFC 9068 JWT, signed ES256 with :class:`ServerKey`, header ``typ: at+jwt``::

    {"iss": issuer, "aud": issuer, "sub": client_id, "client_id": client_id, "jti": uuid4, "iat": now,
     "exp": now + lifetime, "scope": "system/DocumentReference.rs system/Patient.rs",
     "extensions": {"ihe_iua": {... as in carnet.auth.claims, "purpose_of_use" set by Carnet},
                    "carnet": {"client_kind": ..., "mode": ..., ...}}}

``sub`` is the client, as RFC 9068 §2.2 asks for grants without a resource owner; the acting person is in the
extensions. ``purpose_of_use`` is set from the kind and mode: TREAT (professional, normal), ETREAT (emergency and
regulation), PATRQT (patient portal), HPAYMT (Assurance Maladie).
"""

from __future__ import annotations

import uuid
from typing import Any

from carnet.auth.claims import (
    AssertionClaims,
    actor_extensions,
    check_actor_for_kind,
    check_actor_shapes,
    extension_objects,
    read_actor,
)
from carnet.auth.errors import TokenError, invalid_token
from carnet.auth.jwt import CLOCK_SKEW, audience_contains, loads_object, numeric_date, split_jwt
from carnet.auth.keys import AT_JWT_TYPE, ServerKey

__all__ = ["MAX_ACCESS_TOKEN_LIFETIME", "access_token_actor", "issue_access_token", "verify_access_token"]

#: Longest access token lifetime :func:`issue_access_token` accepts (IHE IUA: one hour or less).
MAX_ACCESS_TOKEN_LIFETIME = 3600


def issue_access_token(server_key: ServerKey, claims: AssertionClaims, scopes: set[str], now: int,
                       lifetime: int = 300, *, issuer: str) -> tuple[str, int]:
    """Sign an access token for the verified ``claims`` and the granted ``scopes``; returns (token, expires_in).

    The actor rules are checked again, so a token can never carry what an assertion could not.
    """
    if not 0 < lifetime <= MAX_ACCESS_TOKEN_LIFETIME:
        raise ValueError(f"lifetime must be between 1 and {MAX_ACCESS_TOKEN_LIFETIME} seconds")
    if not scopes or any(not isinstance(s, str) or not s or " " in s for s in scopes):
        raise TokenError("invalid_scope", "no scope was granted")
    actor = {
        "professional_id": claims.professional_id, "organisation_id": claims.organisation_id,
        "patient_ins": claims.patient_ins, "mode": claims.mode, "reason": claims.reason,
        "representative_id": claims.representative_id, "grant_id": claims.grant_id,
    }
    check_actor_shapes(**actor)
    if claims.client_kind is not None:
        check_actor_for_kind(claims.client_kind, actor)
    payload = {
        "iss": issuer,
        "aud": issuer,
        "sub": claims.client_id,
        "client_id": claims.client_id,
        "jti": str(uuid.uuid4()),
        "iat": now,
        "exp": now + lifetime,
        "scope": " ".join(sorted(scopes)),
        "extensions": actor_extensions(kind=claims.client_kind, **actor),
    }
    return server_key.sign(payload), lifetime


def verify_access_token(server_key: ServerKey, token: str, now: int, issuer: str) -> dict[str, Any]:
    """Check an access token from an ``Authorization: Bearer`` header and return its claims (RFC 9068 §4).

    :raises TokenError: ``invalid_token`` (RFC 6750 §3.1) for a bad signature, another issuer or audience, an
        expired token, or one that is not a Carnet access token.
    """
    header, _ = split_jwt(token, "access token", invalid_token)
    if header.get("alg") != server_key.algorithm or header.get("typ") != AT_JWT_TYPE:
        raise invalid_token("this is not a Carnet access token")
    if header.get("kid") != server_key.kid:
        raise invalid_token("the access token was signed with an unknown key")
    try:
        claims = loads_object(server_key.verify_signature(token))
    except ValueError as exc:
        raise invalid_token("the access token's claims are not a JSON object") from exc
    if claims.get("iss") != issuer:
        raise invalid_token("the access token was issued by another server")
    if not audience_contains(claims.get("aud"), issuer):
        raise invalid_token("the access token is meant for another audience")
    exp = numeric_date(claims, "exp", invalid_token, required=True)
    assert exp is not None
    if exp <= now:
        raise invalid_token("the access token has expired")
    for name in ("nbf", "iat"):
        value = numeric_date(claims, name, invalid_token, required=False)
        if value is not None and value > now + CLOCK_SKEW:
            raise invalid_token(f"the access token's '{name}' is in the future")
    for name in ("sub", "client_id", "jti", "scope"):
        if not isinstance(claims.get(name), str) or not claims[name]:
            raise invalid_token(f"the access token has no '{name}'")
    return claims


def access_token_actor(claims: dict[str, Any]) -> AssertionClaims:
    """The actor named by verified access token ``claims`` (from :func:`verify_access_token`).

    ``jti`` and ``exp`` are the access token's.
    """
    _, carnet = extension_objects(claims)
    kind = carnet.get("client_kind")
    try:
        actor = read_actor(claims)
    except TokenError as exc:
        raise invalid_token("the access token's actor claims are malformed") from exc
    return AssertionClaims(client_id=claims["client_id"], jti=claims["jti"], exp=int(claims["exp"]),
                           client_kind=kind if isinstance(kind, str) else None, **actor)
