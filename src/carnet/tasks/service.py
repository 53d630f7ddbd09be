"""Asking the patient in the moment (issue 4 §3): access requests and rectification requests, as FHIR ``Task``.

Two kinds of request, stored in table ``task`` (its id also goes into ``resource_locator``, so ``Task/{id}`` finds
its dossier):

- **access**: a professional without authorization asks the patient for access. The policy says who may ask
  (:attr:`~carnet.access.policy.Decision.request_access`). The patient or a current legal representative accepts
  (the professional is then authorized through :func:`carnet.dossier.service.change_access`, audited like any other
  grant) or refuses, in one step. A request expires after ``settings.access_request_hours``. When the dossier's
  ``access_requests`` setting is ``refuse``, a request is rejected at once and the patient is never asked.
- **rectification** (GDPR art. 16): the patient asks the author of a document they see for a correction. The author
  answers by replacing the document (ITI-65/ITI-105 ``relatesTo.replaces``: the documents service publishes
  :class:`~carnet.events.DocumentReplaced`, and :func:`on_document_replaced` completes the request) or by a reasoned
  refusal.

Who sees a Task: the patient and current legal representatives (every Task of their dossier), the requester (their
own), the owner (the author, for a rectification addressed to them, unless blocked or shut out of the dossier).
Anyone else gets 404, as if it did not exist. Every read, request, answer and refusal is audited in the dossier's
chain; the events that drive notifications are :data:`EVENTS`.

Statuses (Carnet's vocabulary, used by :class:`TaskView` and the portals): ``requested``, ``completed`` (access
granted, or the document replaced), ``rejected``, ``expired``. FHIR has no ``expired`` Task status: it is rendered as
``cancelled`` with ``statusReason`` "expired" (:mod:`carnet.tasks.fhir`). A request whose expiry has passed reads as
``expired`` at once, even before :func:`expire_due` (the periodic job) records it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, false, insert, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from carnet.access.actors import ActorKind, Mode
from carnet.access.policy import AUTHORIZED_RELATIONS, Decision
from carnet.audit.log import utc
from carnet.context import Context
from carnet.db.tables import practitioner, resource_locator, task
from carnet.documents import service as documents
from carnet.dossier import service as dossiers
from carnet.errors import FhirError, conflict, forbidden, not_found, unprocessable
from carnet.events import DocumentReplaced
from carnet.ids import new_id, parse_id

ACCESS = "access"
RECTIFICATION = "rectification"
KINDS = (ACCESS, RECTIFICATION)
STATUSES = ("requested", "completed", "rejected", "expired")
PATIENT_SIDE = ("patient", "representative")
BY_POLICY = "policy"  # answered_by of a request rejected at once by the dossier's "refuse" setting
MAX_TEXT = 4000  # characters of a reason, a note or a rectification text

EVENTS = {
    "access.request": "task.access.request", "access.accept": "task.access.accept",
    "access.reject": "task.access.reject", "access.expire": "task.access.expire",
    "rectification.request": "task.rectification.request", "rectification.answer": "task.rectification.answer",
}


@dataclass(frozen=True)
class TaskView:
    """One request as the portals and the API show it. ``status`` is Carnet's (``expired`` included)."""

    id: uuid.UUID
    dossier_key: uuid.UUID
    kind: str  # access | rectification
    status: str  # requested | completed | rejected | expired
    requester_kind: str  # practitioner | patient | representative
    requester_id: str
    requester_name: str | None  # a professional's display name (the directory), else None
    requester_profession: str | None  # TRE_G15
    requester_organisation: str | None
    owner_id: str | None  # rectification: the author who must answer
    owner_name: str | None
    focus: str | None  # "DocumentReference/{id}" for a rectification
    reason: str | None  # the professional's reason, or the patient's rectification text
    answer: str | None  # the patient's note, or the author's reasoned refusal
    result: str | None  # "DocumentReference/{id}": the replacement that completed a rectification
    created_at: dt.datetime
    expires_at: dt.datetime | None
    answered_at: dt.datetime | None
    answered_by: str | None
    last_updated: dt.datetime
    version: int

    @property
    def by_policy(self) -> bool:
        """Rejected at once because the patient refuses every access request."""
        return self.answered_by == BY_POLICY

    @property
    def status_reason(self) -> str | None:
        if self.status == "expired":
            return "expired"
        if self.by_policy:
            return "The patient does not accept access requests"
        if self.status == "rejected":
            return self.answer
        return None


# --- reading ------------------------------------------------------------------------------------------------------

def _aware(ts: dt.datetime | None) -> dt.datetime | None:
    return None if ts is None else utc(ts)


def _status(row: Any, now: dt.datetime) -> str:
    expires = _aware(row.expires_at)
    if row.status == "requested" and expires is not None and expires <= now:
        return "expired"
    return str(row.status)


def _views(ctx: Context, rows: Iterable[Any]) -> list[TaskView]:
    rows = list(rows)
    ids = {r.requester_id for r in rows if r.requester_kind == "practitioner"} | {r.owner_id for r in rows
                                                                                 if r.owner_id}
    pros = {p.national_id: p for p in ctx.conn.execute(select(
        practitioner.c.national_id, practitioner.c.given, practitioner.c.family, practitioner.c.profession,
        practitioner.c.organisation_name).where(practitioner.c.national_id.in_(sorted(ids))))} if ids else {}
    out = []
    for r in rows:
        req = pros.get(r.requester_id) if r.requester_kind == "practitioner" else None
        own = pros.get(r.owner_id) if r.owner_id else None
        out.append(TaskView(
            id=r.task_id, dossier_key=r.dossier_key, kind=r.kind, status=_status(r, ctx.now),
            requester_kind=r.requester_kind, requester_id=r.requester_id,
            requester_name=f"{req.given} {req.family}" if req else None,
            requester_profession=req.profession if req else None,
            requester_organisation=req.organisation_name if req else None,
            owner_id=r.owner_id, owner_name=f"{own.given} {own.family}" if own else None,
            focus=f"{r.focus_type}/{r.focus_id}" if r.focus_type and r.focus_id else None,
            reason=r.reason, answer=r.answer,
            result=f"DocumentReference/{r.result_id}" if r.result_id else None,
            created_at=utc(r.created_at), expires_at=_aware(r.expires_at), answered_at=_aware(r.answered_at),
            answered_by=r.answered_by, last_updated=utc(r.last_updated), version=r.version))
    return out


def _role(ctx: Context, row: Any, decision: Decision) -> str | None:
    """Why the caller may see this Task: ``patient`` (their dossier), ``requester`` (their own request), ``owner``
    (a rectification addressed to them), or None (404)."""
    a = ctx.actor
    if decision.basis in PATIENT_SIDE:
        return "patient"
    if a.kind is ActorKind.PROFESSIONAL and a.id:
        if row.requester_kind == "practitioner" and row.requester_id == a.id:
            return "requester"
        if row.kind == RECTIFICATION and row.owner_id == a.id and decision.check:
            return "owner"
    return None


def _load(ctx: Context, task_id: str | uuid.UUID, event: str, action: str = "R",
          lock: bool = False) -> tuple[Any, Decision, str]:
    """The Task, the caller's decision on its dossier and their role; 404 (audited) when they may not see it."""
    tid = task_id if isinstance(task_id, uuid.UUID) else parse_id(task_id)
    if tid is None:
        raise not_found("Task")
    key = ctx.conn.execute(select(resource_locator.c.dossier_key).where(
        resource_locator.c.resource_id == tid)).scalar()
    if key is None:
        raise not_found("Task")
    _, decision = ctx.dossier(key, lock=lock)
    q = select(task).where(task.c.dossier_key == key, task.c.task_id == tid)
    row = ctx.conn.execute(q.with_for_update() if lock else q).first()
    role = _role(ctx, row, decision) if row is not None else None
    if row is None or role is None:
        raise ctx.refuse(key, action, event, not_found("Task"), entity_type="Task", entity_id=str(tid))
    return row, decision, role


def get(ctx: Context, task_id: str | uuid.UUID) -> TaskView:
    row, _, _ = _load(ctx, task_id, "task.read")
    ctx.audit(row.dossier_key, "R", "task.read", entity_type="Task", entity_id=str(row.task_id))
    return _views(ctx, [row])[0]


def status_condition(statuses: Iterable[str], now: dt.datetime) -> ColumnElement[bool]:
    """Carnet statuses as SQL on ``task``: a request past its expiry is ``expired``, not ``requested``."""
    now = now.astimezone(dt.UTC)  # SQLite keeps no offset: compare UTC with UTC
    live = or_(task.c.expires_at.is_(None), task.c.expires_at > now)
    conds: list[ColumnElement[bool]] = []
    for s in statuses:
        if s == "requested":
            conds.append(and_(task.c.status == "requested", live))
        elif s == "expired":
            conds.append(or_(task.c.status == "expired", and_(task.c.status == "requested", ~live)))
        elif s in STATUSES:
            conds.append(task.c.status == s)
        else:
            raise FhirError(400, "invalid", "Unknown Task status", "status")
    return or_(*conds) if conds else false()


def _caller_filter(ctx: Context, decision: Decision) -> ColumnElement[bool] | None:
    """The Tasks of one dossier the caller sees, as SQL (None: all of them)."""
    a = ctx.actor
    if decision.basis in PATIENT_SIDE:
        return None
    if a.kind is ActorKind.PROFESSIONAL and a.id:
        mine = and_(task.c.requester_kind == "practitioner", task.c.requester_id == a.id)
        if decision.check:
            return or_(mine, and_(task.c.kind == RECTIFICATION, task.c.owner_id == a.id))
        return mine
    return false()


def list_for_dossier(ctx: Context, dossier_key: uuid.UUID, kinds: Iterable[str] | None = None,
                     statuses: Iterable[str] | None = None, *, owner: str | None = None,
                     requester: str | None = None, limit: int = 500) -> list[TaskView]:
    """The Tasks of a dossier that the caller sees, newest first. The patient side sees them all; a professional
    sees their own requests and the rectifications addressed to them; anyone else is refused (403, audited)."""
    _, decision = ctx.dossier(dossier_key)
    a = ctx.actor
    if decision.basis not in PATIENT_SIDE and a.kind is not ActorKind.PROFESSIONAL:
        raise ctx.refuse(dossier_key, "E", "task.search", forbidden(decision.refusal))
    conds: list[ColumnElement[bool]] = [task.c.dossier_key == dossier_key]
    visible = _caller_filter(ctx, decision)
    if visible is not None:
        conds.append(visible)
    if kinds is not None:
        conds.append(task.c.kind.in_(list(kinds)))
    if statuses is not None:
        conds.append(status_condition(statuses, ctx.now))
    if owner is not None:
        conds.append(task.c.owner_id == owner)
    if requester is not None:
        conds.append(task.c.requester_id == requester)
    rows = ctx.conn.execute(select(task).where(*conds).order_by(task.c.created_at.desc(), task.c.task_id.desc())
                            .limit(limit)).all()
    ctx.audit(dossier_key, "E", "task.search", entity_type="Patient", entity_id=str(dossier_key),
              detail={"returned": len(rows)})
    return _views(ctx, rows)


def for_copy(ctx: Context, dossier_key: uuid.UUID, decision: Decision) -> list[TaskView]:
    """The Tasks of a dossier that the patient side sees (all of them), oldest first, for a caller whose ``decision``
    was already taken (the complete copy, audited once by the copy itself). Nothing for anyone else."""
    if decision.basis not in PATIENT_SIDE:
        return []
    rows = ctx.conn.execute(select(task).where(task.c.dossier_key == dossier_key)
                            .order_by(task.c.created_at, task.c.task_id)).all()
    return _views(ctx, rows)


def list_addressed_to_me(ctx: Context, kinds: Iterable[str] | None = None, statuses: Iterable[str] | None = None,
                         *, as_owner: bool = True, limit: int = 500) -> list[TaskView]:
    """A professional's own requests (``as_owner=False``) or the rectifications addressed to them, across dossiers.

    This fans out over every dossier (SCALE.md): it is a reporting path for a professional's work list, not a hot
    path; at national scale it would read a lookup keyed by the owner. Each dossier is still decided by the policy:
    an owner blocked or shut out of a dossier does not see its rectifications."""
    a = ctx.actor
    if a.kind is not ActorKind.PROFESSIONAL or not a.id:
        raise forbidden("Only a professional lists the requests addressed to them")
    conds: list[ColumnElement[bool]] = [
        and_(task.c.kind == RECTIFICATION, task.c.owner_id == a.id) if as_owner else
        and_(task.c.requester_kind == "practitioner", task.c.requester_id == a.id)]
    if kinds is not None:
        conds.append(task.c.kind.in_(list(kinds)))
    if statuses is not None:
        conds.append(status_condition(statuses, ctx.now))
    rows = ctx.conn.execute(select(task).where(*conds).order_by(task.c.created_at.desc(), task.c.task_id.desc())
                            .limit(limit)).all()
    decided: dict[uuid.UUID, bool] = {}
    kept = []
    for r in rows:
        if r.dossier_key not in decided:
            _, decision = ctx.dossier(r.dossier_key)
            decided[r.dossier_key] = not as_owner or decision.check
            if decided[r.dossier_key]:
                ctx.audit(r.dossier_key, "E", "task.search", entity_type="Patient", entity_id=str(r.dossier_key),
                          detail={"owner" if as_owner else "requester": a.id})
        if decided[r.dossier_key]:
            kept.append(r)
    return _views(ctx, kept)


# --- access requests -----------------------------------------------------------------------------------------------

def _text(value: str | None, expression: str, required: bool = False) -> str | None:
    text = (value or "").strip()
    if not text:
        if required:
            raise unprocessable("A text is required", expression, "required")
        return None
    if len(text) > MAX_TEXT:
        raise unprocessable(f"The text is longer than {MAX_TEXT} characters", expression)
    return text


def _insert(ctx: Context, key: uuid.UUID, **values: Any) -> uuid.UUID:
    tid = new_id()
    ctx.conn.execute(insert(task).values(dossier_key=key, task_id=tid, created_at=ctx.now, last_updated=ctx.now,
                                         version=1, **values))
    ctx.conn.execute(insert(resource_locator).values(resource_id=tid, dossier_key=key))
    return tid


def _row(ctx: Context, key: uuid.UUID, tid: uuid.UUID) -> Any:
    return ctx.conn.execute(select(task).where(task.c.dossier_key == key, task.c.task_id == tid)).one()


def _finish(ctx: Context, row: Any, status: str, **values: Any) -> None:
    ctx.conn.execute(update(task).where(task.c.dossier_key == row.dossier_key, task.c.task_id == row.task_id).values(
        status=status, answered_at=ctx.now, last_updated=ctx.now, version=row.version + 1, **values))


def open_access_request(ctx: Context, dossier_key: uuid.UUID, reason: str | None) -> tuple[TaskView, bool]:
    """:func:`request_access`, and whether a new request was made (False: the pending one is given back)."""
    a = ctx.actor
    row, decision = ctx.dossier(dossier_key, lock=True)
    if not decision.request_access:
        if decision.read and decision.basis in AUTHORIZED_RELATIONS:
            raise ctx.refuse(dossier_key, "C", EVENTS["access.request"],
                             conflict("This professional already has access to this dossier"))
        if a.kind is not ActorKind.PROFESSIONAL:
            err = forbidden("Only a professional asks the patient for access")
        elif a.mode is not Mode.NORMAL and decision.refusal_code not in ("blocked", "profession", "closed"):
            err = forbidden("Access is requested in normal mode")
        else:
            err = forbidden(decision.refusal)
        raise ctx.refuse(dossier_key, "C", EVENTS["access.request"], err, entity_type="Task")
    text = _text(reason, "Task.reasonCode.text")
    mine = and_(task.c.dossier_key == dossier_key, task.c.kind == ACCESS, task.c.requester_kind == "practitioner",
                task.c.requester_id == a.id, task.c.status == "requested")
    for old in ctx.conn.execute(select(task).where(mine).with_for_update()).all():
        if _status(old, ctx.now) == "requested":  # asking twice gives the pending request back
            ctx.audit(dossier_key, "R", "task.read", entity_type="Task", entity_id=str(old.task_id),
                      detail={"again": True})
            return _views(ctx, [old])[0], False
        _expire(ctx, old)  # past its expiry: recorded now, and a new request follows
    expires = ctx.now + dt.timedelta(hours=ctx.settings.access_request_hours)
    common: dict[str, Any] = dict(kind=ACCESS, requester_kind="practitioner", requester_id=a.id or "",
                                  reason=text, expires_at=expires)
    if row.access_requests == "refuse":
        tid = _insert(ctx, dossier_key, status="rejected", answered_at=ctx.now, answered_by=BY_POLICY, **common)
        ctx.audit(dossier_key, "C", EVENTS["access.reject"], entity_type="Task", entity_id=str(tid),
                  detail={"by": BY_POLICY, "requester": a.id})
    else:
        tid = _insert(ctx, dossier_key, status="requested", **common)
        ctx.audit(dossier_key, "C", EVENTS["access.request"], entity_type="Task", entity_id=str(tid),
                  detail={"requester": a.id, "expires": expires.astimezone(dt.UTC).isoformat()})
    return _views(ctx, [_row(ctx, dossier_key, tid)])[0], True


def request_access(ctx: Context, dossier_key: uuid.UUID, reason: str | None = None) -> TaskView:
    """A professional without authorization asks the patient for access (normal mode, not blocked, dossier open).

    Asking again while a request is pending gives the pending one back. An authorized professional gets 409; a
    blocked professional, an insurer, a patient… 403 (audited). If the patient refuses every request, the Task is
    created already ``rejected`` and the patient is not asked."""
    return open_access_request(ctx, dossier_key, reason)[0]


def _require_patient_side(ctx: Context, row: Any, decision: Decision, role: str, event: str) -> None:
    if role != "patient":
        raise ctx.refuse(row.dossier_key, "U", event, forbidden("Only the patient or a legal representative answers "
                                                                "this request"),
                         entity_type="Task", entity_id=str(row.task_id))
    if not decision.manage_access:
        raise ctx.refuse(row.dossier_key, "U", event, forbidden("This dossier is closed"),
                         entity_type="Task", entity_id=str(row.task_id))


def _require_open(ctx: Context, row: Any, event: str) -> None:
    status = _status(row, ctx.now)
    if status != "requested":
        raise ctx.refuse(row.dossier_key, "U", event,
                         conflict("This request has expired" if status == "expired" else
                                  "This request has already been answered"),
                         entity_type="Task", entity_id=str(row.task_id), detail={"task_status": status})


def answer_access(ctx: Context, task_id: str | uuid.UUID, accept: bool, note: str | None = None) -> TaskView:
    """The patient (or a current legal representative) accepts or refuses an access request, in one step.
    Accepting authorizes the professional (``change_access``, audited as ``access.consent``)."""
    event = EVENTS["access.accept" if accept else "access.reject"]
    row, decision, role = _load(ctx, task_id, event, "U", lock=True)
    if row.kind != ACCESS:
        raise unprocessable("This Task is not an access request", "Task.code")
    _require_patient_side(ctx, row, decision, role, event)
    _require_open(ctx, row, event)
    text = _text(note, "Task.note")
    if accept:
        dossiers.change_access(ctx, row.dossier_key, "practitioner", row.requester_id, "authorized")
    _finish(ctx, row, "completed" if accept else "rejected", answer=text, answered_by=ctx.actor.audit_id)
    ctx.audit(row.dossier_key, "U", event, entity_type="Task", entity_id=str(row.task_id),
              detail={"requester": row.requester_id})
    return _views(ctx, [_row(ctx, row.dossier_key, row.task_id)])[0]


def _expire(ctx: Context, row: Any) -> None:
    # Conditional on the status: when workers on two nodes expire the same request at once, one of them does (and
    # audits it); the other finds it no longer "requested" and leaves it.
    done = ctx.conn.execute(update(task).where(task.c.dossier_key == row.dossier_key, task.c.task_id == row.task_id,
                                               task.c.status == "requested").values(
        status="expired", last_updated=ctx.now, version=row.version + 1))
    if done.rowcount != 1:
        return
    ctx.audit(row.dossier_key, "U", EVENTS["access.expire"], entity_type="Task", entity_id=str(row.task_id),
              detail={"requester": row.requester_id})


def expire_due(ctx: Context, batch: int = 1000) -> int:
    """Periodic job (operator): record as expired every access request past its expiry; returns how many. Fans out
    over the dossiers, as a batch job may; each expiry is audited in its dossier's chain (``task.access.expire``)."""
    if ctx.actor.kind is not ActorKind.OPERATOR:
        raise forbidden("Only an operator runs the expiry job")
    now = ctx.now.astimezone(dt.UTC)
    rows = ctx.conn.execute(select(task).where(task.c.kind == ACCESS, task.c.status == "requested",
                                               task.c.expires_at <= now).limit(batch)).all()
    for row in rows:
        _expire(ctx, row)
    return len(rows)


def set_access_request_policy(ctx: Context, dossier_key: uuid.UUID, policy: str) -> None:
    """``ask`` (the patient is prompted) or ``refuse`` ("never ask me, refuse"); the patient side only."""
    dossiers.set_access_requests(ctx, dossier_key, policy)


# --- rectification -------------------------------------------------------------------------------------------------

def request_rectification(ctx: Context, document_id: str, text: str | None) -> TaskView:
    """The patient (or a legal representative) asks the author of a document they see to correct it (GDPR art. 16).
    The document must be current and written by a professional; the author becomes the Task's owner."""
    event = EVENTS["rectification.request"]
    doc, decision = documents.visible_document(ctx, document_id, event, "C")
    key = doc.dossier_key
    if decision.basis not in PATIENT_SIDE:
        raise ctx.refuse(key, "C", event, forbidden("Only the patient or a legal representative asks for a "
                                                    "rectification"))
    if not decision.manage_access:
        raise ctx.refuse(key, "C", event, forbidden("This dossier is closed"))
    if doc.status != "current":
        raise conflict("Only a current document can be rectified", "Task.focus")
    author = doc.author_id
    if not author or ctx.conn.execute(select(practitioner.c.national_id).where(
            practitioner.c.national_id == author)).first() is None:
        raise unprocessable("This document has no professional author to answer a rectification request (the "
                            "patient's own documents are replaced or deleted by the patient)", "Task.focus")
    body = _text(text, "Task.description", required=True)
    requester_kind = "patient" if ctx.actor.kind is ActorKind.PATIENT else "representative"
    tid = _insert(ctx, key, kind=RECTIFICATION, status="requested", requester_kind=requester_kind,
                  requester_id=ctx.actor.audit_id, owner_id=author, focus_type="DocumentReference",
                  focus_id=str(doc.document_id), reason=body)
    ctx.audit(key, "C", event, entity_type="Task", entity_id=str(tid),
              detail={"document": str(doc.document_id), "owner": author})
    return _views(ctx, [_row(ctx, key, tid)])[0]


def answer_rectification(ctx: Context, task_id: str | uuid.UUID, refusal_reason: str | None) -> TaskView:
    """The author refuses a rectification, with a reason (required: 422 otherwise). Accepting is replacing the
    document (``relatesTo.replaces``), which completes the Task (:func:`complete_rectifications`)."""
    event = EVENTS["rectification.answer"]
    row, _, role = _load(ctx, task_id, event, "U", lock=True)
    if row.kind != RECTIFICATION:
        raise unprocessable("This Task is not a rectification request", "Task.code")
    if role != "owner":
        raise ctx.refuse(row.dossier_key, "U", event, forbidden("Only the author of the document answers a "
                                                                "rectification request"),
                         entity_type="Task", entity_id=str(row.task_id))
    _require_open(ctx, row, event)
    reason = _text(refusal_reason, "reason", required=True)
    _finish(ctx, row, "rejected", answer=reason, answered_by=ctx.actor.audit_id)
    ctx.audit(row.dossier_key, "U", event, entity_type="Task", entity_id=str(row.task_id),
              detail={"outcome": "rejected"})
    return _views(ctx, [_row(ctx, row.dossier_key, row.task_id)])[0]


def complete_rectifications(ctx: Context, dossier_key: uuid.UUID, replaced: uuid.UUID,
                            replacement: uuid.UUID) -> int:
    """Called when a document is replaced (``relatesTo.replaces``): every open rectification of the replaced
    document is completed, with the replacement as its output. Returns how many."""
    rows = ctx.conn.execute(select(task).where(
        task.c.dossier_key == dossier_key, task.c.kind == RECTIFICATION, task.c.status == "requested",
        task.c.focus_type == "DocumentReference", task.c.focus_id == str(replaced)).with_for_update()).all()
    for row in rows:
        _finish(ctx, row, "completed", result_id=str(replacement), answered_by=ctx.actor.audit_id)
        ctx.audit(dossier_key, "U", EVENTS["rectification.answer"], entity_type="Task", entity_id=str(row.task_id),
                  detail={"outcome": "replaced", "document": str(replacement)})
    return len(rows)


def on_document_replaced(ctx: Context, replaced: DocumentReplaced) -> None:
    """Subscriber to :class:`~carnet.events.DocumentReplaced` (wired by :mod:`carnet.compose`), in the replacement's
    transaction: :func:`complete_rectifications`."""
    complete_rectifications(ctx, replaced.dossier_key, replaced.replaced, replaced.replacement)


# --- the API's answers: one entry point per operation --------------------------------------------------------------

def accept(ctx: Context, task_id: str, note: str | None = None) -> TaskView:
    """``$accept``: an access request only (a rectification is answered by replacing the document)."""
    row, _, _ = _load(ctx, task_id, "task.accept", "U")
    if row.kind != ACCESS:
        raise unprocessable("A rectification is answered by replacing the document (relatesTo.replaces) or "
                            "refused with $reject", "Task.code")
    return answer_access(ctx, task_id, True, note)


def reject(ctx: Context, task_id: str, reason: str | None = None) -> TaskView:
    """``$reject``: the patient refuses an access request (reason optional), or the author refuses a rectification
    (reason required)."""
    row, _, _ = _load(ctx, task_id, "task.reject", "U")
    if row.kind == ACCESS:
        return answer_access(ctx, task_id, False, reason)
    return answer_rectification(ctx, task_id, reason)
