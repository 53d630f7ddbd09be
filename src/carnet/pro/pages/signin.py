"""Sign-in through OpenID Connect (Pro Santé Connect, or the demo identity provider), sign-out, language, and
breaking the glass for the rest of the session."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from carnet.access.actors import Mode
from carnet.auth import pro_sessions as sessions
from carnet.portal import i18n
from carnet.portal.web import LANG_COOKIE
from carnet.pro import oidc
from carnet.pro.web import ProPage, pro_page

LOGIN_COOKIE = "carnet_pro_login"


def _redirect_uri(p: ProPage) -> str:
    return oidc.redirect_uri(p.settings, f"{p.request.url.scheme}://{p.request.url.netloc}")


@pro_page("GET", "/pro/sign-in", public=True)
async def sign_in_form(p: ProPage) -> Response:
    if p.pro is not None:
        return p.redirect("/pro/")
    demo = oidc.is_demo(p.settings)  # the demo says so: no "Pro Santé Connect" button that is not one
    return p.render("pro/sign_in.html", title=p._("Sign in"), demo=demo,
                    lead=p._("Carnet for health professionals: sign in as one of the directory's professionals.")
                    if demo else p._("Carnet for health professionals: sign in with Pro Santé Connect (CPS card or "
                                     "e-CPS)."))


@pro_page("GET", "/pro/login", public=True)
async def login(p: ProPage) -> Response:
    pending = oidc.Pending.new()
    async with oidc.client(p.settings, p.request.app) as http:
        config = await oidc.discovery(p.settings, http)
    endpoint = str(config["authorization_endpoint"])
    if oidc.is_demo(p.settings):
        endpoint = endpoint[len(p.settings.base_url):]  # same origin as the browser's
    p.set_cookie(LOGIN_COOKIE, pending.cookie(), max_age=600)
    return p.redirect(oidc.authorization_url(p.settings, endpoint, _redirect_uri(p), pending), status=302)


@pro_page("GET", "/pro/callback", public=True)
async def callback(p: ProPage) -> Response:
    q = p.request.query_params
    pending = oidc.Pending.from_cookie(p.request.cookies.get(LOGIN_COOKIE))
    p.set_cookie(LOGIN_COOKIE, "")
    if pending is None or not q.get("state") or q.get("state") != pending.state or not q.get("code"):
        return p.render("pro/sign_in.html", status=400, title=p._("Sign in"), demo=oidc.is_demo(p.settings),
                        error=p._("This sign-in has expired or was not started here. Please sign in again."))
    try:
        async with oidc.client(p.settings, p.request.app) as http:
            config = await oidc.discovery(p.settings, http)
            identity = await oidc.exchange(p.settings, http, config, str(q["code"]), _redirect_uri(p), pending)
    except oidc.LoginError as err:
        return p.render("pro/sign_in.html", status=403, title=p._("Sign in"), demo=oidc.is_demo(p.settings),
                        error=p._(str(err)))
    now = p.services.clock()

    def open_() -> str:
        with p.services.engine.begin() as conn:
            return sessions.open_session(conn, identity.national_id, identity.acr, now, p.settings)
    token = await run_in_threadpool(open_)
    p.set_cookie(sessions.COOKIE, token)
    return p.redirect("/pro/")


@pro_page("POST", "/pro/sign-out")
async def sign_out(p: ProPage) -> Response:
    assert p.pro is not None
    current, now = p.pro, p.services.clock()

    def work() -> None:
        with p.services.engine.begin() as conn:
            sessions.revoke(conn, current.session_hash, now)
    await run_in_threadpool(work)
    p.set_cookie(sessions.COOKIE, "")
    return p.redirect("/pro/sign-in")


@pro_page("POST", "/pro/language", public=True)
async def language(p: ProPage) -> Response:
    form = await p.form()
    code = str(form.get("lang") or "")
    if code in i18n.LANGUAGES:
        p.set_cookie(LANG_COOKIE, code, max_age=365 * 24 * 3600)
    nxt = str(form.get("next") or "/pro/")
    return p.redirect(nxt if nxt.startswith("/pro/") and "//" not in nxt else "/pro/")


@pro_page("GET", "/pro/emergency")
async def emergency_form(p: ProPage) -> Response:
    return p.render("pro/emergency.html", title=p._("Emergency access"), next=_next(p.request.query_params.get("next")),
                    lead=p._("Break the glass only when the patient's care requires it and they cannot consent. "
                             "The patient is told, and every emergency access is reviewed."))


def _next(value: object) -> str:
    text = str(value or "")
    return text if text.startswith("/pro/") and "//" not in text and "\\" not in text else "/pro/"


@pro_page("POST", "/pro/emergency")
async def emergency(p: ProPage) -> Response:
    assert p.pro is not None
    current = p.pro
    form = await p.form()
    reason = str(form.get("reason") or "").strip()[:500]
    mode = Mode.REGULATION if form.get("mode") == "regulation" else Mode.EMERGENCY
    nxt = _next(form.get("next"))
    error = ""
    if not reason:
        error = p._("Give the reason for the emergency access.")
    elif mode is Mode.REGULATION and not current.is_regulator:
        error = p._("Regulation mode is reserved to SAMU centre-15 regulating doctors.")
    if error:
        return p.render("pro/emergency.html", status=400, title=p._("Emergency access"), error=error, next=nxt,
                        reason=reason)

    def work() -> None:
        with p.services.engine.begin() as conn:
            sessions.set_mode(conn, current.session_hash, mode, reason)
    await run_in_threadpool(work)
    return p.redirect(nxt)
