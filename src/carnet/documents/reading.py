"""Reading documents: one DocumentReference, its content (ITI-68, the SHA-256 checked on every retrieval), and the
searches (ITI-67 for DocumentReference, ITI-66 for SubmissionSets), filtered in SQL by the policy's visibility clause
and audited as one search."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, and_, exists, func, or_, select

from carnet.access.policy import Visibility
from carnet.context import Context
from carnet.db import prepared
from carnet.db.tables import document, document_token, submission_set
from carnet.documents.stored import open_content, visible_document
from carnet.errors import forbidden


def read(ctx: Context, resource_id: str) -> str:
    row, _ = visible_document(ctx, resource_id, "document.read")
    ctx.audit(row.dossier_key, "R", "document.read", entity_type="DocumentReference", entity_id=resource_id)
    return str(row.resource)


def retrieve(ctx: Context, resource_id: str) -> tuple[bytes, str, Any]:
    """ITI-68: the exact bytes. The SHA-256 is checked on every retrieval; a mismatch is an error, never served."""
    row = _retrieved(ctx, resource_id)
    return open_content(ctx, row), row.content_type, row


def retrieve_or_stream(ctx: Context, resource_id: str, stream_above: int) -> tuple[bytes | None, str, Any]:
    """:func:`retrieve`, except that a document larger than ``stream_above`` bytes is not opened here (``None``
    instead of its bytes): the caller streams it with :func:`~carnet.documents.stored.content_stream` once this
    transaction, which decided and audited the reading, has committed."""
    row = _retrieved(ctx, resource_id)
    return (None if row.size > stream_above else open_content(ctx, row)), row.content_type, row


def _retrieved(ctx: Context, resource_id: str) -> Any:
    row, _ = visible_document(ctx, resource_id, "ITI-68")
    ctx.audit(row.dossier_key, "R", "ITI-68", entity_type="Binary", entity_id=resource_id)
    return row


# --- search (ITI-67) -------------------------------------------------------------------------------------------

@dataclass
class DocumentQuery:
    dossier_key: uuid.UUID
    conditions: list[Any]
    count: int
    offset: int
    sort_desc: bool = True
    total: bool = True  # False (``_total=none``): nothing counted, see :func:`counted_page`


def token_condition(param: str, values: list[tuple[str | None, str]]) -> Any:
    """OR of (system|code) values for one token parameter, as an EXISTS on ``document_token``."""
    alts = []
    for system, code in values:
        cond = [document_token.c.param == param, document_token.c.code == code]
        if system is not None:
            cond.append(document_token.c.system == system)
        alts.append(and_(*cond))
    return exists().where(document_token.c.dossier_key == document.c.dossier_key,
                          document_token.c.document_id == document.c.document_id, or_(*alts))


def search(ctx: Context, q: DocumentQuery, event: str = "ITI-67", query_text: str = "") -> tuple[list[str], int]:
    _, decision = ctx.dossier(q.dossier_key)
    if not decision.read:
        raise ctx.refuse(q.dossier_key, "E", event, forbidden(decision.refusal), detail={"query": query_text})
    rows, total = counted_page(ctx.conn, ctx.now, q, decision.visibility)
    ctx.audit(q.dossier_key, "E", event, entity_type="Patient", entity_id=str(q.dossier_key),
              detail={"query": query_text, "returned": len(rows)})
    return list(rows), total


def _where(now: dt.datetime, q: DocumentQuery, visibility: Visibility) -> Any:
    return and_(document.c.dossier_key == q.dossier_key, visibility.where(document, now), *q.conditions)


def counted_page(conn: Connection, now: dt.datetime, q: DocumentQuery, visibility: Visibility, core: bool = False
                 ) -> tuple[list[str], int]:
    """:func:`page` and the number of documents of the whole search (the searchset's ``total``). Where the page is
    prepared, one statement gives both (:data:`_PAGE_SQL`: the count is an uncorrelated subquery, which
    PostgreSQL evaluates once, when the first row is returned); an empty page past the first, or of ``_count=0``,
    counts apart. Elsewhere the count is a second statement, run only when the page does not already tell it.

    A query that needs no total (``q.total`` false: ``_total=none``) counts nothing: the page is read with one document
    more, which says whether another follows, and the number returned in place of the total is the page's end (its
    offset plus its documents), one more when a document follows it: what the searchset's ``next`` link needs, and
    no more."""
    prepared_page = _page_sql(conn, visibility, q.sort_desc) \
        if not q.conditions and not core and prepared.on_postgres(conn) else None
    if not q.total:
        longer = replace(q, count=q.count + 1)
        one_more = page(conn, now, longer, visibility) if prepared_page is None else [r[0] for r in prepared.fetch_all(
            conn, prepared_page.bare if q.offset else prepared_page.bare_first,
            _page_params(prepared_page, now, longer, visibility))]
        return one_more[:q.count], q.offset + len(one_more)
    if prepared_page is not None:
        found = prepared.fetch_all(conn, prepared_page.sql if q.offset else prepared_page.first,
                                   _page_params(prepared_page, now, q, visibility))
        if found or (q.offset == 0 and q.count > 0):
            return [r[0] for r in found], (int(found[0][1]) if found else 0)
        rows: list[str] = []
    else:
        rows = page(conn, now, q, visibility)
        if q.offset == 0 and len(rows) < q.count:
            return rows, len(rows)
    total = conn.execute(select(func.count()).select_from(document).where(_where(now, q, visibility))).scalar_one()
    return rows, int(total)


def page(conn: Connection, now: dt.datetime, q: DocumentQuery, visibility: Visibility) -> list[str]:
    """The page of documents of a search (their stored JSON) that ``visibility`` lets the caller see at ``now``,
    newest first unless asked otherwise, through Core: :func:`counted_page`'s statement where it is not prepared, and
    what the tests compare the prepared one with."""
    order = (document.c.date.desc(), document.c.document_id.desc()) if q.sort_desc else \
        (document.c.date.asc(), document.c.document_id.asc())
    return list(conn.execute(select(document.c.resource).where(_where(now, q, visibility)).order_by(*order)
                             .limit(q.count).offset(q.offset)).scalars().all())


# :func:`page`'s Core statement as plain SQL, with the search's total beside each row (:func:`counted_page`; the
# subquery names no column of the outer query, so it runs once). Its visibility clause is the policy's own
# (``Visibility.where``, the one rule), compiled once per visibility and order with stand-ins for the request's time
# and the caller's id (the author who always sees their own documents), which take their values at each request: the
# compiled text depends only on the caller's profession and standing, so the cache stays small. The clause is
# compiled twice, with two sets of stand-ins: if anything but the stand-ins' own parameters differs (a clause that
# would compute with the time or the id, say), the visibility is not prepared and :func:`counted_page` runs Core.
#
# The first page has no OFFSET clause: with ``OFFSET %(o)s`` PostgreSQL never chooses the generic plan of the prepared
# statement (its estimate of an unknown offset makes it dearer than the custom plans it compares it with) and plans
# the statement again at each execution, which cost a search 100 µs of PostgreSQL's CPU (docs/PERFORMANCE.md,
# "Stage 4"); without it, it takes the generic plan after five executions. Later pages keep the parameter.
_PAGE_SQL = ("SELECT document.resource{total} FROM document WHERE document.dossier_key = %(k)s AND ({visible}) "
             "ORDER BY document.date {order}, document.document_id {order} LIMIT %(n)s{offset}")
_TOTAL = ", (SELECT count(*) FROM document WHERE document.dossier_key = %(k)s AND ({visible})) AS total"
_OFFSET = " OFFSET %(o)s"
_STAND_INS = ((dt.datetime(1, 1, 2, tzinfo=dt.UTC), "carnet:the-caller"),
              (dt.datetime(2, 3, 4, 5, 6, 7, tzinfo=dt.UTC), "carnet:another-caller"))


@dataclass(frozen=True)
class PreparedPage:
    sql: str  # _PAGE_SQL
    first: str  # _PAGE_SQL without OFFSET
    bare: str  # _PAGE_SQL without the total (``_total=none``)
    bare_first: str  # and without OFFSET
    params: dict[str, Any]  # the clause's own parameters
    nows: tuple[str, ...]  # the parameters that take the request's time
    callers: tuple[str, ...]  # and those that take the caller's id


def _page_params(prepared_page: PreparedPage, now: dt.datetime, q: DocumentQuery, visibility: Visibility
                 ) -> dict[str, Any]:
    params = dict(prepared_page.params)
    now = now.astimezone(dt.UTC)
    for name in prepared_page.nows:
        params[name] = now
    for name in prepared_page.callers:
        params[name] = visibility.author_id
    params["k"], params["n"] = q.dossier_key, q.count
    if q.offset:
        params["o"] = q.offset
    return params


_PAGES: dict[tuple[Visibility, bool], PreparedPage | None] = {}
_UNKNOWN = object()


def _page_sql(conn: Connection, visibility: Visibility, desc: bool) -> PreparedPage | None:
    key = (replace(visibility, author_id=None if visibility.author_id is None else _STAND_INS[0][1]), desc)
    cached = _PAGES.get(key, _UNKNOWN)
    if cached is not _UNKNOWN:
        return cached  # type: ignore[return-value]
    compiled = []
    for now, caller in _STAND_INS:
        c = replace(key[0], author_id=key[0].author_id and caller).where(document, now).compile(
            dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        compiled.append((c.string, dict(c.params)))
    (text, params), (text2, params2) = compiled
    nows = tuple(n for n, v in params.items() if v == _STAND_INS[0][0])
    callers = tuple(n for n, v in params.items() if v == _STAND_INS[0][1])
    same = text == text2 and params.keys() == params2.keys() and all(
        params2[n] == (_STAND_INS[1][0] if n in nows else _STAND_INS[1][1] if n in callers else v)
        for n, v in params.items())
    order = "DESC" if desc else "ASC"
    total = _TOTAL.format(visible=text)

    def sql(with_total: bool, offset: str) -> str:
        return _PAGE_SQL.format(visible=text, order=order, total=total if with_total else "", offset=offset)

    found = PreparedPage(sql(True, _OFFSET), sql(True, ""), sql(False, _OFFSET), sql(False, ""), params, nows,
                         callers) if same else None
    if len(_PAGES) >= 256:  # never in practice: a few professions and standings
        _PAGES.clear()
    _PAGES[key] = found
    return found


def search_lists(ctx: Context, dossier_key: uuid.UUID, conditions: list[Any], count: int, offset: int,
                 query_text: str) -> tuple[list[str], int]:
    """ITI-66: SubmissionSets (and folders) of a dossier. A List is shown only if the caller sees at least one of
    its documents, and lists only the documents the caller sees, so that a SubmissionSet cannot reveal a hidden
    document's existence."""
    _, decision = ctx.dossier(dossier_key)
    if not decision.read:
        raise ctx.refuse(dossier_key, "E", "ITI-66", forbidden(decision.refusal), detail={"query": query_text})
    visible = exists().where(document.c.dossier_key == submission_set.c.dossier_key,
                             document.c.submission_set_id == submission_set.c.list_id,
                             decision.visibility.where(document, ctx.now))
    where = and_(submission_set.c.dossier_key == dossier_key, visible, *conditions)
    rows = ctx.conn.execute(select(submission_set.c.resource, submission_set.c.list_id).where(where)
                            .order_by(submission_set.c.date.desc()).limit(count).offset(offset)).all()
    total = ctx.conn.execute(select(func.count()).select_from(submission_set).where(where)).scalar_one()
    seen = {str(d) for d in ctx.conn.execute(select(document.c.document_id).where(
        document.c.dossier_key == dossier_key, document.c.submission_set_id.in_([r.list_id for r in rows]),
        decision.visibility.where(document, ctx.now))).scalars()}
    out = []
    for r in rows:
        res = json.loads(r.resource)
        res["entry"] = [e for e in res.get("entry") or []
                        if str((e.get("item") or {}).get("reference", "")).rsplit("/", 1)[-1] in seen]
        out.append(json.dumps(res, ensure_ascii=False, separators=(",", ":")))
    ctx.audit(dossier_key, "E", "ITI-66", entity_type="Patient", entity_id=str(dossier_key),
              detail={"query": query_text, "returned": len(out)})
    return out, total
