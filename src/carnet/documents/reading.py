"""Reading documents: one DocumentReference, its content (ITI-68, the SHA-256 checked on every retrieval), and the
searches (ITI-67 for DocumentReference, ITI-66 for SubmissionSets), filtered in SQL by the policy's visibility clause
and audited as one search."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, func, or_, select

from carnet.context import Context
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
    where = and_(document.c.dossier_key == q.dossier_key, decision.visibility.where(document, ctx.now),
                 *q.conditions)
    order = (document.c.date.desc(), document.c.document_id.desc()) if q.sort_desc else \
        (document.c.date.asc(), document.c.document_id.asc())
    rows = ctx.conn.execute(select(document.c.resource).where(where).order_by(*order)
                            .limit(q.count).offset(q.offset)).scalars().all()
    if q.offset == 0 and len(rows) < q.count:
        total = len(rows)
    else:
        total = ctx.conn.execute(select(func.count()).select_from(document).where(where)).scalar_one()
    ctx.audit(q.dossier_key, "E", event, entity_type="Patient", entity_id=str(q.dossier_key),
              detail={"query": query_text, "returned": len(rows)})
    return list(rows), total


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
