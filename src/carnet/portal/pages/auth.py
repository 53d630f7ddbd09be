"""Sign-in (password, then a one-time code), activation, password reset, choosing the dossier, sign-out, language."""

from __future__ import annotations

import datetime as dt
import uuid
from urllib.parse import quote

import structlog
from sqlalchemy import Connection
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from carnet.accounts import preferences, sessions
from carnet.accounts import service as accounts
from carnet.ids import parse_id
from carnet.portal import i18n
from carnet.portal.i18n import N_
from carnet.portal.web import LANG_COOKIE, Page, page

logger = structlog.get_logger("carnet")
# Messages a redirect may ask the sign-in page to show (a key, never text from the URL).
FLASHES = {"signed-out": N_("You are signed out."), "activated": N_("Your Carnet is active. You can sign in now."),
           "reset": N_("Your password is changed. You can sign in now.")}


def _next(value: object) -> str:
    """Only our own portal paths (and the SMART authorization endpoint) are followed after sign-in."""
    text = str(value or "")
    if (text.startswith("/portal/") or text.startswith("/oauth/authorize")) and "//" not in text and "\\" not in text:
        return text
    return "/portal/"


def _refused(p: Page, err: accounts.AccountError, template: str, **values: object) -> Response:
    """A refusal: the calm 429 page for a try that must wait (the same for every identifier), else the form again
    with the message (400)."""
    if isinstance(err, accounts.SlowDown):
        return p.slow_down(err.retry_after)
    return p.render(template, status=400, error=p._(err.message), **values)


def _send_later(p: Page, response: Response, sent: accounts.CodeSent | None, purpose: str) -> Response:
    """Deliver a code after the answer has gone: the answer takes the same time whether or not there was a code to
    send (a reset for an identifier nobody has sends nothing)."""
    if sent is not None:
        async def deliver() -> None:
            await _send(p, sent, purpose)
        response.background = BackgroundTask(deliver)
    return response


async def _send(p: Page, sent: accounts.CodeSent, purpose: str) -> bool:
    try:
        await run_in_threadpool(accounts.send, p.services, sent, purpose)
    except Exception as exc:  # noqa: BLE001 - a failed delivery is shown, never crashes the page
        logger.warning("code.delivery_failed", error_type=type(exc).__name__, channel=sent.channel)
        return False
    return True


@page("GET", "/portal/sign-in", public=True)
async def sign_in_form(p: Page) -> Response:
    if p.session is not None and p.session.signed_in:
        return p.redirect(_next(p.request.query_params.get("next")))
    return p.render("portal/sign_in.html", title=p._("Sign in"), next=_next(p.request.query_params.get("next")),
                    lead=p._("Sign in with your identifier and password; we then send you a one-time code."),
                    flash=p._(FLASHES.get(str(p.request.query_params.get("flash")), "")) or "")


@page("POST", "/portal/sign-in", public=True, limit="sign_in")
async def sign_in(p: Page) -> Response:
    form = await p.form()
    login, password = str(form.get("login") or ""), str(form.get("password") or "")
    nxt = _next(form.get("next"))
    now, address = p.services.clock(), p.address

    def work(conn: Connection) -> tuple[accounts.CodeSent, str]:
        sent = accounts.start_sign_in(p.services, conn, now, login, password, address)
        return sent, sessions.open_session(conn, sent.account_id, "password_ok", now, p.settings)

    try:
        sent, token = await p.db(work)
    except accounts.AccountError as err:
        return _refused(p, err, "portal/sign_in.html", title=p._("Sign in"), next=nxt, login=login)
    delivered = await _send(p, sent, "sign_in")
    p.set_cookie(sessions.COOKIE, token)
    return p.redirect(f"/portal/code?next={quote(nxt, safe='')}" + ("" if delivered else "&undelivered=1"))


def _pending(p: Page) -> sessions.PortalSession | None:
    return p.session if p.session is not None and p.session.stage == "password_ok" else None


@page("GET", "/portal/code", public=True)
async def code_form(p: Page) -> Response:
    if _pending(p) is None:
        return p.redirect("/portal/sign-in")
    error = p._("We could not send your code. Ask for a new one.") if p.request.query_params.get("undelivered") else ""
    return p.render("portal/code.html", title=p._("Enter your code"), next=_next(p.request.query_params.get("next")),
                    lead=p._("We have sent you a 6-digit code. Type it here to finish signing in."), error=error)


@page("POST", "/portal/code", public=True, limit="code")
async def code(p: Page) -> Response:
    pending = _pending(p)
    if pending is None:
        return p.redirect("/portal/sign-in")
    form = await p.form()
    nxt = _next(form.get("next"))
    now, address = p.services.clock(), p.address
    if form.get("resend"):
        try:
            sent = await p.db(lambda conn: accounts.resend_sign_in(p.services, conn, now, pending.account_id))
        except accounts.AccountError as err:
            return _refused(p, err, "portal/code.html", title=p._("Enter your code"), next=nxt)
        ok = await _send(p, sent, "sign_in")
        return p.render("portal/code.html", title=p._("Enter your code"), next=nxt,
                        flash=p._("A new code is on its way.") if ok else "",
                        error="" if ok else p._("We could not send your code. Ask for a new one."))

    def work(conn: Connection) -> tuple[str, list[uuid.UUID]]:
        accounts.finish_sign_in(p.services, conn, now, pending.account_id, str(form.get("code") or ""), address)
        sessions.revoke(conn, pending.session_hash, now)  # a new token once signed in (no session fixation)
        token = sessions.open_session(conn, pending.account_id, "signed_in", now, p.settings)
        keys = [r.dossier_key for r in sessions.links(conn, pending.account_id)]
        if len(keys) == 1:
            fresh = sessions.load(conn, token, now, p.settings, touch=False)
            assert fresh is not None
            sessions.choose_dossier(conn, fresh, keys[0], now)
        return token, keys

    try:
        token, keys = await p.db(work)
    except accounts.AccountError as err:
        return _refused(p, err, "portal/code.html", title=p._("Enter your code"), next=nxt)
    p.set_cookie(sessions.COOKIE, token)
    return p.redirect(nxt if len(keys) == 1 else f"/portal/choose?next={quote(nxt, safe='')}")


@page("GET", "/portal/choose", needs_dossier=False)
async def choose_form(p: Page) -> Response:
    assert p.session is not None
    current = p.session
    rows = await p.db(lambda conn: sessions.links(conn, current.account_id))
    return p.render("portal/choose.html", title=p._("Which dossier?"), links=rows,
                    next=_next(p.request.query_params.get("next")),
                    lead=p._("Choose whose dossier you want to see: yours, or that of a person you represent."))


@page("POST", "/portal/choose", needs_dossier=False)
async def choose(p: Page) -> Response:
    assert p.session is not None
    current = p.session
    form = await p.form()
    key = parse_id(str(form.get("dossier") or ""))
    if key is None:
        return p.redirect("/portal/choose")
    ok = await p.db(lambda conn: sessions.choose_dossier(conn, current, key, p.services.clock()))
    return p.redirect(_next(form.get("next")) if ok else "/portal/choose")


@page("POST", "/portal/sign-out", needs_dossier=False)
async def sign_out(p: Page) -> Response:
    assert p.session is not None
    current, now = p.session, p.services.clock()
    form = await p.form()
    if form.get("everywhere"):
        await p.db(lambda conn: sessions.revoke_everywhere(conn, current.account_id, now))
    else:
        await p.db(lambda conn: sessions.revoke(conn, current.session_hash, now))
    p.set_cookie(sessions.COOKIE, "")
    return p.redirect("/portal/sign-in?flash=signed-out")


@page("POST", "/portal/language", public=True)
async def language(p: Page) -> Response:
    form = await p.form()
    code = str(form.get("lang") or "")
    if code in i18n.LANGUAGES:
        p.set_cookie(LANG_COOKIE, code, max_age=365 * 24 * 3600)
        if p.session is not None and p.session.signed_in:
            account_id = p.session.account_id
            await p.db(lambda conn: preferences.set_language(conn, account_id, code))
    nxt = str(form.get("next") or "/portal/")
    return p.redirect(nxt if nxt.startswith("/portal/") and "//" not in nxt else "/portal/")


@page("GET", "/portal/activate", public=True)
async def activate_form(p: Page) -> Response:
    return p.render("portal/activate.html", title=p._("Activate your Carnet"), form={},
                    lead=p._("Use the activation code you received by post, email or text message."))


@page("POST", "/portal/activate", public=True, limit="activate")
async def activate(p: Page) -> Response:
    form = await p.form()
    values = {k: str(form.get(k) or "") for k in ("login", "code", "birth_date", "email", "phone", "otp_channel")}
    now = p.services.clock()
    password = str(form.get("password") or "")
    if password != str(form.get("password2") or ""):
        return p.render("portal/activate.html", status=400, title=p._("Activate your Carnet"), form=values,
                        error=p._("The two passwords are not the same."))
    try:
        birth = dt.date.fromisoformat(values["birth_date"]) if values["birth_date"] else None
    except ValueError:
        birth = None
    try:
        await p.db(lambda conn: accounts.activate(
            p.services, conn, now, login=values["login"], code=values["code"], birth_date=birth, password=password,
            email=values["email"], phone=values["phone"], otp_channel=values["otp_channel"] or "email",
            address=p.address))
    except accounts.AccountError as err:
        return _refused(p, err, "portal/activate.html", title=p._("Activate your Carnet"), form=values)
    return p.redirect("/portal/sign-in?flash=activated")


@page("GET", "/portal/reset", public=True)
async def reset_form(p: Page) -> Response:
    return p.render("portal/reset.html", title=p._("Forgotten password"), step="ask",
                    lead=p._("We send a code to your email or phone, then you choose a new password."))


@page("POST", "/portal/reset", public=True, limit="reset")
async def reset(p: Page) -> Response:
    form = await p.form()
    login = str(form.get("login") or "")
    now = p.services.clock()
    if form.get("step") == "ask":
        sent = await p.db(lambda conn: accounts.start_reset(p.services, conn, now, login))
        return _send_later(p, p.render("portal/reset.html", title=p._("Forgotten password"), step="set",
                                       login=login,
                                       flash=p._("If this identifier has an active account, a code is on its way.")),
                           sent, "reset")
    password = str(form.get("password") or "")
    if password != str(form.get("password2") or ""):
        return p.render("portal/reset.html", status=400, title=p._("Forgotten password"), step="set", login=login,
                        error=p._("The two passwords are not the same."))
    try:
        await p.db(lambda conn: accounts.finish_reset(p.services, conn, now, login, str(form.get("code") or ""),
                                                      password, p.address))
    except accounts.AccountError as err:
        return _refused(p, err, "portal/reset.html", title=p._("Forgotten password"), step="set", login=login)
    return p.redirect("/portal/sign-in?flash=reset")
