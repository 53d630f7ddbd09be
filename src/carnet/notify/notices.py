"""The médecin traitant's notices of emergency and regulation accesses to their patients (written by
:mod:`carnet.notify.rules` in ``pro_notice`` and its lookup table ``pro_notice_by_recipient``): :func:`inbox`,
:func:`mark_notice_read`, :func:`unread_notices`. Who the accessor is (name, profession, organisation) is read
from the directory at reading time."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, func, select, update

from carnet.access.actors import ActorKind, Mode
from carnet.context import Context
from carnet.db.tables import audit, pro_notice, pro_notice_by_recipient
from carnet.errors import FhirError
from carnet.identity import practitioners
from carnet.ids import SYSTEM_CHAIN


@dataclass(frozen=True)
class Notice:
    """One notice of an emergency or regulation access. ``shown`` is False when the caller is no longer (or not now)
    the patient's médecin traitant: then only the date and the mode are given, nothing of the dossier."""

    notice_id: uuid.UUID
    dossier_key: uuid.UUID
    at: dt.datetime
    read: bool
    shown: bool
    kind: str | None = None  # emergency | regulation
    accessor_id: str | None = None
    accessor_name: str | None = None
    accessor_profession: str | None = None  # TRE_G15 code
    accessor_organisation: str | None = None
    reason: str | None = None  # from the access's audit record
    patient_family: str | None = None
    patient_given: str | None = None
    birth_date: dt.date | None = None


def _utc(ts: dt.datetime) -> dt.datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=dt.UTC)


def _recipient(ctx: Context) -> str:
    a = ctx.actor
    if a.kind is not ActorKind.PROFESSIONAL or not a.id:
        raise FhirError(403, "forbidden", "Only professionals have an inbox.")
    if a.mode is not Mode.NORMAL:  # a read in emergency mode would itself be an emergency access to the patient
        raise FhirError(403, "forbidden", "Your notices are shown in normal mode only: sign out of emergency mode.")
    return a.id


def unread_notices(conn: Connection, national_id: str) -> int:
    """How many of this professional's notices are unread: one count on the lookup table's index (every page's
    header shows it). No dossier data."""
    return int(conn.execute(select(func.count()).select_from(pro_notice_by_recipient).where(
        pro_notice_by_recipient.c.recipient_id == national_id,
        pro_notice_by_recipient.c.read_at.is_(None))).scalar_one())


def _reason(ctx: Context, key: uuid.UUID, accessor_id: str, kind: str, at: dt.datetime) -> str | None:
    """The reason given for the access, from the dossier's audit: its first successful record by that professional,
    in that mode, at or after the notice's time (the notice is written with the record, at the same instant)."""
    return ctx.conn.execute(select(audit.c.reason).where(
        audit.c.dossier_key == key, audit.c.recorded >= at, audit.c.actor_id == accessor_id, audit.c.mode == kind,
        audit.c.outcome == "0").order_by(audit.c.recorded, audit.c.seq).limit(1)).scalar()


def inbox(ctx: Context, count: int = 25, offset: int = 0) -> tuple[list[Notice], int, int]:
    """The caller's notices, newest first, with the total and the unread count. A notice shows the patient and the
    access (who, why) only while the policy says the caller may read it (``Decision.gp_notices``: the médecin
    traitant at reading time); each dossier shown is audited once (``patient.read``) in its own chain."""
    me = _recipient(ctx)
    mine = pro_notice_by_recipient.c.recipient_id == me
    rows = ctx.conn.execute(select(pro_notice_by_recipient).where(mine).order_by(
        pro_notice_by_recipient.c.at.desc(), pro_notice_by_recipient.c.notice_id.desc())
        .limit(max(1, min(count, 200))).offset(max(0, offset))).all()
    total = int(ctx.conn.execute(select(func.count()).select_from(pro_notice_by_recipient).where(mine)).scalar_one())
    unread = unread_notices(ctx.conn, me)
    keys: dict[uuid.UUID, list[uuid.UUID]] = {}
    for r in rows:
        keys.setdefault(r.dossier_key, []).append(r.notice_id)
    found: dict[uuid.UUID, tuple[Any, Any, str | None]] = {}  # notice id -> (notice row, dossier row, reason)
    for key, ids in keys.items():
        try:
            patient, decision = ctx.dossier(key)
        except FhirError:
            continue
        if not decision.gp_notices:
            continue
        notices = ctx.conn.execute(select(pro_notice).where(
            pro_notice.c.dossier_key == key, pro_notice.c.notice_id.in_(ids),
            pro_notice.c.recipient_id == me)).all()
        for n in notices:
            found[n.notice_id] = (n, patient, _reason(ctx, key, n.accessor_id, n.kind, n.at))
        ctx.audit(key, "R", "patient.read", entity_type="Patient", entity_id=str(key),
                  detail={"query": "pro-inbox", "notices": len(notices)})
    people = practitioners.by_ids(ctx.conn, {n.accessor_id for n, _, _ in found.values()})
    orgs = practitioners.organisation_names(ctx.conn, {p.organisation_id for p in people.values() if p.organisation_id})
    out = []
    for r in rows:
        if r.notice_id not in found:
            out.append(Notice(r.notice_id, r.dossier_key, _utc(r.at), r.read_at is not None, False))
            continue
        n, patient, reason = found[r.notice_id]
        who = people.get(n.accessor_id)
        out.append(Notice(
            r.notice_id, r.dossier_key, _utc(r.at), r.read_at is not None, True, kind=n.kind,
            accessor_id=n.accessor_id, accessor_name=f"{who.given} {who.family}" if who else None,
            accessor_profession=who.profession if who else None,
            accessor_organisation=(orgs.get(who.organisation_id) or who.organisation_id) if who else None,
            reason=reason, patient_family=patient.family, patient_given=patient.given,
            birth_date=patient.birth_date))
    return out, total, unread


def mark_notice_read(ctx: Context, key: uuid.UUID, notice_id: uuid.UUID) -> None:
    """Mark one of the caller's notices read (the dossier's row and its lookup row); reading it again changes
    nothing. Reveals nothing of the dossier, so a former médecin traitant may clear theirs too. Audited in the
    system chain."""
    me = _recipient(ctx)
    mine = and_(pro_notice.c.dossier_key == key, pro_notice.c.notice_id == notice_id, pro_notice.c.recipient_id == me)
    if ctx.conn.execute(select(pro_notice.c.read_at).where(mine)).first() is None:
        raise FhirError(404, "not-found", "This notice does not exist, or is not yours.")
    ctx.conn.execute(update(pro_notice).where(mine, pro_notice.c.read_at.is_(None)).values(read_at=ctx.now))
    ctx.conn.execute(update(pro_notice_by_recipient).where(
        pro_notice_by_recipient.c.recipient_id == me, pro_notice_by_recipient.c.notice_id == notice_id,
        pro_notice_by_recipient.c.read_at.is_(None)).values(read_at=ctx.now))
    ctx.audit(SYSTEM_CHAIN, "U", "pro.notice.read", entity_type="Communication", entity_id=str(notice_id),
              detail={"dossier": str(key)})
