"""Independent test oracle for Carnet's access rules.

Written from /work/shared/DOMAIN.md ("Who may do what", confidentiality codes, habilitation matrix, the dossier's
life) and the project's binding choices where DOMAIN.md is silent -- never from ``carnet.access``. It is deliberately
plain: one function per kind of actor, straight-line if/else in the order the rules read, no tables shared with the
implementation, no imports from ``carnet``.

``expected(scenario, action)`` answers "may this actor do this action, on this dossier / document?".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class Scenario:
    actor: str  # "patient" | "representative" | "professional" | "assurance_maladie" | "insurer" | "mutuelle"
    #             | "employer" | "bank" | "occupational_medicine"
    profession: str | None  # for "professional": TRE_G15 code "10", "21", "40", "50", "60", "70", "91", or "SOCIAL"
    is_regulator: bool  # professional registered as a SAMU centre-15 regulating doctor (only a doctor counts)
    mode: str  # "normal" | "emergency" | "regulation"
    relation: str  # "none" | "authorized" | "care_team" | "treating_gp" | "gp_rights" | "blocked"; others "none"
    representative_kind: str | None  # for "representative": "minor" | "protected_adult"
    patient_age: int  # the dossier owner's age in years
    dossier_status: str  # "active" | "closed"
    objects_break_glass: bool
    objects_regulation: bool
    # the document (for document-level actions)
    doc_class: str  # TRE_A03 class code: "10","11","31","42","43","44","45","52","60","90","95"
    doc_type: str  # LOINC or French code; any type starting with "SOCIAL" is a social-sector document
    confidentiality: frozenset[str]  # subset of {"MASQUE_PS","INVISIBLE_PATIENT","INVISIBLE_REPRESENTANTS_LEGAUX"}
    invisible_patient_expired: bool  # the INVISIBLE_PATIENT period (1 month) is over, so the patient sees it
    actor_is_author: bool  # of the document, and of the structured item for "read_item"
    deleted_by_patient: bool
    # the structured item (an allergy, condition, treatment, vaccination or observation) for "read_item": the patient
    # hid it from professionals, as MASQUE_PS hides a document (issue 13 §3)
    item_hidden: bool = False
    # the patient requires an access code for every professional not yet authorized (issue 13 §1, as My Health
    # Record's Record Access Code): such a professional may no longer declare the patient's consent themselves
    requires_code: bool = False
    # the professional took up the patient's code for hidden documents (issue 13 §1, as My Health Record's Limited
    # Document Access Code): it is recorded on their own authorization, so it counts only while relation is
    # "authorized"; it shows them what the patient hid from professionals (MASQUE_PS), never beyond their profession
    sees_hidden: bool = False
    # a pharmacist presented one of the dossier's prescriptions (issue 12 §2): its number with the patient's INS, or
    # its scanned 2D code, or the patient sent it to their pharmacy
    presented_prescription: bool = False
    # the measure (weight, blood pressure, glucose…: issue 17) for "read_measures": the patient hid it from
    # professionals, "the same rule as hiding a document: the médecin traitant still sees it"
    measure_hidden: bool = False


ACTIONS = ("read_document", "add_document", "check_dossier", "read_history", "manage_access", "close_or_reopen",
           "request_access", "copy_dossier", "read_gp_notices", "read_item", "issue_access_code",
           "redeem_access_code", "redeem_hidden_code", "write_prescription", "dispense_prescription",
           "read_measures", "record_measures", "teleconsult")

# Age at which a minor's legal representatives lose access (DOMAIN.md: Carnet's choice, configurable: 18).
_AGE_OF_MAJORITY = 18


def expected(s: Scenario, action: str) -> bool:
    """What the rules say: True if the actor may perform ``action`` in scenario ``s``."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    if s.dossier_status not in ("active", "closed"):
        raise ValueError(f"unknown dossier_status {s.dossier_status!r}")

    # "Complementary insurers (mutuelles), insurers, employers, banks, occupational medicine: never."
    if s.actor in ("insurer", "mutuelle", "employer", "bank", "occupational_medicine"):
        return False
    if s.actor == "assurance_maladie":
        return _assurance_maladie(s, action)
    if s.actor == "patient":
        return _patient(s, action)
    if s.actor == "representative":
        return _representative(s, action)
    if s.actor == "professional":
        return _professional(s, action)
    raise ValueError(f"unknown actor {s.actor!r}")


# --- Assurance Maladie ------------------------------------------------------------------------------------------


def _assurance_maladie(s: Scenario, action: str) -> bool:
    if action in ("write_prescription", "dispense_prescription"):
        return False  # prescriptions are written by prescribers and dispensed by pharmacists
    if action in ("issue_access_code", "redeem_access_code", "redeem_hidden_code", "teleconsult"):
        return False  # it neither gives a patient's consent nor takes one up
    # A closed dossier: Assurance Maladie gets nothing, not even the existence check.
    if s.dossier_status == "closed":
        return False
    # It may ask whether a dossier exists, in order to feed it.
    if action == "check_dossier":
        return True
    # It deposits the reimbursement history (class 60, type REMB) and nothing else.
    if action == "add_document":
        return s.doc_class == "60"
    # It never reads content; no access history, no management, no closing.
    return False


# --- Patient and legal representatives --------------------------------------------------------------------------


def _patient(s: Scenario, action: str) -> bool:
    if action in ("write_prescription", "dispense_prescription"):
        return False  # the patient reads their prescriptions and sends them to a pharmacy; never writes or dispenses
    if action == "request_access":
        return False  # asking the patient for access is a professional's request
    if action == "issue_access_code":
        # Issue 13 §1: the patient gives a new professional an access code, as they would authorize them: an open
        # dossier only (nobody can be authorized on a closed one).
        return s.dossier_status == "active"
    if action in ("redeem_access_code", "redeem_hidden_code"):
        return False  # a code is for a professional; the patient side has nothing to redeem
    if action == "read_gp_notices":
        return False  # the médecin traitant's inbox is a professional's
    if action == "teleconsult":
        # Issue 12 §1: the patient (or their representative) meets their professional by video: an open dossier.
        return s.dossier_status == "active"
    if action == "read_item":
        # "read everything in the dossier": a hidden item is hidden from professionals only; the patient hid it.
        return True
    if action == "read_measures":
        return True  # their own measurements, hidden ones included, closed dossier too (as everything they read)
    if action == "record_measures":
        # Issue 17 §1, §4: the patient (their apps and devices with their grant) adds measurements and manages their
        # sources, into an open dossier only (as they add their own documents).
        return s.dossier_status == "active"
    if action == "read_document":
        # "read everything in the dossier except what is invisible to them" -- and what they deleted from their view.
        if s.deleted_by_patient:
            return False
        if "INVISIBLE_PATIENT" in s.confidentiality and not s.invisible_patient_expired:
            return False
        return True  # MASQUE_PS hides from professionals only; the patient still sees it.
    if action == "add_document":
        # Their own documents only (class 90), into an active dossier.
        return s.doc_class == "90" and s.dossier_status == "active"
    if action == "check_dossier":
        return True
    if action == "read_history":
        return True  # the access history is the patient's, closed dossier included
    if action == "manage_access":
        return s.dossier_status == "active"
    if action == "close_or_reopen":
        return True  # close an active dossier, reopen a closed one
    if action == "copy_dossier":
        return True  # "The patient (heirs after death) may ask for a complete copy" -- of a closed dossier too
    raise ValueError(f"unknown action {action!r}")


def _representative_is_active(s: Scenario) -> bool:
    if s.representative_kind == "protected_adult":
        return True  # a tutor acts for the protected adult at any age
    if s.representative_kind == "minor":
        return s.patient_age < _AGE_OF_MAJORITY  # "When the minor comes of age, the representatives' access ends"
    raise ValueError(f"unknown representative_kind {s.representative_kind!r}")


def _representative(s: Scenario, action: str) -> bool:
    if not _representative_is_active(s):
        return False
    if action == "read_document":
        # Confidential care: never shown to legal representatives (project choice: both kinds of representative).
        if "INVISIBLE_REPRESENTANTS_LEGAUX" in s.confidentiality:
            return False
    # Otherwise a representative acts exactly as the patient would.
    return _patient(s, action)


# --- Professionals ----------------------------------------------------------------------------------------------


def _professional(s: Scenario, action: str) -> bool:
    if s.mode not in ("normal", "emergency", "regulation"):
        raise ValueError(f"unknown mode {s.mode!r}")
    if s.relation not in ("none", "authorized", "care_team", "treating_gp", "gp_rights", "blocked"):
        raise ValueError(f"unknown relation {s.relation!r}")
    if s.profession is None:
        raise ValueError("a professional needs a profession")
    # Only a doctor may be médecin traitant (DOMAIN.md: the médecin traitant is a "médecin", TRE_G15 code 10): a
    # non-doctor cannot be designated, and one recorded as such before the rule holds no designation.
    if s.relation == "treating_gp" and s.profession != "10":
        s = replace(s, relation="none")
    # "SAMU regulation (centre 15): the regulating doctor": a regulator is a doctor; a non-doctor registered as one
    # before the rule is no regulator.
    if s.is_regulator and s.profession != "10":
        s = replace(s, is_regulator=False)

    # "Blocked professional: nothing, in any mode."
    if s.relation == "blocked":
        return False
    # "Social-sector staff: no access until a deployment enables it" -- no access at all, existence check included.
    if s.profession == "SOCIAL":
        return False
    # Regulation mode is reserved to SAMU centre-15 regulating doctors.
    if s.mode == "regulation" and not s.is_regulator:
        return False
    # "Closed by the patient, or at death: professionals lose access."
    if s.dossier_status == "closed":
        return False

    # Does this professional have access to the dossier?
    has_access = False
    if s.relation in ("authorized", "care_team", "treating_gp", "gp_rights"):
        has_access = True
    # Break the glass: access without authorization, unless the patient objected to break-glass in advance.
    if s.mode == "emergency" and not s.objects_break_glass:
        has_access = True
    # SAMU regulation: access without authorization, unless the patient objected to this mode (a separate objection).
    if s.mode == "regulation" and not s.objects_regulation:
        has_access = True

    if action == "dispense_prescription":
        # Issue 12 §2: "the pharmacist finds it by number and the patient's INS (or the scanned code), sees that
        # prescription and nothing else of the dossier": a pharmacist (TRE_G15 21) who presented it, whatever their
        # authorization (blocked, closed and social-sector returned above), in normal mode (Carnet's choice: a
        # dispensing is no emergency access).
        return s.profession == "21" and s.presented_prescription and s.mode == "normal"
    if action == "write_prescription":
        # Issue 12 §2, Carnet's choice of prescribers: doctors (10), dentists (40) and midwives (50), who may add to
        # the dossier (a prescription is a document they file).
        return s.profession in ("10", "40", "50") and has_access
    if action == "check_dossier":
        # TD0.2 "does a dossier exist": answered to any professional not blocked, even without access.
        return True
    if action == "request_access":
        # Issue 4 §3: a professional without authorization asks the patient from their software, in normal mode.
        return s.mode == "normal" and s.relation == "none"
    if action == "redeem_access_code":
        # Issue 13 §1: the code the patient gave makes a professional authorized "as the patient's own authorization
        # would": only one who is not authorized yet (nor blocked: returned above), in normal mode (an emergency or
        # regulation session is no place to take up a consent), on an open dossier (closed: returned above).
        return s.mode == "normal" and s.relation == "none"
    if action == "redeem_hidden_code":
        # Issue 13 §1, the second code: it adds the patient's hidden documents to an authorization the professional
        # already holds in their own name (not a care team's, which is their organisation's); it replaces nothing. The
        # médecin traitant and gp_rights already see them. Normal mode, as for the first code.
        return s.mode == "normal" and s.relation == "authorized"
    if action == "issue_access_code":
        return False  # codes are the patient's to give
    if action == "record_measures":
        return False  # issue 17 §4: the patient's self-measurements are theirs to add, stop, hide and delete
    if action == "read_measures":
        if not has_access:
            return False
        return _professional_reads_measures(s)
    if action == "teleconsult":
        # Issue 12 §1: "a patient whose dossier they may read" -- by the patient's own authorization (or as their care
        # team or médecin traitant), in normal mode: breaking the glass is for emergencies, not a booked video visit.
        return s.mode == "normal" and s.relation in ("authorized", "care_team", "treating_gp", "gp_rights")
    if action == "read_document":
        if not has_access:
            return False
        return _professional_reads_document(s)
    if action == "read_item":
        if not has_access:
            return False
        return _professional_reads_item(s)
    if action == "add_document":
        if not has_access:
            return False
        # Not the patient's own documents (90), not the reimbursement data (60).
        return s.doc_class not in ("90", "60")
    if action == "read_history":
        return False  # the access history is the patient's
    if action == "manage_access":
        if s.relation in ("authorized", "care_team", "treating_gp", "gp_rights"):
            return True
        # Relation "none": only in normal mode, declaring the patient's consent given during a visit.
        # An emergency or regulation path is no ground for managing authorizations.
        # Unless the patient requires an access code from every professional not yet authorized: then the code
        # (redeem_access_code) is the way in; the médecin traitant and the authorized keep theirs (returned above).
        return s.mode == "normal" and not s.requires_code
    if action == "close_or_reopen":
        return False
    if action == "copy_dossier":
        return False  # the complete copy is the patient's (and their representatives')
    if action == "read_gp_notices":
        # The médecin traitant learns of emergency and regulation accesses to their patient (their inbox shows who,
        # when, why and the patient's identity): whoever is the médecin traitant when reading, never a former one.
        return s.relation == "treating_gp"
    raise ValueError(f"unknown action {action!r}")


def _professional_reads_document(s: Scenario) -> bool:
    """A professional who has access to the dossier: may they read this document?"""
    # Deleted from the patient's view: gone for professionals too.
    if s.deleted_by_patient:
        return False
    # The author always reads what they wrote (MASQUE_PS included, outside their matrix included).
    if s.actor_is_author:
        return True
    # Médecin traitant, and those the patient granted the same rights: everything, MASQUE_PS included.
    if s.relation in ("treating_gp", "gp_rights"):
        return True
    # MASQUE_PS: hidden from all other professionals -- but one the patient gave the code for hidden documents, while
    # their own authorization lasts (the habilitation matrix still applies to them).
    if "MASQUE_PS" in s.confidentiality and not _took_hidden_code(s):
        return False
    # INVISIBLE_PATIENT and INVISIBLE_REPRESENTANTS_LEGAUX hide nothing from professionals.
    return _habilitation_matrix_allows(s.profession, s.doc_class, s.doc_type)


def _professional_reads_item(s: Scenario) -> bool:
    """A professional who has access to the dossier: may they read this structured item?

    Issue 13 §3: the patient hides one item "as MASQUE_PS hides a document", so the MASQUE_PS row of DOMAIN.md's
    table applies word for word: hidden from all professionals, still seen by "the author, the médecin traitant, the
    patient". Break the glass and SAMU regulation follow the same rule as for hidden documents (docs/ACCESS.md: those
    modes are "as if authorized", MASQUE_PS stays hidden). Project choice (docs/CLINICAL.md): for the habilitation
    matrix a structured item is read as the patient summary it belongs to (class 11, type 60591-5)."""
    # The author always reads what they wrote, hidden or not.
    if s.actor_is_author:
        return True
    # Médecin traitant, and those the patient granted the same rights: everything, hidden items included.
    if s.relation in ("treating_gp", "gp_rights"):
        return True
    # Hidden by the patient: hidden from every other professional, in every mode -- but the one who took up the
    # patient's code for hidden documents (it covers what the patient hid, documents and items alike).
    if s.item_hidden and not _took_hidden_code(s):
        return False
    return _habilitation_matrix_allows(s.profession, "11", "60591-5")


def _professional_reads_measures(s: Scenario) -> bool:
    """A professional who has access to the dossier: may they read the patient's measurements of one measure?

    Issue 17 §4: "hides a measure from professionals (the same rule as hiding a document: the médecin traitant still
    sees it)", and "professionals read measures only as the habilitation matrix allows". Project choice
    (docs/MEASUREMENTS.md, the matrix's ``measures_about``): doctors, pharmacists, midwives and nurses read them;
    dentists, the other professions and the social sector do not."""
    if s.relation in ("treating_gp", "gp_rights"):
        return True
    if s.measure_hidden and not _took_hidden_code(s):
        return False
    return s.profession in ("10", "21", "50", "60")


def _took_hidden_code(s: Scenario) -> bool:
    """The code for hidden documents is recorded on the professional's own authorization: it counts while that
    authorization does (in any mode: it is the authorization's, not the mode's)."""
    return s.sees_hidden and s.relation == "authorized"


def _habilitation_matrix_allows(profession: str | None, doc_class: str, doc_type: str) -> bool:
    """Carnet's default habilitation matrix (DOMAIN.md), for documents the professional did not author."""
    # Doctors read every class.
    if profession == "10":
        return True
    # Pharmacists: prescriptions, dispensations, treatments, summaries, lab reports, immunization certificates,
    # care plans.
    if profession == "21":
        if doc_class in ("42", "43", "45", "11", "44"):
            return True
        if doc_class == "10" and doc_type == "11502-2":
            return True
        if doc_class == "52" and doc_type in ("11369-6", "87273-9"):
            return True
        return False
    # Nurses and midwives: reports, summaries, prescriptions, treatments, care plans.
    if profession in ("60", "50"):
        return doc_class in ("10", "11", "42", "45", "44")
    # Dentists: everything but psychiatric/psychological summaries and social-sector documents.
    if profession == "40":
        if doc_type == "68599-0":
            return False
        if doc_type.startswith("SOCIAL"):
            return False
        return True
    # Social-sector staff: nothing until a deployment enables it.
    if profession == "SOCIAL":
        return False
    # Every other profession ("70", "91", ...): summaries only (plus what they authored, handled by the caller).
    return doc_class == "11"


# --- What a published document may say about itself (DOMAIN.md, "Documents") ------------------------------------
# Access is judged by the document's class, so the class is an access fact: DOMAIN.md derives it from the type, and a
# document that declares another class (TRE_A03 ``category``) is refused rather than trusted.


def class_of_type(doc_type: str) -> str | None:
    """The class (TRE_A03) DOMAIN.md gives a document type, or None for a type it does not name."""
    if doc_type in ("11488-4", "11490-0", "11502-2", "11526-1", "34874-8"):
        return "10"  # consultation note, discharge summary, lab report, pathology, operative note
    if doc_type == "18748-4":
        return "31"  # diagnostic imaging
    if doc_type in ("60591-5", "34133-9", "68599-0"):
        return "11"  # patient summary (VSM), summary of episode, psychiatry H&P
    if doc_type == "EXPPAT_3":
        return "11"  # advance directives: DOMAIN.md names the type, not its class; Carnet files it as a summary
    if doc_type in ("57833-6", "57832-8"):
        return "42"  # prescriptions
    if doc_type == "60593-1":
        return "43"  # dispensation
    if doc_type == "18776-5":
        return "44"  # plan of care
    if doc_type == "80565-5":
        return "45"  # medication administration
    if doc_type in ("11369-6", "87273-9"):
        return "52"  # immunization history, immunization note
    if doc_type == "59284-0":
        return "95"  # consent
    if doc_type == "REMB":
        return "60"  # reimbursement data
    if len(doc_type) == 8 and doc_type.startswith("DOCPAT0") and doc_type[7] in "123456789":
        return "90"  # deposited by the patient
    return None


# DOMAIN.md's classes (TRE_A03), in their order.
TRE_A03_CLASSES = ("10", "11", "31", "42", "43", "44", "45", "52", "60", "90", "95")
HABILITATIONS = Path(__file__).resolve().parents[2] / "src" / "carnet" / "access" / "habilitations.json"


def readers_of_class(doc_class: str, matrix: dict[str, object] | None = None) -> int:
    """How many professions of the habilitation matrix (``habilitations.json``, read as data) read a document of
    ``doc_class`` whose type says nothing more (an untyped document): "read": "all" reads every class; "classes"
    lists the classes read; types named under "class_types" or excluded by type do not concern an untyped document;
    "access": false reads nothing; "default" (every other profession) counts once."""
    m = matrix if matrix is not None else json.loads(HABILITATIONS.read_text(encoding="utf-8"))
    entries = [*dict(m["professions"]).values(), m["default"]]  # type: ignore[call-overload]
    count = 0
    for rights in entries:
        if rights.get("access") is False:
            continue
        if rights.get("read") == "all" or doc_class in (rights.get("classes") or []):
            count += 1
    return count


def class_of_untyped_document(matrix: dict[str, object] | None = None) -> str:
    """Fail closed: a document that states no type is filed where the fewest professions read (issue 15 §6), among
    the classes a professional may file (not 60, the Assurance Maladie's reimbursement data, nor 90, the patient's
    own documents: see ``add_document``); between classes read by equally few, the last in TRE_A03's order (95,
    "Document de gestion", is the one that claims no kind of content)."""
    candidates = [c for c in TRE_A03_CLASSES if c not in ("60", "90")]
    fewest = min(readers_of_class(c, matrix) for c in candidates)
    return [c for c in candidates if readers_of_class(c, matrix) == fewest][-1]


def filed_class(doc_type: str) -> str | None:
    """The class a published document is filed in: an untyped document (``doc_type`` "") in
    :func:`class_of_untyped_document`; a DOMAIN.md type in its class; None for any other type, which Carnet files
    only if it is in the ANS document-type value set (JDV_J07, data Carnet carries) and otherwise refuses: an unknown
    type is never given a default class."""
    if doc_type == "":
        return class_of_untyped_document()
    return class_of_type(doc_type)


def category_is_accepted(doc_type: str, declared_class: str | None) -> bool:
    """May a document of ``doc_type`` declaring TRE_A03 category ``declared_class`` (None: no category) be filed?
    Only if the category agrees with the class of the type: a contradicting category is refused, never trusted.
    An untyped document ("") may declare only the class it is filed in."""
    derived = filed_class(doc_type)
    if declared_class is None or derived is None:
        return True
    if doc_type == "EXPPAT_3" and declared_class == "90":
        return True  # advance directives the patient deposits are the patient's own documents
    return declared_class == derived


def security_label_is_accepted(system: str | None, code: str | None) -> bool:
    """May a document carry this ``securityLabel`` coding? A mask is either enforced or refused: only the French
    confidentiality codes (JDV_J58, OID 1.2.250.1.213.1.1.4.13, also published as the TRE_A07 code system) and the
    HL7 v3-Confidentiality codes are known; a coding without a system, of another system, or with another code is
    refused."""
    french_systems = (
        "urn:oid:1.2.250.1.213.1.1.4.13",
        "https://mos.esante.gouv.fr/NOS/TRE_A07-StatusVisibiliteDocument/FHIR/TRE-A07-StatusVisibiliteDocument",
        "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument",
    )
    if system in french_systems:
        return code in ("N", "MASQUE_PS", "INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX")
    if system == "http://terminology.hl7.org/CodeSystem/v3-Confidentiality":
        return code in ("U", "L", "M", "N", "R", "V")
    return False
