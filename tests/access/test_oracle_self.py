"""Sanity tests of the oracle itself, each one a sentence of DOMAIN.md (or a binding project choice).

They do not test Carnet: they let a reviewer check that ``oracle.expected`` says what the rules say.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.access.oracle import ACTIONS, Scenario, expected

# An authorized general practitioner (not the médecin traitant) reading a plain consultation note in an active
# dossier of a 40-year-old patient who objected to nothing. Each test changes only what its sentence is about.
BASE = Scenario(
    actor="professional",
    profession="10",
    is_regulator=False,
    mode="normal",
    relation="authorized",
    representative_kind=None,
    patient_age=40,
    dossier_status="active",
    objects_break_glass=False,
    objects_regulation=False,
    doc_class="10",
    doc_type="11488-4",
    confidentiality=frozenset(),
    invisible_patient_expired=False,
    actor_is_author=False,
    deleted_by_patient=False,
)

PATIENT = replace(BASE, actor="patient", profession=None, relation="none")
PARENT = replace(
    BASE, actor="representative", profession=None, relation="none", representative_kind="minor", patient_age=15
)


def allowed(s: Scenario) -> set[str]:
    return {action for action in ACTIONS if expected(s, action)}


# --- Who never gets in -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("actor", ["insurer", "mutuelle", "employer", "bank", "occupational_medicine"])
def test_an_insurer_never_gets_in(actor: str) -> None:
    # "Complementary insurers (mutuelles), insurers, employers, banks, occupational medicine: never."
    s = replace(BASE, actor=actor, profession=None, relation="none")
    assert allowed(s) == set()
    assert allowed(replace(s, doc_class="60", doc_type="REMB")) == set()


def test_assurance_maladie_feeds_reimbursements_but_never_reads() -> None:
    # "deposits the reimbursement history; never reads content."
    am = replace(BASE, actor="assurance_maladie", profession=None, relation="none", doc_class="60", doc_type="REMB")
    assert allowed(am) == {"check_dossier", "add_document"}
    assert not expected(replace(am, doc_class="10", doc_type="11488-4"), "add_document")
    assert allowed(replace(am, dossier_status="closed")) == set()


# --- Blocked, closed --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["normal", "emergency", "regulation"])
def test_a_blocked_doctor_reads_nothing_even_in_an_emergency(mode: str) -> None:
    # "Blocked professional: nothing, in any mode."
    s = replace(BASE, relation="blocked", mode=mode, is_regulator=True, actor_is_author=True)
    assert allowed(s) == set()


def test_a_closed_dossier_shuts_out_professionals_but_not_the_patient() -> None:
    # "Closed by the patient, or at death: professionals lose access." Reopening is the patient's.
    assert allowed(replace(BASE, relation="treating_gp", dossier_status="closed")) == set()
    closed = replace(PATIENT, dossier_status="closed", doc_class="90", doc_type="DOCPAT01")
    assert allowed(closed) == {"read_document", "check_dossier", "read_history", "close_or_reopen", "copy_dossier",
                               "read_item", "read_measures"}


# --- Professionals in normal mode -------------------------------------------------------------------------------


def test_a_doctor_without_authorization_reads_nothing_but_may_ask_whether_the_dossier_exists() -> None:
    # "Professional, normal mode: needs an authorization"; TD0.2 "does a dossier exist" needs none.
    s = replace(BASE, relation="none")
    assert not expected(s, "read_document")
    assert not expected(s, "add_document")
    assert expected(s, "check_dossier")
    # ... and may record the consent the patient gives during the visit.
    assert expected(s, "manage_access")


def test_a_care_team_member_is_deemed_authorized() -> None:
    # "members of the patient's care team are deemed authorized"
    s = replace(BASE, relation="care_team", profession="60")
    assert expected(s, "read_document")
    assert expected(s, "add_document")
    assert not expected(s, "read_history")
    assert not expected(s, "close_or_reopen")


def test_an_authorized_doctor_never_reads_a_masked_document() -> None:
    # "never MASQUE_PS (unless author or médecin traitant)"
    masked = replace(BASE, confidentiality=frozenset({"MASQUE_PS"}))
    assert not expected(masked, "read_document")
    assert expected(replace(masked, actor_is_author=True), "read_document")


def test_the_treating_gp_reads_a_masked_document() -> None:
    # "Médecin traitant: everything, MASQUE_PS included ... The patient may grant the same rights to others."
    masked = replace(BASE, confidentiality=frozenset({"MASQUE_PS"}), doc_type="68599-0", doc_class="11")
    assert expected(replace(masked, relation="treating_gp"), "read_document")
    assert expected(replace(masked, relation="gp_rights", profession="60"), "read_document")


def test_only_the_current_treating_gp_reads_the_notices_of_emergency_accesses() -> None:
    gp = replace(BASE, relation="treating_gp")
    assert expected(gp, "read_gp_notices")
    assert expected(replace(gp, mode="emergency"), "read_gp_notices")
    # a former médecin traitant (now merely authorized, or nothing), anyone else, a blocked or shut-out GP: no
    for relation in ("none", "authorized", "care_team", "gp_rights", "blocked"):
        assert not expected(replace(gp, relation=relation), "read_gp_notices"), relation
    assert not expected(replace(gp, dossier_status="closed"), "read_gp_notices")
    assert not expected(PATIENT, "read_gp_notices")


def test_the_habilitation_matrix_limits_what_each_profession_reads() -> None:
    def reads(profession: str, doc_class: str, doc_type: str) -> bool:
        return expected(replace(BASE, profession=profession, doc_class=doc_class, doc_type=doc_type), "read_document")

    # "doctors read every class"
    assert reads("10", "60", "REMB")
    # "pharmacists read prescriptions, dispensations, treatments, summaries, lab reports, certificates of
    # immunization and care plans"
    assert reads("21", "42", "57833-6")
    assert reads("21", "10", "11502-2")
    assert not reads("21", "10", "11488-4")
    assert reads("21", "52", "11369-6")
    assert not reads("21", "31", "18748-4")
    # "nurses and midwives read reports, summaries, prescriptions, treatments and care plans"
    assert reads("60", "10", "11488-4")
    assert reads("50", "44", "18776-5")
    assert not reads("60", "31", "18748-4")
    assert not reads("50", "43", "60593-1")
    # "dentists read all but psychiatric and psychological summaries and social-sector documents"
    assert reads("40", "31", "18748-4")
    assert not reads("40", "11", "68599-0")
    assert not reads("40", "10", "SOCIAL01")
    # "other professions read only what they authored plus summaries"
    assert reads("70", "11", "60591-5")
    assert not reads("70", "10", "11488-4")
    assert expected(replace(BASE, profession="70", actor_is_author=True), "read_document")
    # "Social-sector staff: no access until a deployment enables it."
    assert not reads("SOCIAL", "11", "60591-5")


def test_invisibility_to_the_patient_hides_nothing_from_professionals() -> None:
    # INVISIBLE_PATIENT: "still seen by professionals"; INVISIBLE_REPRESENTANTS_LEGAUX: "the minor, professionals".
    for code in ("INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX"):
        assert expected(replace(BASE, confidentiality=frozenset({code})), "read_document")


def test_professionals_add_clinical_documents_but_not_the_patients_or_the_reimbursements() -> None:
    # "May add documents to a dossier they are authorized on."
    assert expected(BASE, "add_document")
    assert not expected(replace(BASE, doc_class="90", doc_type="DOCPAT01"), "add_document")
    assert not expected(replace(BASE, doc_class="60", doc_type="REMB"), "add_document")


# --- Break the glass, SAMU regulation ---------------------------------------------------------------------------


def test_break_the_glass_opens_the_dossier_unless_the_patient_objected() -> None:
    emergency = replace(BASE, relation="none", mode="emergency")
    assert expected(emergency, "read_document")
    assert expected(emergency, "add_document")
    assert not expected(emergency, "manage_access")
    # "unless the patient objected to break-glass access in advance"
    objected = replace(emergency, objects_break_glass=True)
    assert not expected(objected, "read_document")
    assert expected(objected, "check_dossier")
    # The objection blocks only the emergency path: an authorized doctor keeps access.
    assert expected(replace(objected, relation="authorized"), "read_document")
    # Emergency does not lift MASQUE_PS.
    assert not expected(replace(emergency, confidentiality=frozenset({"MASQUE_PS"})), "read_document")


def test_samu_regulation_is_for_regulating_doctors_and_has_its_own_objection() -> None:
    regulation = replace(BASE, relation="none", mode="regulation", is_regulator=True)
    assert expected(regulation, "read_document")
    # "unless the patient objected to this mode -- an objection separate from the break-glass one"
    assert expected(replace(regulation, objects_break_glass=True), "read_document")
    assert not expected(replace(regulation, objects_regulation=True), "read_document")
    assert not expected(replace(regulation, objects_break_glass=True, mode="emergency"), "read_document")
    # Not a regulating doctor: the mode is not open to them at all.
    assert allowed(replace(regulation, is_regulator=False)) == set()
    # A regulator may also act in normal mode like any professional.
    assert not expected(replace(regulation, mode="normal"), "read_document")
    assert expected(replace(regulation, mode="normal", relation="authorized"), "read_document")


# --- Patient and representatives --------------------------------------------------------------------------------


def test_the_patient_reads_everything_except_what_is_invisible_to_them() -> None:
    assert expected(replace(PATIENT, confidentiality=frozenset({"MASQUE_PS"})), "read_document")
    hidden = replace(PATIENT, confidentiality=frozenset({"INVISIBLE_PATIENT"}))
    assert not expected(hidden, "read_document")
    # "becomes visible to the patient automatically after 1 month"
    assert expected(replace(hidden, invisible_patient_expired=True), "read_document")
    # "delete documents from their view"
    assert not expected(replace(PATIENT, deleted_by_patient=True), "read_document")
    assert not expected(replace(BASE, deleted_by_patient=True, actor_is_author=True), "read_document")


def test_the_patient_adds_only_their_own_documents_and_manages_the_dossier() -> None:
    assert expected(replace(PATIENT, doc_class="90", doc_type="DOCPAT01"), "add_document")
    assert not expected(PATIENT, "add_document")
    assert {"check_dossier", "read_history", "manage_access", "close_or_reopen"} <= allowed(PATIENT)


def test_a_minors_confidential_care_is_hidden_from_the_parents_not_from_the_minor() -> None:
    confidential = frozenset({"INVISIBLE_REPRESENTANTS_LEGAUX"})
    assert not expected(replace(PARENT, confidentiality=confidential), "read_document")
    assert expected(replace(PATIENT, patient_age=15, confidentiality=confidential), "read_document")
    # A tutor is a legal representative too (project choice).
    tutor = replace(PARENT, representative_kind="protected_adult", patient_age=50, confidentiality=confidential)
    assert not expected(tutor, "read_document")
    # INVISIBLE_PATIENT hides from "the patient and representatives".
    assert not expected(replace(PARENT, confidentiality=frozenset({"INVISIBLE_PATIENT"})), "read_document")


def test_the_parents_access_ends_when_the_minor_comes_of_age() -> None:
    assert allowed(PARENT) == allowed(PATIENT)
    assert allowed(replace(PARENT, patient_age=17)) == allowed(PATIENT)
    assert allowed(replace(PARENT, patient_age=18)) == set()
    # A tutor's mandate does not end with an age.
    assert allowed(replace(PARENT, representative_kind="protected_adult", patient_age=70)) == allowed(PATIENT)


# --- Invariants over every scenario -----------------------------------------------------------------------------

scenarios = st.builds(
    Scenario,
    actor=st.sampled_from(
        [
            "patient",
            "representative",
            "professional",
            "assurance_maladie",
            "insurer",
            "mutuelle",
            "employer",
            "bank",
            "occupational_medicine",
        ]
    ),
    profession=st.sampled_from(["10", "21", "40", "50", "60", "70", "91", "SOCIAL"]),
    is_regulator=st.booleans(),
    mode=st.sampled_from(["normal", "emergency", "regulation"]),
    relation=st.sampled_from(["none", "authorized", "care_team", "treating_gp", "gp_rights", "blocked"]),
    representative_kind=st.sampled_from(["minor", "protected_adult"]),
    patient_age=st.integers(min_value=0, max_value=110),
    dossier_status=st.sampled_from(["active", "closed"]),
    objects_break_glass=st.booleans(),
    objects_regulation=st.booleans(),
    doc_class=st.sampled_from(["10", "11", "31", "42", "43", "44", "45", "52", "60", "90", "95"]),
    doc_type=st.sampled_from(["11488-4", "11502-2", "68599-0", "60591-5", "11369-6", "REMB", "DOCPAT01", "SOCIAL01"]),
    confidentiality=st.frozensets(
        st.sampled_from(["MASQUE_PS", "INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX"])
    ),
    invisible_patient_expired=st.booleans(),
    actor_is_author=st.booleans(),
    deleted_by_patient=st.booleans(),
    item_hidden=st.booleans(),
)


@given(scenarios)
def test_nobody_but_the_patient_side_reads_the_history_or_closes_the_dossier(s: Scenario) -> None:
    if s.actor not in ("patient", "representative"):
        assert not expected(s, "read_history")
        assert not expected(s, "close_or_reopen")


@given(scenarios)
def test_nothing_is_ever_added_to_a_closed_dossier_nor_read_from_the_deleted(s: Scenario) -> None:
    if s.dossier_status == "closed":
        assert not expected(s, "add_document")
        assert not expected(s, "manage_access")
    if s.deleted_by_patient:
        assert not expected(s, "read_document")


def test_an_unknown_action_is_an_error_not_a_silent_no() -> None:
    with pytest.raises(ValueError):
        expected(BASE, "delete_dossier")


# --- A structured item the patient hid (issue 13 §3: "as MASQUE_PS hides a document") ---------------------------

HIDDEN_ITEM = replace(BASE, item_hidden=True)


def test_a_hidden_item_is_hidden_from_an_authorized_professional() -> None:
    # MASQUE_PS: "hidden from all professionals".
    assert expected(replace(BASE, item_hidden=False), "read_item")
    assert not expected(HIDDEN_ITEM, "read_item")
    assert not expected(replace(HIDDEN_ITEM, relation="care_team"), "read_item")


@pytest.mark.parametrize("relation", ["treating_gp", "gp_rights"])
def test_the_medecin_traitant_still_reads_a_hidden_item(relation: str) -> None:
    # MASQUE_PS: "still seen by the author, the médecin traitant, the patient"; "The patient may grant the same rights".
    assert expected(replace(HIDDEN_ITEM, relation=relation), "read_item")


def test_the_author_of_a_hidden_item_still_reads_it() -> None:
    assert expected(replace(HIDDEN_ITEM, actor_is_author=True), "read_item")
    assert expected(replace(HIDDEN_ITEM, actor_is_author=True, relation="none", mode="emergency"), "read_item")


@pytest.mark.parametrize("mode", ["emergency", "regulation"])
def test_emergency_and_regulation_do_not_reveal_a_hidden_item(mode: str) -> None:
    # Break the glass follows the rule of hidden documents: "as if authorized", MASQUE_PS stays hidden.
    s = replace(HIDDEN_ITEM, relation="none", mode=mode, is_regulator=True)
    assert not expected(s, "read_item")
    assert expected(replace(s, item_hidden=False), "read_item")


def test_the_patient_and_the_representatives_read_a_hidden_item() -> None:
    assert expected(replace(PATIENT, item_hidden=True), "read_item")
    assert expected(replace(PARENT, item_hidden=True), "read_item")


def test_a_blocked_or_unauthorized_professional_reads_no_item() -> None:
    assert not expected(replace(BASE, relation="blocked"), "read_item")
    assert not expected(replace(BASE, relation="none"), "read_item")


@given(scenarios)
def test_a_hidden_item_is_read_only_by_the_patient_side_its_author_and_full_rights(s: Scenario) -> None:
    if s.item_hidden and expected(s, "read_item"):
        assert s.actor in ("patient", "representative") or s.actor_is_author or \
            s.relation in ("treating_gp", "gp_rights")


# --- measurements (issue 17 §4) -----------------------------------------------------------------------------------

def test_a_hidden_measure_is_read_by_the_medecin_traitant_not_by_another_authorized_doctor() -> None:
    assert expected(replace(BASE, measure_hidden=False), "read_measures")
    assert not expected(replace(BASE, measure_hidden=True), "read_measures")
    assert expected(replace(BASE, measure_hidden=True, relation="treating_gp"), "read_measures")
    assert expected(replace(BASE, measure_hidden=True, sees_hidden=True), "read_measures")


@pytest.mark.parametrize(("profession", "reads"), [("10", True), ("21", True), ("50", True), ("60", True),
                                                   ("40", False), ("70", False), ("91", False)])
def test_measurements_are_read_by_the_professions_the_project_chose(profession: str, reads: bool) -> None:
    assert expected(replace(BASE, profession=profession), "read_measures") is reads


@given(scenarios)
def test_only_the_patient_side_records_measurements_and_only_in_an_open_dossier(s: Scenario) -> None:
    if expected(s, "record_measures"):
        assert s.actor in ("patient", "representative") and s.dossier_status == "active"
