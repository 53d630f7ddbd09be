"""Patients' own apps: SMART App Launch 2 standalone launch (authorization code with PKCE, refresh tokens).

https://hl7.org/fhir/smart-app-launch/app-launch.html, on OAuth 2.0 (RFC 6749 §4.1, §6), PKCE (RFC 7636) and the
refresh token rotation of RFC 9700 §4.14.2. The consent screen is :mod:`carnet.portal.pages.authorize`; this module
holds the rules and the two token grants, and knows nothing of pages.

Clients of kind ``patient_app`` are *public* clients: no secret and no key, PKCE ``S256`` mandatory, redirect URIs
registered by the operator (``client.redirect_uris``, space-separated) and matched exactly. Their allowed scopes are
read-only patient scopes (``patient/*.rs`` by default): Carnet grants apps no write scope.

The flow
========
1. ``GET /oauth/authorize``: :func:`check_client` first (an unknown client or a redirect URI not registered is shown
   as a page, never redirected: RFC 6749 §4.1.2.1), then :func:`check_request` (any other problem goes back to the
   app as ``error=`` on its redirect URI). The person signs in to the portal, picks the dossier (the launch context
   ``patient``) and allows or denies.
2. On Allow, :func:`issue_code` stores an authorization code: only its SHA-256, valid :data:`CODE_SECONDS`, single
   use, bound to the client, the redirect URI, the PKCE challenge, the account, the dossier and (for a legal
   representative) the representative record.
3. ``POST /oauth/token`` with ``grant_type=authorization_code`` (:func:`token_endpoint`): the code, the same
   ``redirect_uri`` and ``client_id``, and the PKCE ``code_verifier``. The answer is an access token in Carnet's
   usual format (the patient's claims, as for the portal, plus ``extensions.carnet.grant_id``), the launch context
   ``patient`` (the Patient id, which is the dossier key), the granted ``scope``, and a refresh token when
   ``offline_access`` or ``online_access`` was granted.
4. ``grant_type=refresh_token``: each use returns a new refresh token and spends the old one; presenting a spent one
   revokes the whole family (it was stolen, or the app misbehaves).

Grants
======
Every successful code exchange opens a *grant*: a family of rows in ``refresh_token`` sharing a ``family_id``, the
grant id carried by every access token issued under it. Without ``offline_access``/``online_access`` the family
has one row whose token is never handed out: it exists so that the grant can be listed and revoked like the others.
Every API call with an app's token checks (in the request's transaction, :func:`grant_alive`) that the grant is not
revoked, the account is active and still linked to the dossier: revoking an app, signing out everywhere, or a code
presented twice stops the app's access tokens at once, not at their expiry. The family id of a code's grant is
derived from the code's hash, so that a code presented twice revokes what was issued from it (RFC 6749 §4.1.2).

Lifetimes: ``offline_access`` refresh tokens expire after ``CARNET_REFRESH_TOKEN_DAYS`` without use (each use
starts the period again); ``online_access`` ones at most ``CARNET_SESSION_MAX_HOURS`` after the grant, like a portal
session.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import secrets
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from sqlalchemy import Connection, and_, bindparam, delete, insert, select, update
from starlette.responses import JSONResponse

from carnet.auth.access_tokens import issue_access_token
from carnet.auth.claims import AssertionClaims
from carnet.auth.errors import TokenError
from carnet.auth.keys import ServerKey
from carnet.auth.scopes import negotiate_scopes
from carnet.context import Services
from carnet.db.tables import client, oauth_code, refresh_token

__all__ = [
    "revocation_endpoint",
    "CODE_SECONDS",
    "DEFAULT_SCOPES",
    "ActingLinkReader",
    "AppClient",
    "AuthorizeRequest",
    "ClientProblem",
    "DossierNames",
    "RedirectProblem",
    "check_client",
    "check_request",
    "connected_apps",
    "error_location",
    "grant_alive",
    "issue_code",
    "pkce_challenge",
    "revoke_grant",
    "success_location",
    "token_endpoint",
]

#: Lifetime of an authorization code, in seconds.
CODE_SECONDS = 60
#: The scopes a patient app may ask for unless the operator registers others (read-only, patient context).
DEFAULT_SCOPES = "patient/*.rs launch/patient offline_access online_access"
REFRESH_SCOPES = frozenset({"offline_access", "online_access"})
GRANT_TYPES = ("authorization_code", "refresh_token")

_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636 §4.1
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")  # S256: base64url of a SHA-256, no padding
_MAX_STATE_CHARS = 1024
_MAX_TOKEN_CHARS = 512
_FAMILY_NS = uuid.UUID("6f1c3a52-8d0e-4a57-9a44-2c1f3e7b9d10")
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

#: How an account acts on a dossier today, asked of the accounts service by the caller (auth reads no account nor
#: dossier table): ``acting_link(conn, account_id, dossier_key)`` is ``(the dossier's INS, the representative record
#: or None)`` when the account is active and still linked to the dossier, else None
#: (:func:`carnet.accounts.service.acting_link`).
ActingLinkReader = Callable[[Connection, uuid.UUID, uuid.UUID], tuple[str, uuid.UUID | None] | None]
#: The (given, family) names on dossiers, by dossier key (:func:`carnet.accounts.service.dossier_names`).
DossierNames = Callable[[Connection, Collection[uuid.UUID]], Mapping[uuid.UUID, tuple[str, str]]]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a PKCE ``verifier`` (RFC 7636 §4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def _family_of_code(code_hash: str) -> uuid.UUID:
    return uuid.uuid5(_FAMILY_NS, code_hash)


# --------------------------------------------------------------------------------------------------------------------
# The authorization request


class ClientProblem(Exception):
    """The client or its redirect URI cannot be trusted: show a page to the person, never redirect.
    ``message`` is a message id of the portal's catalogue."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RedirectProblem(Exception):
    """Any other problem with the authorization request: sent back to the app (RFC 6749 §4.1.2.1)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


@dataclass(frozen=True)
class AppClient:
    client_id: str
    name: str
    scopes: frozenset[str]
    redirect_uris: tuple[str, ...]


@dataclass(frozen=True)
class AuthorizeRequest:
    client: AppClient
    redirect_uri: str
    state: str
    scopes: frozenset[str]
    code_challenge: str


def load_app(conn: Connection, client_id: str) -> AppClient | None:
    """The enabled ``patient_app`` client ``client_id``, or None."""
    if not client_id or len(client_id) > 64:
        return None
    row = conn.execute(select(client).where(client.c.client_id == client_id)).first()
    if row is None or row.kind != "patient_app" or not row.enabled:
        return None
    return AppClient(client_id=row.client_id, name=row.name, scopes=frozenset((row.scopes or "").split()),
                     redirect_uris=tuple((row.redirect_uris or "").split()))


def check_client(conn: Connection, params: Mapping[str, str]) -> tuple[AppClient, str]:
    """The client and the redirect URI of an authorization request, both checked before anything else.

    :raises ClientProblem: unknown or disabled client, or a redirect URI that is not exactly one it registered.
    """
    app = load_app(conn, str(params.get("client_id") or ""))
    if app is None:
        raise ClientProblem("This app is not known to Carnet, or it has been disabled.")
    redirect_uri = str(params.get("redirect_uri") or "")
    if not redirect_uri and len(app.redirect_uris) == 1:
        redirect_uri = app.redirect_uris[0]  # RFC 6749 §3.1.2.3: optional when only one is registered
    if redirect_uri not in app.redirect_uris:
        raise ClientProblem("This app asked to come back to an address it has not registered with Carnet.")
    return app, redirect_uri


def check_request(app: AppClient, redirect_uri: str, params: Mapping[str, str], fhir_base: str) -> AuthorizeRequest:
    """The rest of the authorization request (SMART App Launch 2, "Obtain authorization code").

    :raises RedirectProblem: to send back to the app.
    """
    state = str(params.get("state") or "")
    if len(state) > _MAX_STATE_CHARS:
        raise RedirectProblem("invalid_request", "state is too long")
    if params.get("response_type") != "code":
        raise RedirectProblem("unsupported_response_type", "Only response_type=code is supported")
    if not state:
        raise RedirectProblem("invalid_request", "state is required")
    if params.get("code_challenge_method") != "S256":
        raise RedirectProblem("invalid_request", "PKCE with code_challenge_method=S256 is required")
    challenge = str(params.get("code_challenge") or "")
    if not _CHALLENGE.fullmatch(challenge):
        raise RedirectProblem("invalid_request", "code_challenge must be the base64url SHA-256 of the verifier")
    if str(params.get("aud") or "").rstrip("/") != fhir_base.rstrip("/"):
        raise RedirectProblem("invalid_request", f"aud must be this server's FHIR base URL, {fhir_base}")
    try:
        scopes = negotiate_scopes(str(params.get("scope") or ""), app.scopes)
    except TokenError as err:
        raise RedirectProblem("invalid_scope", err.description) from None
    if not any(s.startswith("patient/") for s in scopes):
        raise RedirectProblem("invalid_scope", "Ask for at least one patient/ resource scope")
    return AuthorizeRequest(client=app, redirect_uri=redirect_uri, state=state, scopes=frozenset(scopes),
                            code_challenge=challenge)


def _with_query(redirect_uri: str, values: dict[str, str]) -> str:
    joiner = "&" if urlsplit(redirect_uri).query else "?"
    return redirect_uri + joiner + urlencode(values)


def error_location(redirect_uri: str, error: str, description: str, state: str | None) -> str:
    """Where to send the browser back with an OAuth error (RFC 6749 §4.1.2.1)."""
    values = {"error": error, "error_description": description}
    if state:
        values["state"] = state
    return _with_query(redirect_uri, values)


def success_location(redirect_uri: str, code: str, state: str) -> str:
    return _with_query(redirect_uri, {"code": code, "state": state})


def issue_code(conn: Connection, req: AuthorizeRequest, *, account_id: uuid.UUID, dossier_key: uuid.UUID,
               representative_id: uuid.UUID | None, now: dt.datetime) -> str:
    """Store a new authorization code (its SHA-256 only) and return it, to put in the redirect."""
    conn.execute(delete(oauth_code).where(oauth_code.c.expires_at < now - dt.timedelta(days=1)))
    code = secrets.token_urlsafe(32)
    conn.execute(insert(oauth_code).values(
        code_hash=_digest(code), client_id=req.client.client_id, account_id=account_id, dossier_key=dossier_key,
        representative_id=representative_id, scopes=" ".join(sorted(req.scopes)), redirect_uri=req.redirect_uri,
        code_challenge=req.code_challenge, created_at=now, expires_at=now + dt.timedelta(seconds=CODE_SECONDS)))
    return code


# --------------------------------------------------------------------------------------------------------------------
# The token endpoint: authorization_code and refresh_token


def _utc(ts: dt.datetime) -> dt.datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=dt.UTC)


def _link_holds(conn: Connection, acting_link: ActingLinkReader, account_id: uuid.UUID, dossier_key: uuid.UUID,
                representative_id: uuid.UUID | None) -> str | None:
    """The dossier's INS when the account is active and still acts on the dossier as it did at consent, else None."""
    link = acting_link(conn, account_id, dossier_key)
    if link is None or link[1] != representative_id:
        return None
    return link[0]


def _public_client(conn: Connection, form: Mapping[str, str]) -> AppClient:
    if form.get("client_assertion") or form.get("client_secret"):
        raise TokenError("invalid_client", "Patient apps are public clients: send client_id only")
    app = load_app(conn, str(form.get("client_id") or ""))
    if app is None:
        raise TokenError("invalid_client", "Unknown or disabled patient app")
    return app


def revoke_grant(conn: Connection, grant_id: uuid.UUID, now: dt.datetime, account_id: uuid.UUID | None = None
                 ) -> int:
    """Revoke every refresh token of a grant, and so every access token issued under it. Returns rows changed."""
    cond = and_(refresh_token.c.family_id == grant_id, refresh_token.c.revoked_at.is_(None))
    if account_id is not None:
        cond = and_(cond, refresh_token.c.account_id == account_id)
    return conn.execute(update(refresh_token).where(cond).values(revoked_at=now)).rowcount


def _issue(conn: Connection, services: Services, server_key: ServerKey, *, app: AppClient,
           grant_id: uuid.UUID, account_id: uuid.UUID, dossier_key: uuid.UUID, representative_id: uuid.UUID | None,
           ins: str, scopes: frozenset[str], now: dt.datetime, refresh_expires: dt.datetime | None) -> dict[str, Any]:
    settings = services.settings
    claims = AssertionClaims(client_id=app.client_id, jti="", exp=0, patient_ins=ins,
                             representative_id=str(representative_id) if representative_id else None,
                             client_kind="patient_app", grant_id=str(grant_id))
    access, expires_in = issue_access_token(server_key, claims, set(scopes), int(time.time()),
                                            settings.token_lifetime, issuer=settings.base_url)
    body: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": expires_in,
                            "scope": " ".join(sorted(scopes)), "patient": str(dossier_key)}
    refresh = f"{grant_id}.{secrets.token_urlsafe(32)}"  # carries its grant: found on the grant's shard
    wants_refresh = bool(scopes & REFRESH_SCOPES)
    if wants_refresh:
        if refresh_expires is None:
            refresh_expires = now + (dt.timedelta(days=settings.refresh_token_days) if "offline_access" in scopes
                                     else dt.timedelta(hours=settings.session_max_hours))
        body["refresh_token"] = refresh
    conn.execute(insert(refresh_token).values(
        token_hash=_digest(refresh), family_id=grant_id, client_id=app.client_id, account_id=account_id,
        dossier_key=dossier_key, representative_id=representative_id, scopes=" ".join(sorted(scopes)),
        created_at=now, expires_at=refresh_expires or now + dt.timedelta(seconds=expires_in),
        used_at=None if wants_refresh else now))  # a grant without refresh: its token is never handed out
    return body


def _authorization_code(conn: Connection, services: Services, server_key: ServerKey, acting_link: ActingLinkReader,
                        form: Mapping[str, str], now: dt.datetime) -> dict[str, Any]:
    app = _public_client(conn, form)
    code, verifier = str(form.get("code") or ""), str(form.get("code_verifier") or "")
    if not code or len(code) > _MAX_TOKEN_CHARS:
        raise TokenError("invalid_request", "code is required")
    if not _VERIFIER.fullmatch(verifier):
        raise TokenError("invalid_request", "a PKCE code_verifier (43 to 128 characters) is required")
    code_hash = _digest(code)
    row = conn.execute(select(oauth_code).where(oauth_code.c.code_hash == code_hash)).first()
    if row is None:
        raise TokenError("invalid_grant", "Unknown authorization code")
    grant_id = _family_of_code(code_hash)
    if row.used_at is not None:
        revoke_grant(conn, grant_id, now)  # RFC 6749 §4.1.2: what was issued from it is revoked
        raise TokenError("invalid_grant", "This authorization code was already used")
    spent = conn.execute(update(oauth_code).where(and_(oauth_code.c.code_hash == code_hash,
                                                       oauth_code.c.used_at.is_(None))).values(used_at=now))
    if spent.rowcount != 1:  # another request spent it between our read and our write
        revoke_grant(conn, grant_id, now)
        raise TokenError("invalid_grant", "This authorization code was already used")
    if row.client_id != app.client_id:
        raise TokenError("invalid_grant", "This authorization code was issued to another client")
    if _utc(row.expires_at) <= now:
        raise TokenError("invalid_grant", "This authorization code has expired")
    if str(form.get("redirect_uri") or "") != row.redirect_uri:
        raise TokenError("invalid_grant", "redirect_uri is not the one of the authorization request")
    if not hmac.compare_digest(pkce_challenge(verifier), row.code_challenge):
        raise TokenError("invalid_grant", "The PKCE code_verifier does not match the code_challenge")
    ins = _link_holds(conn, acting_link, row.account_id, row.dossier_key, row.representative_id)
    if ins is None:
        raise TokenError("invalid_grant", "This account no longer acts on this dossier")
    return _issue(conn, services, server_key, app=app, grant_id=grant_id, account_id=row.account_id,
                  dossier_key=row.dossier_key, representative_id=row.representative_id, ins=ins,
                  scopes=frozenset(row.scopes.split()), now=now, refresh_expires=None)


def _token_filter(presented: str, token_hash: str) -> Any:
    """Where a presented refresh token's row is: on its grant (``<family>.<secret>``, one shard on Citus); a token
    issued before tokens carried their grant is looked up by its hash alone."""
    family, dot, _ = presented.partition(".")
    if dot:
        try:
            return and_(refresh_token.c.family_id == uuid.UUID(family), refresh_token.c.token_hash == token_hash)
        except ValueError:
            pass
    return refresh_token.c.token_hash == token_hash


def _refresh(conn: Connection, services: Services, server_key: ServerKey, acting_link: ActingLinkReader,
             form: Mapping[str, str], now: dt.datetime) -> dict[str, Any]:
    app = _public_client(conn, form)
    presented = str(form.get("refresh_token") or "")
    if not presented or len(presented) > _MAX_TOKEN_CHARS:
        raise TokenError("invalid_request", "refresh_token is required")
    h = _digest(presented)
    row = conn.execute(select(refresh_token).where(_token_filter(presented, h))).first()
    if row is None or row.client_id != app.client_id:
        raise TokenError("invalid_grant", "Unknown refresh token")
    if row.revoked_at is not None:
        raise TokenError("invalid_grant", "This refresh token has been revoked")
    if row.used_at is not None:
        revoke_grant(conn, row.family_id, now)  # RFC 9700 §4.14.2: a spent token again means theft
        raise TokenError("invalid_grant", "This refresh token was already used; the app must sign in again")
    spent = conn.execute(update(refresh_token).where(and_(refresh_token.c.family_id == row.family_id,
                                                          refresh_token.c.token_hash == h,
                                                          refresh_token.c.used_at.is_(None))).values(used_at=now))
    if spent.rowcount != 1:
        revoke_grant(conn, row.family_id, now)
        raise TokenError("invalid_grant", "This refresh token was already used; the app must sign in again")
    if _utc(row.expires_at) <= now:
        raise TokenError("invalid_grant", "This refresh token has expired")
    scopes = frozenset(row.scopes.split())
    if form.get("scope"):
        narrower = frozenset(negotiate_scopes(str(form["scope"]), scopes))
        if not any(s.startswith("patient/") for s in narrower):
            raise TokenError("invalid_scope", "Ask for at least one patient/ resource scope")
        scopes = narrower | (scopes & REFRESH_SCOPES)  # a narrower access token; the grant itself is unchanged
    ins = _link_holds(conn, acting_link, row.account_id, row.dossier_key, row.representative_id)
    if ins is None:
        revoke_grant(conn, row.family_id, now)
        raise TokenError("invalid_grant", "This account no longer acts on this dossier")
    keep = None if "offline_access" in scopes else _utc(row.expires_at)  # online_access: not past the first one
    return _issue(conn, services, server_key, app=app, grant_id=row.family_id, account_id=row.account_id,
                  dossier_key=row.dossier_key, representative_id=row.representative_id, ins=ins, scopes=scopes,
                  now=now, refresh_expires=keep)


def token_endpoint(services: Services, server_key: ServerKey, form: Mapping[str, str],
                   acting_link: ActingLinkReader) -> JSONResponse:
    """``POST /oauth/token`` for ``authorization_code`` and ``refresh_token`` (public patient apps).

    ``acting_link`` says whether the account still acts on the dossier (see :data:`ActingLinkReader`). A refusal that
    revokes something (a code or a refresh token presented twice) commits the revocation."""
    now = services.clock()
    grant_type = form.get("grant_type")
    refused: TokenError | None = None
    body: dict[str, Any] = {}
    with services.engine.begin() as conn:
        try:
            if grant_type == "authorization_code":
                body = _authorization_code(conn, services, server_key, acting_link, form, now)
            elif grant_type == "refresh_token":
                body = _refresh(conn, services, server_key, acting_link, form, now)
            else:
                raise TokenError("unsupported_grant_type", "Unsupported grant_type")
        except TokenError as err:
            refused = err  # leave the block normally: what was revoked or spent stays so
    if refused is not None:
        return JSONResponse(refused.as_response(), status_code=refused.http_status, headers=_NO_STORE)
    return JSONResponse(body, headers=_NO_STORE)


def revocation_endpoint(services: Services, form: Mapping[str, str]) -> JSONResponse:
    """``POST /oauth/revoke`` (RFC 7009, SMART App Launch 2 ``revocation_endpoint``): a patient app (a public client:
    ``client_id``, no secret) revokes one of its refresh tokens, which revokes its whole grant and with it every access
    token issued under it (checked on every API call, :func:`grant_alive`). As RFC 7009 §2.2 says, an unknown, spent
    or another client's token is answered 200 all the same (nothing is revealed, nothing changes). Access tokens
    (5-minute JWTs) are not revoked one by one: ``token_type_hint=access_token`` is ``unsupported_token_type``."""
    now = services.clock()
    with services.engine.begin() as conn:
        try:
            app = _public_client(conn, form)
            if form.get("token_type_hint") == "access_token":
                raise TokenError("unsupported_token_type", "Revoke the app's refresh token: it ends the grant")
            presented = str(form.get("token") or "")
            if not presented or len(presented) > _MAX_TOKEN_CHARS:
                raise TokenError("invalid_request", "token is required")
            row = conn.execute(select(refresh_token.c.family_id, refresh_token.c.client_id)
                               .where(_token_filter(presented, _digest(presented)))).first()
            if row is not None and row.client_id == app.client_id:
                revoke_grant(conn, row.family_id, now)
        except TokenError as err:
            return JSONResponse(err.as_response(), status_code=err.http_status, headers=_NO_STORE)
    return JSONResponse({}, headers=_NO_STORE)


# --------------------------------------------------------------------------------------------------------------------
# Checking and listing grants


_GRANT = (select(refresh_token.c.account_id, refresh_token.c.dossier_key)
          .where(and_(refresh_token.c.family_id == bindparam("family"), refresh_token.c.client_id == bindparam("cid"),
                      refresh_token.c.revoked_at.is_(None)))
          .limit(1))


def grant_alive(conn: Connection, grant_id: str | None, client_id: str, acting_link: ActingLinkReader) -> bool:
    """Whether an app's access token may still be used: its grant is not revoked, the account is active and still
    acts on the dossier (``acting_link``, see :data:`ActingLinkReader`). Two indexed queries, in the request's own
    transaction."""
    try:
        family = uuid.UUID(str(grant_id))
    except ValueError:
        return False
    grant = conn.execute(_GRANT, {"family": family, "cid": client_id}).first()
    return grant is not None and acting_link(conn, grant.account_id, grant.dossier_key) is not None


@dataclass(frozen=True)
class ConnectedApp:
    grant_id: uuid.UUID
    client_id: str
    name: str
    dossier_key: uuid.UUID
    given: str
    family: str
    since: dt.datetime
    last_used: dt.datetime
    scopes: tuple[str, ...]


def connected_apps(conn: Connection, account_id: uuid.UUID, now: dt.datetime,
                   dossier_names: DossierNames) -> list[ConnectedApp]:
    """The apps this account has allowed and not revoked (grants with a live token), newest first; each names its
    dossier with ``dossier_names`` (see :data:`DossierNames`)."""
    rows = conn.execute(
        select(refresh_token.c.family_id, refresh_token.c.client_id, refresh_token.c.dossier_key,
               refresh_token.c.created_at, refresh_token.c.expires_at, refresh_token.c.revoked_at,
               refresh_token.c.used_at, refresh_token.c.scopes, client.c.name)
        .select_from(refresh_token.join(client, client.c.client_id == refresh_token.c.client_id))
        .where(refresh_token.c.account_id == account_id)).all()
    names = dossier_names(conn, {r.dossier_key for r in rows}) if rows else {}
    grants: dict[uuid.UUID, list[Any]] = {}
    for r in rows:
        if r.dossier_key in names:  # a dossier that is no more is not listed
            grants.setdefault(r.family_id, []).append(r)
    out = []
    for family_id, members in grants.items():
        if any(m.revoked_at is not None for m in members):
            continue
        live = [m for m in members if _utc(m.expires_at) > now]
        if not live:
            continue
        first, last = min(members, key=lambda m: _utc(m.created_at)), max(members, key=lambda m: _utc(m.created_at))
        given, family = names[last.dossier_key]
        out.append(ConnectedApp(grant_id=family_id, client_id=last.client_id, name=last.name,
                                dossier_key=last.dossier_key, given=given, family=family,
                                since=_utc(first.created_at), last_used=_utc(last.created_at),
                                scopes=tuple(sorted(last.scopes.split()))))
    return sorted(out, key=lambda a: a.last_used, reverse=True)
