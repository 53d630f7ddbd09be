"""The FHIR shapes of a prescription, after the French e-prescription guide (``ans.fhir.fr.eprescription``
1.1.0-ballot, whose examples are in ``../shared/examples/eprescription``): one ``MedicationRequest`` per line, the
lines of one prescription sharing its number as ``groupIdentifier``, the medicine as ``medicationCodeableConcept``
(an ANSM UCD code when the prescriber gave one, else text), the dosage in words (``dosageInstruction.text``) and
structured (``timing.repeat`` frequency/period/``boundsDuration``, ``doseAndRate.doseQuantity``), the quantity and the
renewals in ``dispenseRequest``; what a pharmacist dispensed is a ``MedicationDispense`` pointing at its line
(``authorizingPrescription``)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from carnet.identity.professionals import IDNPS_SYSTEM

UCD_SYSTEM = "http://data.esante.gouv.fr/ansm/medicament/UCD"  # as in the guide's examples
UCUM = "http://unitsofmeasure.org"
PERIOD_UNITS = {"h": "heure", "d": "jour", "wk": "semaine", "mo": "mois"}


def instant(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Line:
    """One line as the prescriber wrote it (checked by :func:`carnet.prescribing.service.check_lines`)."""

    kind: str  # medicine | text
    medication: str  # the medicine's name, or the free-text item
    form: str = ""  # comprimé, gélule, sirop...
    strength: str = ""  # 500 mg
    ucd: str = ""  # an ANSM UCD code (13 digits), optional
    dosage_text: str = ""  # "1 comprimé 3 fois par jour pendant 5 jours"
    dose_value: float | None = None  # per intake
    dose_unit: str = ""
    frequency: int | None = None  # intakes per period
    period_unit: str = "d"  # h | d | wk | mo
    duration_days: int | None = None
    quantity: int = 1  # units one dispensing gives
    unit: str = "boîte"
    repeats: int = 0  # renewals

    @property
    def display(self) -> str:
        return " ".join(p for p in (self.medication, self.strength, self.form) if p)


def group_identifier(base_url: str, number: str) -> dict[str, str]:
    return {"system": f"{base_url}/fhir/sid/prescription-number", "value": number}


def medication_request(line: Line, *, request_id: str, base_url: str, number: str, dossier_key: uuid.UUID,
                       prescriber_id: str, prescriber_name: str, authored: dt.datetime, valid_until: dt.datetime,
                       encounter_ref: str | None) -> dict[str, Any]:
    med: dict[str, Any] = {"text": line.display}
    if line.ucd:
        med["coding"] = [{"system": UCD_SYSTEM, "code": line.ucd, "display": line.display}]
    dosage: dict[str, Any] = {"sequence": 1}
    if line.dosage_text:
        dosage["text"] = line.dosage_text
    repeat: dict[str, Any] = {}
    if line.frequency:
        repeat.update(frequency=line.frequency, period=1, periodUnit=line.period_unit)
    if line.duration_days:
        repeat["boundsDuration"] = {"value": line.duration_days, "unit": "jour", "system": UCUM, "code": "d"}
    if repeat:
        dosage["timing"] = {"repeat": repeat}
    if line.dose_value is not None:
        dosage["doseAndRate"] = [{"doseQuantity": {"value": line.dose_value, "unit": line.dose_unit or "unité"}}]
    dispense: dict[str, Any] = {
        "validityPeriod": {"start": instant(authored), "end": instant(valid_until)},
        "numberOfRepeatsAllowed": line.repeats,
        "quantity": {"value": line.quantity, "unit": line.unit}}
    if line.duration_days:
        dispense["expectedSupplyDuration"] = {"value": line.duration_days, "unit": "jour", "system": UCUM,
                                              "code": "d"}
    res: dict[str, Any] = {
        "resourceType": "MedicationRequest", "id": request_id, "status": "active", "intent": "order",
        "medicationCodeableConcept": med, "subject": {"reference": f"Patient/{dossier_key}"},
        "authoredOn": instant(authored),
        "requester": {"reference": f"Practitioner/{prescriber_id}",
                      "identifier": {"system": IDNPS_SYSTEM, "value": prescriber_id}, "display": prescriber_name},
        "groupIdentifier": group_identifier(base_url, number),
        "dosageInstruction": [dosage], "dispenseRequest": dispense}
    if line.kind == "text":
        res["category"] = [{"text": "Prescription en texte libre"}]
    if encounter_ref:
        res["encounter"] = {"reference": encounter_ref}
    return res


def medication_dispense(request: dict[str, Any], *, dispense_id: str, quantity: int, unit: str,
                        pharmacist_id: str, pharmacist_name: str, pharmacy_name: str | None,
                        at: dt.datetime, complete: bool) -> dict[str, Any]:
    performer: dict[str, Any] = {"actor": {"identifier": {"system": IDNPS_SYSTEM, "value": pharmacist_id},
                                           "display": pharmacist_name + (f" ({pharmacy_name})" if pharmacy_name
                                                                         else "")}}
    return {"resourceType": "MedicationDispense", "id": dispense_id, "status": "completed",
            # HL7 v3 ActCode: a partial fill (PF) or the fill that completes the line (FFC, first fill complete; RFC,
            # refill complete)
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                 "code": "RFC" if complete else "PF"}]},
            "medicationCodeableConcept": request["medicationCodeableConcept"], "subject": request["subject"],
            "performer": [performer],
            "authorizingPrescription": [{"reference": f"MedicationRequest/{request['id']}"}],
            "quantity": {"value": quantity, "unit": unit}, "whenHandedOver": instant(at)}
