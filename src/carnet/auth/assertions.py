"""Client assertions: how a registered client authenticates at the token endpoint (``private_key_jwt``).

A client (a practice's or a hospital's software, Carnet's own patient portal, an Assurance Maladie system) is
registered by an admin with its public JWKS and a set of allowed scopes (:class:`ClientRecord`). It signs a short JWT
with its private key, as in SMART App Launch 2, "Backend Services" and "Client Authentication: Asymmetric"
(https://hl7.org/fhir/smart-app-launch/backend-services.html), on RFC 7523 §2.2 and §3. The token endpoint calls
:func:`unverified_client_id` (which record to load), then :func:`verify_client_assertion`; :func:`make_client_assertion`
is the client's side, for tests, examples and the demo.

The client assertion
====================
Header: ``alg`` one of RS384, ES384 (SMART's required pair), RS256, ES256 — never ``none`` nor an HMAC; ``kid``
naming a key of the registered JWKS (it may be left out only when the JWKS holds a single key); no ``jku`` (Carnet
registers key sets, not key set URLs, so SMART's "jku must match the registered URL" can never hold), no ``crit``, no
``b64``. Keys sent inside the header (``jwk``, ``x5c``) are never used.

Claims, checked in this order (each failure is ``invalid_client``, as SMART asks):

- the signature, with the registered key (EC keys on the curve of ``alg``, RSA keys of 2048 bits or more);
- ``iss`` == ``sub`` == the registered ``client_id`` (RFC 7523 §3 items 1 and 2.B);
- ``aud`` is the token endpoint URL, or a list containing it (exact string comparison);
- ``exp`` is in the future and at most :data:`MAX_ASSERTION_LIFETIME` (5 minutes) ahead, with
  :data:`~carnet.auth.jwt.CLOCK_SKEW` of tolerance for a client whose clock runs ahead; ``nbf`` and ``iat``, when
  present, not in the future (same tolerance);
- ``jti`` present (at most 256 characters);
- the client is enabled;
- the actor claims (:mod:`carnet.auth.claims`; ``invalid_request`` when malformed, ``unauthorized_client`` when
  the kind of client may not claim them);
- last, ``jti`` not seen before: ``jti_seen(jti, exp)`` is the caller's atomic "check and record" and must remember
  the jti at least until ``exp``, after which the assertion is refused anyway.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError, SecurityWarning
from joserfc.jwk import ECKey, RSAKey
from joserfc.jws import JWSRegistry

from carnet.auth.claims import AssertionClaims, actor_extensions, check_actor_for_kind, check_purpose_of_use, read_actor
from carnet.auth.errors import invalid_client
from carnet.auth.jwt import CLOCK_SKEW, audience_contains, json_bytes, numeric_date, split_jwt

__all__ = [
    "ASSERTION_ALGORITHMS",
    "MAX_ASSERTION_LIFETIME",
    "ClientRecord",
    "make_client_assertion",
    "unverified_client_id",
    "verify_client_assertion",
]

#: Signature algorithms accepted on client assertions (SMART requires RS384 and ES384 to be supported).
ASSERTION_ALGORITHMS = frozenset({"RS384", "ES384", "RS256", "ES256"})
#: The longest an assertion may live: its ``exp`` at most this many seconds ahead (SMART Backend Services).
MAX_ASSERTION_LIFETIME = 300

_MAX_JTI_CHARS = 256
_ALG_KEYS: dict[str, tuple[str, str | None]] = {
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
}
_MIN_RSA_BITS = 2048
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


@dataclass
class ClientRecord:
    """A registered client, as the admin registered it."""

    client_id: str
    kind: str  # "professional" | "patient_portal" | "assurance_maladie" | "patient_app"
    jwks: dict
    scopes: frozenset[str]
    enabled: bool


def unverified_client_id(assertion: str) -> str:
    """The ``iss`` of a client assertion, before any verification: which :class:`ClientRecord` to load.

    Nothing else may be trusted before :func:`verify_client_assertion` has run.
    """
    _, claims = split_jwt(assertion, "client assertion", invalid_client)
    iss = claims.get("iss")
    if not isinstance(iss, str) or not iss:
        raise invalid_client("the 'iss' claim must name the client_id")
    return iss


def _verification_key(jwk: dict[str, Any], alg: str) -> ECKey | RSAKey | None:
    """The registered JWK as a key able to verify ``alg``, or None."""
    kty, crv = _ALG_KEYS[alg]
    if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
        return None
    if jwk.get("use", "sig") != "sig" or jwk.get("alg", alg) != alg:
        return None
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return None
    public = {name: value for name, value in jwk.items() if name not in _PRIVATE_JWK_MEMBERS}
    public.pop("key_ops", None)  # "verify" alone is what is left of it once private members are gone
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SecurityWarning)  # small RSA keys are refused just below
            key: ECKey | RSAKey = ECKey.import_key(public) if kty == "EC" else RSAKey.import_key(public)
    except (JoseError, ValueError, TypeError):
        return None
    if isinstance(key, RSAKey) and key.public_key.key_size < _MIN_RSA_BITS:
        return None
    return key


def _client_keys(client: ClientRecord, kid: object, alg: str) -> list[ECKey | RSAKey]:
    keys = client.jwks.get("keys") if isinstance(client.jwks, dict) else None
    entries = [entry for entry in keys if isinstance(entry, dict)] if isinstance(keys, list) else []
    if not entries:
        raise invalid_client("the client has no registered key")
    if kid is None:
        if len(entries) != 1:
            raise invalid_client("the assertion header must name its key with 'kid'")
        named = entries
    else:
        if not isinstance(kid, str):
            raise invalid_client("the 'kid' header must be a string")
        named = [entry for entry in entries if entry.get("kid") == kid]
        if not named:
            raise invalid_client("no registered key has the assertion's 'kid'")
    usable = [key for key in (_verification_key(entry, alg) for entry in named) if key is not None]
    if not usable:
        raise invalid_client(f"the registered key named by 'kid' cannot verify {alg}")
    return usable


def _verify_signature(assertion: str, keys: list[ECKey | RSAKey], alg: str) -> None:
    registry = JWSRegistry(algorithms=[alg], strict_check_header=False)
    for key in keys:
        try:
            jws.deserialize_compact(assertion, key, registry=registry)
        except BadSignatureError:
            continue
        except (JoseError, ValueError, TypeError) as exc:
            raise invalid_client("the client assertion is not a well-formed JWS") from exc
        return
    raise invalid_client("the client assertion's signature does not verify with the client's registered key")


def verify_client_assertion(assertion: str, client: ClientRecord, token_endpoint: str, now: int,
                            jti_seen: Callable[[str, int], bool]) -> AssertionClaims:
    """Authenticate ``client`` by its ``private_key_jwt`` assertion and read the actor it names.

    Implements SMART App Launch 2 "Client Authentication: Asymmetric" (authorization server obligations) and
    RFC 7523 §3; the checks and their order are listed in the module docstring. ``jti_seen(jti, exp)`` must
    atomically record the jti and say whether it had been seen already; it is called last, only for an assertion
    that passed every other check.

    :raises TokenError: ``invalid_client`` when authentication fails, ``invalid_request`` when the actor claims are
        malformed, ``unauthorized_client`` when this kind of client may not make them.
    """
    header, claims = split_jwt(assertion, "client assertion", invalid_client)

    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ASSERTION_ALGORITHMS:
        raise invalid_client("the assertion's 'alg' must be one of " + ", ".join(sorted(ASSERTION_ALGORITHMS)))
    for name in ("crit", "b64"):
        if name in header:
            raise invalid_client(f"the '{name}' header is not supported")
    if "jku" in header:
        raise invalid_client("'jku' is not supported: Carnet verifies with the JWKS registered for the client")
    _verify_signature(assertion, _client_keys(client, header.get("kid"), alg), alg)

    if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
        raise invalid_client("'iss' and 'sub' must both be the client_id")
    if not audience_contains(claims.get("aud"), token_endpoint):
        raise invalid_client("'aud' must be the token endpoint URL")
    exp = numeric_date(claims, "exp", invalid_client, required=True)
    assert exp is not None
    if exp <= now:
        raise invalid_client("the client assertion has expired")
    if exp > now + MAX_ASSERTION_LIFETIME + CLOCK_SKEW:
        raise invalid_client(f"'exp' must be at most {MAX_ASSERTION_LIFETIME} seconds ahead")
    for name in ("nbf", "iat"):
        value = numeric_date(claims, name, invalid_client, required=False)
        if value is not None and value > now + CLOCK_SKEW:
            raise invalid_client(f"'{name}' is in the future")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise invalid_client("the 'jti' claim is required")
    if len(jti) > _MAX_JTI_CHARS:
        raise invalid_client(f"'jti' must be at most {_MAX_JTI_CHARS} characters")

    if not client.enabled:
        raise invalid_client("this client is disabled")

    actor = read_actor(claims)
    check_actor_for_kind(client.kind, actor)
    check_purpose_of_use(claims, actor["mode"])

    if jti_seen(jti, exp):
        raise invalid_client("this client assertion was already used ('jti' replayed)")
    return AssertionClaims(client_id=client.client_id, jti=jti, exp=exp, client_kind=client.kind, **actor)


# --------------------------------------------------------------------------------------------------------------------
# The client side


def make_client_assertion(private_jwk: dict[str, Any] | ECKey | RSAKey, client_id: str, token_endpoint: str,
                          now: int, *, lifetime: int = MAX_ASSERTION_LIFETIME, jti: str | None = None,
                          professional_id: str | None = None, organisation_id: str | None = None,
                          mode: str = "normal", reason: str | None = None, patient_ins: str | None = None,
                          representative_id: str | None = None) -> str:
    """Build and sign a client assertion as a vendor's software does (for tests, examples and the demo).

    The algorithm follows the key: ES256 or ES384 for EC P-256 or P-384, RS384 for RSA (or the JWK's ``alg``).
    """
    key: ECKey | RSAKey
    if isinstance(private_jwk, ECKey | RSAKey):
        key = private_jwk
    elif private_jwk.get("kty") == "EC":
        key = ECKey.import_key(private_jwk)
    else:
        key = RSAKey.import_key(private_jwk)
    if isinstance(key, ECKey):
        alg = {"P-256": "ES256", "P-384": "ES384"}.get(key.curve_name, "")
    else:
        alg = "RS384"
    alg = key.alg or alg
    if alg not in ASSERTION_ALGORITHMS:
        raise ValueError("the key must be EC P-256, EC P-384 or RSA")
    kind = "professional" if professional_id else "patient_portal" if patient_ins else None
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_endpoint,
        "iat": now,
        "exp": now + lifetime,
        "jti": jti or str(uuid.uuid4()),
        "extensions": actor_extensions(kind=kind, professional_id=professional_id, organisation_id=organisation_id,
                                        patient_ins=patient_ins, mode=mode, reason=reason,
                                        representative_id=representative_id),
    }
    extensions: dict[str, Any] = claims["extensions"]  # type: ignore[assignment]
    extensions["carnet"].pop("client_kind", None)  # the server adds the registered kind, not the client
    header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if key.kid:
        header["kid"] = key.kid
    return jws.serialize_compact(header, json_bytes(claims), key, algorithms=[alg])
