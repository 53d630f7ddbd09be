"""The signalling socket of a teleconsultation, for both portals (issue 12 §1, docs/TELECONSULTATION.md).

One WebSocket per browser tab in the room, bound to the signed-in session its cookie names (the patient portal's or
the clinician portal's) and to one visit: the handshake is refused (closed with 4403 before it is accepted) for a
request from another origin, without a live session, or from anyone the visit service does not let take that side
(:func:`carnet.teleconsult.join`, refused and audited there). Once accepted, two loops run until one ends:

- socket → database: WebRTC negotiation (``offer``, ``answer``, ``ice``) relayed as it is; ``show`` (a document, or
  none), ``page`` and, for the professional, ``end``, each run through the visit service as the session's Actor;
- database → socket: every ``CARNET_SIGNAL_POLL_MS``, the other side's messages, from whichever node wrote them.

``ended`` (the professional closed the visit) and ``replaced`` (the same side opened the room in another tab) close
the socket. When it closes otherwise (a dropped network, a closed tab), the side is freed (``teleconsult.leave``) and
the browser reconnects and negotiates again (``peer-joined`` tells the other side).
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from carnet import teleconsult
from carnet.access.actors import Actor
from carnet.context import Services, run
from carnet.errors import FhirError
from carnet.portal import i18n

logger = structlog.get_logger("carnet")
REFUSED = 4403  # the handshake is refused: not this person's visit, no session, another origin
GONE = 4404  # no such visit (for this person)
ENDED = 4409  # the visit has ended
REPLACED = 4001  # the same side joined from another tab
MAX_TEXT = 70_000


def same_origin(ws: WebSocket, services: Services) -> bool:
    """A browser always sends ``Origin`` on a WebSocket handshake; it must be ours (Carnet's base URL or the host the
    request came to): a page of another site must not open a socket with the person's cookies."""
    origin = ws.headers.get("origin")
    if not origin:
        return False
    own = {services.settings.base_url.rstrip("/"), f"{'https' if ws.url.scheme == 'wss' else 'http'}://"
                                                     f"{ws.headers.get('host', '')}"}
    return origin in own


async def serve(ws: WebSocket, services: Services, key: uuid.UUID, cid: uuid.UUID, side: str,
                resolve: Callable[[Connection], Actor], lang: i18n.Language) -> None:
    if not same_origin(ws, services):
        await ws.close(code=REFUSED)
        return
    try:
        joined = await run_in_threadpool(run, services, resolve, lambda ctx: teleconsult.join(ctx, key, cid, side))
    except FhirError as exc:
        await ws.close(code={404: GONE, 409: ENDED}.get(exc.status, REFUSED))
        return
    await ws.accept()
    conn_id = joined.conn
    await ws.send_json({"type": "joined", "side": side, "peer": joined.peer_present, "shown": joined.visit.shown,
                        "ice": teleconsult.ice_servers(services.settings, conn_id, services.clock())})

    waker = teleconsult.wakeups(services.engine)
    woken = asyncio.Event()
    if waker is not None:
        waker.register(str(cid), woken)

    async def pump() -> None:
        after = joined.seq
        pause = max(20, services.settings.signal_poll_ms) / 1000
        while True:
            try:
                rows = await run_in_threadpool(teleconsult.poll, services, key, cid, side, conn_id, after)
            except SQLAlchemyError as exc:  # a busy or restarting database: try again at the next tick
                logger.warning("teleconsult.poll_failed", error_type=type(exc).__name__)
                await asyncio.sleep(pause)
                continue
            for seq, message in rows:
                after = seq
                if message.get("type") == "skip":
                    continue
                await ws.send_json(message)
                if message.get("type") in ("ended", "replaced"):
                    await ws.close(code=ENDED if message["type"] == "ended" else REPLACED)
                    return
            if not rows:  # until the next poll, or until a NOTIFY of this visit wakes us (PostgreSQL)
                try:
                    await asyncio.wait_for(woken.wait(), pause)
                except TimeoutError:
                    pass
                woken.clear()

    async def read() -> None:
        while True:
            text = await ws.receive_text()
            if len(text) > MAX_TEXT:
                await ws.send_json({"type": "error", "message": lang.gettext("This message is too large.")})
                continue
            try:
                message = json.loads(text)
                if not isinstance(message, dict):
                    raise ValueError
            except ValueError:
                continue
            if not await _handle(ws, services, key, cid, side, conn_id, resolve, message, lang):
                await ws.close(code=ENDED)
                return

    tasks = [asyncio.create_task(pump()), asyncio.create_task(read())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if waker is not None:
            waker.unregister(str(cid), woken)
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except (asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                pass
            except Exception as exc:  # noqa: BLE001 - a socket's end: logged without its text, never raised
                logger.warning("teleconsult.socket_failed", error_type=type(exc).__name__)
        def leave() -> None:
            try:
                run(services, resolve, lambda ctx: teleconsult.leave(ctx, key, cid, side, conn_id))
            except (FhirError, SQLAlchemyError) as exc:  # the side stays held until a new connection replaces it
                logger.warning("teleconsult.leave_failed", error_type=type(exc).__name__)

        try:
            await run_in_threadpool(leave)
        except asyncio.CancelledError:  # the server is cancelling this handler: the other side is told all the same
            threading.Thread(target=leave, name="teleconsult-leave", daemon=True).start()
            raise
        if ws.application_state is WebSocketState.CONNECTED:
            try:
                await ws.close(code=1011 if ws.client_state is WebSocketState.CONNECTED else 1000)
            except (RuntimeError, WebSocketDisconnect):  # the other end went first
                pass


async def _handle(ws: WebSocket, services: Services, key: uuid.UUID, cid: uuid.UUID, side: str, conn_id: str,
                  resolve: Callable[[Connection], Actor], message: dict[str, Any], lang: i18n.Language) -> bool:
    """One message from the browser; False when the socket must close (the visit ended, or the side was taken)."""
    kind = message.get("type")
    try:
        if kind in ("offer", "answer", "ice"):
            return await run_in_threadpool(teleconsult.relay, services, key, cid, side, conn_id, message)
        if kind == "show":
            doc = message.get("document")
            doc_id = str(doc) if doc else None
            await run_in_threadpool(run, services, resolve,
                                    lambda ctx: teleconsult.show(ctx, key, cid, conn_id, doc_id, 1))
        elif kind == "page":
            page, doc = message.get("page"), message.get("document")
            if isinstance(page, int) and not isinstance(page, bool) and isinstance(doc, str):
                await run_in_threadpool(run, services, resolve,
                                        lambda ctx: teleconsult.show(ctx, key, cid, conn_id, doc, page))
        elif kind == "end" and side == "clinician":
            await run_in_threadpool(run, services, resolve, lambda ctx: teleconsult.end(ctx, key, cid))
        return True
    except FhirError as exc:
        if exc.status == 409:
            return False
        await ws.send_json({"type": "error", "message": lang.gettext(str(exc))})
        return True
