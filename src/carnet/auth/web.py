"""The OAuth 2.0 token endpoint, SMART discovery, and the bearer check that turns a request into an Actor.

No data access here beyond the reference tables (clients, professionals, the jti replay cache): whether a patient
app's account still acts on its dossier is asked of the caller (``acting_link``, see
:data:`carnet.auth.smart.ActingLinkReader`). Who is calling is decided here; what they may do is decided by
:mod:`carnet.access.policy`.
"""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import JSONResponse

from carnet.access.actors import Actor, ActorKind, Mode
from carnet.auth import smart
from carnet.auth.access_tokens import access_token_actor, issue_access_token, verify_access_token
from carnet.auth.assertions import ASSERTION_ALGORITHMS, ClientRecord, unverified_client_id, verify_client_assertion
from carnet.auth.claims import AssertionClaims
from carnet.auth.errors import TokenError
from carnet.auth.keys import ServerKey
from carnet.auth.scopes import negotiate_scopes
from carnet.context import Services
from carnet.db import prepared
from carnet.db.tables import client, practitioner, token_jti
from carnet.errors import FhirError

GRANT = "client_credentials"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def client_record(services: Services, client_id: str) -> ClientRecord | None:
    with services.engine.connect() as conn:
        row = conn.execute(select(client).where(client.c.client_id == client_id)).first()
        conn.rollback()
    if row is None:
        return None
    return ClientRecord(client_id=row.client_id, kind=row.kind, jwks=json.loads(row.jwks),
                        scopes=frozenset(row.scopes.split()), enabled=row.enabled)


def spend_jti(services: Services, client_id: str, jti: str, exp: int) -> bool:
    """Record ``client_id``'s one-time ``jti`` (valid until ``exp``) in the table every node shares; False if it was
    already there (a replay, on this node or another). Expired entries are swept on the way."""
    try:
        with services.engine.begin() as conn:
            conn.execute(delete(token_jti).where(token_jti.c.expires_at < int(time.time()) - 600))
            conn.execute(insert(token_jti).values(jti=f"{client_id}:{jti}"[:200], client_id=client_id,
                                                  expires_at=exp))
    except IntegrityError:
        return False
    return True


def _jti_seen(services: Services, client_id: str):
    def seen(jti: str, exp: int) -> bool:
        return not spend_jti(services, client_id, jti, exp)
    return seen


def slow_down(retry_after: int) -> dict[str, str]:
    """The body of a token request refused by the per-address rate limit (429 with ``Retry-After``). ``slow_down``
    is the OAuth error registered for the token endpoint by RFC 8628 §3.5 (IANA "OAuth Extensions Error
    Registry"); RFC 6749 defines none for a rate limit."""
    return {"error": "slow_down",
            "error_description": f"Too many token requests from this address; retry after {retry_after} seconds"}


def _oauth_error(err: TokenError) -> JSONResponse:
    return JSONResponse(err.as_response(), status_code=err.http_status,
                        headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def token_endpoint(services: Services, server_key: ServerKey, form: dict[str, str],
                   acting_link: smart.ActingLinkReader) -> JSONResponse:
    """``POST /oauth/token``: client credentials with ``private_key_jwt`` (RFC 7523, SMART Backend Services); the
    grants of patients' apps go to :func:`carnet.auth.smart.token_endpoint`, with ``acting_link``."""
    settings = services.settings
    if form.get("grant_type") in smart.GRANT_TYPES:  # patients' apps (SMART standalone launch)
        return smart.token_endpoint(services, server_key, form, acting_link)
    try:
        if form.get("grant_type") != GRANT:
            raise TokenError("unsupported_grant_type",
                             "grant_type must be client_credentials, authorization_code or refresh_token")
        if form.get("client_assertion_type") != ASSERTION_TYPE or not form.get("client_assertion"):
            raise TokenError("invalid_request", "A private_key_jwt client assertion is required")
        assertion = form["client_assertion"]
        record = client_record(services, unverified_client_id(assertion))
        if record is None:
            raise TokenError("invalid_client", "Unknown client")
        if record.kind == "patient_app":
            raise TokenError("unauthorized_client", "A patient app uses the authorization code grant")
        claims = verify_client_assertion(assertion, record, settings.token_endpoint, int(time.time()),
                                         _jti_seen(services, record.client_id))
        if claims.professional_id:
            _professional(services, claims.professional_id, claims.mode, token_time=True)
        scopes = negotiate_scopes(form.get("scope") or " ".join(sorted(record.scopes)), record.scopes)
        if not scopes:
            raise TokenError("invalid_scope", "None of the requested scopes is allowed for this client")
        token, expires_in = issue_access_token(server_key, claims, scopes, int(time.time()),
                                               settings.token_lifetime, issuer=settings.base_url)
    except TokenError as err:
        return _oauth_error(err)
    return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": expires_in,
                         "scope": " ".join(sorted(scopes))},
                        headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _professional(services: Services, national_id: str, mode: str, token_time: bool = False) -> Any:
    with services.engine.connect() as conn:
        row = conn.execute(select(practitioner).where(practitioner.c.national_id == national_id)).first()
        conn.rollback()
    if row is None or not row.enabled:
        if token_time:
            raise TokenError("invalid_grant", "This professional is unknown or disabled")
        raise FhirError(401, "login", "This professional is unknown or disabled",
                        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    if mode == "regulation" and not row.is_regulator and token_time:
        raise TokenError("invalid_grant", "Regulation mode is reserved to SAMU centre-15 regulators")
    return row


def smart_configuration(services: Services) -> dict[str, Any]:
    base = services.settings.base_url
    return {
        "issuer": base,
        "token_endpoint": services.settings.token_endpoint,
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": sorted(ASSERTION_ALGORITHMS),
        "grant_types_supported": [GRANT, *smart.GRANT_TYPES],
        "authorization_endpoint": f"{base}/oauth/authorize",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "management_endpoint": f"{base}/portal/apps",
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["system/*.rs", "system/DocumentReference.cruds", "system/Patient.crs",
                             "system/List.rs", "system/Binary.r", "system/AuditEvent.rs", "system/Consent.c",
                             "system/Practitioner.rs", "system/PractitionerRole.rs", "system/Task.crus", "patient/*.rs",
                             "patient/Patient.rs", "patient/DocumentReference.rs", "patient/Binary.rs",
                             "patient/AuditEvent.rs", "launch/patient", "offline_access", "online_access"],
        "response_types_supported": ["code"],
        "capabilities": ["client-confidential-asymmetric", "permission-v2", "launch-standalone", "client-public",
                         "context-standalone-patient", "permission-patient", "permission-offline",
                         "permission-online"],
        "jwks_uri": f"{base}/oauth/jwks",
    }


_VERIFIED: dict[str, tuple[int, AssertionClaims, frozenset[str]]] = {}
_VERIFIED_MAX = 10_000


def verify_bearer(services: Services, server_key: ServerKey, request: Request
                  ) -> tuple[AssertionClaims, frozenset[str]]:
    """Check the bearer token's signature, issuer and expiry (CPU only, no database).

    A token verified once is remembered until it expires (a token never changes, and its expiry is re-checked),
    which spares a signature check per request. Whether its client and professional are still enabled is not
    remembered: :func:`resolve_actor` reads that on every request."""
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        raise FhirError(401, "login", "A bearer access token is required",
                        headers={"WWW-Authenticate": 'Bearer realm="carnet"'})
    token = header[7:].strip()
    now = int(time.time())
    known = _VERIFIED.get(token)
    if known is not None and known[0] > now:
        return known[1], known[2]
    try:
        claims = verify_access_token(server_key, token, now, services.settings.base_url)
        who = access_token_actor(claims)
    except TokenError:
        raise FhirError(401, "login", "The access token is invalid or expired",
                        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}) from None
    scopes = frozenset(str(claims.get("scope", "")).split())
    if len(_VERIFIED) >= _VERIFIED_MAX:
        for stale in [t for t, v in _VERIFIED.items() if v[0] <= now] or list(_VERIFIED)[: _VERIFIED_MAX // 2]:
            _VERIFIED.pop(stale, None)
    _VERIFIED[token] = (int(claims["exp"]), who, scopes)
    return who, scopes


_p = practitioner
_CALLER = (select(client.c.kind, client.c.enabled, _p.c.national_id, _p.c.given, _p.c.family, _p.c.profession,
                  _p.c.organisation_id, _p.c.is_regulator, _p.c.enabled.label("pro_enabled"))
           .select_from(client.outerjoin(_p, _p.c.national_id == bindparam("nid")))
           .where(client.c.client_id == bindparam("cid")))
# The same, as plain SQL run prepared on PostgreSQL (carnet.db.prepared; tests/db/test_prepared.py compares them).
_CALLER_SQL = ("SELECT client.kind, client.enabled, practitioner.national_id, practitioner.given, practitioner.family, "
               "practitioner.profession, practitioner.organisation_id, practitioner.is_regulator, "
               "practitioner.enabled AS pro_enabled "
               "FROM client LEFT OUTER JOIN practitioner ON practitioner.national_id = %(nid)s "
               "WHERE client.client_id = %(cid)s")


def resolve_actor(conn: Connection, who: AssertionClaims, acting_link: smart.ActingLinkReader) -> Actor:
    """Build the Actor inside the request's own transaction: one query reads the client and the professional, so a
    disabled client or professional stops working at once (both are checked on every request). A patient app's
    grant is checked too: ``acting_link`` (:data:`carnet.auth.smart.ActingLinkReader`) says whether its account still
    acts on the dossier."""
    params = {"cid": who.client_id, "nid": who.professional_id or ""}
    row = prepared.fetch_one(conn, _CALLER_SQL, params) if prepared.on_postgres(conn) else \
        conn.execute(_CALLER, params).first()
    return _caller_actor(conn, row, who, acting_link)


class TokenCaller:
    """The caller of an API request, from its verified token's claims: a :class:`carnet.context.Caller`, resolved by
    :func:`resolve_actor`; for a professional, the context may read the caller's row together with the first dossier
    the request reads (the columns of :data:`_CALLER_SQL`), and build the actor from it here."""

    def __init__(self, who: AssertionClaims, acting_link: smart.ActingLinkReader) -> None:
        self.who = who
        self.acting_link = acting_link

    def actor(self, conn: Connection) -> Actor:
        return resolve_actor(conn, self.who, self.acting_link)

    def professional(self) -> tuple[str, str, str] | None:
        who = self.who
        return (who.client_id, who.professional_id, who.organisation_id or "") if who.professional_id else None

    def actor_from(self, conn: Connection, row: Any) -> Actor:
        return _caller_actor(conn, row, self.who, self.acting_link)


def _caller_actor(conn: Connection, row: Any, who: AssertionClaims, acting_link: smart.ActingLinkReader) -> Actor:
    """The Actor of a :data:`_CALLER_SQL` row (None: no such client), or a 401."""
    if row is None or not row.enabled:
        raise FhirError(401, "login", "This client is disabled",
                        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    mode = Mode(who.mode)
    if row.kind == "professional":
        if row.national_id is None or not row.pro_enabled:
            raise FhirError(401, "login", "This professional is unknown or disabled",
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return Actor(kind=ActorKind.PROFESSIONAL, id=row.national_id, display=f"{row.given} {row.family}",
                     profession=row.profession, organisation_id=who.organisation_id or row.organisation_id,
                     is_regulator=row.is_regulator, mode=mode, reason=who.reason, client_id=who.client_id)
    if row.kind == "patient_app" and not smart.grant_alive(conn, who.grant_id, who.client_id, acting_link):
        raise FhirError(401, "login", "This app's access has been revoked",
                        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    if row.kind in ("patient_portal", "patient_app"):
        if who.representative_id:
            return Actor(kind=ActorKind.REPRESENTATIVE, id=who.representative_id, acting_for=who.patient_ins,
                         client_id=who.client_id)
        return Actor(kind=ActorKind.PATIENT, id=who.patient_ins, client_id=who.client_id)
    if row.kind == "assurance_maladie":
        return Actor(kind=ActorKind.ASSURANCE_MALADIE, organisation_id=who.organisation_id,
                     client_id=who.client_id)
    raise FhirError(401, "login", "This client cannot call the API")
