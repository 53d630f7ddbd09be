"""The dossier's life (DOMAIN.md, "The dossier's life"): create, objections to its creation or its existence, close,
reopen, its state for the patient side, purge after the retention period. Every transition is audited."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update

from carnet.access.actors import ActorKind, Mode
from carnet.context import Context
from carnet.db.tables import (
    access_grant,
    audit,
    audit_chain,
    creation_objection,
    document,
    document_identifier,
    document_token,
    dossier,
    ins_lookup,
    patient_index,
    representative,
    resource_locator,
    submission_set,
)
from carnet.dossier.patient import EXT_CREATION_CONSENT, ins_of, norm, served_patient, traits
from carnet.dossier.reading import lookup
from carnet.dossier.rights import aware, grant, require
from carnet.errors import conflict, forbidden, not_found, unprocessable
from carnet.identity.ins import InvalidIdentifier, parse_ins_identifier
from carnet.ids import new_id


def create(ctx: Context, resource: dict[str, Any], *, channel: str | None = None) -> tuple[uuid.UUID, str]:
    """Create a dossier. By a professional for a patient present (consent recorded, the professional is then
    authorized), by an Assurance Maladie counter agent, or by the patient. Refused when the person objected."""
    actor = ctx.actor
    system, ins = ins_of(resource)
    t = traits(resource)
    kind = actor.kind
    if kind is ActorKind.PROFESSIONAL:
        if actor.mode is not Mode.NORMAL:
            raise forbidden("A dossier is created in normal mode, with the patient present")
        consent = any(e.get("url") == EXT_CREATION_CONSENT and e.get("valueBoolean") is True
                      for e in resource.get("extension") or [])
        if not consent:
            raise unprocessable("The patient's consent to the creation must be recorded (dossier-creation-consent)",
                                "Patient.extension", "required")
        channel = channel or "professional"
    elif kind is ActorKind.ASSURANCE_MALADIE:
        channel = channel or "counter"
    elif kind is ActorKind.PATIENT and actor.id == ins:
        channel = channel or "patient"
    else:
        raise forbidden("This caller may not create a dossier")
    objection = ctx.conn.execute(select(creation_objection.c.ins).where(creation_objection.c.ins == ins)).first()
    if objection is not None:
        if kind is not ActorKind.PATIENT:
            raise conflict("This person has objected to the creation of a shared medical record")
        ctx.conn.execute(delete(creation_objection).where(creation_objection.c.ins == ins))
    existing = lookup(ctx, ins)
    if existing is not None:
        status = ctx.conn.execute(select(dossier.c.status).where(dossier.c.dossier_key == existing)).scalar()
        raise conflict("A dossier already exists for this INS" + (" (closed)" if status == "closed" else ""),
                       "Patient.identifier")
    key = new_id()
    now = ctx.now
    served = served_patient(resource, key, 1, now)
    ctx.conn.execute(insert(ins_lookup).values(ins=ins, dossier_key=key))
    ctx.conn.execute(insert(dossier).values(
        dossier_key=key, status="active", ins_system=system, ins=ins, family=t["family"], given=t["given"],
        birth_date=t["birth_date"], gender=t["gender"], birthplace=t["birthplace"], is_protected_adult=False,
        created_at=now, created_by=actor.audit_id, creation_channel=channel, version=1, last_updated=now,
        resource=json.dumps(served, ensure_ascii=False, separators=(",", ":")), objects_break_glass=False,
        objects_regulation=False))
    ctx.conn.execute(insert(patient_index).values(family_norm=norm(t["family"]), dossier_key=key,
                                                  given_norm=norm(t["given"]), birth_date=t["birth_date"],
                                                  gender=t["gender"]))
    ctx.audit(key, "C", "dossier.create", entity_type="Patient", entity_id=str(key), detail={"channel": channel})
    if kind is ActorKind.PROFESSIONAL:
        grant(ctx, key, "practitioner", actor.id or "", "authorized", event="access.consent")
    from carnet.accounts.service import invite_owner  # the owner's account and activation letter (issue 4)

    invite_owner(ctx, key, resource)
    return key, json.dumps(served, ensure_ascii=False, separators=(",", ":"))


def record_objection(ctx: Context, ins_system: str, ins_value: str) -> None:
    """The person objects to the creation of a dossier (recorded before any dossier exists)."""
    try:
        _, ins = parse_ins_identifier(ins_system, ins_value, "identifier")
    except InvalidIdentifier as exc:
        raise unprocessable(exc.reason, exc.field) from exc
    if ctx.actor.kind not in (ActorKind.PATIENT, ActorKind.ASSURANCE_MALADIE, ActorKind.OPERATOR) or (
            ctx.actor.kind is ActorKind.PATIENT and ctx.actor.id != ins):
        raise forbidden("This caller may not record an objection for this person")
    if lookup(ctx, ins) is not None:
        raise conflict("A dossier already exists: close it instead")
    ctx.conn.execute(insert(creation_objection).values(ins=ins, recorded_at=ctx.now, recorded_by=ctx.actor.audit_id))
    from carnet.ids import SYSTEM_CHAIN

    ctx.audit(SYSTEM_CHAIN, "C", "dossier.objection")


def close(ctx: Context, key: uuid.UUID, reason: str = "patient", death_date: dt.date | None = None) -> None:
    row, decision = ctx.dossier(key, lock=True)
    if reason == "death":
        # At death, the dossier is closed by the system that learns of it (Assurance Maladie or an operator).
        if ctx.actor.kind not in (ActorKind.ASSURANCE_MALADIE, ActorKind.OPERATOR):
            raise ctx.refuse(key, "U", "dossier.close", forbidden("Only Assurance Maladie records a death"))
    else:
        require(ctx, key, decision.close_or_reopen, "dossier.close", decision)
    if row.status != "active":
        raise conflict("The dossier is not open")
    purge_after = ctx.now + dt.timedelta(days=365 * ctx.settings.retention_years + ctx.settings.retention_years // 4)
    ctx.conn.execute(update(dossier).where(dossier.c.dossier_key == key).values(
        status="closed", closed_at=ctx.now, close_reason=reason, death_date=death_date, purge_after=purge_after,
        last_updated=ctx.now))
    ctx.audit(key, "U", "dossier.close", detail={"reason": reason})


def reopen(ctx: Context, key: uuid.UUID) -> None:
    row, decision = ctx.dossier(key, lock=True)
    require(ctx, key, decision.close_or_reopen and row.close_reason != "death", "dossier.reopen", decision)
    if row.status != "closed":
        raise conflict("The dossier is not closed")
    ctx.conn.execute(update(dossier).where(dossier.c.dossier_key == key).values(
        status="active", closed_at=None, close_reason=None, purge_after=None, last_updated=ctx.now))
    # Reopening is the person's choice to have a dossier again: an objection they recorded no longer holds.
    ctx.conn.execute(delete(creation_objection).where(creation_objection.c.ins == row.ins))
    ctx.audit(key, "U", "dossier.reopen")


def object_to_dossier(ctx: Context, key: uuid.UUID) -> None:
    """The patient side objects to the existence of its dossier (issue 4 §2; DOMAIN.md: "The patient may object to
    its creation; the objection is recorded and honoured"). The objection is recorded for the person's INS, so that
    no new dossier is created for them later (:func:`create` refuses it to anyone but the person), and the dossier is
    closed: professionals lose access and the data is kept for the retention period, then purged. The policy's
    ``close_or_reopen`` (the patient side only) decides. Audited ``dossier.objection`` (and ``dossier.close``)."""
    row, decision = ctx.dossier(key, lock=True)
    require(ctx, key, decision.close_or_reopen and decision.basis in ("patient", "representative"),
             "dossier.objection", decision)
    if row.close_reason == "death":
        raise conflict("The dossier is closed")
    if ctx.conn.execute(select(creation_objection.c.ins).where(creation_objection.c.ins == row.ins)).first() is None:
        ctx.conn.execute(insert(creation_objection).values(ins=row.ins, recorded_at=ctx.now,
                                                           recorded_by=ctx.actor.audit_id))
    ctx.audit(key, "U", "dossier.objection", entity_type="Patient", entity_id=str(key))
    if row.status == "active":
        close(ctx, key, reason="objection")


@dataclass(frozen=True)
class DossierState:
    """What the patient side is shown of its dossier's life (the portal's "My dossier")."""

    status: str  # active | closed
    created_at: dt.datetime
    creation_channel: str | None  # professional | counter | patient
    closed_at: dt.datetime | None
    close_reason: str | None  # patient | objection | death
    purge_after: dt.datetime | None
    objected: bool  # an objection to the dossier's existence is recorded


def state(ctx: Context, key: uuid.UUID) -> DossierState:
    """The dossier's state for the patient side (anyone else: refused, audited). Audited ``patient.read``."""
    row, decision = ctx.dossier(key)
    if decision.basis not in ("patient", "representative"):
        raise ctx.refuse(key, "R", "patient.read", forbidden(decision.refusal) if decision.check else
                         not_found("Patient"))
    objected = ctx.conn.execute(select(creation_objection.c.ins).where(
        creation_objection.c.ins == row.ins)).first() is not None
    ctx.audit(key, "R", "patient.read", entity_type="Patient", entity_id=str(key))
    return DossierState(status=row.status, created_at=aware(row.created_at), creation_channel=row.creation_channel,
                        closed_at=aware(row.closed_at) if row.closed_at else None, close_reason=row.close_reason,
                        purge_after=aware(row.purge_after) if row.purge_after else None, objected=objected)


def _sweep(ctx: Context, key: uuid.UUID) -> None:
    """Whatever else holds the dossier's key goes too: every table with a ``dossier_key`` column (the prescriptions,
    measurements and access codes, and any capability's table added later), dependent tables first. The lookup
    tables keyed otherwise (by number, recipient, session) are swept by their dossier column, as the purge's other
    lookups are: a purge is a batch job. ``dossier``, ``ins_lookup``, ``patient_index`` and ``resource_locator`` go
    last, below."""
    from carnet.db.tables import metadata

    last = {"dossier", "ins_lookup", "patient_index", "resource_locator"}
    for table in reversed(metadata.sorted_tables):
        if "dossier_key" in table.c and table.name not in last:
            ctx.conn.execute(delete(table).where(table.c.dossier_key == key))


def purge_due(ctx: Context) -> list[uuid.UUID]:
    """Operator job: erase every dossier closed for longer than the retention period. Its audit chain goes too
    (it is health data); the system chain keeps a trace that a purge happened, with no personal data."""
    from carnet.ids import SYSTEM_CHAIN

    if ctx.actor.kind is not ActorKind.OPERATOR:
        raise forbidden("Only an operator runs the purge")
    keys = list(ctx.conn.execute(select(dossier.c.dossier_key).where(
        dossier.c.status == "closed", dossier.c.purge_after <= ctx.now)).scalars())
    for key in keys:
        blobs = list(ctx.conn.execute(select(document.c.blob_key).where(document.c.dossier_key == key)).scalars())
        ids = list(ctx.conn.execute(select(document.c.document_id).where(document.c.dossier_key == key)).scalars())
        lists = list(ctx.conn.execute(select(submission_set.c.list_id).where(
            submission_set.c.dossier_key == key)).scalars())
        for table in (document_token, document, submission_set, access_grant, representative, audit, audit_chain):
            ctx.conn.execute(delete(table).where(table.c.dossier_key == key))
        from carnet.db.tables import contact  # the emergency contacts (issue 4)

        ctx.conn.execute(delete(contact).where(contact.c.dossier_key == key))
        from carnet.db.tables import clinical_item  # structured data (issue 3 §2); ids leave resource_locator below

        lists += list(ctx.conn.execute(delete(clinical_item).where(clinical_item.c.dossier_key == key)
                                       .returning(clinical_item.c.item_id)).scalars())
        from carnet.db.tables import task  # access and rectification requests (issue 4)

        lists += list(ctx.conn.execute(select(task.c.task_id).where(task.c.dossier_key == key)).scalars())
        ctx.conn.execute(delete(task).where(task.c.dossier_key == key))
        from carnet.db.tables import account_dossier, outbox, professional_seen  # accounts' links, messages

        for table in (account_dossier, outbox, professional_seen):
            ctx.conn.execute(delete(table).where(table.c.dossier_key == key))
        from carnet.db.tables import claim_line  # Assurance Maladie's care history (issue 3 §5)

        ctx.conn.execute(delete(claim_line).where(claim_line.c.dossier_key == key))
        from carnet.db.tables import pro_notice, pro_notice_by_recipient  # the médecin traitant's notices

        recipients = ctx.conn.execute(select(pro_notice.c.recipient_id, pro_notice.c.notice_id).where(
            pro_notice.c.dossier_key == key)).all()
        for recipient_id, notice_id in recipients:  # the lookup is keyed by recipient: each row by its key
            ctx.conn.execute(delete(pro_notice_by_recipient).where(
                pro_notice_by_recipient.c.recipient_id == recipient_id,
                pro_notice_by_recipient.c.notice_id == notice_id))
        ctx.conn.execute(delete(pro_notice).where(pro_notice.c.dossier_key == key))
        from carnet.db.tables import shared_link, shared_link_lookup  # SMART Health Links (issue 13 §2)

        for table in (shared_link_lookup, shared_link):  # a purge is a batch job: the lookup by its dossier column
            ctx.conn.execute(delete(table).where(table.c.dossier_key == key))
        from carnet.db.tables import trend_alert_by_recipient, trend_dossier, trend_episode  # alerts (issue 17 §3)

        for table in (trend_alert_by_recipient, trend_episode, trend_dossier):  # the lookup by its dossier column too
            ctx.conn.execute(delete(table).where(table.c.dossier_key == key))
        from carnet.db.tables import teleconsult_by_clinician, teleconsult_signal, teleconsultation  # issue 12 §1

        visits = ctx.conn.execute(select(teleconsultation.c.clinician_id, teleconsultation.c.consultation_id).where(
            teleconsultation.c.dossier_key == key)).all()
        for clinician_id, consultation_id in visits:  # the agenda is keyed by professional: each row by its key
            ctx.conn.execute(delete(teleconsult_by_clinician).where(
                teleconsult_by_clinician.c.clinician_id == clinician_id,
                teleconsult_by_clinician.c.consultation_id == consultation_id))
        lists += [v.consultation_id for v in visits]  # Appointment/Encounter ids leave resource_locator below
        for table in (teleconsult_signal, teleconsultation):
            ctx.conn.execute(delete(table).where(table.c.dossier_key == key))
        ctx.conn.execute(delete(document_identifier).where(document_identifier.c.dossier_key == key))
        _sweep(ctx, key)
        if ids or lists:
            ctx.conn.execute(delete(resource_locator).where(resource_locator.c.resource_id.in_(ids + lists)))
        ctx.conn.execute(delete(patient_index).where(patient_index.c.dossier_key == key))
        ctx.conn.execute(delete(ins_lookup).where(ins_lookup.c.dossier_key == key))
        ctx.conn.execute(delete(dossier).where(dossier.c.dossier_key == key))
        ctx.audit(SYSTEM_CHAIN, "D", "dossier.purge", entity_type="Patient", entity_id=str(key),
                  detail={"documents": len(ids)})
        ctx.after_commit_deletes.extend(blobs)
    return keys
