"""Health professions and doctors' specialties, as data.

Professions come from the ANS terminology TRE_G15-ProfessionSante (OID 1.2.250.1.71.1.2.7, version 20250328120000):
every code still active in that version is here, with the ANS display as the French label. Codes the ANS has
deprecated (35 to 39 and 93) are left out.

Specialties come from TRE_R38-SpecialiteOrdinale (OID 1.2.250.1.213.2.28). Only a selection of doctors' specialties
("SM" codes) is kept; the French label is the ANS display, including its "(SM)" suffix, so that it can be used as a FHIR
``Coding.display`` unchanged.

English labels are Carnet's own translations.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "DOCTOR",
    "PROFESSIONS",
    "PROFESSION_OID",
    "PROFESSION_SYSTEM",
    "SPECIALTIES",
    "SPECIALTY_OID",
    "SPECIALTY_SYSTEM",
    "profession_label",
    "specialty_label",
]

PROFESSION_SYSTEM = "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
PROFESSION_OID = "1.2.250.1.71.1.2.7"

#: TRE_G15 profession code → (French label, English label).
PROFESSIONS: dict[str, tuple[str, str]] = {
    "10": ("Médecin", "Doctor"),
    "21": ("Pharmacien", "Pharmacist"),
    "26": ("Audioprothésiste", "Hearing aid specialist"),
    "28": ("Opticien-Lunetier", "Dispensing optician"),
    "31": ("Assistant dentaire", "Dental assistant"),
    "32": ("Physicien médical", "Medical physicist"),
    "40": ("Chirurgien-Dentiste", "Dentist"),
    "50": ("Sage-Femme", "Midwife"),
    "60": ("Infirmier", "Nurse"),
    "69": ("Infirmier psychiatrique", "Psychiatric nurse"),
    "70": ("Masseur-Kinésithérapeute", "Physiotherapist"),
    "80": ("Pédicure-Podologue", "Podiatrist"),
    "81": ("Orthoprothésiste", "Prosthetist-orthotist"),
    "82": ("Podo-Orthésiste", "Orthopaedic shoemaker"),
    "83": ("Orthopédiste-Orthésiste", "Orthotist"),
    "84": ("Oculariste", "Ocularist"),
    "85": ("Epithésiste", "Facial prosthetist"),
    "86": ("Technicien de laboratoire médical", "Medical laboratory technician"),
    "91": ("Orthophoniste", "Speech and language therapist"),
    "92": ("Orthoptiste", "Orthoptist"),
    "94": ("Ergothérapeute", "Occupational therapist"),
    "95": ("Diététicien", "Dietitian"),
    "96": ("Psychomotricien", "Psychomotor therapist"),
    "98": ("Manipulateur ERM", "Radiographer"),
}

#: The profession code of doctors, the only profession with a specialty here.
DOCTOR = "10"

SPECIALTY_SYSTEM = "https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale"
SPECIALTY_OID = "1.2.250.1.213.2.28"

#: TRE_R38 specialty code (doctors) → (French label, English label).
SPECIALTIES: dict[str, tuple[str, str]] = {
    # General practice: three codes, depending on how the qualification was obtained.
    "SM26": ("Qualifié en Médecine générale (SM)", "General practice (qualified)"),
    "SM53": ("Spécialiste en Médecine générale (SM)", "General practice (specialist)"),
    "SM54": ("Médecine générale (SM)", "General practice"),
    "SM01": ("Anatomie et Cytologie pathologiques (SM)", "Anatomical and cytological pathology"),
    "SM02": ("Anesthésie-réanimation (SM)", "Anaesthesia and intensive care"),
    "SM03": ("Biologie médicale (SM)", "Medical biology"),
    "SM04": ("Cardiologie et Maladies vasculaires (SM)", "Cardiology and vascular diseases"),
    "SM73": ("Médecine cardiovasculaire (SM)", "Cardiovascular medicine"),
    "SM05": ("Chirurgie générale (SM)", "General surgery"),
    "SM08": ("Chirurgie orthopédique et Traumatologie (SM)", "Orthopaedic surgery and traumatology"),
    "SM15": ("Dermatologie et Vénéréologie (SM)", "Dermatology and venereology"),
    "SM16": ("Endocrinologie et Métabolisme (SM)", "Endocrinology and metabolism"),
    "SM18": ("Gériatrie (SM)", "Geriatrics"),
    "SM19": ("Gynécologie médicale (SM)", "Medical gynaecology"),
    "SM20": ("Gynécologie-obstétrique (SM)", "Obstetrics and gynaecology"),
    "SM24": ("Gastro-entérologie et Hépatologie (SM)", "Gastroenterology and hepatology"),
    "SM25": ("Médecine du travail (SM)", "Occupational medicine"),
    "SM27": ("Médecine interne (SM)", "Internal medicine"),
    "SM30": ("Néphrologie (SM)", "Nephrology"),
    "SM32": ("Neurologie (SM)", "Neurology"),
    "SM36": ("Oncologie, option médicale (SM)", "Medical oncology"),
    "SM38": ("Ophtalmologie (SM)", "Ophthalmology"),
    "SM39": ("Oto-rhino-laryngologie (SM)", "Otorhinolaryngology"),
    "SM40": ("Pédiatrie (SM)", "Paediatrics"),
    "SM41": ("Pneumologie (SM)", "Pulmonology"),
    "SM42": ("Psychiatrie (SM)", "Psychiatry"),
    "SM43": ("Psychiatrie, option enfant et adolescent (SM)", "Child and adolescent psychiatry"),
    "SM44": ("Radio-diagnostic (SM)", "Diagnostic radiology"),
    "SM48": ("Rhumatologie (SM)", "Rheumatology"),
    "SM58": ("Maladies infectieuses et tropicales (SM)", "Infectious and tropical diseases"),
    "SM59": ("Médecine d'urgence (SM)", "Emergency medicine"),
}

Lang = Literal["fr", "en"]


def _label(table: dict[str, tuple[str, str]], code: str, lang: Lang) -> str:
    if lang not in ("fr", "en"):
        raise ValueError("lang must be 'fr' or 'en'")
    french, english = table[code]
    return french if lang == "fr" else english


def profession_label(code: str, lang: Lang = "fr") -> str:
    """The label of a TRE_G15 profession code. Raises ``KeyError`` for a code not in :data:`PROFESSIONS`."""
    return _label(PROFESSIONS, code, lang)


def specialty_label(code: str, lang: Lang = "fr") -> str:
    """The label of a TRE_R38 specialty code. Raises ``KeyError`` for a code not in :data:`SPECIALTIES`."""
    return _label(SPECIALTIES, code, lang)
