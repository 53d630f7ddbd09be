"""Patients' apps: the consent screen of the SMART standalone launch, and the list of connected apps.

``GET /oauth/authorize`` checks the app and its redirect URI first (a problem there is shown here, never sent to an
address we cannot trust), then the rest of the request (a problem there goes back to the app with ``error=``), then
asks the person to sign in if needed, and shows who is asking for what, in plain words, with Allow and Deny. The
answer is a CSRF-protected POST to the same address. The rules live in :mod:`carnet.auth.smart`.

``/portal/apps`` lists the apps the account has allowed (per dossier) and lets the person withdraw each one at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from sqlalchemy import Connection
from starlette.responses import Response

from carnet.accounts import service as accounts
from carnet.accounts import sessions
from carnet.auth import smart
from carnet.portal.i18n import N_
from carnet.portal.web import SECURITY_HEADERS, Page, page

# The request parameters carried from the authorization request to the consent form and back.
PARAMS = ("response_type", "client_id", "redirect_uri", "scope", "state", "aud", "code_challenge",
          "code_challenge_method")

# The refusals of carnet.auth.smart.check_client, shown on a page (message ids, for the catalogue).
CLIENT_PROBLEMS = (N_("This app is not known to Carnet, or it has been disabled."),
                   N_("This app asked to come back to an address it has not registered with Carnet."))

# What each scope lets the app do, in plain words (a scope not listed here falls back to a generic line).
SCOPE_WORDS = {
    "patient/*.rs": N_("Read everything in the dossier: identity, documents and their content, access history."),
    "patient/*.r": N_("Read everything in the dossier: identity, documents and their content, access history."),
    "patient/DocumentReference.rs": N_("See the list of documents and their details (type, date, author)."),
    "patient/DocumentReference.r": N_("See the list of documents and their details (type, date, author)."),
    "patient/DocumentReference.s": N_("See the list of documents and their details (type, date, author)."),
    "patient/Binary.rs": N_("Open and download the content of the documents."),
    "patient/Binary.r": N_("Open and download the content of the documents."),
    "patient/Patient.rs": N_("Read the identity in the dossier (name, date of birth, INS)."),
    "patient/Patient.r": N_("Read the identity in the dossier (name, date of birth, INS)."),
    "patient/AuditEvent.rs": N_("Read the history of who looked at the dossier and what changed."),
    "patient/AuditEvent.s": N_("Read the history of who looked at the dossier and what changed."),
    "patient/List.rs": N_("See which documents were sent together."),
    "offline_access": N_("Keep this access when you are not signed in, until you withdraw it."),
    "online_access": N_("Keep this access for a few hours, while you use the app."),
    "launch/patient": N_("Know which dossier you chose."),
    # the only write scopes a patient app may have (carnet.admin.MEASURE_WRITE_SCOPES): a measuring app or gateway
    "patient/Observation.c": N_("Add measurements (weight, blood pressure, glucose, heart rate…) to the dossier."),
    "patient/Device.c": N_("Tell which devices took them; you can stop one at any time on the Measurements page."),
}


def _params(source: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(source.get(k) or "") for k in PARAMS if source.get(k)}


def _authorize_url(params: dict[str, str]) -> str:
    return "/oauth/authorize?" + urlencode(params)


def _problem_page(p: Page, message: str, status: int = 400) -> Response:
    return p.render("portal/error.html", status=status, status_code=status, title=p._("This app cannot connect"),
                    message=p._(message))


WRITE_SCOPES = frozenset({"patient/Observation.c", "patient/Device.c"})


def _describe(p: Page, scopes: frozenset[str]) -> list[str]:
    lines: list[str] = []
    for scope in sorted(scopes, key=lambda s: (not s.startswith("patient/*"), s)):
        words = SCOPE_WORDS.get(scope)
        if words is None and scope.startswith("patient/"):
            text = p._("Read: {what}").format(what=scope.split("/", 1)[1].rsplit(".", 1)[0])
        elif words is None:
            continue
        else:
            text = p._(words)
        if text not in lines:
            lines.append(text)
    return lines


def _with_form_action(response: Response, redirect_uri: str) -> Response:
    """Browsers apply ``form-action`` to the redirect that follows the form: allow the app's address too."""
    parts = urlsplit(redirect_uri)
    origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else f"{parts.scheme}:"
    csp = SECURITY_HEADERS["Content-Security-Policy"].replace("form-action 'self'", f"form-action 'self' {origin}")
    response.headers["Content-Security-Policy"] = csp
    return response


async def _checked(p: Page, params: dict[str, str]) -> tuple[smart.AuthorizeRequest | None, Response | None]:
    """The checked request from a signed-in person, or the response to give instead (a problem page, a redirect
    back to the app, or to the sign-in page that comes back here)."""
    def client_first(conn: Connection) -> tuple[smart.AppClient, str]:
        return smart.check_client(conn, params)

    try:
        app, redirect_uri = await p.db(client_first)
    except smart.ClientProblem as err:
        return None, _problem_page(p, err.message)
    try:
        req = smart.check_request(app, redirect_uri, params, f"{p.settings.base_url}/fhir")
    except smart.RedirectProblem as err:
        return None, p.redirect(smart.error_location(redirect_uri, err.error, err.description,
                                                     params.get("state")))
    if p.session is None or not p.session.signed_in:
        return None, p.redirect(f"/portal/sign-in?next={quote(_authorize_url(params), safe='')}")
    return req, None


@page("GET", "/oauth/authorize", public=True)
async def authorize_form(p: Page) -> Response:
    params = _params(p.request.query_params)
    req, answer = await _checked(p, params)
    if answer is not None:
        return answer
    assert req is not None and p.session is not None
    current = p.session
    links = await p.db(lambda conn: sessions.links(conn, current.account_id))
    if not links:
        return _problem_page(p, N_("This account does not act on any dossier at the moment."), 403)
    chosen = current.dossier_key if any(lk.dossier_key == current.dossier_key for lk in links) \
        else links[0].dossier_key
    response = p.render("portal/authorize.html", title=p._("Allow this app?"), app=req.client,
                        lead=p._("An app asks to read your Carnet. Check what it asks, then allow or deny."),
                        scopes=_describe(p, req.scopes), writes=bool(req.scopes & WRITE_SCOPES), links=links,
                        chosen=chosen, params=params,
                        redirect_host=urlsplit(req.redirect_uri).netloc or req.redirect_uri)
    return _with_form_action(response, req.redirect_uri)


@page("POST", "/oauth/authorize", public=True)
async def authorize(p: Page) -> Response:
    form = await p.form()
    params = _params(form)
    req, answer = await _checked(p, params)
    if answer is not None:
        return answer
    assert req is not None and p.session is not None
    if form.get("decision") != "allow":
        return p.redirect(smart.error_location(req.redirect_uri, "access_denied", "The person did not allow access",
                                               req.state))
    current, now = p.session, p.services.clock()
    try:
        key = uuid.UUID(str(form.get("dossier") or ""))
    except ValueError:
        return p.redirect(_authorize_url(params))

    def work(conn: Connection) -> str | None:
        link = next((lk for lk in sessions.links(conn, current.account_id) if lk.dossier_key == key), None)
        if link is None:
            return None
        return smart.issue_code(conn, req, account_id=current.account_id, dossier_key=key,
                                representative_id=link.representative_id if link.role == "representative" else None,
                                now=now)

    code = await p.db(work)
    if code is None:
        return p.redirect(_authorize_url(params))
    return p.redirect(smart.success_location(req.redirect_uri, code, req.state))


@page("GET", "/portal/apps", needs_dossier=False)
async def apps(p: Page) -> Response:
    assert p.session is not None
    current, now = p.session, p.services.clock()
    rows = await p.db(lambda conn: smart.connected_apps(conn, current.account_id, now, accounts.dossier_names))
    flash = p._("The app no longer has access.") if p.request.query_params.get("flash") == "revoked" else ""
    return p.render("portal/apps.html", title=p._("Connected apps"), apps=rows, flash=flash,
                    described={a.grant_id: _describe(p, frozenset(a.scopes)) for a in rows},
                    lead=p._("Apps you allowed to read your Carnet. Withdraw an app's access at any time."))


@page("POST", "/portal/apps/revoke", needs_dossier=False)
async def revoke(p: Page) -> Response:
    assert p.session is not None
    current, now = p.session, p.services.clock()
    form = await p.form()
    try:
        grant = uuid.UUID(str(form.get("grant") or ""))
    except ValueError:
        return p.redirect("/portal/apps")
    await p.db(lambda conn: smart.revoke_grant(conn, grant, now, account_id=current.account_id))
    return p.redirect("/portal/apps?flash=revoked")
