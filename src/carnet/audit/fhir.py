"""The access history as FHIR ``AuditEvent`` resources in the shape of IHE Basic Audit Log Patterns (BALP).

Only those entitled to the dossier's history (the patient and active legal representatives, per the policy's
``read_history``) may read it; reading it is itself audited.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import func, select

from carnet.audit.log import utc
from carnet.context import Context
from carnet.db.tables import audit
from carnet.errors import forbidden

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


def search(ctx: Context, dossier_key: uuid.UUID, count: int, offset: int, base: str) -> tuple[list[str], int]:
    _, decision = ctx.dossier(dossier_key)
    if not decision.read_history:
        raise ctx.refuse(dossier_key, "E", "history.read",
                         forbidden("The access history is shown to the patient and their legal representatives"))
    rows = ctx.conn.execute(select(audit).where(audit.c.dossier_key == dossier_key)
                            .order_by(audit.c.seq.desc()).limit(count).offset(offset)).all()
    total = ctx.conn.execute(select(func.count()).select_from(audit)
                             .where(audit.c.dossier_key == dossier_key)).scalar_one()
    ctx.audit(dossier_key, "E", "history.read", entity_type="Patient", entity_id=str(dossier_key))
    return [json.dumps(to_fhir(r, base), ensure_ascii=False, separators=(",", ":")) for r in rows], total + 1
