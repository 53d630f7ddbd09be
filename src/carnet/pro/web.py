"""The clinician portal's page machinery: the patient portal's :class:`~carnet.portal.web.Page` (templates,
languages, cookies, security headers), wrapped for a clinician session (:mod:`carnet.auth.pro_sessions`).

Order of checks for every page: the session (unless ``public``), then for POST the CSRF token (or, before any
session, the same-origin check), then the handler. :meth:`ProPage.run` runs the work in one transaction as the
session's professional, in the session's mode: pages never decide access and never write audit records.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import structlog
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from carnet.access.actors import Actor
from carnet.auth import pro_sessions as sessions
from carnet.context import Context, Services, run
from carnet.errors import FhirError
from carnet.ids import new_id
from carnet.notify import notices
from carnet.portal import i18n
from carnet.portal import web as portal_web
from carnet.trends import alerts as trend_alerts

T = TypeVar("T")
logger = structlog.get_logger("carnet")


@dataclass
class ProPage(portal_web.Page):
    pro: sessions.ProSession | None = None
    unread_notices: int = 0  # the médecin traitant's unread notices, for the header (read with the session)
    open_alerts: int = 0  # their alerts not yet acknowledged (issue 17 §3), read with the session too

    async def run(self, work: Callable[[Context], T]) -> T:
        current = self.pro
        if current is None:
            raise FhirError(401, "login", "Sign in first")

        def resolve(conn: Connection) -> Actor:
            return sessions.actor(conn, current)

        return await run_in_threadpool(run, self.services, resolve, work)

    def render(self, template: str, status: int = 200, **values: Any) -> Response:
        env = portal_web.environment()
        values.setdefault("title", "")
        html = env.get_template(template).render(
            gettext=self.lang.gettext, ngettext=self.lang.ngettext, pgettext=self.lang.pgettext,
            _=self.lang.gettext, lang=self.lang.code,
            fmt=self.lang.format, pro=self.pro, request=self.request, languages=i18n.LABELS,
            csrf=self.pro.csrf if self.pro else "", path=self.request.url.path, now=self.services.clock(),
            unread_notices=self.unread_notices, open_alerts=self.open_alerts, **values)
        return self.finish(HTMLResponse(html, status_code=status))


ProHandler = Callable[[ProPage], Awaitable[Response]]
PAGES: list[tuple[str, str, ProHandler, bool]] = []


def pro_page(method: str, path: str, *, public: bool = False) -> Callable[[ProHandler], ProHandler]:
    def register(handler: ProHandler) -> ProHandler:
        PAGES.append((method, path, handler, public))
        return handler
    return register


def endpoint(handler: ProHandler, public: bool, services: Services) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        now = services.clock()
        token = request.cookies.get(sessions.COOKIE)

        def load() -> tuple[sessions.ProSession | None, int, int]:
            with services.engine.begin() as conn:
                loaded = sessions.load(conn, token, now, services.settings)
                if loaded is None:
                    return None, 0, 0
                return (loaded, notices.unread_notices(conn, loaded.national_id),
                        trend_alerts.unacknowledged(conn, loaded.national_id))

        current, unread, open_alerts = await run_in_threadpool(load) if token else (None, 0, 0)
        code = i18n.negotiate(request.cookies.get(portal_web.LANG_COOKIE), request.headers.get("accept-language"))
        lang = i18n.language(code, services.settings.display_timezone)
        p = ProPage(request, services, None, lang, pro=current, unread_notices=unread, open_alerts=open_alerts)
        try:
            if not public and current is None:
                nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return p.redirect(f"/pro/sign-in?next={quote(nxt, safe='')}")
            if request.method == "POST":
                form = await p.form()
                presented = request.headers.get("x-csrf-token") or str(form.get("csrf") or "")
                if current is not None and not current.csrf_ok(presented):
                    raise FhirError(403, "forbidden", "This form has expired. Please go back and try again.")
                if current is None and not portal_web._same_origin(request, services):
                    raise FhirError(403, "forbidden", "This form has expired. Please go back and try again.")
            return await handler(p)
        except FhirError as exc:
            return p.render("pro/error.html", status=exc.status, message=p._(str(exc)), status_code=exc.status)
        except Exception as exc:  # noqa: BLE001 - the outermost handler: a generic page, no exception text
            rid = str(new_id())
            logger.error("page.failed", error_type=type(exc).__name__, request_id=rid, route=request.url.path)
            return p.render("pro/error.html", status=500, status_code=500,
                            message=p._("Something went wrong on our side. Please try again later."))
    return endpoint
