"""The documents of the clinician portal's dossier page: each function takes a :class:`~carnet.context.Context`,
asks the policy through ``ctx.dossier`` and audits, like :mod:`carnet.documents.service` it sits by.

- :func:`dossier_documents` — the documents the caller sees, filtered, one entry per document (its current version:
  a chain of ``relatesTo replaces`` collapses into the newest, with the number of versions);
- :func:`new_since` — documents added since an instant, by others.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select

from carnet.context import Context
from carnet.db.tables import document, practitioner
from carnet.documents import service as documents
from carnet.errors import FhirError

_COLUMNS = documents.LISTED_COLUMNS + (document.c.master_identifier, document.c.invisible_patient)


def _readable(ctx: Context, key: uuid.UUID) -> None:
    _, decision = ctx.dossier(key)
    if not decision.read:
        raise ctx.refuse(key, "E", "ITI-67", FhirError(403, "forbidden", decision.refusal))


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
    authors: list[tuple[str, str]]  # (national id, name or "" when nobody names them) of every author, for the filter


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
    named = {str(a): " ".join(x for x in (g, fam) if x) for a, g, fam in ctx.conn.execute(
        select(document.c.author_id, document.c.author_given, document.c.author_family).distinct().where(
            visible, document.c.status == "current", document.c.author_id.is_not(None)))}
    unnamed = sorted(a for a, n in named.items() if not n)  # an author given by reference only: the directory names
    if unnamed:
        named.update({r.national_id: f"{r.given} {r.family}" for r in ctx.conn.execute(select(
            practitioner.c.national_id, practitioner.c.given, practitioner.c.family).where(
            practitioner.c.national_id.in_(unnamed)))})
    authors = sorted(named.items(), key=lambda a: (not a[1], a[1].lower(), a[0]))
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
