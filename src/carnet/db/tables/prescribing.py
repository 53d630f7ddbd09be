"""E-prescriptions (carnet.prescribing, issue 12 §2, docs/PRESCRIPTIONS.md): the prescription, its lines, what was
dispensed, and the lookups by number and by the pharmacy the patient chose."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKeyConstraint, Integer, String, Table, Text, Uuid

from carnet.db.tables.base import TS, Json, metadata

prescription = Table(  # one prescription (a set of MedicationRequests sharing a groupIdentifier: its number)
    "prescription", metadata,
    Column("dossier_key", Uuid, primary_key=True),
    Column("prescription_id", Uuid, primary_key=True),
    Column("number", String(24), nullable=False),  # the prescription number (carnet.prescribing.numbers)
    Column("scan_hash", String(64), nullable=False),  # SHA-256 of the 2D code's secret (the code carries it)
    Column("prescriber_id", String(12), nullable=False),  # national id, 8 + RPPS
    Column("prescriber_name", String(200), nullable=False),
    Column("encounter_ref", String(200)),  # Encounter/<id> of the consultation it was written in, optional
    Column("authored_at", TS, nullable=False),
    Column("first_dispense_by", TS, nullable=False),  # no first dispensing after this
    Column("valid_until", TS, nullable=False),  # no dispensing at all after this (renewals included)
    Column("document_id", Uuid),  # the signed PDF filed in the dossier (class 42, 57833-6)
    Column("pharmacy_id", String(40)),  # the pharmacy the patient sent it to (an organisation id of the directory)
    Column("pharmacy_name", String(200)),
    Column("sent_at", TS),
    Column("note", Text),
    ForeignKeyConstraint(["dossier_key"], ["dossier.dossier_key"]),
)

prescription_line = Table(  # one line: a MedicationRequest (a medicine, or a free-text item)
    "prescription_line", metadata,
    Column("dossier_key", Uuid, primary_key=True),
    Column("prescription_id", Uuid, primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("kind", String(8), nullable=False),  # medicine | text
    Column("display", String(400), nullable=False),
    Column("dosage_text", Text),
    Column("quantity", Integer, nullable=False),  # units one dispensing may give (one fill)
    Column("unit", String(40), nullable=False),
    Column("repeats", Integer, nullable=False),  # renewals: fills beyond the first
    Column("dispensed", Integer, nullable=False),  # units dispensed so far, moved by a conditional UPDATE only
    Column("resource", Json, nullable=False),  # the MedicationRequest as served
    ForeignKeyConstraint(["dossier_key", "prescription_id"],
                         ["prescription.dossier_key", "prescription.prescription_id"]),
)

medication_dispense = Table(  # what a pharmacist dispensed on a line (MedicationDispense)
    "medication_dispense", metadata,
    Column("dossier_key", Uuid, primary_key=True),
    Column("dispense_id", Uuid, primary_key=True),
    Column("prescription_id", Uuid, nullable=False),
    Column("line_no", Integer, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("pharmacist_id", String(12), nullable=False),
    Column("pharmacist_name", String(200), nullable=False),
    Column("pharmacy_id", String(40)),
    Column("at", TS, nullable=False),
    Column("resource", Json, nullable=False),  # the MedicationDispense as served
    ForeignKeyConstraint(["dossier_key", "prescription_id", "line_no"],
                         ["prescription_line.dossier_key", "prescription_line.prescription_id",
                          "prescription_line.line_no"]),
)

prescription_number = Table(  # lookup: a prescription number -> its dossier (same transaction)
    "prescription_number", metadata,
    Column("number", String(24), primary_key=True),
    Column("dossier_key", Uuid, nullable=False),
    Column("prescription_id", Uuid, nullable=False),
)

prescription_by_pharmacy = Table(  # lookup: the prescriptions patients sent to a pharmacy (its inbox)
    "prescription_by_pharmacy", metadata,
    Column("pharmacy_id", String(40), primary_key=True),
    Column("number", String(24), primary_key=True),
    Column("dossier_key", Uuid, nullable=False),
    Column("prescription_id", Uuid, nullable=False),
    Column("sent_at", TS, nullable=False),
)
