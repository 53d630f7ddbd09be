"""The clinician portal as an OpenID Connect relying party (authorization code flow, PKCE S256, state, nonce).

In production the issuer is Pro Santé Connect (``CARNET_PSC_ISSUER``, client id and secret as settings); without it,
the built-in demo identity provider (:mod:`carnet.pro.demo_idp`) at ``/demo-idp``. The RP fetches the issuer's
discovery document and JWKS and exchanges the code through an ``httpx.AsyncClient``: plain HTTP for a real issuer,
and for the built-in one an in-process ``httpx.ASGITransport`` on the application itself (no network, and the same
code path under a test client).

The id_token is verified here, nowhere else: ES256/RS256 signature against the issuer's JWKS, ``iss``, ``aud``,
``exp``, ``nonce``; then the professional's national id is taken from ``SubjectNameID`` (Pro Santé Connect puts the
RPPS-based id there) or else ``sub``; and the assurance level ``acr`` must be ``eidas1`` with a real issuer (the demo
issuer's own value is accepted only for the demo).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from carnet.config import Settings

DEMO_PATH = "/demo-idp"
CALLBACK_PATH = "/pro/callback"
DEMO_ACR = "demo"
PRODUCTION_ACR = "eidas1"
SCOPES = "openid scope_all"
ALGORITHMS = ["ES256", "RS256", "PS256"]
LEEWAY = 60


class LoginError(Exception):
    """A sign-in that must not go through (the message is a portal message id, shown as is)."""


def is_demo(settings: Settings) -> bool:
    return not settings.psc_issuer


def issuer(settings: Settings) -> str:
    return settings.psc_issuer or f"{settings.base_url}{DEMO_PATH}"


def redirect_uri(settings: Settings, origin: str) -> str:
    """The portal's registered redirect URI. With the demo issuer it is on whatever origin the browser uses
    (``origin``, e.g. ``https://host:port``, the request's own); with a real issuer, on ``base_url``."""
    return f"{origin if is_demo(settings) else settings.base_url}{CALLBACK_PATH}"


def client(settings: Settings, app: Any) -> httpx.AsyncClient:
    """The HTTP client that reaches the issuer: in-process for the built-in demo issuer."""
    if is_demo(settings):
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=settings.base_url, timeout=10)
    return httpx.AsyncClient(timeout=10)


def _local(settings: Settings, url: str) -> str:
    """For the demo issuer, the path of an endpoint (the in-process client resolves it); otherwise the URL."""
    base = settings.base_url
    return url[len(base):] if is_demo(settings) and url.startswith(base) else url


async def discovery(settings: Settings, http: httpx.AsyncClient) -> dict[str, Any]:
    url = f"{issuer(settings)}/.well-known/openid-configuration"
    r = await http.get(_local(settings, url))
    r.raise_for_status()
    found: dict[str, Any] = r.json()
    if found.get("issuer") != issuer(settings):
        raise LoginError("The identity provider answered for another issuer.")
    return found


@dataclass(frozen=True)
class Pending:
    """What the RP keeps between sending the browser to the issuer and its return (in a short-lived cookie)."""

    state: str
    nonce: str
    verifier: str

    def cookie(self) -> str:
        return f"{self.state}.{self.nonce}.{self.verifier}"

    @classmethod
    def from_cookie(cls, value: str | None) -> Pending | None:
        parts = (value or "").split(".")
        if len(parts) != 3 or not all(parts):
            return None
        return cls(*parts)

    @classmethod
    def new(cls) -> Pending:
        return cls(secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48))


def challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def authorization_url(settings: Settings, endpoint: str, redirect_uri: str, pending: Pending) -> str:
    query = {"response_type": "code", "client_id": settings.psc_client_id, "redirect_uri": redirect_uri,
             "scope": SCOPES, "state": pending.state, "nonce": pending.nonce,
             "code_challenge": challenge(pending.verifier), "code_challenge_method": "S256"}
    if not is_demo(settings):
        query["acr_values"] = PRODUCTION_ACR
    return f"{endpoint}?{urlencode(query)}"


@dataclass(frozen=True)
class Identity:
    national_id: str
    acr: str | None
    claims: dict[str, Any]


async def exchange(settings: Settings, http: httpx.AsyncClient, config: dict[str, Any], code: str,
                   redirect_uri: str, pending: Pending) -> Identity:
    """Exchange the authorization code for tokens and verify the id_token."""
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "code_verifier": pending.verifier, "client_id": settings.psc_client_id}
    if settings.psc_client_secret:
        r = await http.post(_local(settings, str(config["token_endpoint"])), data=form,
                            auth=(settings.psc_client_id, settings.psc_client_secret))
    else:
        r = await http.post(_local(settings, str(config["token_endpoint"])), data=form)
    if r.status_code != 200:
        raise LoginError("The identity provider refused the sign-in.")
    id_token = r.json().get("id_token")
    if not isinstance(id_token, str):
        raise LoginError("The identity provider refused the sign-in.")
    jwks = await http.get(_local(settings, str(config["jwks_uri"])))
    jwks.raise_for_status()
    return verify_id_token(settings, id_token, jwks.json(), pending.nonce)


def verify_id_token(settings: Settings, id_token: str, jwks: dict[str, Any], nonce: str,
                    now: float | None = None) -> Identity:
    """Check the id_token's signature, issuer, audience, expiry and nonce, and the assurance level."""
    try:
        token = jwt.decode(id_token, KeySet.import_key_set(jwks), algorithms=ALGORITHMS)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError) as exc:
        raise LoginError("The identity provider's answer could not be verified.") from exc
    claims = dict(token.claims)
    now = time.time() if now is None else now
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    checks = [claims.get("iss") == issuer(settings), settings.psc_client_id in audiences,
              isinstance(claims.get("exp"), int | float) and claims["exp"] + LEEWAY > now,
              isinstance(nonce, str) and bool(nonce) and claims.get("nonce") == nonce]
    if not all(checks):
        raise LoginError("The identity provider's answer could not be verified.")
    acr = claims.get("acr")
    if acr != (DEMO_ACR if is_demo(settings) else PRODUCTION_ACR):
        raise LoginError("This sign-in method is not strong enough: use your CPS card or e-CPS.")
    national_id = claims.get("SubjectNameID") or claims.get("sub")
    if not isinstance(national_id, str) or not national_id:
        raise LoginError("The identity provider's answer could not be verified.")
    return Identity(national_id, str(acr) if acr else None, claims)
