"""Access tokens for Carnet's API clients: SMART Backend Services carrying IHE IUA actor claims.

A client (a practice's or a hospital's software, Carnet's own patient portal, an Assurance Maladie system) is
registered by an admin with its public JWKS and a set of allowed scopes (:class:`ClientRecord`). It obtains a
short-lived access token at ``POST /oauth/token`` with::

    grant_type=client_credentials
    client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer
    client_assertion=<a JWT signed with the client's private key>
    scope=system/DocumentReference.rs system/Patient.rs

as in SMART App Launch 2, "Backend Services" and "Client Authentication: Asymmetric"
(https://hl7.org/fhir/smart-app-launch/backend-services.html), on OAuth 2.0 client credentials (RFC 6749 §4.4) with
``private_key_jwt`` client authentication (RFC 7523 §2.2 and §3). The web layer calls, in this order:
:func:`unverified_client_id` (which record to load), :func:`verify_client_assertion`, :func:`negotiate_scopes`,
:func:`issue_access_token`; then, on every API request, :func:`verify_access_token`, :func:`access_token_actor` and
:func:`scope_allows`. Nothing here touches the database or the web framework.

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
  :data:`CLOCK_SKEW` of tolerance for a client whose clock runs ahead; ``nbf`` and ``iat``, when present, not in
  the future (same tolerance);
- ``jti`` present (at most 256 characters);
- the client is enabled;
- the actor claims below (``invalid_request`` when malformed, ``unauthorized_client`` when the kind of client may
  not claim them);
- last, ``jti`` not seen before: ``jti_seen(jti, exp)`` is the caller's atomic "check and record" and must remember
  the jti at least until ``exp``, after which the assertion is refused anyway.

Actor claims (Carnet's choice of names)
---------------------------------------
The DMP's VIHF token tells who acts and in which mode; Carnet carries the same facts in the JWT extension object of
IHE IUA (ITI TF-2 3.71.4.2.2.1, "JWT IUA extension": the claims live in ``extensions.ihe_iua``), plus a national
extension object ``extensions.carnet`` next to it, as the Swiss EPR does with ``extensions.ch_epr``::

    "extensions": {
      "ihe_iua": {
        "national_provider_identifier": "810001045367",      # professional: "8" + RPPS or "0" + ADELI
        "subject_organization_id": "750712184",              # optional, free form (a FINESS, a SIRET)
        "person_id": "255081416802538",                        # patient_portal: the patient's INS matricule
        "purpose_of_use": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]
      },
      "carnet": {
        "mode": "normal" | "emergency" | "regulation",         # default "normal"
        "mode_reason": "free text",                            # required for emergency, at most 500 characters
        "representative_id": "..."                             # patient_portal: the legal representative acting
      }
    }

========================================  ============================  =======================================
claim                                     :class:`AssertionClaims`      who may send it
========================================  ============================  =======================================
``extensions.ihe_iua``                    ``professional_id``           professional (required there)
``.national_provider_identifier``
``extensions.ihe_iua``                    ``organisation_id``           professional, assurance_maladie
``.subject_organization_id``
``extensions.ihe_iua.person_id``          ``patient_ins``               patient_portal, patient_app (required)
``extensions.carnet.mode``                ``mode``                      professional (any mode); others "normal"
``extensions.carnet.mode_reason``         ``reason``                    professional, emergency (required) or
                                                                        regulation (optional)
``extensions.carnet.representative_id``   ``representative_id``         patient_portal, patient_app
``extensions.carnet.grant_id``            ``grant_id``                  patient_app (required there; set by
                                                                        Carnet, see :mod:`carnet.auth.smart`)
========================================  ============================  =======================================

A ``patient_app`` (SMART standalone launch, :mod:`carnet.auth.smart`) never sends an assertion: it is a public
client, and its access tokens carry the same patient claims as the portal's, plus the grant they were issued under,
so that revoking the grant stops them at once.

``carnet.mode`` is the only source of the mode. ``purpose_of_use`` is optional and only cross-checked: a code
``ETREAT`` or ``BTG`` (emergency treatment, break the glass) with mode ``normal`` is refused, so that an IUA client
believing it broke the glass is told so instead of silently reading in normal mode. The other IUA claims
(``subject_name``, ``subject_role``, ``subject_organization``, ``home_community_id``) are accepted and ignored: the
professional's identity, profession and organisation come from Carnet's directory, which the web layer checks (as
it checks that a SAMU regulator works for a centre 15). Only shapes are checked here: ``professional_id`` is ``8`` +
11 digits or ``0`` + 9 characters; ``patient_ins`` is 15 characters (digits, ``2A``/``2B`` for the département),
its key being checked where the patient is looked up.

The access token
================
An RFC 9068 JWT, signed ES256 with :class:`ServerKey`, header ``typ: at+jwt``::

    {"iss": issuer, "aud": issuer, "sub": client_id, "client_id": client_id, "jti": uuid4, "iat": now,
     "exp": now + lifetime, "scope": "system/DocumentReference.rs system/Patient.rs",
     "extensions": {"ihe_iua": {... as above, "purpose_of_use" set by Carnet},
                    "carnet": {"client_kind": ..., "mode": ..., ...}}}

``sub`` is the client, as RFC 9068 §2.2 asks for grants without a resource owner; the acting person is in the
extensions. ``purpose_of_use`` is set from the kind and mode: TREAT (professional, normal), ETREAT (emergency and
regulation), PATRQT (patient portal), HPAYMT (Assurance Maladie).

Scopes
======
SMART v2 resource scopes ``<patient|user|system>/<Type|*>.<cruds>``; the v1 suffixes ``.read``, ``.write`` and
``.*`` are read as ``rs``, ``cud`` and ``cruds``. A requested scope is granted when one allowed scope covers it
(same context, allowed type ``*`` or the same type, requested permissions a subset of the allowed ones); granted
scopes are returned in v2 form. Scopes with SMART v2 query parameters (``?category=...``) are not supported and
are not granted.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError, SecurityWarning
from joserfc.jwk import ECKey, RSAKey
from joserfc.jws import JWSRegistry

__all__ = [
    "ACT_REASON_SYSTEM",
    "ASSERTION_ALGORITHMS",
    "CLIENT_KINDS",
    "CLOCK_SKEW",
    "MAX_ACCESS_TOKEN_LIFETIME",
    "MAX_ASSERTION_LIFETIME",
    "MAX_REASON_CHARS",
    "MODES",
    "AssertionClaims",
    "ClientRecord",
    "ServerKey",
    "TokenError",
    "access_token_actor",
    "issue_access_token",
    "make_client_assertion",
    "negotiate_scopes",
    "scope_allows",
    "unverified_client_id",
    "verify_access_token",
    "verify_client_assertion",
]

#: Signature algorithms accepted on client assertions (SMART requires RS384 and ES384 to be supported).
ASSERTION_ALGORITHMS = frozenset({"RS384", "ES384", "RS256", "ES256"})
#: The longest an assertion may live: its ``exp`` at most this many seconds ahead (SMART Backend Services).
MAX_ASSERTION_LIFETIME = 300
#: Tolerance, in seconds, for a client clock running ahead of Carnet's (``exp``, ``iat`` and ``nbf`` bounds).
CLOCK_SKEW = 60
#: Longest access token lifetime :func:`issue_access_token` accepts (IHE IUA: one hour or less).
MAX_ACCESS_TOKEN_LIFETIME = 3600
CLIENT_KINDS = frozenset({"professional", "patient_portal", "assurance_maladie", "patient_app"})
MODES = frozenset({"normal", "emergency", "regulation"})
ACT_REASON_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
MAX_REASON_CHARS = 500

_SIGNING_ALG = "ES256"
_AT_JWT_TYPE = "at+jwt"
_MAX_JWT_CHARS = 16_384
_MAX_JTI_CHARS = 256
_EMERGENCY_PURPOSES = frozenset({"ETREAT", "BTG"})
_ALG_KEYS: dict[str, tuple[str, str | None]] = {
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
}
_MIN_RSA_BITS = 2048
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_PROFESSIONAL_ID = re.compile(r"8[0-9]{11}|0[0-9A-Z]{9}")
_INS = re.compile(r"[0-9]{5}(?:[0-9]{2}|2[AB])[0-9]{8}")
_GRANT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_FORBIDDEN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

_OAUTH_ERRORS = frozenset({
    # RFC 6749 §5.2
    "invalid_request", "invalid_client", "invalid_grant", "invalid_scope", "unauthorized_client",
    "unsupported_grant_type",
    # RFC 6750 §3.1, for the resource server
    "invalid_token", "insufficient_scope",
})


class TokenError(Exception):
    """A refusal with an OAuth error code (RFC 6749 §5.2, RFC 6750 §3.1) and a description safe to show.

    ``description`` names what is wrong (a claim, a header) but never repeats token contents.
    """

    def __init__(self, error: str, description: str) -> None:
        if error not in _OAUTH_ERRORS:
            raise ValueError(f"unknown OAuth error code {error!r}")
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description

    @property
    def http_status(self) -> int:
        """401 for ``invalid_client`` (as SMART's reference servers answer) and ``invalid_token``, 403 for
        ``insufficient_scope``, 400 otherwise (RFC 6749 §5.2, RFC 6750 §3.1)."""
        if self.error in ("invalid_client", "invalid_token"):
            return 401
        if self.error == "insufficient_scope":
            return 403
        return 400

    def as_response(self) -> dict[str, str]:
        """The JSON body of an OAuth error response."""
        return {"error": self.error, "error_description": self.description}


def _invalid_client(description: str) -> TokenError:
    return TokenError("invalid_client", description)


def _invalid_token(description: str) -> TokenError:
    return TokenError("invalid_token", description)


# --------------------------------------------------------------------------------------------------------------------
# Records


@dataclass
class ClientRecord:
    """A registered client, as the admin registered it."""

    client_id: str
    kind: str  # "professional" | "patient_portal" | "assurance_maladie" | "patient_app"
    jwks: dict
    scopes: frozenset[str]
    enabled: bool


@dataclass
class AssertionClaims:
    """What a verified client assertion (or access token, see :func:`access_token_actor`) says.

    ``jti`` and ``exp`` are those of the JWT it was read from. ``client_kind`` is the registered kind of the client,
    filled in by :func:`verify_client_assertion`.
    """

    client_id: str
    jti: str
    exp: int
    professional_id: str | None = None
    organisation_id: str | None = None
    mode: str = "normal"
    reason: str | None = None
    patient_ins: str | None = None
    representative_id: str | None = None
    client_kind: str | None = None
    grant_id: str | None = None  # patient_app: the grant (refresh token family) the token was issued under


# --------------------------------------------------------------------------------------------------------------------
# The server's signing key


class ServerKey:
    """Carnet's access token signing key: ECDSA P-256 (ES256). ``kid`` is its RFC 7638 thumbprint."""

    algorithm = _SIGNING_ALG

    def __init__(self, key: ECKey) -> None:
        if not isinstance(key, ECKey) or not key.is_private or key.curve_name != "P-256":
            raise ValueError("the server signing key must be a private EC key on P-256")
        self._key = key
        self._kid = key.thumbprint()

    @classmethod
    def generate(cls) -> ServerKey:
        return cls(ECKey.generate_key("P-256", private=True))

    @classmethod
    def from_bytes(cls, data: bytes) -> ServerKey:
        """Read a private key from an unencrypted PEM (PKCS#8 or SEC1) or a private JWK in JSON."""
        text = data.strip()
        try:
            if text.startswith(b"{"):
                jwk = json.loads(text)
                if not isinstance(jwk, dict) or "d" not in jwk:
                    raise ValueError("not a private JWK")
                key = ECKey.import_key({k: v for k, v in jwk.items() if k != "kid"})
            elif text.startswith(b"-----BEGIN"):
                key = ECKey.import_key(text)
            else:
                raise ValueError("neither PEM nor JWK")
        except (JoseError, ValueError, TypeError) as exc:
            # The message never includes the file's contents.
            raise ValueError("the server key file is not a private EC P-256 key in PEM or JWK form") from exc
        return cls(key)

    @classmethod
    def load_or_create(cls, path: Path) -> ServerKey:
        """Load the key at ``path``, or create it there (PEM, mode 0600, written atomically).

        When several processes start at once, exactly one file wins (a hard link cannot replace an existing file)
        and every process ends up with that key.
        """
        path = Path(path)
        try:
            return cls.from_bytes(path.read_bytes())
        except FileNotFoundError:
            pass
        key = cls.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # mode 0600
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(key.to_pem())
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(tmp_name, path)
            except FileExistsError:
                return cls.from_bytes(path.read_bytes())  # another process created it first: use theirs
            except OSError:
                os.replace(tmp_name, path)  # a file system without hard links
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
        _fsync_directory(path.parent)
        return key

    def to_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM."""
        return self._key.as_pem(private=True)

    @property
    def kid(self) -> str:
        return self._kid

    def public_jwk(self) -> dict[str, Any]:
        jwk = dict(self._key.as_dict(private=False))
        jwk.update({"kid": self._kid, "use": "sig", "alg": self.algorithm})
        return jwk

    def public_jwks(self) -> dict[str, Any]:
        """The JWK Set to publish (``jwks_uri``) so that resource servers can verify access tokens."""
        return {"keys": [self.public_jwk()]}

    def sign(self, claims: dict[str, Any], typ: str = _AT_JWT_TYPE) -> str:
        header = {"alg": self.algorithm, "typ": typ, "kid": self._kid}
        return jws.serialize_compact(header, _json_bytes(claims), self._key, algorithms=[self.algorithm])

    def _verify(self, token: str) -> bytes:
        registry = JWSRegistry(algorithms=[self.algorithm], strict_check_header=False)
        try:
            return jws.deserialize_compact(token, self._key, registry=registry).payload
        except BadSignatureError as exc:
            raise _invalid_token("the access token's signature does not verify") from exc
        except (JoseError, ValueError, TypeError) as exc:
            raise _invalid_token("the access token is not a well-formed JWS") from exc


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------------------------------
# Reading JWTs


def _json_bytes(value: Any) -> bytes:
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


def _loads_object(data: bytes) -> dict[str, Any]:
    value = json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _b64url_object(segment: str) -> dict[str, Any]:
    if not _B64URL.fullmatch(segment):
        raise ValueError("not base64url")
    return _loads_object(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def _split_jwt(token: object, what: str, error: Callable[[str], TokenError]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and the (not yet verified) claims of a compact JWS."""
    if not isinstance(token, str) or not token:
        raise error(f"the {what} is missing")
    if len(token) > _MAX_JWT_CHARS:
        raise error(f"the {what} is too long")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise error(f"the {what} is not a compact JWS")
    try:
        return _b64url_object(parts[0]), _b64url_object(parts[1])
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise error(f"the {what} is not a well-formed JWT") from exc


def _numeric_date(claims: dict[str, Any], name: str, error: Callable[[str], TokenError], *,
                  required: bool) -> int | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise error(f"the '{name}' claim is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise error(f"the '{name}' claim must be a NumericDate")
    return int(value)


def _audience_contains(aud: object, expected: str) -> bool:
    if isinstance(aud, str):
        return aud == expected
    if isinstance(aud, list) and all(isinstance(item, str) for item in aud):
        return expected in aud
    return False


# --------------------------------------------------------------------------------------------------------------------
# Client assertions


def unverified_client_id(assertion: str) -> str:
    """The ``iss`` of a client assertion, before any verification: which :class:`ClientRecord` to load.

    Nothing else may be trusted before :func:`verify_client_assertion` has run.
    """
    _, claims = _split_jwt(assertion, "client assertion", _invalid_client)
    iss = claims.get("iss")
    if not isinstance(iss, str) or not iss:
        raise _invalid_client("the 'iss' claim must name the client_id")
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
        raise _invalid_client("the client has no registered key")
    if kid is None:
        if len(entries) != 1:
            raise _invalid_client("the assertion header must name its key with 'kid'")
        named = entries
    else:
        if not isinstance(kid, str):
            raise _invalid_client("the 'kid' header must be a string")
        named = [entry for entry in entries if entry.get("kid") == kid]
        if not named:
            raise _invalid_client("no registered key has the assertion's 'kid'")
    usable = [key for key in (_verification_key(entry, alg) for entry in named) if key is not None]
    if not usable:
        raise _invalid_client(f"the registered key named by 'kid' cannot verify {alg}")
    return usable


def _verify_signature(assertion: str, keys: list[ECKey | RSAKey], alg: str) -> None:
    registry = JWSRegistry(algorithms=[alg], strict_check_header=False)
    for key in keys:
        try:
            jws.deserialize_compact(assertion, key, registry=registry)
        except BadSignatureError:
            continue
        except (JoseError, ValueError, TypeError) as exc:
            raise _invalid_client("the client assertion is not a well-formed JWS") from exc
        return
    raise _invalid_client("the client assertion's signature does not verify with the client's registered key")


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
    header, claims = _split_jwt(assertion, "client assertion", _invalid_client)

    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ASSERTION_ALGORITHMS:
        raise _invalid_client("the assertion's 'alg' must be one of " + ", ".join(sorted(ASSERTION_ALGORITHMS)))
    for name in ("crit", "b64"):
        if name in header:
            raise _invalid_client(f"the '{name}' header is not supported")
    if "jku" in header:
        raise _invalid_client("'jku' is not supported: Carnet verifies with the JWKS registered for the client")
    _verify_signature(assertion, _client_keys(client, header.get("kid"), alg), alg)

    if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
        raise _invalid_client("'iss' and 'sub' must both be the client_id")
    if not _audience_contains(claims.get("aud"), token_endpoint):
        raise _invalid_client("'aud' must be the token endpoint URL")
    exp = _numeric_date(claims, "exp", _invalid_client, required=True)
    assert exp is not None
    if exp <= now:
        raise _invalid_client("the client assertion has expired")
    if exp > now + MAX_ASSERTION_LIFETIME + CLOCK_SKEW:
        raise _invalid_client(f"'exp' must be at most {MAX_ASSERTION_LIFETIME} seconds ahead")
    for name in ("nbf", "iat"):
        value = _numeric_date(claims, name, _invalid_client, required=False)
        if value is not None and value > now + CLOCK_SKEW:
            raise _invalid_client(f"'{name}' is in the future")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise _invalid_client("the 'jti' claim is required")
    if len(jti) > _MAX_JTI_CHARS:
        raise _invalid_client(f"'jti' must be at most {_MAX_JTI_CHARS} characters")

    if not client.enabled:
        raise _invalid_client("this client is disabled")

    actor = _read_actor(claims)
    _check_actor_for_kind(client.kind, actor)
    _check_purpose_of_use(claims, actor["mode"])

    if jti_seen(jti, exp):
        raise _invalid_client("this client assertion was already used ('jti' replayed)")
    return AssertionClaims(client_id=client.client_id, jti=jti, exp=exp, client_kind=client.kind, **actor)


# --------------------------------------------------------------------------------------------------------------------
# Actor claims


def _object(container: dict[str, Any], name: str, path: str) -> dict[str, Any]:
    value = container.get(name, {})
    if not isinstance(value, dict):
        raise TokenError("invalid_request", f"'{path}' must be a JSON object")
    return value


def _optional_string(container: dict[str, Any], name: str, path: str, max_chars: int) -> str | None:
    value = container.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise TokenError("invalid_request", f"'{path}' must be a string")
    value = value.strip()
    if not value:
        return None
    if len(value) > max_chars:
        raise TokenError("invalid_request", f"'{path}' must be at most {max_chars} characters")
    if _FORBIDDEN_TEXT.search(value):
        raise TokenError("invalid_request", f"'{path}' contains control characters")
    return value


def _extension_objects(claims: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    extensions = _object(claims, "extensions", "extensions")
    return (_object(extensions, "ihe_iua", "extensions.ihe_iua"),
            _object(extensions, "carnet", "extensions.carnet"))


def _read_actor(claims: dict[str, Any]) -> dict[str, Any]:
    """The actor fields of :class:`AssertionClaims`, read from the ``extensions`` of a JWT, shapes checked."""
    iua, carnet = _extension_objects(claims)
    actor = {
        "professional_id": _optional_string(iua, "national_provider_identifier",
                                            "extensions.ihe_iua.national_provider_identifier", 64),
        "organisation_id": _optional_string(iua, "subject_organization_id",
                                            "extensions.ihe_iua.subject_organization_id", 256),
        "patient_ins": _optional_string(iua, "person_id", "extensions.ihe_iua.person_id", 64),
        "mode": _optional_string(carnet, "mode", "extensions.carnet.mode", 32) or "normal",
        "reason": _optional_string(carnet, "mode_reason", "extensions.carnet.mode_reason", MAX_REASON_CHARS),
        "representative_id": _optional_string(carnet, "representative_id", "extensions.carnet.representative_id",
                                              128),
        "grant_id": _optional_string(carnet, "grant_id", "extensions.carnet.grant_id", 64),
    }
    _check_actor_shapes(**actor)
    return actor


def _check_actor_shapes(*, professional_id: str | None, organisation_id: str | None, patient_ins: str | None,
                        mode: str | None, reason: str | None, representative_id: str | None,
                        grant_id: str | None = None) -> None:
    """Rules that hold for every kind of client."""
    if grant_id is not None and not _GRANT_ID.fullmatch(grant_id):
        raise TokenError("invalid_request", "'extensions.carnet.grant_id' must be a UUID")
    if mode not in MODES:
        raise TokenError("invalid_request", "'extensions.carnet.mode' must be normal, emergency or regulation")
    if mode == "emergency" and not reason:
        raise TokenError("invalid_request", "emergency access requires 'extensions.carnet.mode_reason'")
    if mode == "normal" and reason:
        raise TokenError("invalid_request", "'extensions.carnet.mode_reason' is only for emergency or regulation")
    if reason is not None and len(reason) > MAX_REASON_CHARS:
        raise TokenError("invalid_request", f"'extensions.carnet.mode_reason' must be at most {MAX_REASON_CHARS} "
                                            "characters")
    if professional_id is not None and not _PROFESSIONAL_ID.fullmatch(professional_id):
        raise TokenError("invalid_request", "'extensions.ihe_iua.national_provider_identifier' must be '8' + RPPS "
                                            "or '0' + ADELI")
    if patient_ins is not None and not _INS.fullmatch(patient_ins):
        raise TokenError("invalid_request", "'extensions.ihe_iua.person_id' must be an INS matricule "
                                            "(15 characters)")


def _check_actor_for_kind(kind: str, actor: dict[str, Any]) -> None:
    """Which actor claims each kind of client must, may and may not make."""
    def refuse(description: str) -> TokenError:
        return TokenError("unauthorized_client", description)

    if kind != "patient_app" and actor.get("grant_id") is not None:
        raise refuse("only a patient app's token carries 'extensions.carnet.grant_id'")
    if kind == "professional":
        if actor["professional_id"] is None:
            raise TokenError("invalid_request", "a professional client must name the professional acting in "
                                                "'extensions.ihe_iua.national_provider_identifier'")
        if actor["patient_ins"] is not None:
            raise refuse("a professional client may not set 'extensions.ihe_iua.person_id'")
        if actor["representative_id"] is not None:
            raise refuse("a professional client may not set 'extensions.carnet.representative_id'")
    elif kind in ("patient_portal", "patient_app"):
        if kind == "patient_app" and actor.get("grant_id") is None:
            raise TokenError("invalid_request", "a patient app's token must name its grant")
        if actor["professional_id"] is not None:
            raise refuse("the patient portal may not name a professional")
        if actor["organisation_id"] is not None:
            raise refuse("the patient portal may not name an organisation")
        if actor["mode"] != "normal":
            raise refuse("the patient portal may only use the normal mode")
        if actor["patient_ins"] is None:
            raise TokenError("invalid_request", "the patient portal must name the patient in "
                                                "'extensions.ihe_iua.person_id'")
    elif kind == "assurance_maladie":
        if actor["professional_id"] is not None:
            raise refuse("an Assurance Maladie client may not name a professional")
        if actor["patient_ins"] is not None or actor["representative_id"] is not None:
            raise refuse("an Assurance Maladie client may not act as a patient or a representative")
        if actor["mode"] != "normal":
            raise refuse("an Assurance Maladie client may only use the normal mode")
    else:
        raise refuse("this client's kind is not one Carnet knows")


def _check_purpose_of_use(claims: dict[str, Any], mode: str) -> None:
    iua, _ = _extension_objects(claims)
    value = iua.get("purpose_of_use")
    if value is None:
        return
    codings = [value] if isinstance(value, dict) else value
    if not isinstance(codings, list) or not all(isinstance(coding, dict) for coding in codings):
        raise TokenError("invalid_request", "'extensions.ihe_iua.purpose_of_use' must be a list of Codings")
    codes = {coding.get("code") for coding in codings
             if coding.get("system") == ACT_REASON_SYSTEM and isinstance(coding.get("code"), str)}
    if codes & _EMERGENCY_PURPOSES and mode == "normal":
        raise TokenError("invalid_request", "'extensions.ihe_iua.purpose_of_use' asks for emergency treatment: "
                                            "set 'extensions.carnet.mode' to emergency or regulation")


def _purpose_code(kind: str | None, mode: str | None) -> str | None:
    if mode in ("emergency", "regulation"):
        return "ETREAT"
    return {"professional": "TREAT", "patient_portal": "PATRQT", "patient_app": "PATRQT",
            "assurance_maladie": "HPAYMT"}.get(kind or "")


def _actor_extensions(*, kind: str | None, professional_id: str | None, organisation_id: str | None,
                      patient_ins: str | None, mode: str | None, reason: str | None,
                      representative_id: str | None, grant_id: str | None = None) -> dict[str, Any]:
    iua: dict[str, Any] = {}
    if professional_id is not None:
        iua["national_provider_identifier"] = professional_id
    if organisation_id is not None:
        iua["subject_organization_id"] = organisation_id
    if patient_ins is not None:
        iua["person_id"] = patient_ins
    purpose = _purpose_code(kind, mode)
    if purpose is not None:
        iua["purpose_of_use"] = [{"system": ACT_REASON_SYSTEM, "code": purpose}]
    carnet: dict[str, Any] = {"mode": mode}
    if kind is not None:
        carnet["client_kind"] = kind
    if reason is not None:
        carnet["mode_reason"] = reason
    if representative_id is not None:
        carnet["representative_id"] = representative_id
    if grant_id is not None:
        carnet["grant_id"] = grant_id
    return {"ihe_iua": iua, "carnet": carnet}


# --------------------------------------------------------------------------------------------------------------------
# Access tokens


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
    _check_actor_shapes(**actor)
    if claims.client_kind is not None:
        _check_actor_for_kind(claims.client_kind, actor)
    payload = {
        "iss": issuer,
        "aud": issuer,
        "sub": claims.client_id,
        "client_id": claims.client_id,
        "jti": str(uuid.uuid4()),
        "iat": now,
        "exp": now + lifetime,
        "scope": " ".join(sorted(scopes)),
        "extensions": _actor_extensions(kind=claims.client_kind, **actor),
    }
    return server_key.sign(payload), lifetime


def verify_access_token(server_key: ServerKey, token: str, now: int, issuer: str) -> dict[str, Any]:
    """Check an access token from an ``Authorization: Bearer`` header and return its claims (RFC 9068 §4).

    :raises TokenError: ``invalid_token`` (RFC 6750 §3.1) for a bad signature, another issuer or audience, an
        expired token, or one that is not a Carnet access token.
    """
    header, _ = _split_jwt(token, "access token", _invalid_token)
    if header.get("alg") != server_key.algorithm or header.get("typ") != _AT_JWT_TYPE:
        raise _invalid_token("this is not a Carnet access token")
    if header.get("kid") != server_key.kid:
        raise _invalid_token("the access token was signed with an unknown key")
    try:
        claims = _loads_object(server_key._verify(token))
    except ValueError as exc:
        raise _invalid_token("the access token's claims are not a JSON object") from exc
    if claims.get("iss") != issuer:
        raise _invalid_token("the access token was issued by another server")
    if not _audience_contains(claims.get("aud"), issuer):
        raise _invalid_token("the access token is meant for another audience")
    exp = _numeric_date(claims, "exp", _invalid_token, required=True)
    assert exp is not None
    if exp <= now:
        raise _invalid_token("the access token has expired")
    for name in ("nbf", "iat"):
        value = _numeric_date(claims, name, _invalid_token, required=False)
        if value is not None and value > now + CLOCK_SKEW:
            raise _invalid_token(f"the access token's '{name}' is in the future")
    for name in ("sub", "client_id", "jti", "scope"):
        if not isinstance(claims.get(name), str) or not claims[name]:
            raise _invalid_token(f"the access token has no '{name}'")
    return claims


def access_token_actor(claims: dict[str, Any]) -> AssertionClaims:
    """The actor named by verified access token ``claims`` (from :func:`verify_access_token`).

    ``jti`` and ``exp`` are the access token's.
    """
    _, carnet = _extension_objects(claims)
    kind = carnet.get("client_kind")
    try:
        actor = _read_actor(claims)
    except TokenError as exc:
        raise _invalid_token("the access token's actor claims are malformed") from exc
    return AssertionClaims(client_id=claims["client_id"], jti=claims["jti"], exp=int(claims["exp"]),
                           client_kind=kind if isinstance(kind, str) else None, **actor)


# --------------------------------------------------------------------------------------------------------------------
# Scopes

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


def _parse_scope(scope: str) -> _ResourceScope | None:
    """A SMART resource scope (v2, or v1 read/write/*), or None for anything else."""
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
        "extensions": _actor_extensions(kind=kind, professional_id=professional_id, organisation_id=organisation_id,
                                        patient_ins=patient_ins, mode=mode, reason=reason,
                                        representative_id=representative_id),
    }
    extensions: dict[str, Any] = claims["extensions"]  # type: ignore[assignment]
    extensions["carnet"].pop("client_kind", None)  # the server adds the registered kind, not the client
    header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if key.kid:
        header["kid"] = key.kid
    return jws.serialize_compact(header, _json_bytes(claims), key, algorithms=[alg])
