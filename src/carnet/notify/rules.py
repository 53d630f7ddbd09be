"""Which audited events notify the people linked to a dossier (issue 4 §5; DOMAIN.md: break-glass and regulation
accesses are notified afterwards). :func:`on_audit` subscribes to :class:`carnet.events.Audited`, which
:meth:`carnet.context.Context.audit` publishes for every successful record, inside the same transaction, so a message
exists exactly when its event committed (the subscription is wired by :mod:`carnet.compose`).

The hot path stays cheap: an event with no rule, by anyone but a professional, costs nothing; a professional's read
in normal mode costs one insert-if-absent into ``professional_seen`` (the first access is notified once, ever), which
the audit append makes in its own statement on PostgreSQL (:func:`access_marker`, ``Services.access_marker``).

Rules (messages carry no health content; see docs/NOTIFICATIONS.md):
- ``dossier.create`` → dossier.created; ``account.activate`` → dossier.activated; ``dossier.close`` /
  ``dossier.reopen`` → dossier.closed / dossier.reopened;
- a new document (``ITI-65`` / ``ITI-105`` on a DocumentReference) → document.new, unless it is ``INVISIBLE_PATIENT``
  (the patient must not learn of it before its announcement) or the patient side added it themselves; a document
  hidden from legal representatives is not announced to them;
- any access by a professional in normal mode → access.first, once per professional and dossier;
- in emergency (break the glass) or regulation mode → access.emergency / access.regulation, always sent, once per
  professional, mode and (UTC) day; on the same occasion, a notice in the médecin traitant's clinician-portal inbox
  (``pro_notice``), unless there is none or they are the one accessing;
- ``task.access.request`` → access.request (always sent); ``task.rectification.answer`` → rectification.answer;
- ``access.*`` changes of rights → access.rights;
- ``access.code.use`` (a professional took up an access code the patient gave) → access.code_used, always sent;
- ``access.code.use_hidden`` (an authorized professional took up the code for the hidden documents) →
  access.code_hidden_used, always sent;
  ``access.code.frozen`` (too many wrong access codes on the dossier: its codes are frozen for a while) →
  access.code_frozen, always sent;
- ``teleconsult.schedule`` / ``teleconsult.start`` / ``teleconsult.cancel`` (a professional booked a
  teleconsultation, opened one now and waits, or called one off) → teleconsult.scheduled / teleconsult.started /
  teleconsult.cancelled, always sent, with the link to the portal's Teleconsultations page;
- ``share.open`` (someone opened a SMART Health Link the patient shared) → share.opened, once per link and (UTC) day
  (a long-term link's client may poll);
- documents awaiting their announcement are found by a periodic job (:func:`announce_due`), not by an event.
"""

from __future__ import annotations

import datetime as dt
import uuid
import weakref
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, bindparam, false, insert, select, true
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from carnet.access.actors import Actor, ActorKind, Mode
from carnet.context import Context
from carnet.db.tables import document, dossier, pro_notice, pro_notice_by_recipient, professional_seen
from carnet.events import Audited
from carnet.ids import SYSTEM_CHAIN, new_id, parse_id
from carnet.notify.outbox import enqueue

PATIENT_SIDE = frozenset({ActorKind.PATIENT, ActorKind.REPRESENTATIVE})
PUBLISH_EVENTS = frozenset({"ITI-65", "ITI-105"})
RIGHTS_EVENTS = frozenset({"access.consent", "access.gp_rights", "access.block", "access.withdraw",
                           "access.treating_gp", "access.objection"})

_SEEN_VALUES: dict[str, Any] = {"dossier_key": bindparam("k"), "subject_id": bindparam("s"), "first_at": bindparam("t")}
# RETURNING tells whether the row was added (the driver's rowcount is not reliable for ON CONFLICT DO NOTHING).
_SEEN_PG = pg_insert(professional_seen).values(_SEEN_VALUES).on_conflict_do_nothing().returning(
    professional_seen.c.first_at)
_SEEN_SQLITE = sqlite_insert(professional_seen).values(_SEEN_VALUES).on_conflict_do_nothing().returning(
    professional_seen.c.first_at)
_DOC = select(document.c.invisible_patient, document.c.invisible_representatives).where(
    document.c.dossier_key == bindparam("k"), document.c.document_id == bindparam("d"))
_TREATING_GP = select(dossier.c.treating_gp).where(dossier.c.dossier_key == bindparam("k"))


def first_time(conn: Connection, dossier_key: uuid.UUID, subject_id: str, now: dt.datetime) -> bool:
    """Record ``subject_id`` in ``professional_seen`` if absent, in one statement; True when this call added it.
    Concurrent callers are safe: exactly one of them sees True."""
    stmt = _SEEN_PG if conn.dialect.name == "postgresql" else _SEEN_SQLITE
    return conn.execute(stmt, {"k": dossier_key, "s": subject_id, "t": now.astimezone(dt.UTC)}).first() is not None


def on_audit(ctx: Context, audited: Audited) -> None:
    """Turn one successful audit record into notifications (see the module docstring). Refusals are never
    notified: they are rolled back and recorded elsewhere (and never published)."""
    dossier_key, event = audited.dossier_key, audited.event
    if dossier_key == SYSTEM_CHAIN:
        return
    actor = ctx.actor
    if audited.mark is not None:  # the audit append recorded the marker (Services.access_marker is this module's)
        _professional_access(ctx, dossier_key, audited.mark, audited.first_mark)
    else:
        subject = access_marker(dossier_key, actor, event, dict(audited.detail or {}), ctx.now)
        if subject is not None:
            _professional_access(ctx, dossier_key, subject, None)
    rule = _RULES.get(event)
    if rule is not None:
        rule(ctx, audited)


# Markers already written by this transaction: a bundle of fifty documents costs one insert, not fifty.
_SEEN_IN_TRANSACTION: weakref.WeakKeyDictionary[Context, set[tuple[uuid.UUID, str]]] = weakref.WeakKeyDictionary()


def access_marker(dossier_key: uuid.UUID, actor: Actor, event: str, detail: dict[str, Any] | None,
                  now: dt.datetime) -> str | None:
    """What an audited event by ``actor`` marks in ``professional_seen`` (``Services.access_marker``, so that the audit
    append records it in the same statement): any access by a professional, but a check that found nothing (ITI-78
    with no match), keyed by the professional in normal mode, by mode, professional and UTC day otherwise."""
    if dossier_key == SYSTEM_CHAIN or actor.kind is not ActorKind.PROFESSIONAL or not actor.id:
        return None
    if event == "ITI-78" and (detail or {}).get("returned") == 0:
        return None
    if actor.mode is Mode.NORMAL:
        return actor.id
    return f"{actor.mode.value}:{actor.id}:{now.astimezone(dt.UTC).date().isoformat()}"


def _professional_access(ctx: Context, dossier_key: uuid.UUID, subject: str, first: bool | None) -> None:
    """Notify a first access (``first``: whether the audit append added the marker ``subject``; None: not recorded
    yet, so record it here)."""
    mode, professional_id = ctx.actor.mode, str(ctx.actor.id)
    notification = "access.first" if mode is Mode.NORMAL else f"access.{mode.value}"
    seen = _SEEN_IN_TRANSACTION.setdefault(ctx, set())
    if (dossier_key, subject) in seen:
        return
    seen.add((dossier_key, subject))
    if first is None:
        first = first_time(ctx.conn, dossier_key, subject, ctx.now)
    if first:
        enqueue(ctx, dossier_key, notification, always=mode is not Mode.NORMAL)
        if mode is not Mode.NORMAL:
            _notice_to_treating_gp(ctx, dossier_key, professional_id, mode)


def _notice_to_treating_gp(ctx: Context, dossier_key: uuid.UUID, professional_id: str, mode: Mode) -> None:
    """The médecin traitant's notice of an emergency or regulation access (their clinician-portal inbox), with its
    lookup row by recipient, in the access's transaction; none without a médecin traitant or when they are the one
    accessing. It holds no reason and no health content: the inbox reads the reason from the access's audit record."""
    gp = ctx.conn.execute(_TREATING_GP, {"k": dossier_key}).scalar()
    if not gp or gp == professional_id:
        return
    notice_id, at = new_id(), ctx.now.astimezone(dt.UTC)
    ctx.conn.execute(insert(pro_notice).values(dossier_key=dossier_key, notice_id=notice_id, recipient_id=gp,
                                               kind=mode.value, accessor_id=professional_id, at=at))
    ctx.conn.execute(insert(pro_notice_by_recipient).values(recipient_id=gp, notice_id=notice_id,
                                                            dossier_key=dossier_key, at=at))


def _simple(notification: str) -> Callable[[Context, Audited], None]:
    def rule(ctx: Context, audited: Audited) -> None:
        enqueue(ctx, audited.dossier_key, notification)
    return rule


def _new_document(ctx: Context, audited: Audited) -> None:
    dossier_key, entity_id = audited.dossier_key, audited.entity_id
    document_id = parse_id(entity_id) if audited.entity_type == "DocumentReference" and entity_id else None
    if document_id is None or ctx.actor.kind in PATIENT_SIDE:
        return
    facts = audited.facts or {}
    if "invisible_patient" in facts:  # the publisher said (documents.publishing): no need to read it back
        invisible, hidden_from_representatives = facts["invisible_patient"], facts.get("invisible_representatives")
    else:
        row = ctx.conn.execute(_DOC, {"k": dossier_key, "d": document_id}).first()
        if row is None:
            return
        invisible, hidden_from_representatives = row.invisible_patient, row.invisible_representatives
    if invisible:
        return
    enqueue(ctx, dossier_key, "document.new", exclude_representatives=bool(hidden_from_representatives))


def _link_opened(ctx: Context, audited: Audited) -> None:
    if first_time(ctx.conn, audited.dossier_key,
                  f"share:{audited.entity_id}:{ctx.now.astimezone(dt.UTC).date().isoformat()}", ctx.now):
        enqueue(ctx, audited.dossier_key, "share.opened")


_RULES: dict[str, Callable[[Context, Audited], None]] = {
    "dossier.create": _simple("dossier.created"),
    "account.activate": _simple("dossier.activated"),
    "dossier.close": _simple("dossier.closed"),
    "dossier.reopen": _simple("dossier.reopened"),
    "task.access.request": _simple("access.request"),
    "task.rectification.answer": _simple("rectification.answer"),
    **{e: _new_document for e in PUBLISH_EVENTS},
    **{e: _simple("access.rights") for e in RIGHTS_EVENTS},
    "share.open": _link_opened,
    "access.code.use": _simple("access.code_used"),  # a professional took up an access code (issue 13 §1)
    "access.code.use_hidden": _simple("access.code_hidden_used"),  # ... the code for the hidden documents
    "access.code.frozen": _simple("access.code_frozen"),  # too many wrong codes: the dossier's codes are frozen
    # a teleconsultation booked, opened now (the professional waits), or called off (issue 12 §1)
    "teleconsult.schedule": _simple("teleconsult.scheduled"),
    "teleconsult.start": _simple("teleconsult.started"),
    "teleconsult.cancel": _simple("teleconsult.cancelled"),
}


def announce_due(ctx: Context) -> int:
    """Periodic job: tell the patient that a document awaits its announcement (DOMAIN.md: "the patient is told within
    2 weeks"). A document qualifies when it is still ``INVISIBLE_PATIENT``, current, not deleted, and was deposited at
    least ``CARNET_ANNOUNCEMENT_NOTICE_DAYS`` ago; each is notified once (``professional_seen`` key
    ``announce:<document id>``). The deposit time is when the invisibility started: ``invisible_patient_until``
    minus ``CARNET_INVISIBLE_PATIENT_DAYS`` (a document whose invisibility has already lapsed is no longer awaiting
    anything and is skipped). This query spans dossiers: it is a background path, never a request's.
    Returns the number of documents announced."""
    s = ctx.settings
    now = ctx.now.astimezone(dt.UTC)
    horizon = now + dt.timedelta(days=s.invisible_patient_days - s.announcement_notice_days)
    rows = ctx.conn.execute(select(document.c.dossier_key, document.c.document_id,
                                   document.c.invisible_representatives).where(
        document.c.invisible_patient == true(), document.c.deleted == false(), document.c.status == "current",
        document.c.invisible_patient_until > now, document.c.invisible_patient_until <= horizon)).all()
    n = 0
    for r in rows:
        if first_time(ctx.conn, r.dossier_key, f"announce:{r.document_id}", now):
            enqueue(ctx, r.dossier_key, "document.announcement",
                    exclude_representatives=bool(r.invisible_representatives))
            n += 1
    return n
