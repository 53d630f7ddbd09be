"""The portals' page machinery: templates, languages, sessions, CSRF, security headers, one error path.

A page is an ``async`` function taking a :class:`Page` and returning a response, registered with :func:`page`. Pages
are thin: they parse the form, then call services through :meth:`Page.run`, which runs the work in one transaction
bound to the Actor of the signed-in session (see :mod:`carnet.accounts.sessions`), exactly as the API does from a token.
Pages never decide access and never write audit records: the services do.

Order of checks for every page: the per-address rate limit of a page that has one (:mod:`carnet.throttle`: a calm
429 page with ``Retry-After``), the session (unless ``public``), then for POST the CSRF token, then the handler. A
:class:`~carnet.errors.FhirError` from a service becomes an error page with the same status and a plain message; any
other exception becomes a generic 500 page with no exception text.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import structlog
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from carnet import throttle
from carnet.access.actors import Actor
from carnet.accounts import sessions
from carnet.context import Context, Services, run
from carnet.errors import FhirError
from carnet.ids import new_id
from carnet.portal import i18n
from carnet.text import holdable

T = TypeVar("T")
logger = structlog.get_logger("carnet")
HERE = Path(__file__).parent
LANG_COOKIE = "carnet_lang"
FORM_TOO_LARGE = i18n.N_("This form is too large: shorten what you typed, or send a smaller file.")
FORM_UNREADABLE = i18n.N_("This form could not be read. Please go back and try again.")
FORM_UNHOLDABLE = i18n.N_("What you typed holds a character that cannot be kept (an invisible control character). "
                          "Please type it again.")

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
                                "object-src 'self'; frame-src 'self' blob:; frame-ancestors 'self'; "
                                "form-action 'self'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # "no-referrer" would make Chromium send "Origin: null" on our own forms
    "X-Frame-Options": "SAMEORIGIN",
    "Cache-Control": "no-store",
}


@functools.cache
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=select_autoescape(["html"]),
                      extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True)
    env.install_null_translations(newstyle=True)  # type: ignore[attr-defined]  # replaced per render
    env.filters["urlquote"] = lambda v: quote(str(v), safe="")
    return env


@dataclass
class Page:
    """One request to a portal page."""

    request: Request
    services: Services
    session: sessions.PortalSession | None
    lang: i18n.Language
    cookies: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    _form: FormData | None = None
    route: str | None = None  # the page's path template (what a log line may name; never the URL)

    # --- input --------------------------------------------------------------------------------------------------
    async def form(self) -> FormData:
        """The posted form. A field past Starlette's limit (1 MB a field, 1,000 fields or files) is a 413 page, a
        form that cannot be parsed a 400 page: never the 500 of an unexpected error (Starlette signals both with an
        ``HTTPException(400)`` that the pages' outermost handler would otherwise take for one)."""
        if self._form is None:
            try:
                self._form = await self.request.form()
            except (HTTPException, MultiPartException) as exc:
                detail = str(getattr(exc, "detail", None) or getattr(exc, "message", None) or "")
                if "maximum size" in detail or "Too many" in detail:
                    raise FhirError(413, "too-costly", FORM_TOO_LARGE) from None
                raise FhirError(400, "structure", FORM_UNREADABLE) from None
            for name, value in self._form.multi_items():  # text Carnet could not store is refused, not stored
                if not holdable(name) or (isinstance(value, str) and not holdable(value)):
                    self._form = None
                    raise FhirError(422, "invalid", FORM_UNHOLDABLE)
        return self._form

    def _(self, message: str) -> str:
        return self.lang.gettext(message)

    @property
    def zone(self) -> dt.tzinfo:
        """The display time zone (``CARNET_DISPLAY_TIMEZONE``): instants are stored in UTC, shown in this zone."""
        return self.lang.format.zone

    @property
    def settings(self):  # noqa: ANN201
        return self.services.settings

    @property
    def address(self) -> str:
        """The client's address, as the rate limits and the sign-in throttle count it."""
        return throttle.client_address(self.request.scope, self.settings.trusted_proxies)

    @property
    def dossier_key(self) -> uuid.UUID:
        if self.session is None or self.session.dossier_key is None:
            raise FhirError(409, "processing", "Choose a dossier first")
        return self.session.dossier_key

    # --- work -----------------------------------------------------------------------------------------------------
    async def run(self, work: Callable[[Context], T]) -> T:
        """Run ``work`` in one transaction as the session's Actor on its dossier (checked in that transaction)."""
        current = self.session
        if current is None:
            raise FhirError(401, "login", "Sign in first")

        def resolve(conn: Connection) -> Actor:
            return sessions.actor(conn, current)

        return await run_in_threadpool(run, self.services, resolve, work)

    async def db(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` on the account tables (sign-in, sessions, preferences), in one transaction. Never for
        dossier data: that goes through :meth:`run`. An :class:`~carnet.accounts.service.AccountError` keeps what
        was written before it (a failed attempt must count) and is raised after the commit."""
        from carnet.accounts.service import AccountError

        def go() -> T:
            refused: AccountError | None = None
            with self.services.engine.begin() as conn:
                try:
                    return work(conn)
                except AccountError as err:
                    refused = err
            raise refused
        return await run_in_threadpool(go)

    # --- output ---------------------------------------------------------------------------------------------------
    def render(self, template: str, status: int = 200, **values: Any) -> Response:
        env = environment()
        values.setdefault("title", "")
        html = env.get_template(template).render(
            gettext=self.lang.gettext, ngettext=self.lang.ngettext, pgettext=self.lang.pgettext,
            _=self.lang.gettext, lang=self.lang.code,
            fmt=self.lang.format, session=self.session, request=self.request, languages=i18n.LABELS,
            csrf=self.session.csrf if self.session else "", path=self.request.url.path, now=self.services.clock(),
            **values)
        return self.finish(HTMLResponse(html, status_code=status))

    def redirect(self, url: str, status: int = 303) -> Response:
        if self.request.headers.get("hx-request"):  # htmx follows with a full page load
            return self.finish(Response(status_code=204, headers={"HX-Redirect": url}))
        return self.finish(RedirectResponse(url, status_code=status))

    def slow_down(self, retry_after: int) -> Response:
        """The calm page of a rate limit or a throttled try: 429, ``Retry-After``, the same for every identifier."""
        # one allow-listed line per refusal (no identifier, no address): what monitoring counts to see an attack
        logger.warning("throttle.refused", status=429, route=self.route)
        minutes = max(1, -(-retry_after // 60))
        response = self.render("portal/slow_down.html", status=429, title=self._("Please wait a moment"),
                               minutes=minutes)
        response.headers["Retry-After"] = str(max(1, retry_after))
        return response

    def set_cookie(self, name: str, value: str, **options: Any) -> None:
        self.cookies.append((name, value, options))

    def finish(self, response: Response) -> Response:
        for name, value, options in self.cookies:
            if value == "":
                response.delete_cookie(name, path="/", secure=self.settings.cookie_secure, httponly=True,
                                       samesite="lax")
            else:
                response.set_cookie(name, value, path="/", secure=self.settings.cookie_secure, httponly=True,
                                    samesite="lax", **options)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        return response


Handler = Callable[[Page], Awaitable[Response]]


@dataclass(frozen=True)
class PageRoute:
    method: str
    path: str
    handler: Handler
    public: bool  # no session needed (sign-in, activation, reset)
    needs_dossier: bool  # a signed-in session that acts on a dossier
    limit: str | None = None  # the per-address rate limit (carnet.throttle.LIMITS) this page counts against


PAGES: list[PageRoute] = []


def page(method: str, path: str, *, public: bool = False, needs_dossier: bool = True, limit: str | None = None
         ) -> Callable[[Handler], Handler]:
    if limit is not None and limit not in throttle.LIMITS:
        raise ValueError(f"unknown rate limit {limit!r}")

    def register(handler: Handler) -> Handler:
        PAGES.append(PageRoute(method, path, handler, public, needs_dossier, limit))
        return handler
    return register


def _endpoint(route: PageRoute, services: Services) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        if route.limit is not None:  # before any other work: a flood costs one statement per request
            address = throttle.client_address(request.scope, services.settings.trusted_proxies)
            wait = await run_in_threadpool(throttle.hit, services, route.limit, address)
            if wait:
                code = i18n.negotiate(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"), None)
                return Page(request, services, None, i18n.language(code), route=route.path).slow_down(wait)
        now = services.clock()
        token = request.cookies.get(sessions.COOKIE)

        def load() -> sessions.PortalSession | None:
            with services.engine.begin() as conn:
                return sessions.load(conn, token, now, services.settings)

        current = await run_in_threadpool(load) if token else None
        code = i18n.negotiate(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"),
                              current.lang if current else None)
        p = Page(request, services, current, i18n.language(code, services.settings.display_timezone), route=route.path)
        try:
            if not route.public:
                if current is None or not current.signed_in:
                    nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    return p.redirect(f"/portal/sign-in?next={quote(nxt, safe='')}")
                if route.needs_dossier and current.dossier_key is None:
                    return p.redirect("/portal/choose")
            if request.method == "POST":
                form = await p.form()
                presented = request.headers.get("x-csrf-token") or str(form.get("csrf") or "")
                if current is not None and not current.csrf_ok(presented):
                    raise FhirError(403, "forbidden", "This form has expired. Please go back and try again.")
                if current is None and route.public and not _same_origin(request, services):
                    raise FhirError(403, "forbidden", "This form has expired. Please go back and try again.")
            return await route.handler(p)
        except FhirError as exc:
            return p.render("portal/error.html", status=exc.status, message=p._(str(exc)), status_code=exc.status)
        except Exception as exc:  # noqa: BLE001 - the outermost handler: a generic page, no exception text
            rid = str(new_id())
            logger.error("page.failed", error_type=type(exc).__name__, request_id=rid, route=route.path)
            return p.render("portal/error.html", status=500, status_code=500,
                            message=p._("Something went wrong on our side. Please try again later."))
    return endpoint


def _same_origin(request: Request, services: Services) -> bool:
    """Forms posted before any session (sign-in, activation, reset) must come from our own pages: the Origin (or
    Referer) header must be ours. Login CSRF is what this stops."""
    origin = request.headers.get("origin") or request.headers.get("referer") or ""
    if not origin:
        return True  # non-browser clients send neither; a browser always sends Origin on a cross-site POST
    own = {services.settings.base_url.rstrip("/"), f"{request.url.scheme}://{request.url.netloc}"}
    return any(origin == o or origin.startswith(o + "/") for o in own)


def routes(services: Services) -> list[Route | Mount]:
    """The routes of the pages registered so far, and the static files. :mod:`carnet.portal.app` imports the pages
    (which registers them) before asking."""
    out: list[Route | Mount] = [Route(r.path, _endpoint(r, services), methods=[r.method]) for r in PAGES]
    out.append(Mount("/portal/static", app=StaticFiles(directory=str(HERE / "static")), name="portal-static"))
    return out


MAX_OFFSET = 1_000_000


def offset_param(value: object) -> int:
    """A paging offset from a query or form field: a whole number from 0 to ``MAX_OFFSET``, 0 when absent or not a
    number (a hand-edited URL shows the first page, not an error)."""
    try:
        return max(0, min(int(str(value or "0")), MAX_OFFSET))
    except ValueError:
        return 0


def utc(ts: dt.datetime | None) -> dt.datetime | None:
    if ts is None:
        return None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=dt.UTC)
