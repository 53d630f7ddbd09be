"""The clinician writes a prescription (issue 12 §2): checked lines, a number, the MedicationRequests, the PDF
signed with the prescriber's key, filed in the dossier as a class-42 ``57833-6`` document through the document
service (sealed, audited ``ITI-65``, announced to the patient by the notification rules), all in one transaction.

Decided by the policy (``Decision.prescribe``: a doctor, a dentist or a midwife who may read and add to the open
dossier); audited ``prescription.create`` in the dossier's chain."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert

from carnet.context import Context
from carnet.db.tables import prescription, prescription_line, prescription_number
from carnet.documents import codes
from carnet.documents import service as documents
from carnet.errors import FhirError, forbidden, not_found
from carnet.identity import practitioners
from carnet.identity.ins import INS_SYSTEM_DEMO, INS_SYSTEM_NIA, INS_SYSTEM_TEST, format_nir
from carnet.identity.professions import PROFESSIONS
from carnet.ids import new_id
from carnet.prescribing import keys, numbers, pdf, signature
from carnet.prescribing.resources import PERIOD_UNITS, Line, medication_request

TYPE_CODE, CLASS_CODE = "57833-6", "42"
MAX_LINES = 20
MAX_TEXT = 300
MAX_QUANTITY = 999
MAX_REPEATS = 11  # a prescription covers at most 12 months (R.5132-21: renewals beyond need a new prescription)
ENCOUNTER = re.compile(r"Encounter/[A-Za-z0-9\-.]{1,64}")
INS_KINDS = {INS_SYSTEM_NIA: "INS-NIA", INS_SYSTEM_TEST: "INS (test)", INS_SYSTEM_DEMO: "INS (démo)"}


@dataclass(frozen=True)
class Written:
    prescription_id: uuid.UUID
    number: str
    document_id: uuid.UUID


def _text(value: object, field: str, *, required: bool = False, limit: int = MAX_TEXT) -> str:
    text = " ".join(str(value or "").split())
    if required and not text:
        raise FhirError(422, "required", f"{field}: required.", field)
    if len(text) > limit or not text.isprintable():
        raise FhirError(422, "value", f"{field}: at most {limit} printable characters.", field)
    return text


def check_lines(lines: list[Line]) -> list[Line]:
    """The lines, cleaned; 422 naming the first wrong field. A line is a medicine (its name, and a dosage in words or
    structured) or a free-text item."""
    if not lines:
        raise FhirError(422, "required", "A prescription needs at least one line.", "MedicationRequest")
    if len(lines) > MAX_LINES:
        raise FhirError(422, "too-costly", f"At most {MAX_LINES} lines on one prescription.", "MedicationRequest")
    out = []
    for i, line in enumerate(lines):
        at = f"MedicationRequest[{i}]"
        if line.kind not in ("medicine", "text"):
            raise FhirError(422, "code-invalid", f"{at}: a line is a medicine or a free-text item.", at)
        ucd = line.ucd.strip()
        if ucd and not (len(ucd) == 13 and ucd.isdigit()):
            raise FhirError(422, "code-invalid", f"{at}.medicationCodeableConcept: a UCD code has 13 digits.",
                            f"{at}.medicationCodeableConcept.coding")
        if line.period_unit not in PERIOD_UNITS:
            raise FhirError(422, "code-invalid", f"{at}.dosageInstruction.timing.repeat.periodUnit: h, d, wk or mo.",
                            f"{at}.dosageInstruction.timing.repeat.periodUnit")
        for name, value, low, high in (("frequency", line.frequency, 1, 24), ("duration", line.duration_days, 1, 366),
                                       ("quantity", line.quantity, 1, MAX_QUANTITY),
                                       ("repeats", line.repeats, 0, MAX_REPEATS)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not low <= value
                                      <= high):
                raise FhirError(422, "value", f"{at}: {name} must be a whole number from {low} to {high}.",
                                f"{at}.{name}")
        if line.dose_value is not None and not 0 < line.dose_value <= 10_000:
            raise FhirError(422, "value", f"{at}: the dose must be a positive number.",
                            f"{at}.dosageInstruction.doseAndRate.doseQuantity")
        clean = Line(kind=line.kind, medication=_text(line.medication, f"{at}.medication", required=True),
                     form=_text(line.form, f"{at}.form", limit=100), strength=_text(line.strength, f"{at}.strength",
                                                                                   limit=100),
                     ucd=ucd, dosage_text=_text(line.dosage_text, f"{at}.dosageInstruction.text", limit=1000),
                     dose_value=line.dose_value, dose_unit=_text(line.dose_unit, f"{at}.doseUnit", limit=40),
                     frequency=line.frequency, period_unit=line.period_unit, duration_days=line.duration_days,
                     quantity=line.quantity, unit=_text(line.unit, f"{at}.unit", limit=40) or "boîte",
                     repeats=line.repeats)
        if clean.kind == "medicine" and not clean.dosage_text and not (clean.dose_value and clean.frequency):
            raise FhirError(422, "required", f"{at}: give the dosage, in words or as a dose and a frequency.",
                            f"{at}.dosageInstruction")
        out.append(clean)
    return out


def scan_secret(ctx: Context, dossier_key: uuid.UUID, prescription_id: uuid.UUID) -> str:
    """The 2D code's secret: derived from the master key ring (HKDF, stable across rotations), so the patient's
    portal can show the code again; only its SHA-256 is stored."""
    mac = hmac.new(ctx.services.keyring.derive("prescription-scan"), f"{dossier_key}:{prescription_id}".encode(),
                   hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:16]).decode().rstrip("=")


def _docref(key: uuid.UUID, number: str, prescriber_id: str, now: dt.datetime) -> dict[str, Any]:
    instant = documents.fhir_instant(now)
    return {
        "resourceType": "DocumentReference", "status": "current",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{new_id()}"},
        "type": {"coding": [{"system": codes.type_system(TYPE_CODE), "code": TYPE_CODE,
                             "display": "Medication prescription"}]},
        "category": [{"coding": [{"system": codes.TRE_A03, "code": CLASS_CODE,
                                  "display": codes.CLASSES[CLASS_CODE]}]}],
        "subject": {"reference": f"Patient/{key}"}, "date": instant,
        "author": [{"reference": f"Practitioner/{prescriber_id}"}],
        "content": [{"attachment": {"contentType": "application/pdf", "language": "fr-FR",
                                    "title": f"Ordonnance {numbers.format_number(number)}", "creation": instant},
                     "format": {"system": "urn:oid:1.3.6.1.4.1.19376.1.2.3",
                                "code": "urn:ihe:iti:xds:2017:mimeTypeSufficient"}}]}


def write(ctx: Context, key: uuid.UUID, lines: list[Line], note: str = "",
          encounter_ref: str | None = None) -> Written:
    """Write, sign and file a prescription for the patient of dossier ``key``. ``encounter_ref``
    (``Encounter/<id>``) links it to the consultation it was written in."""
    row, decision = ctx.dossier(key)
    if not decision.prescribe:
        raise ctx.refuse(key, "C", "prescription.create", forbidden(
            decision.refusal if not decision.read else "Only a doctor, a dentist or a midwife who may add to this "
            "dossier writes prescriptions.") if decision.check else not_found("Patient"))
    lines = check_lines(lines)
    note = _text(note, "note", limit=1000)
    if encounter_ref is not None and not ENCOUNTER.fullmatch(encounter_ref):
        raise FhirError(422, "value", "encounter: a reference Encounter/<id>.", "MedicationRequest.encounter")
    actor = ctx.actor
    pro = practitioners.by_ids(ctx.conn, [actor.id]).get(actor.id) if actor.id else None
    if pro is None or actor.id is None:
        raise FhirError(403, "forbidden", "The prescriber is not in the professionals' directory.")
    name = f"{pro.given} {pro.family}".strip()
    profession = PROFESSIONS.get(pro.profession, ("", ""))[0]
    prescription_id, number = new_id(), numbers.new_number()
    now = ctx.now
    first_by = now + dt.timedelta(days=ctx.settings.prescription_first_dispense_days)
    valid_until = now + dt.timedelta(days=max(ctx.settings.prescription_valid_days,
                                              ctx.settings.prescription_first_dispense_days))
    secret = scan_secret(ctx, key, prescription_id)
    ins_kind = INS_KINDS.get(row.ins_system, "INS-NIR")
    sheet = pdf.Sheet(number=number, scan=numbers.scan_text(number, secret), authored=now.date(),
                      first_dispense_by=first_by.date(), valid_until=valid_until.date(), prescriber_name=name,
                      prescriber_profession=profession, prescriber_id=actor.id,
                      organisation=pro.organisation_name or "", patient_name=f"{row.family.upper()} {row.given}",
                      patient_birth=row.birth_date, patient_ins=format_nir(row.ins) if row.ins_system != INS_SYSTEM_NIA
                      else row.ins, patient_ins_kind=ins_kind, lines=lines, note=note)
    signed = signature.sign(pdf.render(sheet), keys.signing_key(ctx.settings, actor.id, name),
                            f"Ordonnance {numbers.format_number(number)}")
    published = documents.publish(ctx, key, _docref(key, number, actor.id, now),
                                  documents.Content(signed, "application/pdf"), "ITI-65", decision=decision)
    ctx.conn.execute(insert(prescription).values(
        dossier_key=key, prescription_id=prescription_id, number=number, scan_hash=numbers.scan_hash(secret),
        prescriber_id=actor.id, prescriber_name=name, encounter_ref=encounter_ref, authored_at=now,
        first_dispense_by=first_by, valid_until=valid_until, document_id=published.document_id, note=note or None))
    ctx.conn.execute(insert(prescription_number).values(number=number, dossier_key=key,
                                                        prescription_id=prescription_id))
    ctx.conn.execute(insert(prescription_line), [
        {"dossier_key": key, "prescription_id": prescription_id, "line_no": n, "kind": line.kind,
         "display": line.display[:400], "dosage_text": "; ".join(pdf.line_details(line)[:-1]) or None,
         "quantity": line.quantity, "unit": line.unit, "repeats": line.repeats, "dispensed": 0,
         "resource": medication_request(line, request_id=f"{prescription_id}-{n}", base_url=ctx.settings.base_url,
                                        number=number, dossier_key=key, prescriber_id=actor.id,
                                        prescriber_name=name, authored=now, valid_until=valid_until,
                                        encounter_ref=encounter_ref)}
        for n, line in enumerate(lines, 1)])
    ctx.audit(key, "C", "prescription.create", entity_type="Prescription", entity_id=str(prescription_id),
              detail={"lines": len(lines), "document": str(published.document_id)})
    return Written(prescription_id, number, published.document_id)
