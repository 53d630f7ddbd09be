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
# A document that states no type at all (IHE MHD Minimal allows it) is filed in the class the fewest professions read
# under the habilitation matrix, among the classes a professional may file (not 60, the Assurance Maladie's, nor 90,
# the patient's): 31, 52 and 95 tie (doctors and dentists only), and 95 "Document de gestion" is the one that claims
# no kind of content. tests/documents/test_codes.py recomputes this from access/habilitations.json. A type Carnet
# does not know, or of a code system it does not know, is refused (422 naming DocumentReference.type): never a
# default class that would let more professions read it (issue 15 §6).
UNTYPED_CLASS = "95"
UNTYPED_LABEL = "Type non précisé"

LOINC = "http://loinc.org"
LOINC_OID = "urn:oid:2.16.840.1.113883.6.1"
TRE_A05 = "https://mos.esante.gouv.fr/NOS/TRE_A05-TypeDocComplementaire/FHIR/TRE-A05-TypeDocComplementaire"
TRE_A05_OID = "urn:oid:1.2.250.1.213.1.1.4.12"
# The code systems of the ANS document-type value set (JDV_J07-XdsTypeCode-CISIS): LOINC (TRE_A04) and the French
# complement TRE_A05, each under its FHIR URL or its OID.
TYPE_SYSTEMS = {LOINC: "loinc", LOINC_OID: "loinc", TRE_A05: "tre_a05", TRE_A05_OID: "tre_a05"}

# The document types of the ANS value set (JDV_J07-XdsTypeCode-CISIS: LOINC codes of JDV_J279/TRE_A04 and TRE_A05),
# each with its class (TRE_A03) and its French label (the ANS display). DOMAIN.md's types keep DOMAIN.md's class.
# Left out on purpose, so that they are refused rather than filed where the matrix would let the wrong professions
# read them: the social and medico-social sector's documents (28653-4, 34842-5, 80788-3, 83981-1, 88348-8: the matrix
# gives that sector no access yet), the psychological assessment 83901-9 (dentists must not read psychological
# summaries, and the matrix names only 68599-0), measurement codes (glucose, HbA1c, vital signs) that are not document
# types, and deprecated TRE_A05 codes.
_LOINC_TYPES = {
    # 10 Compte rendu
    "11488-4": ("10", "Compte rendu de consultation"), "11490-0": ("10", "Lettre de liaison de sortie"),
    "11502-2": ("10", "Compte rendu d'examens de biologie"), "11526-1": ("10", "Compte rendu d'anatomopathologie"),
    "34874-8": ("10", "Compte rendu opératoire"),
    "11505-5": ("10", "Compte rendu d'acte thérapeutique"),
    "11506-3": ("10", "Compte rendu de suivi de soins par auxiliaire médical"),
    "15507-7": ("10", "Compte rendu de passage aux urgences"), "15508-5": ("10", "Compte rendu d'accouchement"),
    "18761-7": ("10", "Note de transfert"), "28617-9": ("10", "Bilan bucco-dentaire"),
    "28655-9": ("10", "Compte rendu de sortie"), "34112-3": ("10", "Compte rendu hospitalier (séjour)"),
    "34120-6": ("10", "Bilan par professionnel de santé"),
    "34749-2": ("10", "Compte rendu de consultation pré-anesthésique"),
    "34794-8": ("10", "Compte rendu de réunion de concertation pluridisciplinaire"),
    "34875-5": ("10", "Évaluation postopératoire et note de suivi"), "47420-5": ("10", "Bilan fonctionnel"),
    "51969-4": ("10", "Compte rendu de génétique moléculaire"), "56445-0": ("10", "Bilan médicamenteux"),
    "59283-2": ("10", "Compte rendu d'examen de l'enfant"),
    "60280-5": ("10", "Fiche de retour du service des urgences"),
    "60568-3": ("10", "Compte rendu d'anatomie et de cytologie pathologiques"),
    "61357-0": ("10", "Intervention pharmaceutique"), "67851-6": ("10", "Compte rendu d'admission"),
    "68817-6": ("10", "Bilan de santé et de prévention de l'enfant"),
    "70004-7": ("10", "Compte rendu d'acte diagnostique"), "74207-2": ("10", "Document de liaison d'urgence"),
    "74465-6": ("10", "Questionnaire patient"),
    "75482-0": ("10", "Compte rendu d'acte thérapeutique à visée préventive"),
    "75492-9": ("10", "Compte rendu d'acte diagnostique à visée préventive ou de dépistage"),
    "77436-4": ("10", "Compte rendu d'anesthésie"),
    "78341-5": ("10", "Fiche de transfert vers le service des urgences"),
    "78513-9": ("10", "Compte rendu de consultation en ophtalmologie"),
    "78601-2": ("10", "Compte rendu d'entretien pharmaceutique"),
    "80820-4": ("10", "Conciliation médicamenteuse"), "83836-7": ("10", "Schéma dentaire"),
    "85208-7": ("10", "Compte rendu de télémédecine"), "89233-1": ("10", "Compte rendu de grossesse"),
    "93024-8": ("10", "Compte rendu de consultation pharmaceutique"),
    "96173-0": ("10", "Test rapide d'orientation diagnostique"), "96349-6": ("10", "Lettre d'adressage"),
    # 11 Synthèse
    "60591-5": ("11", "Synthèse médicale (IPS)"), "34133-9": ("11", "Synthèse d'épisode de soins"),
    "68599-0": ("11", "Synthèse psychiatrique"), "57055-6": ("11", "Synthèse anténatale"),
    "57057-2": ("11", "Synthèse salle de naissance (mère)"), "57075-4": ("11", "Synthèse salle de naissance (enfant)"),
    "78489-2": ("11", "Synthèse enfant en maternité"), "89235-6": ("11", "Synthèse des suites de couches (mère)"),
    # 31 Imagerie
    "18748-4": ("31", "Compte rendu d'imagerie"), "52040-3": ("31", "Image d'illustration (non DICOM)"),
    # 42 Prescription
    "57833-6": ("42", "Prescription de produits de santé"), "57832-8": ("42", "Prescription de soins"),
    "57828-6": ("42", "Prescription"), "55115-0": ("42", "Demande d'actes d'imagerie"),
    "75468-9": ("42", "Renouvellement d'ordonnance par le pharmacien"),
    "75496-0": ("42", "Demande d'acte de télémédecine"),
    # 43 Dispensation
    "60593-1": ("43", "Dispensation de médicaments"),
    # 44 Plan / protocole de soins
    "18776-5": ("44", "Plan personnalisé de soins"), "77604-7": ("44", "Planification thérapeutique"),
    "83869-8": ("44", "Plan personnalisé de prévention"), "80771-9": ("44", "Projet d'accueil individualisé"),
    # 45 Traitement administré
    "80565-5": ("45", "Administration de médicaments"),
    # 52 Certificat / déclaration
    "11369-6": ("52", "Historique des vaccinations"), "87273-9": ("52", "Note de vaccination"),
    "89601-9": ("52", "Certificat médical"), "96874-3": ("52", "Attestation de vaccination COVID-19"),
    "86531-1": ("52", "Attestation de sortie"), "101881-1": ("52", "Carte d'implant"),
    # 95 Document de gestion
    "59284-0": ("95", "Attestation de consentement"), "51851-4": ("95", "Document administratif"),
    "56446-8": ("95", "Notification de rendez-vous"),
}
_TRE_A05_TYPES = {
    "SYNTH": ("11", "Volet de synthèse médicale"), "EXPPAT_3": ("11", "Directives anticipées"),
    "BIL_AUTO": ("10", "Bilan d'évaluation de la perte d'autonomie"), "CERT_DECL": ("52", "Certificat, déclaration"),
    "PRESC-AAT": ("52", "Prescription d'arrêt de travail"), "DISP_AUT": ("43", "Dispensation (autre)"),
    "PROT_ALD": ("44", "Protocole de soins ALD"), "IMG-KOS": ("31", "Références d'un examen d'imagerie"),
    "PRESC-BIO": ("42", "Prescription d'actes de biologie médicale"),
    "PRESC-KINE": ("42", "Prescription d'actes de kinésithérapie"),
    "PRESC-INF": ("42", "Prescription d'actes infirmiers"), "PRESC-PEDI": ("42", "Prescription d'actes de pédicurie"),
    "PRESC-ORTHOPHO": ("42", "Prescription d'actes d'orthophonie"),
    "PRESC-ORTHOPTIE": ("42", "Prescription d'actes d'orthoptie"),
    "REMB": ("60", "Données de remboursement"),
    "EXPPAT_1": ("90", "Volontés et droits du patient"), "EXPPAT_2": ("90", "Autre document du patient"),
    "DOCPAT01": ("90", "Synthèse déposée par le patient"),
    "DOCPAT02": ("90", "Traitement ou document de soins déposé par le patient"),
    "DOCPAT03": ("90", "Compte rendu déposé par le patient"), "DOCPAT04": ("90", "Imagerie déposée par le patient"),
    "DOCPAT05": ("90", "Compte rendu de biologie déposé par le patient"),
    "DOCPAT06": ("90", "Compte rendu de prévention déposé par le patient"),
    "DOCPAT07": ("90", "Certificat déposé par le patient"), "DOCPAT08": ("90", "Profil médical"),
    "DOCPAT09": ("90", "Document administratif déposé par le patient"),
}
TYPE_CLASS = {code: cls for code, (cls, _) in (_LOINC_TYPES | _TRE_A05_TYPES).items()}
# The code system each known type belongs to ("loinc" or "tre_a05"); a coding must name that system.
TYPE_SYSTEM_OF = {**{c: "loinc" for c in _LOINC_TYPES}, **{c: "tre_a05" for c in _TRE_A05_TYPES}}
# Types a document may also be filed under another class than TYPE_CLASS's: the patient side deposits its advance
# directives as its own documents (class 90, see carnet.dossier.contacts); a professional files them as a summary.
TYPE_OTHER_CLASSES = {"EXPPAT_3": frozenset({"90"})}
# French labels of the document types, for forms and for documents whose type carries no display
TYPE_LABELS = {code: label for code, (_, label) in (_LOINC_TYPES | _TRE_A05_TYPES).items()}
# The summaries that the emergency summary lists as "Summary documents": the IPS and the ANS VSM (SYNTH).
SUMMARY_TYPES = ("60591-5", "SYNTH")


def type_system(code: str) -> str:
    """The canonical FHIR system of a known type code (LOINC or TRE_A05)."""
    return LOINC if TYPE_SYSTEM_OF.get(code) == "loinc" else TRE_A05


def known_type(system: str | None, code: str | None) -> bool:
    """Is (system, code) a document type Carnet files: a known code, in the code system it belongs to?"""
    return bool(code) and code in TYPE_SYSTEM_OF and TYPE_SYSTEMS.get(system or "") == TYPE_SYSTEM_OF[code]


# Formats (attachment.contentType) Carnet stores; anything else is refused with 415.
CONTENT_TYPES = {
    "application/pdf": "pdf", "text/plain": "text", "image/jpeg": "jpeg", "image/png": "png",
    "text/xml": "cda", "application/xml": "cda", "application/hl7-v3+xml": "cda", "application/hl7-cda+xml": "cda",
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
