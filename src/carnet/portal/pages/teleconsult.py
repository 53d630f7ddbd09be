"""Teleconsultations, the patient side (issue 12 §1): the list of visits booked with the dossier's professionals,
and the room (video beside the document either side shows). The room's script is a static file
(``/portal/static/teleconsult.js``: the strict CSP allows no inline script); its signalling socket is
:mod:`carnet.portal.signalling`, bound to this portal session and this visit."""

from __future__ import annotations

import uuid

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from carnet import teleconsult
from carnet.accounts import sessions
from carnet.context import Context, Services
from carnet.documents import service as documents
from carnet.errors import FhirError
from carnet.portal import i18n, signalling
from carnet.portal.i18n import N_
from carnet.portal.web import LANG_COOKIE, Page, page

STATUS = {"planned": N_("Booked"), "in-progress": N_("Under way"), "finished": N_("Held"),
          "cancelled": N_("Cancelled")}


def _cid(value: object) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise FhirError(404, "not-found", "This teleconsultation does not exist, or is not yours.") from None


@page("GET", "/portal/teleconsultations")
async def visits(p: Page) -> Response:
    key = p.dossier_key
    found = await p.run(lambda ctx: teleconsult.for_dossier(ctx, key))
    return p.render("portal/teleconsult/index.html", title=p._("Teleconsultations"),
                    lead=p._("Video visits your professionals booked with you. Join from this page, on your phone or "
                             "your computer, when the time comes."), visits=found, status_labels=STATUS)


@page("GET", "/portal/teleconsultations/{id}")
async def room(p: Page) -> Response:
    key, cid = p.dossier_key, _cid(p.request.path_params.get("id"))

    def work(ctx: Context) -> tuple[teleconsult.Visit, list[documents.Listed]]:
        visit = teleconsult.get(ctx, key, cid)
        found = documents.browse(ctx, key, documents.DocumentFilter(), 100, 0)
        return visit, [d for d in found.documents if d.status == "current"]

    visit, docs = await p.run(work)
    return p.render("portal/teleconsult/room.html", title=p._("Teleconsultation"), visit=visit, docs=docs,
                    showable=teleconsult.SHOWABLE, status_labels=STATUS,
                    socket=f"/portal/teleconsultations/{cid}/ws", file_base="/portal/documents/")


async def _socket(ws: WebSocket, services: Services) -> None:
    token = ws.cookies.get(sessions.COOKIE)
    now = services.clock()

    def load() -> sessions.PortalSession | None:
        with services.engine.begin() as conn:
            return sessions.load(conn, token, now, services.settings)

    current = await run_in_threadpool(load) if token else None
    if current is None or not current.signed_in or current.dossier_key is None:
        await ws.close(code=signalling.REFUSED)
        return
    session, key = current, current.dossier_key
    code = i18n.negotiate(ws.cookies.get(LANG_COOKIE), ws.headers.get("accept-language"), session.lang)
    try:
        cid = _cid(ws.path_params.get("id"))
    except FhirError:
        await ws.close(code=signalling.GONE)
        return
    await signalling.serve(ws, services, key, cid, "patient",
                           lambda conn: sessions.actor(conn, session),
                           i18n.language(code, services.settings.display_timezone))


def sockets(services: Services) -> list[WebSocketRoute]:
    async def endpoint(ws: WebSocket) -> None:
        await _socket(ws, services)
    return [WebSocketRoute("/portal/teleconsultations/{id}/ws", endpoint)]
