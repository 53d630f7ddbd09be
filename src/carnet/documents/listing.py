"""The patient's portal's view of the documents (issue 4 §2): browse with filters, what is new since the previous
visit, one document's page; metadata only, authors resolved from the directory, each view audited as a search or a
read."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select

from carnet.access.policy import Decision
from carnet.context import Context
from carnet.db.tables import document
from carnet.documents.stored import visible_document
from carnet.errors import forbidden


@dataclass(frozen=True)
class Listed:
    """One document as the patient's portal shows it: metadata only, authors resolved from the directory."""

    id: uuid.UUID
    title: str
    class_code: str
    type_code: str
    type_display: str | None  # the display the source gave with the type code
    date: dt.datetime  # when it was filed (DocumentReference.date)
    creation: dt.datetime | None  # when it was written (attachment.creation)
    status: str  # current | superseded | entered-in-error
    masked: bool  # MASQUE_PS: hidden from professionals
    content_type: str
    size: int
    author_id: str | None
    author_name: str | None
    author_profession: str | None  # TRE_G15 code, for a professional found in the directory
    author_organisation: str | None
    added_by: str  # you | patient_side | professional


@dataclass(frozen=True)
class DocumentFilter:
    """The portal's filters; dates are instants, ``since`` included and ``until`` excluded."""

    classes: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    author: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


@dataclass(frozen=True)
class DocumentPage:
    documents: list[Listed]
    total: int
    classes: list[tuple[str, int]]  # (class code, how many visible documents) for every class present
    types: list[str]  # type codes present in the dossier
    authors: list[tuple[str, str | None, str]]  # (author id, name, added_by as in Listed) present in the dossier


LISTED_COLUMNS = (document.c.dossier_key, document.c.document_id, document.c.title, document.c.class_code,
                   document.c.type_code, document.c.date, document.c.creation, document.c.status, document.c.masked,
                   document.c.content_type, document.c.size, document.c.author_id, document.c.author_given,
                   document.c.author_family, document.c.resource)


def _type_display(resource: str, code: str) -> str | None:
    res = json.loads(resource)
    for coding in (res.get("type") or {}).get("coding") or []:
        if coding.get("code") == code and coding.get("display"):
            return str(coding["display"])
    return None


def listed_from_rows(ctx: Context, rows: list[Any]) -> list[Listed]:
    from carnet.db.tables import practitioner

    ids = sorted({r.author_id for r in rows if r.author_id})
    pros = {p.national_id: p for p in ctx.conn.execute(select(
        practitioner.c.national_id, practitioner.c.given, practitioner.c.family, practitioner.c.profession,
        practitioner.c.organisation_name, practitioner.c.organisation_id).where(
        practitioner.c.national_id.in_(ids)))} if ids else {}
    me = ctx.actor.audit_id
    out = []
    for r in rows:
        pro = pros.get(r.author_id) if r.author_id else None
        name = f"{pro.given} {pro.family}" if pro is not None else \
            (" ".join(n for n in (r.author_given, r.author_family) if n) or None)
        added_by = "you" if r.author_id == me else "professional" if pro is not None else \
            "patient_side" if r.class_code == "90" else "professional"
        res = json.loads(r.resource)
        title = r.title or (res.get("content") or [{}])[0].get("attachment", {}).get("title") or \
            res.get("description") or ""
        out.append(Listed(
            id=r.document_id, title=str(title), class_code=r.class_code, type_code=r.type_code,
            type_display=_type_display(r.resource, r.type_code), date=_aware(r.date), creation=_aware(r.creation),
            status=r.status, masked=r.masked, content_type=r.content_type, size=r.size, author_id=r.author_id,
            author_name=name, author_profession=pro.profession if pro is not None else None,
            author_organisation=(pro.organisation_name or pro.organisation_id) if pro is not None else None,
            added_by=added_by))
    return out


def _aware(ts: Any) -> Any:
    if ts is None:
        return None
    return ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts


def _readable(ctx: Context, dossier_key: uuid.UUID, event: str) -> Decision:
    _, decision = ctx.dossier(dossier_key)
    if not decision.read:
        raise ctx.refuse(dossier_key, "E", event, forbidden(decision.refusal))
    return decision


def filter_conditions(f: DocumentFilter) -> list[Any]:
    conds: list[Any] = []
    if f.classes:
        conds.append(document.c.class_code.in_(list(f.classes)))
    if f.types:
        conds.append(document.c.type_code.in_(list(f.types)))
    if f.author:
        conds.append(document.c.author_id == f.author)
    if f.since is not None:
        conds.append(document.c.date >= f.since.astimezone(dt.UTC))
    if f.until is not None:
        conds.append(document.c.date < f.until.astimezone(dt.UTC))
    return conds


def browse(ctx: Context, dossier_key: uuid.UUID, f: DocumentFilter, count: int = 20,
           offset: int = 0) -> DocumentPage:
    """The documents the caller sees, filtered in SQL, grouped by class (class order, then newest first), with the
    classes, types and authors present for the filter menus. Audited as one search (``ITI-67``)."""
    decision = _readable(ctx, dossier_key, "ITI-67")
    visible = and_(document.c.dossier_key == dossier_key, decision.visibility.where(document, ctx.now))
    where = and_(visible, *filter_conditions(f))
    rows = ctx.conn.execute(select(*LISTED_COLUMNS).where(where).order_by(
        document.c.class_code, document.c.date.desc(), document.c.document_id.desc())
        .limit(max(1, min(count, 100))).offset(max(0, offset))).all()
    total = ctx.conn.execute(select(func.count()).select_from(document).where(where)).scalar_one()
    classes = [(c, n) for c, n in ctx.conn.execute(select(document.c.class_code, func.count()).where(visible)
                                                   .group_by(document.c.class_code).order_by(document.c.class_code))]
    types = sorted(ctx.conn.execute(select(document.c.type_code).where(visible).distinct()).scalars())
    authors = _authors(ctx, list(ctx.conn.execute(
        select(document.c.author_id, document.c.author_given, document.c.author_family, document.c.class_code)
        .where(visible, document.c.author_id.is_not(None)).distinct()).all()))
    ctx.audit(dossier_key, "E", "ITI-67", entity_type="Patient", entity_id=str(dossier_key),
              detail={"query": "portal", "returned": len(rows)})
    return DocumentPage(listed_from_rows(ctx, list(rows)), total, classes, types, authors)


def _authors(ctx: Context, rows: list[Any]) -> list[tuple[str, str | None, str]]:
    """(author id, name, added_by) for the filter menu: professionals by their directory name, then the patient
    side (the caller first)."""
    from carnet.db.tables import practitioner

    ids = sorted({r.author_id for r in rows})
    pros = {p.national_id: f"{p.given} {p.family}" for p in ctx.conn.execute(select(
        practitioner.c.national_id, practitioner.c.given, practitioner.c.family).where(
        practitioner.c.national_id.in_(ids)))} if ids else {}
    me = ctx.actor.audit_id
    found: dict[str, tuple[str, str | None, str]] = {}
    for r in rows:
        if r.author_id in found:
            continue
        named = " ".join(n for n in (r.author_given, r.author_family) if n) or None
        kind = "you" if r.author_id == me else "professional" if r.author_id in pros or r.class_code != "90" \
            else "patient_side"
        found[r.author_id] = (r.author_id, pros.get(r.author_id) or named, kind)
    order = {"you": 0, "patient_side": 1, "professional": 2}
    return sorted(found.values(), key=lambda a: (order[a[2]], (a[1] or a[0]).lower()))


def newly_added(ctx: Context, dossier_key: uuid.UUID, since: dt.datetime) -> list[uuid.UUID]:
    """Documents added to the dossier since ``since``: the audit's record of each addition is the reliable clock
    (``DocumentReference.date`` is the source's, and may be older than the deposit)."""
    from carnet.db.tables import audit

    ids = ctx.conn.execute(select(audit.c.entity_id).where(
        audit.c.dossier_key == dossier_key, audit.c.recorded >= since.astimezone(dt.UTC), audit.c.action == "C",
        audit.c.entity_type == "DocumentReference", audit.c.outcome == "0").order_by(audit.c.seq.desc())
        .limit(500)).scalars()
    out = []
    for value in ids:
        try:
            out.append(uuid.UUID(str(value)))
        except ValueError:
            continue
    return out


@dataclass(frozen=True)
class HomeDocuments:
    summaries: list[Listed]  # the latest summaries (class 11, e.g. the médecin traitant's VSM)
    directives: list[Listed]  # advance directives (type EXPPAT_3)
    new: list[Listed]  # added since ``since`` by others, or the latest ones when there is no previous visit


def home_documents(ctx: Context, dossier_key: uuid.UUID, since: dt.datetime | None, limit: int = 20) -> HomeDocuments:
    """What the portal's home page shows of the documents, in one audited search (``ITI-67``): the latest summaries,
    the advance directives, and what was added since the previous visit (a document hidden from the patient whose
    invisibility lapsed since then counts as new)."""
    decision = _readable(ctx, dossier_key, "ITI-67")
    visible = and_(document.c.dossier_key == dossier_key, decision.visibility.where(document, ctx.now))
    newest = (document.c.date.desc(), document.c.document_id.desc())
    summaries = ctx.conn.execute(select(*LISTED_COLUMNS).where(
        visible, document.c.class_code == "11", document.c.type_code != "EXPPAT_3", document.c.status == "current")
        .order_by(*newest).limit(3)).all()
    directives = ctx.conn.execute(select(*LISTED_COLUMNS).where(
        visible, document.c.type_code == "EXPPAT_3", document.c.status == "current").order_by(*newest)
        .limit(10)).all()
    if since is None:
        new = ctx.conn.execute(select(*LISTED_COLUMNS).where(visible).order_by(*newest).limit(5)).all()
    else:
        added = newly_added(ctx, dossier_key, since)
        lapsed = and_(document.c.invisible_patient.is_(True),
                      document.c.invisible_patient_until > since.astimezone(dt.UTC),
                      document.c.invisible_patient_until <= ctx.now.astimezone(dt.UTC))
        new = ctx.conn.execute(select(*LISTED_COLUMNS).where(
            visible, or_(document.c.document_id.in_(added), lapsed),
            or_(document.c.author_id.is_(None), document.c.author_id != ctx.actor.audit_id))
            .order_by(*newest).limit(limit)).all()
    ctx.audit(dossier_key, "E", "ITI-67", entity_type="Patient", entity_id=str(dossier_key),
              detail={"query": "portal-home", "returned": len(summaries) + len(directives) + len(new)})
    return HomeDocuments(listed_from_rows(ctx, list(summaries)), listed_from_rows(ctx, list(directives)),
                         listed_from_rows(ctx, list(new)))


def open_document(ctx: Context, resource_id: str) -> tuple[Listed, dict[str, Any]]:
    """One document's metadata for the portal's document page (404 if the caller may not see it), audited as a
    read: the portal's view of it, and the DocumentReference as stored."""
    row, _ = visible_document(ctx, resource_id, "document.read")
    ctx.audit(row.dossier_key, "R", "document.read", entity_type="DocumentReference", entity_id=resource_id)
    return listed_from_rows(ctx, [row])[0], json.loads(row.resource)
