"""The built-in demo identity provider (only when ``CARNET_PSC_ISSUER`` is unset), at ``/demo-idp``.

It plays Pro Santé Connect's part for a newcomer: its authorize page lists the enabled professionals of the
``practitioner`` table and signs in as the one picked, with no password (the page says so in a banner: it is a demo).
Discovery, an authorize page, a token endpoint (authorization code + PKCE S256) and a JWKS; the id_token is signed
ES256 with a key of its own (``CARNET_DEMO_IDP_KEY_FILE``, default ``var/demo-idp-key.pem``: every node of a
several-node demo reads the same file) and carries ``sub`` and ``SubjectNameID`` (the national id),
``nonce`` and ``acr = "demo"``.

The authorize request is checked as a hospital's security officer would expect even of a demo: ``redirect_uri``
must be exactly the clinician portal's registered redirect URI (:func:`carnet.pro.oidc.redirect_uri`, on this
request's own origin or on ``base_url``: nothing else, so no code ever leaves for another site), and the POST that
picks the professional carries a CSRF token (``idp_csrf``) that the GET page signed with the demo key, bound to every
authorize parameter (state, nonce and PKCE challenge included) and valid for ``FORM_SECONDS``; a POST whose Origin
(or Referer) is another site's is refused too. Any refusal is a 400 or 403 page, and no code is issued.

The authorization code is itself a short-lived token signed by the demo key; its ``jti`` is recorded in the
``token_jti`` table when it is exchanged, so that it is spent once on every node (docs/SCALE.md).
"""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
import time
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from carnet.auth.keys import ServerKey
from carnet.auth.web import spend_jti
from carnet.config import Settings
from carnet.context import Services
from carnet.identity import practitioners
from carnet.portal import web as portal_web
from carnet.portal.pages.documents import profession_label
from carnet.pro import oidc
from carnet.pro.web import ProPage, pro_page

CODE_SECONDS = 120
FORM_SECONDS = 600  # how long the authorize page's CSRF token is good for
FORM_FIELD = "idp_csrf"
ID_TOKEN_SECONDS = 300
SPENT_CLIENT = "demo-idp"  # the client id under which exchanged codes' jti are recorded in token_jti
AUTH_PARAMS = ("client_id", "redirect_uri", "state", "nonce", "code_challenge", "code_challenge_method", "scope",
               "response_type")


@functools.cache
def _key(path: str) -> ServerKey:
    from pathlib import Path

    return ServerKey.load_or_create(Path(path))


def key(settings: Settings) -> ServerKey:
    return _key(settings.demo_idp_key_file or str(settings.var_dir / "demo-idp-key.pem"))


def configuration(settings: Settings) -> dict[str, Any]:
    iss = oidc.issuer(settings)
    return {"issuer": iss, "authorization_endpoint": f"{iss}/authorize", "token_endpoint": f"{iss}/token",
            "jwks_uri": f"{iss}/jwks", "response_types_supported": ["code"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"], "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
            "acr_values_supported": [oidc.DEMO_ACR], "scopes_supported": ["openid", "scope_all"]}


def _params(source: Any) -> dict[str, str]:
    return {k: str(source.get(k) or "") for k in AUTH_PARAMS}


def registered_redirect_uris(settings: Settings, request: Request) -> set[str]:
    """The redirect URIs the clinician portal registers, built as it builds them (:mod:`carnet.pro.pages.signin`):
    on the origin of this very request (the portal and this issuer are the same application), or on ``base_url``."""
    return {oidc.redirect_uri(settings, f"{request.url.scheme}://{request.url.netloc}"),
            f"{settings.base_url.rstrip('/')}{oidc.CALLBACK_PATH}"}


def _bad_request(params: dict[str, str], settings: Settings, request: Request) -> str | None:
    if params["response_type"] != "code" or params["client_id"] != settings.psc_client_id:
        return "This sign-in request is not valid."
    if params["redirect_uri"] not in registered_redirect_uris(settings, request) or \
            params["code_challenge_method"] != "S256" or \
            not params["code_challenge"] or not params["state"] or not params["nonce"]:
        return "This sign-in request is not valid."
    return None


def _params_hash(params: dict[str, str]) -> str:
    canonical = json.dumps([params[k] for k in AUTH_PARAMS], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def form_token(settings: Settings, params: dict[str, str], now: int | None = None) -> str:
    """The authorize page's CSRF token: signed by the demo key, short-lived, bound to every authorize parameter."""
    now = int(time.time()) if now is None else now
    return key(settings).sign({"h": _params_hash(params), "iat": now, "exp": now + FORM_SECONDS},
                              typ="demo-form")


def form_token_ok(settings: Settings, params: dict[str, str], token: str) -> bool:
    try:
        decoded = jwt.decode(token, KeySet.import_key_set(key(settings).public_jwks()),  # type: ignore[arg-type]
                             algorithms=["ES256"])
    except (JoseError, ValueError, TypeError):
        return False
    c = decoded.claims
    return (decoded.header.get("typ") == "demo-form" and isinstance(c.get("exp"), int) and c["exp"] > time.time()
            and secrets.compare_digest(str(c.get("h") or ""), _params_hash(params)))


@pro_page("GET", "/demo-idp/authorize", public=True)
async def authorize_form(p: ProPage) -> Response:
    params = _params(p.request.query_params)
    error = _bad_request(params, p.settings, p.request)
    if error:
        return p.render("pro/error.html", status=400, status_code=400, message=p._(error))

    find = str(p.request.query_params.get("find") or "").strip()[:100]

    def load() -> list[Any]:
        with p.services.engine.connect() as conn:  # a directory with many professionals: by id or family name
            return practitioners.find(conn, find, limit=100)
    people = await run_in_threadpool(load)
    return p.render("pro/demo_idp.html", title=p._("Demo identity provider"), people=people, params=params,
                    find=find, idp_field=FORM_FIELD, idp_csrf=form_token(p.settings, params),
                    profession=lambda code: profession_label(p, code))


@pro_page("POST", "/demo-idp/authorize", public=True)
async def authorize(p: ProPage) -> Response:
    form = await p.form()
    params = _params(form)
    error = _bad_request(params, p.settings, p.request)
    national_id = str(form.get("national_id") or "")
    if error:
        return p.render("pro/error.html", status=400, status_code=400, message=p._(error))
    if not portal_web._same_origin(p.request, p.services) or \
            not form_token_ok(p.settings, params, str(form.get(FORM_FIELD) or "")):
        return p.render("pro/error.html", status=403, status_code=403,
                        message=p._("This form has expired. Please go back and try again."))

    def enabled() -> bool:
        with p.services.engine.connect() as conn:
            return practitioners.enabled(conn, national_id)
    if not await run_in_threadpool(enabled):
        return p.render("pro/error.html", status=403, status_code=403,
                        message=p._("This professional is not, or no longer, allowed to use Carnet."))
    now = int(time.time())
    code = key(p.settings).sign({"iss": oidc.issuer(p.settings), "sub": national_id, "nonce": params["nonce"],
                                 "cc": params["code_challenge"], "cid": params["client_id"],
                                 "ru": params["redirect_uri"], "iat": now, "exp": now + CODE_SECONDS,
                                 "jti": secrets.token_urlsafe(16)}, typ="demo-code")
    sep = "&" if "?" in params["redirect_uri"] else "?"
    from urllib.parse import urlencode

    return p.redirect(params["redirect_uri"] + sep + urlencode({"code": code, "state": params["state"]}))


def _grant_error(text: str) -> Response:
    return JSONResponse({"error": "invalid_grant", "error_description": text}, status_code=400,
                        headers={"Cache-Control": "no-store"})


def _spend(services: Services, jti: str, exp: int) -> bool:
    """Record a code's jti in the database every node shares; False if it was already there (the code is spent)."""
    return spend_jti(services, SPENT_CLIENT, jti, exp)


def token(services: Services, form: dict[str, str]) -> Response:
    settings = services.settings
    if form.get("grant_type") != "authorization_code":
        return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
    try:
        decoded = jwt.decode(form.get("code") or "", KeySet.import_key_set(key(settings).public_jwks()),  # type: ignore[arg-type]
                             algorithms=["ES256"])
    except (JoseError, ValueError, TypeError):
        return _grant_error("unknown code")
    c = decoded.claims
    if decoded.header.get("typ") != "demo-code" or c.get("exp", 0) <= time.time() or not c.get("jti"):
        return _grant_error("expired or spent code")
    if c.get("cid") != form.get("client_id") or c.get("ru") != form.get("redirect_uri"):
        return _grant_error("client or redirect_uri mismatch")
    if oidc.challenge(form.get("code_verifier") or "") != c.get("cc"):
        return _grant_error("PKCE verification failed")
    if not _spend(services, str(c["jti"]), int(c["exp"])):
        return _grant_error("expired or spent code")
    with services.engine.connect() as conn:
        ok = practitioners.enabled(conn, str(c["sub"]))
    if not ok:
        return _grant_error("this professional is disabled")
    now = int(time.time())
    id_token = key(settings).sign({"iss": oidc.issuer(settings), "aud": c["cid"], "sub": c["sub"],
                                   "SubjectNameID": c["sub"], "nonce": c["nonce"], "acr": oidc.DEMO_ACR,
                                   "iat": now, "exp": now + ID_TOKEN_SECONDS, "auth_time": now}, typ="JWT")
    return JSONResponse({"access_token": secrets.token_urlsafe(32), "token_type": "Bearer",
                         "expires_in": ID_TOKEN_SECONDS, "id_token": id_token}, headers={"Cache-Control": "no-store"})


def routes(services: Services) -> list[Route]:
    settings = services.settings

    async def discovery(_: Request) -> Response:
        return JSONResponse(configuration(settings))

    async def jwks(_: Request) -> Response:
        return JSONResponse(key(settings).public_jwks())

    async def token_endpoint(request: Request) -> Response:
        form = await request.form()
        return await run_in_threadpool(token, services, {k: str(v) for k, v in form.items()})

    return [Route(f"{oidc.DEMO_PATH}/.well-known/openid-configuration", discovery, methods=["GET"]),
            Route(f"{oidc.DEMO_PATH}/jwks", jwks, methods=["GET"]),
            Route(f"{oidc.DEMO_PATH}/token", token_endpoint, methods=["POST"])]
