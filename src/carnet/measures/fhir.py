"""Readings served as FHIR R4 ``Observation`` resources (vital-signs profile shape): the read API others use
(``GET /fhir/Observation?patient=…&code=…&date=…`` and ``GET /fhir/Observation/{id}``), decided by the policy like
every read (:func:`carnet.measures.service.search`).

An Observation's id is built from the reading (:func:`carnet.measures.phd.observation_id`): dossier, measure,
source and time; the code is the measure's LOINC code, the value in its canonical UCUM unit; a blood pressure is the
LOINC panel 85354-9 with its systolic (8480-6) and diastolic (8462-4) components.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from carnet.measures.catalogue import LOINC, SPECS, UCUM, Measure, by_code, by_loinc_code
from carnet.measures.phd import observation_id
from carnet.measures.store import Reading

VITAL_SIGNS = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                           "code": "vital-signs", "display": "Vital Signs"}]}
ACTIVITY = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "activity", "display": "Activity"}]}
_COMPONENTS = (("8480-6", "Systolic blood pressure"), ("8462-4", "Diastolic blood pressure"))


def measures_named(tokens: list[str]) -> list[Measure] | None:
    """The measures a ``code`` search names (``8867-4``, ``http://loinc.org|8867-4``, an MDC code with its system),
    or ``None`` when a token names none of them (the search is then about other Observations)."""
    found: list[Measure] = []
    for token in tokens:
        system, _, code = token.rpartition("|")
        spec = by_code(system, code) if system else by_loinc_code(code)
        if spec is None:
            return None
        if spec.measure not in found:
            found.append(spec.measure)
    return found or None


def _quantity(value: float, spec_unit: str, label: str, decimals: int) -> dict[str, Any]:
    return {"value": round(value, decimals + 2), "unit": label, "system": UCUM, "code": spec_unit}


def as_observation(key: uuid.UUID, r: Reading) -> dict[str, Any]:
    spec = SPECS[Measure(r.measure)]
    res: dict[str, Any] = {
        "resourceType": "Observation", "id": observation_id(key, r), "status": "final",
        "category": [ACTIVITY if spec.measure is Measure.STEPS else VITAL_SIGNS],
        "code": {"coding": [{"system": LOINC, "code": spec.loinc, "display": spec.display}], "text": spec.label_en},
        "subject": {"reference": f"Patient/{key}"},
        "effectiveDateTime": r.taken_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
    }
    if spec.components is not None:
        res["component"] = [
            {"code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
             "valueQuantity": _quantity(v, spec.unit, spec.unit_label, spec.decimals)}
            for (code, display), v in zip(_COMPONENTS, (r.value, r.value2 or 0.0), strict=True)]
    else:
        res["valueQuantity"] = _quantity(r.value, spec.unit, spec.unit_label, spec.decimals)
    return res
