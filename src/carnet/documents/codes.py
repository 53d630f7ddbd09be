"""Document codes Carnet relies on (DOMAIN.md, "Documents"): classes, the type → class map, formats, confidentiality.

``fhir.resources`` checks cardinality and formats but not bindings; these are the bindings Carnet checks itself.
"""

from __future__ import annotations

TRE_A03 = "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument"
TRE_A03_OID = "urn:oid:1.2.250.1.213.1.1.4.1"
CLASS_SYSTEMS = frozenset({TRE_A03, TRE_A03_OID})
CLASSES = {
    "10": "Compte rendu", "11": "Synthèse", "31": "Imagerie", "42": "Prescription", "43": "Dispensation",
    "44": "Plan / protocole de soins", "45": "Traitement administré", "52": "Certificat / déclaration",
    "60": "Données de remboursement", "90": "Documents déposés par le patient", "95": "Document de gestion",
}
DEFAULT_CLASS = "10"  # a document whose type Carnet does not know and that names no class is filed as a report

LOINC = "http://loinc.org"
TYPE_CLASS = {
    "11488-4": "10", "11490-0": "10", "11502-2": "10", "11526-1": "10", "34874-8": "10", "18748-4": "31",
    "60591-5": "11", "34133-9": "11", "68599-0": "11", "57833-6": "42", "57832-8": "42", "60593-1": "43",
    "18776-5": "44", "80565-5": "45", "11369-6": "52", "87273-9": "52", "59284-0": "95", "REMB": "60",
    "EXPPAT_3": "11", **{f"DOCPAT0{i}": "90" for i in range(1, 10)},
}
# Types a document may also be filed under another class than TYPE_CLASS's: the patient side deposits its advance
# directives as its own documents (class 90, see carnet.dossier.contacts); a professional files them as a summary.
TYPE_OTHER_CLASSES = {"EXPPAT_3": frozenset({"90"})}
# French labels of the document types DOMAIN.md names (every key of TYPE_CLASS), for forms and for documents whose
# type carries no display
TYPE_LABELS = {
    "11488-4": "Compte rendu de consultation", "11490-0": "Lettre de liaison de sortie",
    "11502-2": "Compte rendu d'examens de biologie", "11526-1": "Compte rendu d'anatomopathologie",
    "34874-8": "Compte rendu opératoire", "18748-4": "Compte rendu d'imagerie",
    "60591-5": "Volet de synthèse médicale", "34133-9": "Synthèse d'épisode de soins",
    "68599-0": "Synthèse psychiatrique", "57833-6": "Prescription de médicaments",
    "57832-8": "Prescription d'examens ou de soins", "60593-1": "Dispensation de médicaments",
    "18776-5": "Plan de soins", "80565-5": "Administration de médicaments", "11369-6": "Historique des vaccinations",
    "87273-9": "Note de vaccination", "59284-0": "Consentement", "REMB": "Données de remboursement",
    "EXPPAT_3": "Directives anticipées", **{f"DOCPAT0{i}": "Document déposé par le patient" for i in range(1, 10)},
}

# Formats (attachment.contentType) Carnet stores; anything else is refused with 415.
CONTENT_TYPES = {
    "application/pdf": "pdf", "text/plain": "text", "image/jpeg": "jpeg", "image/png": "png",
    "text/xml": "cda", "application/xml": "cda", "application/hl7-v3+xml": "cda",
    "application/fhir+json": "fhir", "application/fhir+xml": "fhir",
}

# Confidentiality (JDV_J58 / TRE_A07), with the two spellings of the system found in published examples.
CONFIDENTIALITY_SYSTEMS = frozenset({
    "urn:oid:1.2.250.1.213.1.1.4.13",
    "https://mos.esante.gouv.fr/NOS/TRE_A07-StatusVisibiliteDocument/FHIR/TRE-A07-StatusVisibiliteDocument",
    "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument",
})
TRE_A07 = "https://mos.esante.gouv.fr/NOS/TRE_A07-StatusVisibiliteDocument/FHIR/TRE-A07-StatusVisibiliteDocument"
V3_CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
MASQUE_PS = "MASQUE_PS"
INVISIBLE_PATIENT = "INVISIBLE_PATIENT"
INVISIBLE_REPRESENTANTS = "INVISIBLE_REPRESENTANTS_LEGAUX"
FRENCH_CODES = frozenset({"N", MASQUE_PS, INVISIBLE_PATIENT, INVISIBLE_REPRESENTANTS})
V3_CODES = frozenset({"U", "L", "M", "N", "R", "V"})

STATUSES = ("current", "superseded", "entered-in-error")
