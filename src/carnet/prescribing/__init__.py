"""E-prescriptions (issue 12 §2; docs/PRESCRIPTIONS.md): the one door of the prescribing service.

The clinician writes a prescription (:mod:`.writing`): MedicationRequests after ``ans.fhir.fr.eprescription``
(:mod:`.resources`), a number with a check character (:mod:`.numbers`), a PDF with a QR code (:mod:`.pdf`) signed
PAdES with the prescriber's key (:mod:`.signature`, :mod:`.keys`), filed in the dossier as a prescription document.
The patient sees it and what was dispensed, and may send it to a pharmacy; a pharmacist presents it (number and INS,
or the scanned code) and records what was dispensed (:mod:`.dispensing`). The policy decides
(``Decision.prescribe``, ``Decision.dispense``) and every step is audited in the dossier's chain.
"""

from __future__ import annotations

from carnet.config import Settings
from carnet.prescribing.dispensing import (
    NOT_FOUND,
    DispenseView,
    LineView,
    Pharmacy,
    PrescriptionView,
    Presentation,
    Sent,
    check_rate,
    dispense,
    dispense_resources,
    find,
    for_dossier,
    pharmacies,
    pharmacy_inbox,
    scan_code,
    send_to_pharmacy,
)
from carnet.prescribing.numbers import format_number, normalise, read_scan
from carnet.prescribing.resources import PERIOD_UNITS, Line
from carnet.prescribing.signature import Verdict
from carnet.prescribing.writing import Written, write


def verify_pdf(settings: Settings, pdf: bytes) -> Verdict:
    """Check a prescription PDF's signature against this deployment's trust roots (pyHanko's validation)."""
    from carnet.prescribing import keys, signature

    return signature.verify(pdf, keys.trust_roots(settings))


__all__ = ["NOT_FOUND", "PERIOD_UNITS", "DispenseView", "Line", "LineView", "Pharmacy", "PrescriptionView",
           "Presentation", "Sent", "Verdict", "Written", "check_rate", "dispense", "dispense_resources", "find",
           "for_dossier", "format_number", "normalise", "pharmacies", "pharmacy_inbox", "read_scan",
           "scan_code", "send_to_pharmacy", "verify_pdf", "write"]
