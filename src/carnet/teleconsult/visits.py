"""A teleconsultation's life: scheduled (or started now) by a professional who may hold one on the dossier (the
policy's ``teleconsult``), read by its professional and the patient side, cancelled, ended by its professional.

Every step is audited in its transaction (``teleconsult.schedule``, ``.start``, ``.cancel``, ``.end``, ``.read``,
``.search``); scheduling, starting and cancelling notify the patient side through the outbox
(:mod:`carnet.notify.rules`). As FHIR, a visit is an ``Appointment`` (the booking) and an ``Encounter`` of class
``VR`` (virtual), both with the visit's id (:func:`appointment`, :func:`encounter`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, select, update

from carnet.access.actors import ActorKind
from carnet.context import Context
from carnet.db.tables import (
    practitioner,
    resource_locator,
    teleconsult_by_clinician,
    teleconsult_signal,
    teleconsultation,
)
from carnet.errors import FhirError, forbidden
from carnet.ids import new_id
from carnet.teleconsult.wakeup import CHANNEL

PATIENT_SIDE = frozenset({ActorKind.PATIENT, ActorKind.REPRESENTATIVE})
LIVE = ("planned", "in-progress")
NOT_FOUND = "This teleconsultation does not exist, or is not yours."
MAY_NOT = "You may not hold a teleconsultation on this dossier: the patient must have authorized you."
MINUTES = (10, 15, 20, 30, 45, 60)


@dataclass(frozen=True)
class Visit:
    dossier_key: uuid.UUID
    consultation_id: uuid.UUID
    clinician_id: str
    clinician_name: str
    patient_name: str
    status: str  # planned | in-progress | finished | cancelled
    scheduled_at: dt.datetime
    minutes: int
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    shown: dict[str, Any] | None


def utc(ts: dt.datetime | None) -> dt.datetime | None:
    if ts is None:
        return None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=dt.UTC)


def _visit(row: Any, clinician_name: str, patient_name: str) -> Visit:
    return Visit(dossier_key=row.dossier_key, consultation_id=row.consultation_id, clinician_id=row.clinician_id,
                 clinician_name=clinician_name, patient_name=patient_name, status=row.status,
                 scheduled_at=utc(row.scheduled_at) or row.scheduled_at, minutes=row.minutes,
                 started_at=utc(row.started_at), ended_at=utc(row.ended_at),
                 shown=row.shown if isinstance(row.shown, dict) else None)


def _names(ctx: Context, clinician_id: str, dossier_row: Any) -> tuple[str, str]:
    pro = ctx.conn.execute(select(practitioner.c.given, practitioner.c.family)
                           .where(practitioner.c.national_id == clinician_id)).first()
    return (f"{pro.given} {pro.family}" if pro else clinician_id), f"{dossier_row.given} {dossier_row.family}"


def _may_hold(ctx: Context, dossier_key: uuid.UUID, event: str) -> Any:
    """The dossier row, if the caller may hold a teleconsultation on it (the policy decides); else refused, audited."""
    row, decision = ctx.dossier(dossier_key)
    if not decision.teleconsult or ctx.actor.kind not in (ActorKind.PROFESSIONAL, *PATIENT_SIDE):
        raise ctx.refuse(dossier_key, "E", event, forbidden(MAY_NOT if ctx.actor.kind is ActorKind.PROFESSIONAL
                                                            else decision.refusal))
    return row


def _row(ctx: Context, dossier_key: uuid.UUID, consultation_id: uuid.UUID, *, lock: bool = False) -> Any:
    q = select(teleconsultation).where(teleconsultation.c.dossier_key == dossier_key,
                                       teleconsultation.c.consultation_id == consultation_id)
    row = ctx.conn.execute(q.with_for_update() if lock else q).first()
    if row is None or not _mine(ctx, row):
        raise FhirError(404, "not-found", NOT_FOUND)
    return row


def _mine(ctx: Context, row: Any) -> bool:
    """The visit's professional, or the patient side (whom the policy let hold one on this dossier)."""
    if ctx.actor.kind is ActorKind.PROFESSIONAL:
        return bool(ctx.actor.id) and row.clinician_id == ctx.actor.id
    return ctx.actor.kind in PATIENT_SIDE


def schedule(ctx: Context, dossier_key: uuid.UUID, when: dt.datetime | None, minutes: int = 15) -> Visit:
    """Book a teleconsultation at ``when``, or start one now (``when`` None): the caller is its professional. The
    patient side is told (by email or SMS, their usual channel) in the same transaction."""
    event = "teleconsult.start" if when is None else "teleconsult.schedule"
    if ctx.actor.kind is not ActorKind.PROFESSIONAL or not ctx.actor.id:
        raise FhirError(403, "forbidden", "Only a professional schedules a teleconsultation.")
    d = _may_hold(ctx, dossier_key, event)
    if minutes not in MINUTES:
        raise FhirError(422, "invalid", "Choose a length for the teleconsultation.", "minutes")
    now = ctx.now.astimezone(dt.UTC)
    at = now if when is None else when.astimezone(dt.UTC)
    if when is not None and at < now - dt.timedelta(minutes=5):
        raise FhirError(422, "invalid", "This time has already passed: choose a time to come.", "when")
    cid = new_id()
    values = {"dossier_key": dossier_key, "consultation_id": cid, "clinician_id": ctx.actor.id,
              "status": "in-progress" if when is None else "planned", "scheduled_at": at, "minutes": minutes,
              "created_at": now, "started_at": now if when is None else None, "signal_seq": 0}
    ctx.conn.execute(insert(teleconsultation).values(values))
    ctx.conn.execute(insert(teleconsult_by_clinician).values(clinician_id=ctx.actor.id, consultation_id=cid,
                                                             dossier_key=dossier_key, scheduled_at=at))
    ctx.conn.execute(insert(resource_locator).values(resource_id=cid, dossier_key=dossier_key))  # Appointment/{id}
    ctx.audit(dossier_key, "C", event, entity_type="Appointment", entity_id=str(cid),
              detail={"scheduled": at.isoformat(), "minutes": minutes})
    row = ctx.conn.execute(select(teleconsultation).where(teleconsultation.c.dossier_key == dossier_key,
                                                          teleconsultation.c.consultation_id == cid)).one()
    return _visit(row, *_names(ctx, ctx.actor.id, d))


def get(ctx: Context, dossier_key: uuid.UUID, consultation_id: uuid.UUID) -> Visit:
    """One visit, for its professional or the patient side; anyone else: 404 (audited as refused)."""
    d = _may_hold(ctx, dossier_key, "teleconsult.read")
    try:
        row = _row(ctx, dossier_key, consultation_id)
    except FhirError as err:
        raise ctx.refuse(dossier_key, "R", "teleconsult.read", err, entity_type="Appointment",
                         entity_id=str(consultation_id)) from None
    ctx.audit(dossier_key, "R", "teleconsult.read", entity_type="Appointment", entity_id=str(consultation_id))
    return _visit(row, *_names(ctx, row.clinician_id, d))


def for_dossier(ctx: Context, dossier_key: uuid.UUID) -> list[Visit]:
    """The dossier's visits, newest first: all of them for the patient side, their own for a professional."""
    d = _may_hold(ctx, dossier_key, "teleconsult.search")
    q = select(teleconsultation).where(teleconsultation.c.dossier_key == dossier_key)
    if ctx.actor.kind is ActorKind.PROFESSIONAL:
        q = q.where(teleconsultation.c.clinician_id == ctx.actor.id)
    rows = ctx.conn.execute(q.order_by(teleconsultation.c.scheduled_at.desc()).limit(100)).all()
    ctx.audit(dossier_key, "R", "teleconsult.search", entity_type="Patient", entity_id=str(dossier_key))
    names: dict[str, str] = {}
    out = []
    for r in rows:
        if r.clinician_id not in names:
            names[r.clinician_id] = _names(ctx, r.clinician_id, d)[0]
        out.append(_visit(r, names[r.clinician_id], f"{d.given} {d.family}"))
    return out


def agenda(ctx: Context, limit: int = 50) -> list[Visit]:
    """The calling professional's visits still to hold (planned or in progress), soonest first, across dossiers
    (the lookup by professional), each read under the policy for its dossier: one they may no longer hold is left
    out."""
    if ctx.actor.kind is not ActorKind.PROFESSIONAL or not ctx.actor.id:
        return []
    since = ctx.now.astimezone(dt.UTC) - dt.timedelta(hours=12)
    refs = ctx.conn.execute(select(teleconsult_by_clinician).where(
        teleconsult_by_clinician.c.clinician_id == ctx.actor.id, teleconsult_by_clinician.c.scheduled_at >= since)
        .order_by(teleconsult_by_clinician.c.scheduled_at).limit(limit)).all()
    out = []
    for ref in refs:
        try:
            d, decision = ctx.dossier(ref.dossier_key)
        except FhirError:
            continue
        if not decision.teleconsult:
            continue
        row = ctx.conn.execute(select(teleconsultation).where(
            teleconsultation.c.dossier_key == ref.dossier_key,
            teleconsultation.c.consultation_id == ref.consultation_id)).first()
        if row is None or row.status not in LIVE:
            continue
        ctx.audit(ref.dossier_key, "R", "teleconsult.read", entity_type="Appointment",
                  entity_id=str(ref.consultation_id))
        out.append(_visit(row, ctx.actor.display or ctx.actor.id, f"{d.given} {d.family}"))
    return out


def cancel(ctx: Context, dossier_key: uuid.UUID, consultation_id: uuid.UUID) -> None:
    """The professional calls off a visit not yet started; the patient side is told."""
    _may_hold(ctx, dossier_key, "teleconsult.cancel")
    row = _row(ctx, dossier_key, consultation_id, lock=True)
    if ctx.actor.kind is not ActorKind.PROFESSIONAL:
        raise FhirError(403, "forbidden", "Only the professional may cancel the teleconsultation.")
    if row.status != "planned":
        raise FhirError(409, "conflict", "Only a teleconsultation not yet started can be cancelled.")
    ctx.conn.execute(update(teleconsultation).where(
        teleconsultation.c.dossier_key == dossier_key, teleconsultation.c.consultation_id == consultation_id)
        .values(status="cancelled", ended_at=ctx.now.astimezone(dt.UTC)))
    ctx.audit(dossier_key, "U", "teleconsult.cancel", entity_type="Appointment", entity_id=str(consultation_id))


def end(ctx: Context, dossier_key: uuid.UUID, consultation_id: uuid.UUID) -> None:
    """The professional closes the visit: it ends for both sides (their sockets are told through the relay and
    close), what was shown is no longer shown, and the relay's messages are deleted (the last, "ended", stays for
    the sockets still to read it). Ending one already ended changes nothing."""
    row = _row(ctx, dossier_key, consultation_id, lock=True)
    if ctx.actor.kind is not ActorKind.PROFESSIONAL:
        raise ctx.refuse(dossier_key, "U", "teleconsult.end", FhirError(
            403, "forbidden", "Only the professional ends the teleconsultation."),
            entity_type="Encounter", entity_id=str(consultation_id))
    if row.status not in LIVE:
        return
    now = ctx.now.astimezone(dt.UTC)
    ctx.conn.execute(update(teleconsultation).where(
        teleconsultation.c.dossier_key == dossier_key, teleconsultation.c.consultation_id == consultation_id)
        .values(status="finished", ended_at=now, started_at=row.started_at or now, shown=None,
                clinician_conn=None, patient_conn=None))
    seq = post(ctx.conn, dossier_key, consultation_id, "server", {"type": "ended"}, now)
    ctx.conn.execute(delete(teleconsult_signal).where(
        teleconsult_signal.c.dossier_key == dossier_key, teleconsult_signal.c.consultation_id == consultation_id,
        teleconsult_signal.c.seq < seq))
    ctx.audit(dossier_key, "U", "teleconsult.end", entity_type="Encounter", entity_id=str(consultation_id))


def _where(dossier_key: uuid.UUID, consultation_id: uuid.UUID) -> Any:
    return and_(teleconsultation.c.dossier_key == dossier_key, teleconsultation.c.consultation_id == consultation_id)


def post(conn: Connection, dossier_key: uuid.UUID, consultation_id: uuid.UUID, sender: str, message: dict[str, Any],
         now: dt.datetime, *, target: str | None = None, holder: str | None = None) -> int:
    """Append one message to the relay and return its number; 0 (nothing written) when ``holder`` is given and no
    longer holds ``sender``'s side of a live visit (a replaced tab, an ended visit)."""
    cond = _where(dossier_key, consultation_id)
    if holder is not None:
        column = teleconsultation.c.clinician_conn if sender == "clinician" else teleconsultation.c.patient_conn
        cond = and_(cond, column == holder, teleconsultation.c.status.in_(LIVE))
    seq = conn.execute(update(teleconsultation).where(cond).values(signal_seq=teleconsultation.c.signal_seq + 1)
                       .returning(teleconsultation.c.signal_seq)).scalar()
    if seq is None:
        return 0
    conn.execute(insert(teleconsult_signal).values(
        dossier_key=dossier_key, consultation_id=consultation_id, seq=seq, sender=sender, target_conn=target,
        message=message, created_at=now.astimezone(dt.UTC)))
    if conn.dialect.name == "postgresql":  # wakes the other side's socket at commit (carnet.teleconsult.wakeup)
        conn.execute(select(func.pg_notify(CHANNEL, str(consultation_id))))
    return int(seq)


STALE_AFTER = dt.timedelta(hours=12)  # after its planned end, a visit nobody ended is closed by the worker


def close_stale(ctx: Context, limit: int = 500) -> int:
    """Worker job: a visit still booked or under way 12 hours after its planned end (the professional closed the tab
    without ending it, or never came) is closed (``finished``, or ``cancelled`` if it never started), its open
    sockets told ``ended`` and its relay emptied; audited ``teleconsult.expire`` in its dossier's chain. A
    background path across dossiers (never a request's), a batch at a time. Returns how many were closed."""
    if ctx.actor.kind is not ActorKind.OPERATOR:
        raise forbidden("Only an operator closes stale teleconsultations")
    now = ctx.now.astimezone(dt.UTC)
    rows = ctx.conn.execute(select(teleconsultation.c.dossier_key, teleconsultation.c.consultation_id,
                                   teleconsultation.c.scheduled_at, teleconsultation.c.minutes).where(
        teleconsultation.c.status.in_(LIVE), teleconsultation.c.scheduled_at < now - STALE_AFTER)
        .order_by(teleconsultation.c.scheduled_at).limit(limit)).all()
    n = 0
    for r in rows:
        if (utc(r.scheduled_at) or now) + dt.timedelta(minutes=r.minutes) + STALE_AFTER > now:
            continue
        row = ctx.conn.execute(select(teleconsultation).where(_where(r.dossier_key, r.consultation_id))
                               .with_for_update()).one()
        if row.status not in LIVE:
            continue
        ctx.conn.execute(update(teleconsultation).where(_where(r.dossier_key, r.consultation_id)).values(
            status="finished" if row.status == "in-progress" else "cancelled", ended_at=now, shown=None,
            clinician_conn=None, patient_conn=None))
        seq = post(ctx.conn, r.dossier_key, r.consultation_id, "server", {"type": "ended"}, now)
        ctx.conn.execute(delete(teleconsult_signal).where(
            teleconsult_signal.c.dossier_key == r.dossier_key,
            teleconsult_signal.c.consultation_id == r.consultation_id, teleconsult_signal.c.seq < seq))
        ctx.audit(r.dossier_key, "U", "teleconsult.expire", entity_type="Encounter", entity_id=str(r.consultation_id))
        n += 1
    return n
