"""A visit as FHIR R4: the booking as an ``Appointment`` (R4 §Appointment: ``booked``, ``arrived``, ``fulfilled``,
``cancelled``) and the visit itself as an ``Encounter`` of class ``VR`` (v3 ActCode "virtual") with the same id
(``planned``, ``in-progress``, ``finished``, ``cancelled``). Read and searched by patient, through the visit
service (the policy decides, the reading is audited)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from sqlalchemy import select

from carnet.context import Context
from carnet.db.tables import resource_locator
from carnet.errors import FhirError
from carnet.teleconsult.visits import Visit, for_dossier, get

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
SERVICE_TYPE = "https://carnet.invalid/fhir/CodeSystem/service-type"
APPOINTMENT_STATUS = {"planned": "booked", "in-progress": "arrived", "finished": "fulfilled",
                      "cancelled": "cancelled"}
IDNPS = "urn:oid:1.2.250.1.71.4.2.1"


def _instant(ts: Any) -> str:
    return ts.isoformat(timespec="seconds").replace("+00:00", "Z")


def appointment(v: Visit) -> dict[str, Any]:
    return {
        "resourceType": "Appointment", "id": str(v.consultation_id), "status": APPOINTMENT_STATUS[v.status],
        "serviceType": [{"coding": [{"system": SERVICE_TYPE, "code": "teleconsultation",
                                     "display": "Teleconsultation (video)"}]}],
        "appointmentType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0276",
                                        "code": "ROUTINE"}]},
        "start": _instant(v.scheduled_at),
        "end": _instant(v.scheduled_at + dt.timedelta(minutes=v.minutes)), "minutesDuration": v.minutes,
        "participant": [
            {"actor": {"reference": f"Patient/{v.dossier_key}", "display": v.patient_name}, "status": "accepted",
             "required": "required"},
            {"actor": {"reference": f"Practitioner/{v.clinician_id}", "display": v.clinician_name,
                       "identifier": {"system": IDNPS, "value": v.clinician_id}}, "status": "accepted",
             "required": "required"}],
    }


def encounter(v: Visit) -> dict[str, Any]:
    status = v.status
    out: dict[str, Any] = {
        "resourceType": "Encounter", "id": str(v.consultation_id), "status": status,
        "class": {"system": ACT_CODE, "code": "VR", "display": "virtual"},
        "subject": {"reference": f"Patient/{v.dossier_key}", "display": v.patient_name},
        "participant": [{"individual": {"reference": f"Practitioner/{v.clinician_id}",
                                        "display": v.clinician_name}}],
        "appointment": [{"reference": f"Appointment/{v.consultation_id}"}],
    }
    if v.started_at is not None:
        out["period"] = {"start": _instant(v.started_at)}
        if v.ended_at is not None:
            out["period"]["end"] = _instant(v.ended_at)
    return out


RENDER = {"Appointment": appointment, "Encounter": encounter}


def read_resource(ctx: Context, resource_type: str, resource_id: str) -> str:
    """``GET /fhir/{Appointment|Encounter}/{id}``: 404 for an unknown id and for one the caller may not see."""
    try:
        cid = uuid.UUID(resource_id)
    except ValueError:
        raise FhirError(404, "not-found", "Resource not found") from None
    key = ctx.conn.execute(select(resource_locator.c.dossier_key)
                           .where(resource_locator.c.resource_id == cid)).scalar()
    if key is None:
        raise FhirError(404, "not-found", "Resource not found")
    try:
        visit = get(ctx, key, cid)
    except FhirError as err:
        if err.status in (403, 404):
            raise FhirError(404, "not-found", "Resource not found") from None
        raise
    return json.dumps(RENDER[resource_type](visit), ensure_ascii=False, separators=(",", ":"))


def search_resources(ctx: Context, resource_type: str, dossier_key: uuid.UUID) -> list[str]:
    """``GET /fhir/{Appointment|Encounter}?patient=``: the patient's visits the caller may see, newest first."""
    return [json.dumps(RENDER[resource_type](v), ensure_ascii=False, separators=(",", ":"))
            for v in for_dossier(ctx, dossier_key)]
