"""The care history as FHIR R4 ``ExplanationOfBenefit`` resources: one per claim line.

``type`` is ``pharmacy`` for a drug (CIP13) and ``professional`` otherwise (claim-type code system);
``item.productOrService`` carries the CCAM, NGAP or CIP13 code; ``item.servicedDate`` the date of care; ``provider`` and
``careTeam`` the prescriber (IDNPS identifier) when the line names one; ``total`` the amount in euros. Status
``active``, use ``claim``, outcome ``complete``; the insurer and the coverage are Assurance Maladie.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from carnet.claims.service import ClaimView

CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
CODE_SYSTEMS = {
    "CCAM": "https://smt.esante.gouv.fr/terminologie-ccam",
    "NGAP": "https://smt.esante.gouv.fr/terminologie-ngap",
    "CIP13": "https://smt.esante.gouv.fr/terminologie-cip",
}
IDNPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
ASSURANCE_MALADIE = {"display": "Assurance Maladie"}


def eob(view: ClaimView, key: uuid.UUID) -> dict[str, Any]:
    claim_type = "pharmacy" if view.is_drug else "professional"
    provider: dict[str, Any] = {"display": "Prescripteur non renseigné"}
    if view.prescriber:
        provider = {"identifier": {"system": IDNPS_SYSTEM, "value": view.prescriber}}
    res: dict[str, Any] = {
        "resourceType": "ExplanationOfBenefit", "id": view.id,
        "status": "active",
        "type": {"coding": [{"system": CLAIM_TYPE, "code": claim_type}]},
        "use": "claim",
        "patient": {"reference": f"Patient/{key}"},
        "created": view.care_date.isoformat(),
        "insurer": ASSURANCE_MALADIE,
        "provider": provider,
        "outcome": "complete",
        "insurance": [{"focal": True, "coverage": ASSURANCE_MALADIE}],
        "item": [{"sequence": 1,
                  "productOrService": {"coding": [{"system": CODE_SYSTEMS[view.code_system], "code": view.code,
                                                   "display": view.label}], "text": view.label},
                  "servicedDate": view.care_date.isoformat()}],
    }
    if view.prescriber:
        res["careTeam"] = [{"sequence": 1, "provider": provider,
                            "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claimcareteamrole",
                                                 "code": "primary"}]}}]
        res["item"][0]["careTeamSequence"] = [1]
    if view.amount is not None:
        money = {"value": float(view.amount), "currency": "EUR"}
        res["total"] = [{"category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication",
                                                  "code": "submitted"}]}, "amount": money}]
    return res


def eob_json(view: ClaimView, key: uuid.UUID) -> str:
    return json.dumps(eob(view, key), ensure_ascii=False, separators=(",", ":"))
