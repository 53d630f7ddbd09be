"""Accesses to dossiers, read back from the audit chain: when a professional last touched a dossier
(:func:`previous_access`), and the operators' review queue of emergency and regulation accesses
(:func:`review_queue` / :func:`record_review`, reviews kept in ``access_review``)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import and_, func, insert, select

from carnet.access.actors import Mode
from carnet.context import Context
from carnet.db.tables import access_review, audit, practitioner
from carnet.errors import FhirError
from carnet.ids import SYSTEM_CHAIN, SYSTEM_CHAINS

REVIEW_OUTCOMES = ("justified", "questioned", "referred")


def previous_access(ctx: Context, key: uuid.UUID, before: dt.datetime) -> dt.datetime | None:
    """The last successful audit record of this professional on this dossier before ``before`` (the session's start),
    or None when they never accessed it."""
    found = ctx.conn.execute(select(func.max(audit.c.recorded)).where(
        audit.c.dossier_key == key, audit.c.actor_id == ctx.actor.id, audit.c.outcome == "0",
        audit.c.recorded < before.astimezone(dt.UTC))).scalar()
    if found is None:
        return None
    return found if found.tzinfo is not None else found.replace(tzinfo=dt.UTC)


# --- the review queue ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Access:
    dossier_key: uuid.UUID
    seq: int
    recorded: dt.datetime
    professional_id: str | None
    professional: str | None
    mode: str
    reason: str | None
    event: str
    review: str | None  # justified | questioned | referred, once reviewed
    note: str | None
    reviewed_by: str | None


def _reviewer(ctx: Context) -> None:
    if ctx.actor.id is None or ctx.actor.id not in ctx.settings.reviewers or ctx.actor.mode is not Mode.NORMAL:
        raise FhirError(403, "forbidden", "Only the reviewers of emergency accesses may open this queue.")


def review_queue(ctx: Context, count: int = 50, offset: int = 0, pending_only: bool = False
                 ) -> tuple[list[Access], int]:
    """Every emergency and regulation access across dossiers, newest first, with its review if any. Metadata only
    (dossier id, professional, time, mode, reason): no health content. The reading is audited in the system chain."""
    _reviewer(ctx)
    joined = audit.outerjoin(access_review, and_(access_review.c.dossier_key == audit.c.dossier_key,
                                                 access_review.c.seq == audit.c.seq))
    where = [audit.c.mode.in_([Mode.EMERGENCY.value, Mode.REGULATION.value]), audit.c.outcome == "0",
             audit.c.dossier_key.not_in(SYSTEM_CHAINS)]
    if pending_only:
        where.append(access_review.c.seq.is_(None))
    rows = ctx.conn.execute(select(audit.c.dossier_key, audit.c.seq, audit.c.recorded, audit.c.actor_id,
                                   audit.c.actor_name, audit.c.mode, audit.c.reason, audit.c.event,
                                   access_review.c.outcome, access_review.c.note, access_review.c.reviewed_by)
                            .select_from(joined).where(*where)
                            .order_by(audit.c.recorded.desc(), audit.c.seq.desc())
                            .limit(max(1, min(count, 200))).offset(max(0, offset))).all()
    total = ctx.conn.execute(select(func.count()).select_from(joined).where(*where)).scalar_one()
    ids = sorted({r.actor_id for r in rows if r.actor_id})
    names = {p.national_id: f"{p.given} {p.family}" for p in ctx.conn.execute(select(
        practitioner.c.national_id, practitioner.c.given, practitioner.c.family).where(
        practitioner.c.national_id.in_(ids)))} if ids else {}
    ctx.audit(SYSTEM_CHAIN, "E", "access.review.list", detail={"returned": len(rows)})
    return [Access(r.dossier_key, r.seq, r.recorded if r.recorded.tzinfo else r.recorded.replace(tzinfo=dt.UTC),
                   r.actor_id, names.get(r.actor_id or "") or r.actor_name, r.mode, r.reason, r.event, r.outcome,
                   r.note, r.reviewed_by) for r in rows], int(total)


def record_review(ctx: Context, key: uuid.UUID, seq: int, outcome: str, note: str | None) -> None:
    """Mark one emergency or regulation access justified, questioned or referred, with a note; audited in the
    system chain. A record already reviewed is reviewed again (the latest word stands)."""
    _reviewer(ctx)
    if outcome not in REVIEW_OUTCOMES:
        raise FhirError(422, "invalid", "Choose justified, questioned or referred.")
    found = ctx.conn.execute(select(audit.c.mode).where(audit.c.dossier_key == key, audit.c.seq == seq)).first()
    if found is None or found.mode not in (Mode.EMERGENCY.value, Mode.REGULATION.value):
        raise FhirError(404, "not-found", "This access is not in the review queue.")
    note = (note or "").strip()[:2000] or None
    ctx.conn.execute(access_review.delete().where(access_review.c.dossier_key == key, access_review.c.seq == seq))
    ctx.conn.execute(insert(access_review).values(dossier_key=key, seq=seq, reviewed_at=ctx.now,
                                                  reviewed_by=ctx.actor.id or "", outcome=outcome, note=note))
    ctx.audit(SYSTEM_CHAIN, "U", "access.review", entity_type="AuditEvent", entity_id=f"{key}/{seq}",
              detail={"outcome": outcome})
