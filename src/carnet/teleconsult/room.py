"""The consultation room: who is connected on each side, the relay of signalling messages between the two browsers,
and the document both screens show.

The two sockets may sit on different nodes (any number of identical nodes): nothing is kept in a process. Each side
writes its messages to ``teleconsult_signal`` and reads the other side's, after the last number it has seen
(:func:`poll`, every ``CARNET_SIGNAL_POLL_MS``). Numbers come from the visit's row (``signal_seq``, moved by one
``UPDATE … RETURNING`` that also checks the sender still holds its side), so they are given in commit order and a
reader never skips one. Media never pass through Carnet: only SDP offers and answers, ICE candidates and what is
shown (a document's id, title, media type and page, never its content).

One connection per side: a second tab of the same side replaces the first (which is told ``replaced`` and closes), as
opening the invitation again on another device would be expected to. A third person never joins: the professional
side is the visit's own professional, the patient side whoever the policy lets hold a teleconsultation on the
dossier as its patient or legal representative (:func:`join`, refused and audited otherwise).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from carnet.access.actors import Actor, ActorKind
from carnet.context import Context, Services
from carnet.db.tables import document, practitioner, teleconsult_signal, teleconsultation
from carnet.documents.service import doc_facts
from carnet.errors import FhirError
from carnet.ids import new_id
from carnet.teleconsult.visits import LIVE, Visit, _may_hold, _names, _row, _visit, _where, post

SIDES = ("clinician", "patient")
# What the browsers may relay to each other as they are: WebRTC negotiation only.
RELAYED = frozenset({"offer", "answer", "ice"})
MAX_MESSAGE = 64 * 1024  # characters of one message (an SDP offer is a few kilobytes)
SHOWABLE = ("application/pdf", "image/jpeg", "image/png", "text/plain")
MAX_PAGE = 10_000


@dataclass(frozen=True)
class Joined:
    visit: Visit
    side: str
    conn: str  # this connection's id: what holds the side, and what a replacement is addressed to
    seq: int  # the relay's number at the join: the connection reads what comes after
    peer_present: bool


def _side_of(actor: Actor) -> str:
    return "clinician" if actor.kind is ActorKind.PROFESSIONAL else "patient"


def join(ctx: Context, dossier_key: uuid.UUID, consultation_id: uuid.UUID, side: str) -> Joined:
    """Take ``side`` of the visit for a new connection (the page's socket). The caller must be the visit's
    professional (clinician side) or the patient side the policy lets hold a teleconsultation on the dossier; anyone
    else is refused (403, audited ``teleconsult.join``) and nothing changes. A visit that has ended: 409."""
    if side not in SIDES or _side_of(ctx.actor) != side:
        raise ctx.refuse(dossier_key, "E", "teleconsult.join", FhirError(403, "forbidden", "This is not your side."),
                         entity_type="Encounter", entity_id=str(consultation_id))
    d = _may_hold(ctx, dossier_key, "teleconsult.join")
    try:
        row = _row(ctx, dossier_key, consultation_id, lock=True)
    except FhirError as err:
        raise ctx.refuse(dossier_key, "E", "teleconsult.join", err, entity_type="Encounter",
                         entity_id=str(consultation_id)) from None
    if row.status not in LIVE:
        raise FhirError(409, "conflict", "This teleconsultation has ended.")
    now = ctx.now.astimezone(dt.UTC)
    conn_id = str(new_id())
    mine, theirs = (row.clinician_conn, row.patient_conn) if side == "clinician" else (row.patient_conn,
                                                                                       row.clinician_conn)
    values: dict[str, Any] = {"clinician_conn" if side == "clinician" else "patient_conn": conn_id}
    if side == "clinician" and row.status == "planned":
        values.update(status="in-progress", started_at=now)
    if side == "patient":
        a = ctx.actor
        values["patient_actor"] = "patient" if a.kind is ActorKind.PATIENT else f"representative:{a.id}"
    ctx.conn.execute(update(teleconsultation).where(_where(dossier_key, consultation_id)).values(values))
    if mine:
        post(ctx.conn, dossier_key, consultation_id, side, {"type": "replaced"}, now, target=mine)
    seq = post(ctx.conn, dossier_key, consultation_id, side, {"type": "peer-joined"}, now)
    ctx.audit(dossier_key, "E", "teleconsult.join", entity_type="Encounter", entity_id=str(consultation_id),
              detail={"side": side, **({"replaced": True} if mine else {})})
    fresh = ctx.conn.execute(select(teleconsultation).where(_where(dossier_key, consultation_id))).one()
    return Joined(_visit(fresh, *_names(ctx, row.clinician_id, d)), side, conn_id, seq, theirs is not None)


def leave(ctx: Context, dossier_key: uuid.UUID, consultation_id: uuid.UUID, side: str, conn_id: str) -> None:
    """The connection closed (left, dropped or replaced). If it still held its side, the side is free, the other
    side is told (``peer-left``) and the leaving is audited; a replaced tab's closing changes nothing."""
    row = ctx.conn.execute(select(teleconsultation).where(_where(dossier_key, consultation_id))
                           .with_for_update()).first()
    held = row is not None and (row.clinician_conn if side == "clinician" else row.patient_conn) == conn_id
    if not held:
        return
    column = "clinician_conn" if side == "clinician" else "patient_conn"
    now = ctx.now.astimezone(dt.UTC)
    post(ctx.conn, dossier_key, consultation_id, side, {"type": "peer-left"}, now, holder=conn_id)
    ctx.conn.execute(update(teleconsultation).where(_where(dossier_key, consultation_id)).values({column: None}))
    ctx.audit(dossier_key, "E", "teleconsult.leave", entity_type="Encounter", entity_id=str(consultation_id),
              detail={"side": side})


def relay(services: Services, dossier_key: uuid.UUID, consultation_id: uuid.UUID, side: str, conn_id: str,
          message: dict[str, Any]) -> bool:
    """Pass one negotiation message (``offer``, ``answer``, ``ice``) to the other side. False when this connection
    no longer holds its side (replaced, or the visit ended): the socket closes. Not an access to the dossier (no
    health data: what the browsers negotiate), so no audit record; the connection's right was checked at its join
    and its hold is checked in the same statement that numbers the message."""
    kind = message.get("type")
    if kind not in RELAYED:
        raise FhirError(400, "invalid", "Unknown message type", "type")
    clean: dict[str, Any] = {"type": kind}
    if kind in ("offer", "answer"):
        sdp = message.get("sdp")
        if not isinstance(sdp, str) or not sdp or len(sdp) > MAX_MESSAGE:
            raise FhirError(400, "invalid", "An offer or answer carries its SDP", "sdp")
        clean["sdp"] = sdp
    else:
        cand = message.get("candidate")
        if not isinstance(cand, dict) or len(str(cand)) > 4096:
            raise FhirError(400, "invalid", "An ICE message carries its candidate", "candidate")
        clean["candidate"] = {k: cand.get(k) for k in ("candidate", "sdpMid", "sdpMLineIndex", "usernameFragment")
                              if isinstance(cand.get(k), (str, int)) or cand.get(k) is None}
    with services.engine.begin() as conn:
        return post(conn, dossier_key, consultation_id, side, clean, services.clock(), holder=conn_id) > 0


def poll(services: Services, dossier_key: uuid.UUID, consultation_id: uuid.UUID, side: str, conn_id: str,
         after: int) -> list[tuple[int, dict[str, Any]]]:
    """The messages for this connection numbered after ``after``: the other side's, the server's (``ended``), and
    those addressed to it (``replaced``). One indexed read on the relay, by dossier and visit."""
    with services.engine.connect() as conn:
        rows = conn.execute(select(teleconsult_signal.c.seq, teleconsult_signal.c.sender,
                                   teleconsult_signal.c.target_conn, teleconsult_signal.c.message).where(
            teleconsult_signal.c.dossier_key == dossier_key, teleconsult_signal.c.consultation_id == consultation_id,
            teleconsult_signal.c.seq > after).order_by(teleconsult_signal.c.seq).limit(200)).all()
    out = []
    for r in rows:
        if r.target_conn is not None:
            if r.target_conn == conn_id:
                out.append((int(r.seq), dict(r.message)))
            else:
                out.append((int(r.seq), {"type": "skip"}))
        elif r.sender != side:
            out.append((int(r.seq), dict(r.message)))
        else:
            out.append((int(r.seq), {"type": "skip"}))
    return out


def _viewer(ctx: Context, row: Any, dossier_row: Any, side: str) -> Actor:
    """Who will see what ``side`` shows: the other side, as the Actor they joined as."""
    if side == "patient":
        pro = ctx.conn.execute(select(practitioner).where(practitioner.c.national_id == row.clinician_id)).first()
        if pro is None or not pro.enabled:
            raise FhirError(409, "conflict", "The professional can no longer see documents.")
        return Actor(ActorKind.PROFESSIONAL, id=pro.national_id, profession=pro.profession,
                     organisation_id=pro.organisation_id)
    who = str(row.patient_actor or "patient")
    if who.startswith("representative:"):
        return Actor(ActorKind.REPRESENTATIVE, id=who.partition(":")[2])
    return Actor(ActorKind.PATIENT, id=dossier_row.ins)


def show(ctx: Context, dossier_key: uuid.UUID, consultation_id: uuid.UUID, conn_id: str,
         document_id: str | None, page: int = 1) -> dict[str, Any] | None:
    """Put a document on both screens (``document_id`` None: take it away), or move both to ``page`` of the one
    shown. The caller must see the document (404 otherwise, as for one that does not exist) and so must the other
    side, by the policy, as they joined (the patient side never receives one it may not see: refused, 403, audited
    ``teleconsult.show``). Only what a browser shows as it is: PDF, JPEG, PNG, text. The other browser then fetches
    it from Carnet with its own session (an audited read, ``no-store``); the relay carries its id, never its bytes.
    Returns what is shown now."""
    side = _side_of(ctx.actor)
    d, decision = ctx.dossier(dossier_key)
    row = _row(ctx, dossier_key, consultation_id, lock=True)
    held = row.clinician_conn if side == "clinician" else row.patient_conn
    if row.status not in LIVE or held != conn_id:
        raise FhirError(409, "conflict", "This teleconsultation has ended.")
    now = ctx.now.astimezone(dt.UTC)
    shown: dict[str, Any] | None
    if document_id is None:
        shown = None
    elif row.shown and isinstance(row.shown, dict) and row.shown.get("document") == document_id and page != 1:
        shown = {**row.shown, "page": max(1, min(int(page), MAX_PAGE))}
    else:
        shown = _check_shown(ctx, row, d, decision, side, document_id, now)
    ctx.conn.execute(update(teleconsultation).where(_where(dossier_key, consultation_id)).values(shown=shown))
    post(ctx.conn, dossier_key, consultation_id, "server", {"type": "shown", "shown": shown}, now)
    if shown is not None and (not row.shown or row.shown.get("document") != document_id):
        ctx.audit(dossier_key, "E", "teleconsult.show", entity_type="DocumentReference", entity_id=document_id,
                  detail={"consultation": str(consultation_id), "by": side})
    return shown


def _check_shown(ctx: Context, row: Any, dossier_row: Any, decision: Any, side: str, document_id: str,
                 now: dt.datetime) -> dict[str, Any]:
    dossier_key = row.dossier_key
    not_found = FhirError(404, "not-found", "This document does not exist, or is not shown to you.")
    try:
        doc_id = uuid.UUID(document_id)
    except ValueError:
        raise not_found from None
    doc = ctx.conn.execute(select(document).where(document.c.dossier_key == dossier_key,
                                                  document.c.document_id == doc_id)).first()
    if doc is None or doc.status != "current" or not decision.read or not decision.visibility.allows(
            doc_facts(doc), now):
        raise ctx.refuse(dossier_key, "E", "teleconsult.show", not_found, entity_type="DocumentReference",
                         entity_id=str(doc_id))
    viewer = Context(ctx.services, ctx.conn, _viewer(ctx, row, dossier_row, side), ctx.now)
    _, theirs = viewer.dossier(dossier_key)
    if not theirs.read or not theirs.visibility.allows(doc_facts(doc), now):
        message = ("The patient may not see this document." if side == "clinician"
                   else "Your professional may not see this document.")
        raise ctx.refuse(dossier_key, "E", "teleconsult.show", FhirError(403, "forbidden", message),
                         entity_type="DocumentReference", entity_id=str(doc_id))
    if doc.content_type not in SHOWABLE:
        raise FhirError(422, "invalid", "Only a PDF, an image or a text can be shown during a teleconsultation.")
    return {"document": str(doc_id), "by": side, "page": 1, "content_type": doc.content_type,
            "title": doc.title or ""}
