"""Synthetic structured items for the tests."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import update

from carnet.clinical.service import TYPES
from carnet.db.tables import client

CLINICAL_SCOPES = " ".join(f"system/{t}.crus" for t in TYPES)


def grant_clinical_scopes(world: Any) -> None:
    """The world's clients get the structured-data scopes (registered clients are given scopes by the operator)."""
    with world.services.engine.begin() as conn:
        for kind in ("professional", "patient_portal"):
            conn.execute(update(client).where(client.c.client_id == world.client_ids[kind])
                         .values(scopes=client.c.scopes + " " + CLINICAL_SCOPES))


def allergy(key: uuid.UUID) -> dict[str, Any]:
    return {"resourceType": "AllergyIntolerance", "patient": {"reference": f"Patient/{key}"},
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                                     "allergyintolerance-clinical", "code": "active"}]},
            "category": ["medication"],
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "764146007", "display": "Penicillin"}],
                     "text": "Penicillin"}}


def condition(key: uuid.UUID) -> dict[str, Any]:
    return {"resourceType": "Condition", "subject": {"reference": f"Patient/{key}"},
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": "active"}]},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003",
                                 "display": "Hypertensive disorder"}], "text": "Hypertension"},
            "onsetDateTime": "2019-03-01"}


def medication(key: uuid.UUID) -> dict[str, Any]:
    return {"resourceType": "MedicationStatement", "status": "active", "subject": {"reference": f"Patient/{key}"},
            "medicationCodeableConcept": {"text": "Amlodipine 5 mg, one tablet a day"},
            "effectiveDateTime": "2024-01-15"}


def immunization(key: uuid.UUID) -> dict[str, Any]:
    return {"resourceType": "Immunization", "status": "completed", "patient": {"reference": f"Patient/{key}"},
            "vaccineCode": {"coding": [{"system": "http://snomed.info/sct", "code": "836377006"}],
                            "text": "Influenza vaccine"}, "occurrenceDateTime": "2025-10-20"}


def blood_group(key: uuid.UUID) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "subject": {"reference": f"Patient/{key}"},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "882-1", "display": "ABO and Rh group"}]},
            "valueCodeableConcept": {"text": "O Rh+"}, "effectiveDateTime": "2010-06-01"}


def vital(key: uuid.UUID) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "subject": {"reference": f"Patient/{key}"},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"}]},
            "valueQuantity": {"value": 72, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
            "effectiveDateTime": "2026-01-10"}


ALL = (allergy, condition, medication, immunization, blood_group, vital)
