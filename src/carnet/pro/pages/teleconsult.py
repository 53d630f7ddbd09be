"""Teleconsultations, the professional side (issue 12 §1): book one for a patient whose dossier they may hold one
on (the policy's ``teleconsult``), or start one now; their agenda; the room, with the video beside the dossier's
documents and "show to the patient". The room's script is the static ``/portal/static/teleconsult.js``; its
signalling socket is :mod:`carnet.portal.signalling`, bound to this clinician session and this visit.

The room's side panel lists :data:`SIDE_PANELS`: templates rendered one after the other beside the dossier (each
receives ``key``, ``visit`` and ``csrf``); another feature used during a visit (the e-prescription, issue 12 §2)
adds its own there without touching the room.
"""

from __future__ import annotations

import datetime as dt
import uuid

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from carnet import teleconsult
from carnet.auth import pro_sessions as sessions
from carnet.context import Context, Services
from carnet.documents import service as documents
from carnet.errors import FhirError
from carnet.portal import i18n, signalling
from carnet.portal.pages.teleconsult import STATUS
from carnet.portal.web import LANG_COOKIE
from carnet.pro.web import ProPage, pro_page

SIDE_PANELS: list[str] = ["pro/teleconsult/_dossier_panel.html"]


def _key(p: ProPage) -> uuid.UUID:
    try:
        return uuid.UUID(str(p.request.path_params.get("key")))
    except ValueError:
        raise FhirError(404, "not-found", "Patient not found") from None


def _cid(value: object) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise FhirError(404, "not-found", "This teleconsultation does not exist, or is not yours.") from None


def _page(p: ProPage, key: uuid.UUID, found: list[teleconsult.Visit], status: int = 200, error: str = "",
          form: dict[str, str] | None = None) -> Response:
    today = p.services.clock().astimezone(p.zone).date()
    return p.render("pro/teleconsult/dossier.html", status=status, title=p._("Teleconsultation"), key=key,
                    visits=found, status_labels=STATUS, minutes=teleconsult.MINUTES, error=error,
                    form=form or {"day": today.isoformat(), "time": "", "minutes": "15"},
                    lead=p._("A video visit with the patient: book it, and the patient is told by their usual channel "
                             "with a link to join from their portal; or start one now."))


@pro_page("GET", "/pro/dossier/{key}/teleconsult")
async def dossier_visits(p: ProPage) -> Response:
    key = _key(p)
    found = await p.run(lambda ctx: teleconsult.for_dossier(ctx, key))
    return _page(p, key, found)


@pro_page("POST", "/pro/dossier/{key}/teleconsult")
async def book(p: ProPage) -> Response:
    key = _key(p)
    form = await p.form()
    values = {k: str(form.get(k) or "").strip() for k in ("day", "time", "minutes")}
    now = bool(form.get("now"))
    when: dt.datetime | None = None
    error = ""
    try:
        minutes = int(values["minutes"] or "15")
    except ValueError:
        minutes = 0
    if not now:
        try:
            when = dt.datetime.combine(dt.date.fromisoformat(values["day"]), dt.time.fromisoformat(values["time"]),
                                       tzinfo=p.zone)
        except ValueError:
            error = p._("Give the day and the time of the teleconsultation.")
    if not error:
        try:
            visit = await p.run(lambda ctx: teleconsult.schedule(ctx, key, when, minutes))
        except FhirError as err:
            if err.status not in (403, 422):
                raise
            error = p._(str(err))
        else:
            if now:
                return p.redirect(f"/pro/dossier/{key}/teleconsult/{visit.consultation_id}")
            return p.redirect(f"/pro/dossier/{key}/teleconsult?done=booked")
    found = await p.run(lambda ctx: teleconsult.for_dossier(ctx, key))
    return _page(p, key, found, 422, error, values)


@pro_page("GET", "/pro/teleconsultations")
async def agenda(p: ProPage) -> Response:
    found = await p.run(teleconsult.agenda)
    return p.render("pro/teleconsult/agenda.html", title=p._("My teleconsultations"), visits=found,
                    status_labels=STATUS, lead=p._("The video visits you booked that are still to hold."))


@pro_page("GET", "/pro/dossier/{key}/teleconsult/{id}")
async def room(p: ProPage) -> Response:
    key, cid = _key(p), _cid(p.request.path_params.get("id"))

    def work(ctx: Context) -> tuple[teleconsult.Visit, list[documents.Listed]]:
        visit = teleconsult.get(ctx, key, cid)
        found = documents.browse(ctx, key, documents.DocumentFilter(), 100, 0)
        return visit, [d for d in found.documents if d.status == "current"]

    visit, docs = await p.run(work)
    return p.render("pro/teleconsult/room.html", title=p._("Teleconsultation"), key=key, visit=visit, docs=docs,
                    showable=teleconsult.SHOWABLE, status_labels=STATUS, panels=SIDE_PANELS,
                    socket=f"/pro/dossier/{key}/teleconsult/{cid}/ws", file_base=f"/pro/dossier/{key}/documents/")


@pro_page("POST", "/pro/dossier/{key}/teleconsult/{id}/cancel")
async def cancel(p: ProPage) -> Response:
    key, cid = _key(p), _cid(p.request.path_params.get("id"))
    await p.run(lambda ctx: teleconsult.cancel(ctx, key, cid))
    return p.redirect(f"/pro/dossier/{key}/teleconsult?done=cancelled")


@pro_page("POST", "/pro/dossier/{key}/teleconsult/{id}/end")
async def end(p: ProPage) -> Response:
    """Ending without the script (the room's button sends ``end`` on its socket; this is the form's fallback)."""
    key, cid = _key(p), _cid(p.request.path_params.get("id"))
    await p.run(lambda ctx: teleconsult.end(ctx, key, cid))
    return p.redirect(f"/pro/dossier/{key}/teleconsult?done=ended")


def sockets(services: Services) -> list[WebSocketRoute]:
    async def endpoint(ws: WebSocket) -> None:
        token = ws.cookies.get(sessions.COOKIE)
        now = services.clock()

        def load() -> sessions.ProSession | None:
            with services.engine.begin() as conn:
                return sessions.load(conn, token, now, services.settings)

        current = await run_in_threadpool(load) if token else None
        try:
            key, cid = uuid.UUID(str(ws.path_params.get("key"))), uuid.UUID(str(ws.path_params.get("id")))
        except ValueError:
            await ws.close(code=signalling.GONE)
            return
        if current is None:
            await ws.close(code=signalling.REFUSED)
            return
        session = current
        code = i18n.negotiate(ws.cookies.get(LANG_COOKIE), ws.headers.get("accept-language"))
        await signalling.serve(ws, services, key, cid, "clinician", lambda conn: sessions.actor(conn, session),
                               i18n.language(code, services.settings.display_timezone))
    return [WebSocketRoute("/pro/dossier/{key}/teleconsult/{id}/ws", endpoint)]
