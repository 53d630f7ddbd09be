"""Synthetic structured items for the demo adult (called at the end of :func:`carnet.demo._seed_dossiers`)."""

from __future__ import annotations

import uuid
from typing import Any

from carnet.access.actors import Actor
from carnet.clinical import service
from carnet.context import Services, run

SCT = "http://snomed.info/sct"


def demo_items(key: uuid.UUID) -> list[dict[str, Any]]:
    patient = {"reference": f"Patient/{key}"}
    obs_cat = "http://terminology.hl7.org/CodeSystem/observation-category"
    return [
        {"resourceType": "AllergyIntolerance", "patient": patient, "category": ["medication"],
         "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                                        "code": "active"}]},
         "code": {"coding": [{"system": SCT, "code": "764146007", "display": "Penicillin"}],
                  "text": "Pénicilline"}, "criticality": "high"},
        {"resourceType": "Condition", "subject": patient,
         "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                        "code": "active"}]},
         "code": {"coding": [{"system": SCT, "code": "38341003", "display": "Hypertensive disorder"}],
                  "text": "Hypertension artérielle"}, "onsetDateTime": "2019-03-01"},
        {"resourceType": "MedicationStatement", "status": "active", "subject": patient,
         "medicationCodeableConcept": {"text": "Amlodipine 5 mg, 1 comprimé le matin"},
         "effectiveDateTime": "2019-03-15"},
        {"resourceType": "Observation", "status": "final", "subject": patient,
         "category": [{"coding": [{"system": obs_cat, "code": "laboratory"}]}],
         "code": {"coding": [{"system": "http://loinc.org", "code": "882-1", "display": "ABO and Rh group"}]},
         "valueCodeableConcept": {"text": "O Rh+"}, "effectiveDateTime": "2010-06-01"},
        {"resourceType": "Immunization", "status": "completed", "patient": patient,
         "vaccineCode": {"text": "Vaccin antigrippal"}, "occurrenceDateTime": "2025-10-20"},
    ]


def seed(services: Services, author: Actor, key: uuid.UUID) -> None:
    for res in demo_items(key):
        run(services, author, lambda ctx, r=res: service.create(ctx, key, r))  # type: ignore[misc]
