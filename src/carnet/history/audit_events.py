"""The access history as FHIR ``AuditEvent`` resources in the shape of IHE Basic Audit Log Patterns (BALP).

Only those entitled to the dossier's history (the patient and active legal representatives, per the policy's
``read_history``) may read it; reading it is itself audited.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import false, func, or_, select, true

from carnet.audit.log import utc
from carnet.context import Context
from carnet.db.tables import audit
from carnet.errors import FhirError, forbidden

DCM = "http://dicom.nema.org/resources/ontology/DCM"
EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
IHE_EVENTS = "urn:ihe:event-type-code"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
IDNPS = "urn:oid:1.2.250.1.71.4.2.1"

# DICOM event ids for the IHE transactions (BALP / MHD audit guidance)
TYPES = {
    "ITI-65": (DCM, "110107", "Import"), "ITI-105": (DCM, "110107", "Import"),
    "ITI-67": (DCM, "110112", "Query"), "ITI-66": (DCM, "110112", "Query"), "ITI-78": (DCM, "110112", "Query"),
    "ITI-68": (DCM, "110106", "Export"),
}
PURPOSE = {"normal": "TREAT", "emergency": "ETREAT", "regulation": "ETREAT"}


def to_fhir(row: Any, base: str) -> dict[str, Any]:
    system, code, display = TYPES.get(row.event, (EVENT_TYPE, "rest", "RESTful Operation"))
    who: dict[str, Any] = {"display": row.actor_name or row.actor_kind}
    if row.actor_kind == "professional" and row.actor_id:
        who["identifier"] = {"system": IDNPS, "value": row.actor_id}
    agent: dict[str, Any] = {
        "type": {"coding": [{"system": DCM, "code": "110153", "display": "Source Role ID"}]}
        if row.actor_kind == "system" else {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                                                  "v3-ParticipationType", "code": "IRCP"}]},
        "who": who, "requestor": True,
        "purposeOfUse": [{"coding": [{"system": ACT_REASON, "code": PURPOSE.get(row.mode, "TREAT")}]}],
        "extension": [{"url": "https://carnet.invalid/fhir/StructureDefinition/actor-kind",
                       "valueCode": row.actor_kind},
                      {"url": "https://carnet.invalid/fhir/StructureDefinition/access-mode", "valueCode": row.mode}],
    }
    if row.organisation_id:
        agent["extension"].append({"url": "https://carnet.invalid/fhir/StructureDefinition/organisation",
                                   "valueString": row.organisation_id})
    entity = [{"what": {"reference": f"Patient/{row.dossier_key}"},
               "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1"},
               "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1"}}]
    if row.entity_type and row.entity_type != "Patient" and row.entity_id:
        entity.append({"what": {"reference": f"{row.entity_type}/{row.entity_id}"},
                       "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"}})
    out: dict[str, Any] = {
        "resourceType": "AuditEvent", "id": str(row.event_id),
        "meta": {"profile": ["https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead"]},
        "type": {"system": system, "code": code, "display": display},
        "subtype": [{"system": IHE_EVENTS, "code": row.event}] if row.event.startswith("ITI-") else
        [{"system": "https://carnet.invalid/fhir/CodeSystem/audit-event", "code": row.event}],
        "action": row.action, "recorded": utc(row.recorded).isoformat().replace("+00:00", "Z"),
        "outcome": row.outcome, "agent": [agent],
        "source": {"observer": {"display": "Carnet"},
                   "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4"}]},
        "entity": entity,
    }
    if row.reason:
        out["purposeOfEvent"] = [{"text": row.reason}]
    return out


def not_about_hidden_documents(ctx: Context, dossier_key: uuid.UUID, decision: Any) -> list[Any]:
    """SQL conditions on ``audit`` leaving out the records about a document the caller may not see yet: a document
    ``INVISIBLE_PATIENT`` before its announcement, a minor's confidential care (``INVISIBLE_REPRESENTANTS_LEGAUX``)
    for a representative. The history must not reveal that such a document exists. Records about deleted documents
    stay (the patient deleted them; the trace stays). One rule for the API, the portal and the copy."""
    from carnet.db.tables import document
    from carnet.documents.service import doc_facts

    facts = ctx.conn.execute(select(
        document.c.document_id, document.c.class_code, document.c.type_code, document.c.author_id, document.c.masked,
        document.c.invisible_patient, document.c.invisible_patient_until, document.c.invisible_representatives,
        document.c.deleted).where(document.c.dossier_key == dossier_key, document.c.deleted == false(),
                                  or_(document.c.invisible_patient == true(),
                                      document.c.invisible_representatives == true()))).all()
    hidden = sorted(str(d.document_id) for d in facts if not decision.visibility.allows(doc_facts(d), ctx.now))
    if not hidden:
        return []
    return [or_(audit.c.entity_type.is_(None), audit.c.entity_type.not_in(("DocumentReference", "Binary")),
                audit.c.entity_id.not_in(hidden))]


def search_conditions(params: list[tuple[str, str]]) -> list[Any]:
    """AuditEvent search parameters beyond ``patient`` as SQL conditions on ``audit``: ``date`` (when it was recorded,
    R4 date prefixes, repeatable for a range) and ``entity`` (``Type/id``: the records about that resource). No
    modifier is supported; a bad value is refused (400) naming the parameter."""
    from carnet.documents.search_params import date_condition

    conds: list[Any] = []
    for name, value in params:
        base, _, modifier = name.partition(":")
        if base in ("patient", "_count", "_offset", "_format"):
            continue
        if modifier:
            raise FhirError(400, "not-supported", "Unsupported modifier", name)
        if base == "date":
            conds.append(date_condition(audit.c.recorded, value, name))
        elif base == "entity":
            alts = []
            for ref in value.split(","):
                parts = ref.rstrip("/").split("/")
                if len(parts) < 2 or not parts[-2] or not parts[-1]:
                    raise FhirError(400, "invalid", "entity is a reference: Type/id", name)
                alts.append((audit.c.entity_type == parts[-2]) & (audit.c.entity_id == parts[-1]))
            conds.append(or_(*alts))
        else:
            raise FhirError(400, "not-supported", "Unknown search parameter", name)
    return conds


def search(ctx: Context, dossier_key: uuid.UUID, count: int, offset: int, base: str,
           conditions: list[Any] | None = None) -> tuple[list[str], int]:
    _, decision = ctx.dossier(dossier_key)
    if not decision.read_history:
        raise ctx.refuse(dossier_key, "E", "history.read",
                         forbidden("The access history is shown to the patient and their legal representatives"))
    conds = [audit.c.dossier_key == dossier_key, *not_about_hidden_documents(ctx, dossier_key, decision),
             *(conditions or [])]
    rows = ctx.conn.execute(select(audit).where(*conds)
                            .order_by(audit.c.seq.desc()).limit(count).offset(offset)).all()
    total = ctx.conn.execute(select(func.count()).select_from(audit).where(*conds)).scalar_one()
    ctx.audit(dossier_key, "E", "history.read", entity_type="Patient", entity_id=str(dossier_key))
    own = 0 if conditions else 1  # this reading's own record, appended below (a filtered search may not match it)
    return [json.dumps(to_fhir(r, base), ensure_ascii=False, separators=(",", ":")) for r in rows], total + own


# --- the history as the portal shows it (issue 4 §2, the History screen) ------------------------------------------

#: Kinds of event a patient filters on: exact event names, then event-name prefixes.
HISTORY_KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "read": (("ITI-66", "ITI-67", "ITI-68", "ITI-78", "patient.read", "document.read"), ()),
    "added": (("ITI-65", "ITI-105"), ()),
    "changed": (("document.update", "document.delete"), ()),
    "access": ((), ("access.", "representative.")),
    "dossier": ((), ("dossier.", "account.")),
    "requests": ((), ("task.",)),
}
#: Kinds of actor a patient filters on.
HISTORY_ACTORS: dict[str, tuple[str, ...]] = {
    "professionals": ("professional",), "patient_side": ("patient", "representative"),
    "assurance_maladie": ("assurance_maladie",), "link_recipients": ("link_recipient",),
}
READ_ACTIONS = ("R", "E")


@dataclass(frozen=True)
class HistoryFilter:
    """What the patient asked to see. Dates are whole days in ``zone`` (the portals' display time zone), both
    included."""

    since: dt.date | None = None
    until: dt.date | None = None
    actors: str | None = None  # a key of HISTORY_ACTORS
    emergency_only: bool = False  # emergency (break the glass) and SAMU regulation accesses
    kind: str | None = None  # a key of HISTORY_KINDS
    include_own_reads: bool = False  # the caller's own page views and searches are hidden unless asked
    zone: dt.tzinfo = dt.UTC  # the time zone the dates are days of


@dataclass(frozen=True)
class HistoryEntry:
    recorded: dt.datetime
    event: str
    action: str
    refused: bool
    actor_kind: str
    actor_id: str | None
    actor_name: str | None
    profession: str | None  # TRE_G15, for a professional found in the directory
    organisation_id: str | None
    organisation_name: str | None
    mode: str  # normal | emergency | regulation
    reason: str | None  # the reason given for an emergency access
    entity_type: str | None
    entity_id: str | None
    subject_id: str | None  # the professional or organisation an access change is about
    subject_name: str | None
    own: bool  # done by the caller


def _history_conditions(ctx: Context, dossier_key: uuid.UUID, f: HistoryFilter) -> list[Any]:
    conds: list[Any] = [audit.c.dossier_key == dossier_key]
    if f.since is not None:
        start = dt.datetime.combine(f.since, dt.time(), f.zone)
        conds.append(audit.c.recorded >= start.astimezone(dt.UTC))  # SQLite keeps no offset: compare UTC with UTC
    if f.until is not None:
        end = dt.datetime.combine(f.until + dt.timedelta(days=1), dt.time(), f.zone)
        conds.append(audit.c.recorded < end.astimezone(dt.UTC))
    if f.actors is not None:
        if f.actors not in HISTORY_ACTORS:
            raise FhirError(400, "invalid", "Unknown kind of actor", "actors")
        conds.append(audit.c.actor_kind.in_(HISTORY_ACTORS[f.actors]))
    if f.emergency_only:
        conds.append(audit.c.mode.in_(("emergency", "regulation")))
    if f.kind is not None:
        if f.kind not in HISTORY_KINDS:
            raise FhirError(400, "invalid", "Unknown kind of event", "kind")
        exact, prefixes = HISTORY_KINDS[f.kind]
        match: list[Any] = [audit.c.event.in_(exact)] if exact else []
        match += [audit.c.event.startswith(p, autoescape=True) for p in prefixes]
        conds.append(or_(*match))
    if not f.include_own_reads:
        me = ctx.actor.audit_id
        conds.append(or_(audit.c.actor_id.is_(None), audit.c.actor_id != me, audit.c.action.not_in(READ_ACTIONS)))
    return conds


def archived_before(ctx: Context, dossier_key: uuid.UUID) -> dt.datetime | None:
    """When the chain's older records were archived (``carnet audit archive``: they left the live table, see
    docs/AUDIT.md), the time of its oldest record still live, before which the history shows nothing; None when the
    whole chain is live. Call it after :func:`history`, which checked that the caller may read the history."""
    first = ctx.conn.execute(select(audit.c.seq, audit.c.recorded).where(audit.c.dossier_key == dossier_key)
                             .order_by(audit.c.seq).limit(1)).first()
    if first is None or int(first.seq) == 1:
        return None
    return utc(first.recorded)


def history(ctx: Context, dossier_key: uuid.UUID, f: HistoryFilter, limit: int = 50,
            offset: int = 0) -> tuple[list[HistoryEntry], int]:
    """The dossier's audit records for its history screen, newest first, filtered in SQL (paging and totals hold),
    with each professional resolved from the directory (name, profession, organisation). Only the patient side may
    read it (the policy's ``read_history``); the reading is itself audited (``history.read``)."""
    from carnet.db.tables import practitioner

    _, decision = ctx.dossier(dossier_key)
    if not decision.read_history:
        raise ctx.refuse(dossier_key, "E", "history.read",
                         forbidden("The access history is shown to the patient and their legal representatives"))
    conds = _history_conditions(ctx, dossier_key, f) + not_about_hidden_documents(ctx, dossier_key, decision)
    rows = ctx.conn.execute(select(audit).where(*conds).order_by(audit.c.seq.desc())
                            .limit(max(1, min(limit, 200))).offset(max(0, offset))).all()
    total = ctx.conn.execute(select(func.count()).select_from(audit).where(*conds)).scalar_one()

    def subject(r: Any) -> str | None:
        detail = r.detail if isinstance(r.detail, dict) else json.loads(r.detail or "{}")
        if r.event == "access.treating_gp":
            return str(r.entity_id) if r.entity_id else None
        if r.event.startswith("access.") or r.event.startswith("task.access."):
            value = detail.get("subject") or detail.get("requester")
            return str(value) if value else None
        return None

    subjects = {r.seq: subject(r) for r in rows}
    ids = {r.actor_id for r in rows if r.actor_kind == "professional" and r.actor_id} | {
        s for s in subjects.values() if s}
    pros = {p.national_id: p for p in ctx.conn.execute(select(practitioner).where(
        practitioner.c.national_id.in_(sorted(ids))))} if ids else {}
    orgs = {r.organisation_id for r in rows if r.organisation_id} | {s for s in subjects.values() if s}
    org_names = {p.organisation_id: p.organisation_name for p in ctx.conn.execute(
        select(practitioner.c.organisation_id, practitioner.c.organisation_name).where(
            practitioner.c.organisation_id.in_(sorted(orgs)), practitioner.c.organisation_name.is_not(None)))
    } if orgs else {}
    me = ctx.actor.audit_id
    out = []
    for r in rows:
        pro = pros.get(r.actor_id) if r.actor_kind == "professional" and r.actor_id else None
        sid = subjects[r.seq]
        sp = pros.get(sid) if sid else None
        org = r.organisation_id or (pro.organisation_id if pro is not None else None)
        out.append(HistoryEntry(
            recorded=utc(r.recorded), event=r.event, action=r.action, refused=r.outcome != "0",
            actor_kind=r.actor_kind, actor_id=r.actor_id,
            actor_name=f"{pro.given} {pro.family}" if pro is not None else r.actor_name,
            profession=pro.profession if pro is not None else None, organisation_id=org,
            organisation_name=org_names.get(org or "") or (pro.organisation_name if pro is not None else None),
            mode=r.mode, reason=r.reason, entity_type=r.entity_type, entity_id=r.entity_id, subject_id=sid,
            subject_name=f"{sp.given} {sp.family}" if sp is not None else (org_names.get(sid) if sid else None),
            own=r.actor_id is not None and r.actor_id == me))
    ctx.audit(dossier_key, "E", "history.read", entity_type="Patient", entity_id=str(dossier_key))
    return out, total
