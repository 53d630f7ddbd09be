"""What the clinician portal asks of the data, beyond the shared services: each function takes a
:class:`~carnet.context.Context`, asks the policy through ``ctx.dossier`` and audits, like the services it sits by.

- :func:`previous_access` — when this professional last touched this dossier before the current session (from the
  dossier's audit records: a successful record by this actor);
- :func:`dossier_documents` — the documents the caller sees, filtered, one entry per document (its current version:
  a chain of ``relatesTo replaces`` collapses into the newest, with the number of versions);
- :func:`new_since` — documents added since an instant, by others;
- :func:`review_queue` / :func:`record_review` — the operators' queue of emergency and regulation accesses;
- :func:`inbox` / :func:`mark_notice_read` / :func:`unread_notices` — the médecin traitant's notices of emergency
  and regulation accesses to their patients (written by :mod:`carnet.notify.rules`).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, func, insert, or_, select, update

from carnet import directory
from carnet.access.actors import ActorKind, Mode
from carnet.context import Context
from carnet.db.tables import (
    access_review,
    audit,
    document,
    practitioner,
    pro_notice,
    pro_notice_by_recipient,
)
from carnet.documents import service as documents
from carnet.errors import FhirError
from carnet.ids import SYSTEM_CHAIN

REVIEW_OUTCOMES = ("justified", "questioned", "referred")
_COLUMNS = documents.LISTED_COLUMNS + (document.c.master_identifier, document.c.invisible_patient)


def _readable(ctx: Context, key: uuid.UUID) -> None:
    _, decision = ctx.dossier(key)
    if not decision.read:
        raise ctx.refuse(key, "E", "ITI-67", FhirError(403, "forbidden", decision.refusal))


def previous_access(ctx: Context, key: uuid.UUID, before: dt.datetime) -> dt.datetime | None:
    """The last successful audit record of this professional on this dossier before ``before`` (the session's start),
    or None when they never accessed it."""
    found = ctx.conn.execute(select(func.max(audit.c.recorded)).where(
        audit.c.dossier_key == key, audit.c.actor_id == ctx.actor.id, audit.c.outcome == "0",
        audit.c.recorded < before.astimezone(dt.UTC))).scalar()
    if found is None:
        return None
    return found if found.tzinfo is not None else found.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Entry:
    doc: documents.Listed
    versions: int  # 1 + the documents it replaced, directly or not
    master_identifier: str
    hidden_from_patient: bool


def _replaced(resource: str) -> list[str]:
    res = json.loads(resource)
    return [str((r.get("target") or {}).get("reference") or "").rsplit("/", 1)[-1]
            for r in res.get("relatesTo") or [] if r.get("code") == "replaces"]


PER_CLASS = 25  # the dossier page shows the latest documents of each class, and links to the rest
ONE_CLASS = 500  # with a class filter: the latest 500 of that class


@dataclass(frozen=True)
class Documents:
    """The documents of the dossier page: ``entries`` by class then newest first, at most ``limit`` per class;
    ``totals`` how many current documents each class holds for this caller (with the filters), so the page says what
    it does not show."""

    entries: list[Entry]
    totals: dict[str, int]
    limit: int
    authors: list[tuple[str, str]]  # (national id, name) of every author of these documents, for the filter


def dossier_documents(ctx: Context, key: uuid.UUID, f: documents.DocumentFilter,
                      per_class: int | None = None) -> Documents:
    """The current documents the caller sees (filters in SQL), de-duplicated: one entry per document id
    (masterIdentifier) and per replacement chain, the current version, with how many versions it had. The latest
    ``per_class`` of each class (``PER_CLASS``; ``ONE_CLASS`` when the filter names classes), so that a heavy dossier
    shows every class, with each class's total. Audited as one search (``ITI-67``)."""
    _readable(ctx, key)
    _, decision = ctx.dossier(key)
    limit = per_class or (ONE_CLASS if f.classes else PER_CLASS)
    visible = and_(document.c.dossier_key == key, decision.visibility.where(document, ctx.now),
                   *documents.filter_conditions(f))
    newest = (document.c.date.desc(), document.c.document_id.desc())
    ranked = select(*_COLUMNS, func.row_number().over(  # current and superseded versions ranked apart
        partition_by=(document.c.class_code, document.c.status), order_by=newest).label("rank")).where(
        visible, document.c.status != "entered-in-error").subquery()
    rows = list(ctx.conn.execute(select(*(ranked.c[c.name] for c in _COLUMNS)).where(ranked.c.rank <= limit)
                                 .order_by(ranked.c.class_code, ranked.c.date.desc(), ranked.c.document_id.desc())))
    totals = {str(c): int(n) for c, n in ctx.conn.execute(
        select(document.c.class_code, func.count()).where(visible, document.c.status == "current")
        .group_by(document.c.class_code))}
    authors = sorted({(str(a), " ".join(x for x in (g, fam) if x) or str(a)) for a, g, fam in ctx.conn.execute(
        select(document.c.author_id, document.c.author_given, document.c.author_family).distinct().where(
            visible, document.c.status == "current", document.c.author_id.is_not(None)))}, key=lambda a: a[1])
    by_id = {str(r.document_id): r for r in rows}
    replaced_by: dict[str, str] = {}
    for r in rows:
        for old in _replaced(r.resource):
            replaced_by[old] = str(r.document_id)
    seen: set[str] = set()
    current = []
    for r in rows:
        if r.status != "current" or r.master_identifier in seen:
            continue
        seen.add(r.master_identifier)
        count, todo = 1, _replaced(r.resource)
        while todo:  # follow the chain back (versions the caller may not see still count)
            old = todo.pop()
            count += 1
            if old in by_id:
                todo.extend(_replaced(by_id[old].resource))
        current.append((r, count))
    listed = documents.listed_from_rows(ctx, [r for r, _ in current])
    ctx.audit(key, "E", "ITI-67", entity_type="Patient", entity_id=str(key),
              detail={"query": "pro-portal", "returned": len(listed)})
    return Documents([Entry(d, n, r.master_identifier, bool(r.invisible_patient))
                      for d, (r, n) in zip(listed, current, strict=True)], totals, limit, authors)


def new_since(ctx: Context, key: uuid.UUID, since: dt.datetime | None, limit: int = 20) -> list[documents.Listed]:
    """Documents added to the dossier since ``since`` by others (the audit's record of each addition is the clock),
    as the caller sees them. Without ``since`` (a first access): the latest ones."""
    _readable(ctx, key)
    _, decision = ctx.dossier(key)
    visible = and_(document.c.dossier_key == key, decision.visibility.where(document, ctx.now),
                   document.c.status == "current")
    newest = (document.c.date.desc(), document.c.document_id.desc())
    if since is None:
        rows = ctx.conn.execute(select(*documents.LISTED_COLUMNS).where(visible).order_by(*newest).limit(5)).all()
    else:
        added = documents.newly_added(ctx, key, since)
        rows = ctx.conn.execute(select(*documents.LISTED_COLUMNS).where(
            visible, document.c.document_id.in_(added),
            or_(document.c.author_id.is_(None), document.c.author_id != ctx.actor.id))
            .order_by(*newest).limit(limit)).all()
    return documents.listed_from_rows(ctx, list(rows))


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
             audit.c.dossier_key != SYSTEM_CHAIN]
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


# --- the médecin traitant's inbox ---------------------------------------------------------------------------------

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
    people = directory.by_ids(ctx, {n.accessor_id for n, _, _ in found.values()})
    orgs = directory.organisation_names(ctx, {p.organisation_id for p in people.values() if p.organisation_id})
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
