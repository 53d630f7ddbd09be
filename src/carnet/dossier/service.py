"""The dossier's life (DOMAIN.md, "The dossier's life"): create, check (TD0.2), read, close, reopen, purge; legal
representatives; the médecin traitant; authorizations, blocks and objections. Every transition is audited."""

from __future__ import annotations

import datetime as dt
import json
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update

from carnet.access.actors import ActorKind, Mode
from carnet.access.policy import Decision
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
    practitioner,
    representative,
    resource_locator,
    submission_set,
)
from carnet.errors import FhirError, conflict, forbidden, not_found, unprocessable
from carnet.identity.ins import INS_SYSTEMS, InvalidIdentifier, parse_ins_identifier
from carnet.ids import new_id

CANONICAL = "https://carnet.invalid/fhir"  # placeholder base for Carnet-defined extensions until the project has one
EXT_CREATION_CONSENT = f"{CANONICAL}/StructureDefinition/dossier-creation-consent"
EXT_DOSSIER_ACCESS = f"{CANONICAL}/StructureDefinition/dossier-access"
BIRTHPLACE_EXT = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
INSEE_EXT = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code"
GENDERS = ("male", "female", "other", "unknown")


def norm(text: str) -> str:
    """Case- and accent-insensitive form for demographic search."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


def ins_of(resource: dict[str, Any], expression: str = "Patient.identifier") -> tuple[str, str]:
    for i, ident in enumerate(resource.get("identifier") or []):
        if ident.get("system") in INS_SYSTEMS:
            try:
                return parse_ins_identifier(ident["system"], ident.get("value") or "", f"{expression}[{i}]")
            except InvalidIdentifier as exc:
                raise unprocessable(exc.reason, exc.field) from exc
    raise unprocessable("An INS identifier (NIR or NIA) is required", expression, "required")


def ins_value(system: str, value: str, expression: str) -> str:
    """The normalised INS of a ``system|value`` search or reference, or a 422 naming ``expression``."""
    try:
        return parse_ins_identifier(system, value, expression)[1]
    except InvalidIdentifier as exc:
        raise unprocessable(exc.reason, expression) from exc


def _birthplace(res: dict[str, Any]) -> str:
    for ext in res.get("extension") or []:
        if ext.get("url") == BIRTHPLACE_EXT:
            addr = ext.get("valueAddress") or {}
            for e in addr.get("extension") or []:
                if e.get("url") == INSEE_EXT and e.get("valueCoding", {}).get("code"):
                    return str(e["valueCoding"]["code"])[:5]
            if addr.get("postalCode"):
                return str(addr["postalCode"])[:5]
            if addr.get("country") and addr["country"].upper() not in ("FR", "FRA", "FRANCE"):
                return "99999"  # born abroad; the INSEE country code is not given
    raise unprocessable("The INSEE code of the birth place is required (patient-birthPlace extension)",
                        "Patient.extension", "required")


def traits(res: dict[str, Any]) -> dict[str, Any]:
    """The five INS traits: birth family name, birth first names, birth date, sex, birth place."""
    names = res.get("name") or []
    official = next((n for n in names if n.get("use") == "official"), names[0] if names else None)
    if not official or not official.get("family") or not official.get("given"):
        raise unprocessable("The birth name (family and given) is required", "Patient.name", "required")
    if not res.get("birthDate") or len(res["birthDate"]) != 10:
        raise unprocessable("A full birth date is required", "Patient.birthDate", "required")
    if res.get("gender") not in GENDERS:
        raise unprocessable("Administrative gender is required", "Patient.gender", "required")
    return {"family": official["family"], "given": " ".join(official["given"]),
            "birth_date": dt.date.fromisoformat(res["birthDate"]), "gender": res["gender"],
            "birthplace": _birthplace(res)}


def _served_patient(res: dict[str, Any], key: uuid.UUID, version: int, now: dt.datetime) -> dict[str, Any]:
    from carnet.documents.service import fhir_instant

    out = {"resourceType": "Patient", "id": str(key),
           **{k: v for k, v in res.items() if k not in ("text", "resourceType", "id")}}
    out["meta"] = {**(res.get("meta") or {}), "versionId": str(version), "lastUpdated": fhir_instant(now)}
    out["extension"] = [e for e in res.get("extension") or [] if e.get("url") != EXT_CREATION_CONSENT]
    if not out["extension"]:
        del out["extension"]
    return out


def lookup(ctx: Context, ins: str) -> uuid.UUID | None:
    return ctx.conn.execute(select(ins_lookup.c.dossier_key).where(ins_lookup.c.ins == ins)).scalar()


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
    served = _served_patient(resource, key, 1, now)
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
        _grant(ctx, key, "practitioner", actor.id or "", "authorized", event="access.consent")
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


def with_access(served: str, row: Any, decision: Decision) -> str:
    """The Patient as served, with the TD0.2 answer: dossier status and what this caller may do.

    A caller who may not read the dossier (the existence check only) gets no identity traits back: just the id, the
    INS they already gave and the answer, so that the check cannot be used to collect names and birth dates."""
    res = json.loads(served)
    if not decision.read:
        res = {"resourceType": "Patient", "id": res["id"], "meta": res.get("meta", {}),
               "identifier": [{"system": row.ins_system, "value": row.ins}]}
    res.setdefault("extension", []).append({"url": EXT_DOSSIER_ACCESS, "extension": [
        {"url": "status", "valueCode": row.status},
        {"url": "access", "valueCode": decision.basis if decision.read else "none"},
        {"url": "canRead", "valueBoolean": decision.read},
        {"url": "canWrite", "valueBoolean": decision.add_classes != "none"},
    ]})
    return json.dumps(res, ensure_ascii=False, separators=(",", ":"))


def read(ctx: Context, dossier_key: uuid.UUID) -> str:
    row, decision = ctx.dossier(dossier_key)
    if not decision.read:
        if decision.check:
            raise ctx.refuse(dossier_key, "R", "patient.read", forbidden(decision.refusal))
        raise ctx.refuse(dossier_key, "R", "patient.read", not_found("Patient"))
    ctx.audit(dossier_key, "R", "patient.read", entity_type="Patient", entity_id=str(dossier_key))
    return with_access(row.resource, row, decision)


def check_by_ins(ctx: Context, system: str, value: str, query_text: str) -> list[str]:
    """TD0.2 / PDQm by identifier: does a dossier exist for this INS, and may the caller access it?"""
    from carnet.ids import SYSTEM_CHAIN

    key = lookup(ctx, ins_value(system, value, "identifier"))
    if key is None:
        ctx.audit(SYSTEM_CHAIN, "E", "ITI-78", detail={"query": "identifier", "returned": 0})
        return []
    row, decision = ctx.dossier(key)
    if not decision.check:
        if decision.refusal_code == "closed":  # to those who feed it, a closed dossier looks absent
            ctx.audit(key, "E", "ITI-78", detail={"query": query_text, "returned": 0})
            return []
        raise ctx.refuse(key, "E", "ITI-78", forbidden(decision.refusal), detail={"query": query_text})
    ctx.audit(key, "E", "ITI-78", entity_type="Patient", entity_id=str(key),
              detail={"query": query_text, "returned": 1})
    return [with_access(row.resource, row, decision)]


def search_demographics(ctx: Context, family: str | None, given: str | None, birth_date: dt.date | None,
                        gender: str | None, exact: bool, limit: int, query_text: str) -> list[str]:
    """PDQm by traits. Only dossiers the caller may read are returned: a demographic search must not reveal who
    has a dossier. Goes through ``patient_index`` (keyed by the searched name), then each dossier by its key."""
    from carnet.ids import SYSTEM_CHAIN

    if not family and not given and not birth_date:
        raise FhirError(400, "required", "Search by family, given or birthdate (or by identifier)")
    q = select(patient_index.c.dossier_key)
    if family:
        f = norm(family)
        q = q.where(patient_index.c.family_norm == f if exact else patient_index.c.family_norm.startswith(f))
    if given:
        g = norm(given)
        q = q.where(patient_index.c.given_norm == g if exact else patient_index.c.given_norm.contains(g))
    if birth_date:
        q = q.where(patient_index.c.birth_date == birth_date)
    if gender:
        q = q.where(patient_index.c.gender == gender)
    out = []
    for key in ctx.conn.execute(q.limit(500)).scalars():
        row, decision = ctx.dossier(key)
        if decision.read:
            out.append(with_access(row.resource, row, decision))
            ctx.audit(key, "E", "ITI-78", entity_type="Patient", entity_id=str(key), detail={"query": query_text})
            if len(out) >= limit:
                break
    if not out:
        ctx.audit(SYSTEM_CHAIN, "E", "ITI-78", detail={"query": "demographics", "returned": 0})
    return out


# --- lifecycle -------------------------------------------------------------------------------------------------

def _require(ctx: Context, key: uuid.UUID, allowed: bool, event: str, decision: Decision) -> None:
    if not allowed:
        raise ctx.refuse(key, "U", event, forbidden(decision.refusal if not decision.read else
                                                     "This caller may not do this on this dossier."))


def close(ctx: Context, key: uuid.UUID, reason: str = "patient", death_date: dt.date | None = None) -> None:
    row, decision = ctx.dossier(key, lock=True)
    if reason == "death":
        # At death, the dossier is closed by the system that learns of it (Assurance Maladie or an operator).
        if ctx.actor.kind not in (ActorKind.ASSURANCE_MALADIE, ActorKind.OPERATOR):
            raise ctx.refuse(key, "U", "dossier.close", forbidden("Only Assurance Maladie records a death"))
    else:
        _require(ctx, key, decision.close_or_reopen, "dossier.close", decision)
    if row.status != "active":
        raise conflict("The dossier is not open")
    purge_after = ctx.now + dt.timedelta(days=365 * ctx.settings.retention_years + ctx.settings.retention_years // 4)
    ctx.conn.execute(update(dossier).where(dossier.c.dossier_key == key).values(
        status="closed", closed_at=ctx.now, close_reason=reason, death_date=death_date, purge_after=purge_after,
        last_updated=ctx.now))
    ctx.audit(key, "U", "dossier.close", detail={"reason": reason})


def reopen(ctx: Context, key: uuid.UUID) -> None:
    row, decision = ctx.dossier(key, lock=True)
    _require(ctx, key, decision.close_or_reopen and row.close_reason != "death", "dossier.reopen", decision)
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
    _require(ctx, key, decision.close_or_reopen and decision.basis in ("patient", "representative"),
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
    return DossierState(status=row.status, created_at=_aware(row.created_at), creation_channel=row.creation_channel,
                        closed_at=_aware(row.closed_at) if row.closed_at else None, close_reason=row.close_reason,
                        purge_after=_aware(row.purge_after) if row.purge_after else None, objected=objected)


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
        ctx.conn.execute(delete(document_identifier).where(document_identifier.c.dossier_key == key))
        if ids or lists:
            ctx.conn.execute(delete(resource_locator).where(resource_locator.c.resource_id.in_(ids + lists)))
        ctx.conn.execute(delete(patient_index).where(patient_index.c.dossier_key == key))
        ctx.conn.execute(delete(ins_lookup).where(ins_lookup.c.dossier_key == key))
        ctx.conn.execute(delete(dossier).where(dossier.c.dossier_key == key))
        ctx.audit(SYSTEM_CHAIN, "D", "dossier.purge", entity_type="Patient", entity_id=str(key),
                  detail={"documents": len(ids)})
        ctx.after_commit_deletes.extend(blobs)
    return keys


# --- representatives, médecin traitant, authorizations, objections -----------------------------------------------

def add_representative(ctx: Context, key: uuid.UUID, kind: str, family: str, given: str,
                       relationship: str, resource: dict[str, Any] | None = None) -> uuid.UUID:
    """Record a legal representative; they get an account (or their existing one is linked) to act on the dossier.
    ``resource`` (the RelatedPerson) may carry their email or mobile number for the activation code."""
    row, decision = ctx.dossier(key, lock=True)
    if ctx.actor.kind not in (ActorKind.ASSURANCE_MALADIE, ActorKind.OPERATOR) and not decision.manage_access:
        raise ctx.refuse(key, "U", "representative.add", forbidden(decision.refusal))
    if kind not in ("minor", "protected_adult"):
        raise unprocessable("kind must be minor or protected_adult", "kind")
    rep_id = new_id()
    ctx.conn.execute(insert(representative).values(dossier_key=key, representative_id=rep_id, kind=kind,
                                                   family=family, given=given, relationship=relationship,
                                                   since=ctx.now))
    if kind == "protected_adult" and not row.is_protected_adult:
        ctx.conn.execute(update(dossier).where(dossier.c.dossier_key == key).values(is_protected_adult=True))
    ctx.audit(key, "U", "representative.add", entity_type="RelatedPerson", entity_id=str(rep_id),
              detail={"kind": kind})
    from carnet.accounts.service import invite_representative

    invite_representative(ctx, key, rep_id, given, family, resource)
    return rep_id


def _practitioner_exists(ctx: Context, national_id: str) -> bool:
    return ctx.conn.execute(select(practitioner.c.national_id).where(
        practitioner.c.national_id == national_id)).first() is not None


def set_treating_gp(ctx: Context, key: uuid.UUID, national_id: str | None) -> None:
    """Designate or change the médecin traitant (the patient's choice, or the doctor declaring it with consent)."""
    row, decision = ctx.dossier(key, lock=True)
    a = ctx.actor
    allowed = decision.basis in ("patient", "representative") or (
        a.kind is ActorKind.PROFESSIONAL and decision.manage_access and national_id == a.id)
    _require(ctx, key, allowed, "access.treating_gp", decision)
    if national_id is not None and not _practitioner_exists(ctx, national_id):
        raise unprocessable("Unknown professional", "actor")
    blocked = ctx.conn.execute(select(access_grant.c.grant_id).where(
        access_grant.c.dossier_key == key, access_grant.c.subject_id == (national_id or ""),
        access_grant.c.relation == "blocked", access_grant.c.revoked_at.is_(None))).first()
    if blocked is not None:
        raise conflict("This professional is blocked on this dossier: unblock first")
    ctx.conn.execute(update(dossier).where(dossier.c.dossier_key == key).values(treating_gp=national_id,
                                                                               last_updated=ctx.now))
    ctx.audit(key, "U", "access.treating_gp", entity_type="Practitioner", entity_id=national_id)


def _grant(ctx: Context, key: uuid.UUID, subject_kind: str, subject_id: str, relation: str, event: str) -> uuid.UUID:
    ctx.conn.execute(update(access_grant).where(
        access_grant.c.dossier_key == key, access_grant.c.subject_id == subject_id,
        access_grant.c.revoked_at.is_(None)).values(revoked_at=ctx.now, revoked_by=ctx.actor.audit_id))
    grant_id = new_id()
    ctx.conn.execute(insert(access_grant).values(dossier_key=key, grant_id=grant_id, subject_kind=subject_kind,
                                                 subject_id=subject_id, relation=relation, created_at=ctx.now,
                                                 created_by=ctx.actor.audit_id))
    ctx.audit(key, "U", event, entity_type="Consent", entity_id=str(grant_id),
              detail={"subject_kind": subject_kind, "subject": subject_id, "relation": relation})
    return grant_id


def change_access(ctx: Context, key: uuid.UUID, subject_kind: str, subject_id: str, relation: str | None) -> uuid.UUID:
    """Authorize (``authorized``), give the médecin traitant's rights (``gp_rights``), block (``blocked``), or
    withdraw (``None``) a professional or an organisation. A professional may only declare the patient's consent
    for themselves or their own organisation; the patient side may do everything but block the médecin traitant."""
    row, decision = ctx.dossier(key, lock=True)
    a = ctx.actor
    patient_side = decision.basis in ("patient", "representative")
    if a.kind is ActorKind.PROFESSIONAL:
        allowed = decision.manage_access and relation == "authorized" and subject_id in (a.id, a.organisation_id)
    else:
        allowed = patient_side and decision.manage_access
    event = {"authorized": "access.consent", "gp_rights": "access.gp_rights", "blocked": "access.block",
             None: "access.withdraw"}[relation]
    _require(ctx, key, allowed, event, decision)
    if subject_kind == "practitioner" and not _practitioner_exists(ctx, subject_id):
        raise unprocessable("Unknown professional", "Consent.provision.actor")
    if relation in ("blocked", None) and row.treating_gp == subject_id:
        raise conflict("The médecin traitant cannot be blocked or removed while designated: change the médecin "
                       "traitant first")
    if relation is None:
        ctx.conn.execute(update(access_grant).where(
            access_grant.c.dossier_key == key, access_grant.c.subject_id == subject_id,
            access_grant.c.revoked_at.is_(None)).values(revoked_at=ctx.now, revoked_by=a.audit_id))
        ctx.audit(key, "U", event, detail={"subject": subject_id})
        return uuid.UUID(int=0)
    return _grant(ctx, key, subject_kind, subject_id, relation, event)


def set_objections(ctx: Context, key: uuid.UUID, break_glass: bool | None, regulation: bool | None) -> None:
    row, decision = ctx.dossier(key, lock=True)
    _require(ctx, key, decision.basis in ("patient", "representative") and decision.manage_access,
             "access.objection", decision)
    values: dict[str, Any] = {"last_updated": ctx.now}
    if break_glass is not None:
        values["objects_break_glass"] = break_glass
    if regulation is not None:
        values["objects_regulation"] = regulation
    ctx.conn.execute(update(dossier).where(dossier.c.dossier_key == key).values(**values))
    ctx.audit(key, "U", "access.objection", detail={"break_glass": break_glass, "regulation": regulation})


ACCESS_REQUEST_POLICIES = ("ask", "refuse")


def set_access_requests(ctx: Context, key: uuid.UUID, policy: str) -> None:
    """The patient's answer to professionals' access requests (issue 4 §3): ``ask`` (be prompted) or ``refuse``
    ("never ask me, refuse": every request is rejected at once). Requests already pending stay pending."""
    row, decision = ctx.dossier(key, lock=True)
    _require(ctx, key, decision.basis in ("patient", "representative") and decision.manage_access,
             "access.requests", decision)
    if policy not in ACCESS_REQUEST_POLICIES:
        raise unprocessable("The access request policy must be ask or refuse", "policy")
    ctx.conn.execute(update(dossier).where(dossier.c.dossier_key == key).values(access_requests=policy,
                                                                               last_updated=ctx.now))
    ctx.audit(key, "U", "access.requests", detail={"policy": policy})


# --- the patient's view of who has access (issue 4 §2, the portal's Access screen) --------------------------------

@dataclass(frozen=True)
class AccessEntry:
    """One live grant: a professional or an organisation authorized, given the médecin traitant's rights, or
    blocked; since when, and who gave it (``granted_by_kind``: patient | representative | professional | other)."""

    grant_id: uuid.UUID
    subject_kind: str  # practitioner | organisation
    subject_id: str
    relation: str  # authorized | gp_rights | blocked
    since: dt.datetime
    granted_by_kind: str
    granted_by_name: str | None


@dataclass(frozen=True)
class RepresentativeEntry:
    representative_id: uuid.UUID
    given: str
    family: str
    kind: str  # minor | protected_adult
    relationship: str
    since: dt.datetime


@dataclass(frozen=True)
class AccessOverview:
    status: str
    treating_gp: str | None
    treating_gp_since: dt.datetime | None
    grants: list[AccessEntry]  # authorized and gp_rights, practitioners and organisations
    blocked: list[AccessEntry]
    representatives: list[RepresentativeEntry]
    objects_break_glass: bool
    objects_regulation: bool
    access_requests: str  # ask | refuse
    can_manage: bool  # the dossier is open and the caller may change access


def _aware(ts: dt.datetime) -> dt.datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=dt.UTC)


def access_overview(ctx: Context, key: uuid.UUID) -> AccessOverview:
    """Who has access to the dossier and why, for the patient and their legal representatives (the only ones the
    policy lets manage access); anyone else is refused (403, audited). Reading it is audited (``access.read``)."""
    row, decision = ctx.dossier(key)
    if decision.basis not in ("patient", "representative"):
        raise ctx.refuse(key, "R", "access.read", forbidden(decision.refusal))
    grants = ctx.conn.execute(select(access_grant).where(
        access_grant.c.dossier_key == key, access_grant.c.revoked_at.is_(None))
        .order_by(access_grant.c.created_at)).all()
    reps = ctx.conn.execute(select(representative).where(representative.c.dossier_key == key)
                            .order_by(representative.c.since)).all()
    rep_names = {str(r.representative_id): f"{r.given} {r.family}" for r in reps}
    granters = {g.created_by for g in grants} - set(rep_names) - {row.ins}
    pro_names = {p.national_id: f"{p.given} {p.family}" for p in ctx.conn.execute(select(
        practitioner.c.national_id, practitioner.c.given, practitioner.c.family).where(
        practitioner.c.national_id.in_(sorted(granters))))} if granters else {}

    def entry(g: Any) -> AccessEntry:
        if g.created_by == row.ins:
            kind, name = "patient", None
        elif g.created_by in rep_names:
            kind, name = "representative", rep_names[g.created_by]
        elif g.created_by in pro_names:
            kind, name = "professional", pro_names[g.created_by]
        else:
            kind, name = "other", None
        return AccessEntry(g.grant_id, g.subject_kind, g.subject_id, g.relation, _aware(g.created_at), kind, name)

    gp_since = None
    if row.treating_gp:
        last = ctx.conn.execute(select(audit.c.recorded).where(
            audit.c.dossier_key == key, audit.c.event == "access.treating_gp", audit.c.outcome == "0",
            audit.c.entity_id == row.treating_gp).order_by(audit.c.seq.desc()).limit(1)).scalar()
        gp_since = _aware(last) if last is not None else None
    ctx.audit(key, "R", "access.read", entity_type="Patient", entity_id=str(key))
    return AccessOverview(
        status=row.status, treating_gp=row.treating_gp, treating_gp_since=gp_since,
        grants=[entry(g) for g in grants if g.relation != "blocked"],
        blocked=[entry(g) for g in grants if g.relation == "blocked"],
        representatives=[RepresentativeEntry(r.representative_id, r.given, r.family, r.kind, r.relationship,
                                             _aware(r.since)) for r in reps if r.ended_at is None],
        objects_break_glass=bool(row.objects_break_glass), objects_regulation=bool(row.objects_regulation),
        access_requests=str(row.access_requests or "ask"), can_manage=decision.manage_access)


def unblock(ctx: Context, key: uuid.UUID, subject_kind: str, subject_id: str) -> str | None:
    """Lift a block (the patient side). The authorization the block replaced, if any, comes back: unblocking undoes
    the block rather than leaving the professional with less than before. Returns the restored relation, or None.
    Both steps go through :func:`change_access` (policy and audit)."""
    _, decision = ctx.dossier(key, lock=True)
    _require(ctx, key, decision.basis in ("patient", "representative") and decision.manage_access,
             "access.withdraw", decision)
    block = ctx.conn.execute(select(access_grant).where(
        access_grant.c.dossier_key == key, access_grant.c.subject_id == subject_id,
        access_grant.c.relation == "blocked", access_grant.c.revoked_at.is_(None))).first()
    if block is None:
        raise conflict("This professional is not blocked")
    since = _aware(block.created_at)
    before = [g for g in ctx.conn.execute(select(access_grant).where(
        access_grant.c.dossier_key == key, access_grant.c.subject_id == subject_id,
        access_grant.c.relation.in_(("authorized", "gp_rights")), access_grant.c.revoked_at.is_not(None))).all()
        if _aware(g.revoked_at) == since]
    change_access(ctx, key, subject_kind, subject_id, None)
    if not before:
        return None
    relation = str(before[-1].relation)
    change_access(ctx, key, subject_kind, subject_id, relation)
    return relation
