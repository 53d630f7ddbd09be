"""``carnet.access.policy.decide`` against the independent oracle (``tests/access/oracle.py``).

Each oracle :class:`Scenario` is mapped onto the policy's inputs (``Actor``, ``DossierFacts``, ``Standing``,
``DocFacts``) by :func:`to_policy`, and every oracle action onto the part of the :class:`Decision` that answers it
(:func:`policy_answer`). Three layers:

- a hypothesis test over every field of ``Scenario``;
- exhaustive loops over the whole cross product of the dossier-level fields, and of the document-level fields for a
  panel of actors, so that no combination escapes;
- named tests for what the oracle does not cover (operators, strangers, representatives not on the dossier, a
  professional without a profession, the wording of a refusal).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carnet.access.actors import Actor, ActorKind, Mode
from carnet.access.matrix import load_matrix
from carnet.access.policy import Decision, DocFacts, DossierFacts, ItemFacts, Standing, age_on, decide
from tests.access.oracle import ACTIONS, Scenario, expected

# --- the fixed clock and ids ---------------------------------------------------------------------------------------

TODAY = dt.date(2025, 6, 15)
NOW = dt.datetime(2025, 6, 15, 10, 30, tzinfo=dt.UTC)
EXPIRED = NOW - dt.timedelta(days=3)  # the INVISIBLE_PATIENT period ended before now
PENDING = NOW + dt.timedelta(days=20)  # ... still running

DOSSIER_KEY = "0197a6f0-0000-7000-8000-000000000001"
ACTOR_IDS = {
    "professional": "810001045367",  # "8" + RPPS 10001045367
    "patient": "255081416802538",  # the owner's INS (NIR 2 55 08 14 168 025, key 38)
    "representative": "0197a6f0-0000-7000-8000-0000000000aa",
    "assurance_maladie": "CNAM",
}
OTHER_AUTHOR = "810002345678"  # somebody else's national id

# --- the domains of every Scenario field -------------------------------------------------------------------------

ACTOR_KINDS = ("patient", "representative", "professional", "assurance_maladie", "insurer", "mutuelle", "employer",
               "bank", "occupational_medicine")
PROFESSIONS = ("10", "21", "40", "50", "60", "70", "91", "SOCIAL")
MODES = ("normal", "emergency", "regulation")
RELATIONS = ("none", "authorized", "care_team", "treating_gp", "gp_rights", "blocked")
REPRESENTATIVE_KINDS = ("minor", "protected_adult")
STATUSES = ("active", "closed")
DOC_CLASSES = ("10", "11", "31", "42", "43", "44", "45", "52", "60", "90", "95")
DOC_TYPES = ("11488-4", "11502-2", "68599-0", "60591-5", "11369-6", "87273-9", "57833-6", "REMB", "DOCPAT01",
             "SOCIAL01", "18748-4", "SYNTH", "")  # "": a document published without a type (filed in class 95)
CODES = ("MASQUE_PS", "INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX")
CONFIDENTIALITY_SETS = tuple(frozenset(c) for n in range(len(CODES) + 1) for c in itertools.combinations(CODES, n))
DOSSIER_ACTIONS = ("check_dossier", "read_history", "manage_access", "close_or_reopen", "request_access",
                   "issue_access_code", "redeem_access_code", "redeem_hidden_code",
                   "copy_dossier", "read_gp_notices")

MATRIX = load_matrix()


# --- the mapping -------------------------------------------------------------------------------------------------


def birth_date_for(age: int, birthday_is_today: bool) -> dt.date:
    """A birth date giving exactly ``age`` on TODAY: either the birthday is today (just turned ``age``) or it is
    tomorrow (``age + 1`` not reached yet) -- the two edges of the year of age."""
    if birthday_is_today:
        return TODAY.replace(year=TODAY.year - age)
    return TODAY.replace(year=TODAY.year - age - 1) + dt.timedelta(days=1)


def to_policy(s: Scenario, birthday_is_today: bool = True) -> tuple[Actor, DossierFacts, Standing, DocFacts]:
    """The policy's inputs for oracle scenario ``s``."""
    actor_id = ACTOR_IDS.get(s.actor)
    actor = Actor(
        kind=ActorKind(s.actor),
        id=actor_id,
        profession=s.profession,
        is_regulator=s.is_regulator,
        mode=Mode(s.mode),
    )
    facts = DossierFacts(
        dossier_key=DOSSIER_KEY,
        status=s.dossier_status,
        birth_date=birth_date_for(s.patient_age, birthday_is_today),
        objects_break_glass=s.objects_break_glass,
        objects_regulation=s.objects_regulation,
        requires_code=s.requires_code,
    )
    standing = Standing(
        relation=s.relation,
        is_owner=s.actor == "patient",
        representative_kind=s.representative_kind if s.actor == "representative" else None,
        sees_hidden=s.sees_hidden,
        presented_prescription=s.presented_prescription,
    )
    return actor, facts, standing, doc_for(s)


def doc_for(s: Scenario) -> DocFacts:
    """The document of oracle scenario ``s``."""
    return DocFacts(
        class_code=s.doc_class,
        type_code=s.doc_type,
        author_id=ACTOR_IDS.get(s.actor) if s.actor_is_author else OTHER_AUTHOR,
        masked="MASQUE_PS" in s.confidentiality,
        invisible_patient="INVISIBLE_PATIENT" in s.confidentiality,
        invisible_patient_until=EXPIRED if s.invisible_patient_expired else PENDING,
        invisible_representatives="INVISIBLE_REPRESENTANTS_LEGAUX" in s.confidentiality,
        deleted=s.deleted_by_patient,
    )


def item_for(s: Scenario) -> ItemFacts:
    """The structured item of scenario ``s`` (for "read_item")."""
    return ItemFacts(author_id=ACTOR_IDS.get(s.actor) if s.actor_is_author else OTHER_AUTHOR, hidden=s.item_hidden)


def policy_answer(decision: Decision, doc: DocFacts, action: str, item: ItemFacts | None = None,
                  measure_hidden: bool = False) -> bool:
    """The policy's answer to an oracle action."""
    if action == "read_measures":
        return decision.read and decision.visibility.allows_measure(measure_hidden)
    if action == "record_measures":
        return decision.record_measures
    if action == "read_item":
        assert item is not None, "read_item needs the item"
        return decision.read and decision.visibility.allows_item(item)
    if action == "read_document":
        return decision.read and decision.visibility.allows(doc, NOW)
    if action == "add_document":
        return decision.may_add(doc.class_code)
    if action == "check_dossier":
        return decision.check
    if action == "read_history":
        return decision.read_history
    if action == "manage_access":
        return decision.manage_access
    if action == "close_or_reopen":
        return decision.close_or_reopen
    if action == "request_access":
        return decision.request_access
    if action == "copy_dossier":
        return decision.copy
    if action == "issue_access_code":
        return decision.issue_codes
    if action == "redeem_access_code":
        return decision.redeem_code
    if action == "redeem_hidden_code":
        return decision.redeem_hidden_code
    if action == "read_gp_notices":
        return decision.gp_notices
    if action == "write_prescription":
        return decision.prescribe
    if action == "dispense_prescription":
        return decision.dispense
    if action == "teleconsult":
        return decision.teleconsult
    raise ValueError(f"unknown action {action!r}")


def decide_for(s: Scenario, birthday_is_today: bool = True) -> tuple[Decision, DocFacts]:
    actor, facts, standing, doc = to_policy(s, birthday_is_today)
    assert age_on(facts.birth_date, TODAY) == s.patient_age, "the mapping of patient_age is wrong"
    return decide(actor, facts, standing, TODAY, MATRIX), doc


def disagreements(s: Scenario, actions: Iterable[str], birthday_is_today: bool = True,
                  decision: Decision | None = None) -> list[str]:
    """The actions on which the oracle and the policy disagree for ``s``. ``decision``: the policy's decision for
    a scenario differing from ``s`` in its document and item fields only (``decide`` takes the actor, the dossier and
    the standing, not the document), so that the exhaustive loops decide once per dossier-level combination."""
    if decision is None:
        decision, doc = decide_for(s, birthday_is_today)
    else:
        doc = doc_for(s)
    item = item_for(s)
    return [
        f"{action}: oracle={expected(s, action)} policy={policy_answer(decision, doc, action, item)} for {s} "
        f"(birthday_is_today={birthday_is_today}, basis={decision.basis!r})"
        for action in actions
        if expected(s, action) != policy_answer(decision, doc, action, item, s.measure_hidden)
    ]


def report(found: list[str], limit: int = 20) -> str:
    shown = "\n".join(found[:limit])
    return f"{len(found)} disagreement(s) between the oracle and the policy:\n{shown}"


# --- 1. hypothesis over every field ------------------------------------------------------------------------------


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    actor = draw(st.sampled_from(ACTOR_KINDS))
    professional = actor == "professional"
    return Scenario(
        actor=actor,
        profession=draw(st.sampled_from(PROFESSIONS)) if professional else None,
        is_regulator=draw(st.booleans()),
        mode=draw(st.sampled_from(MODES)),
        relation=draw(st.sampled_from(RELATIONS)) if professional else "none",
        representative_kind=draw(st.sampled_from(REPRESENTATIVE_KINDS)) if actor == "representative" else None,
        patient_age=draw(st.integers(min_value=0, max_value=90)),
        dossier_status=draw(st.sampled_from(STATUSES)),
        objects_break_glass=draw(st.booleans()),
        objects_regulation=draw(st.booleans()),
        doc_class=draw(st.sampled_from(DOC_CLASSES)),
        doc_type=draw(st.sampled_from(DOC_TYPES)),
        confidentiality=draw(st.sampled_from(CONFIDENTIALITY_SETS)),
        invisible_patient_expired=draw(st.booleans()),
        actor_is_author=draw(st.booleans()),
        deleted_by_patient=draw(st.booleans()),
        item_hidden=draw(st.booleans()),
        requires_code=draw(st.booleans()),
        sees_hidden=draw(st.booleans()),
        presented_prescription=draw(st.booleans()),
        measure_hidden=draw(st.booleans()),
    )


@settings(max_examples=3000, deadline=None)
@given(s=scenarios(), birthday_is_today=st.booleans())
def test_policy_agrees_with_the_oracle_on_every_action(s: Scenario, birthday_is_today: bool) -> None:
    decision, doc = decide_for(s, birthday_is_today)
    for action in ACTIONS:
        want = expected(s, action)
        got = policy_answer(decision, doc, action, item_for(s), s.measure_hidden)
        assert got == want, (
            f"action {action!r}: oracle says {want}, policy says {got}\nscenario: {s}\n"
            f"birthday_is_today={birthday_is_today}\ndecision: {decision}"
        )


# --- 2. exhaustive loops -----------------------------------------------------------------------------------------

EXHAUSTIVE_AGES = (10, 17, 18, 40)
NEUTRAL_DOC = {"doc_class": "11", "doc_type": "60591-5"}  # a patient summary: every profession with access reads it


def dossier_level_scenarios(actor: str) -> Iterator[Scenario]:
    """Every combination of the dossier-level fields for ``actor``; the document is a plain patient summary."""
    professional = actor == "professional"
    for (profession, is_regulator, mode, relation, status, obj_bg, obj_reg, rep_kind, age, code,
         sees_hidden) in itertools.product(
        PROFESSIONS if professional else (None,),
        (False, True),
        MODES,
        RELATIONS if professional else ("none",),
        STATUSES,
        (False, True),
        (False, True),
        REPRESENTATIVE_KINDS if actor == "representative" else (None,),
        EXHAUSTIVE_AGES,
        (False, True),
        (False, True),
    ):
        yield Scenario(
            actor=actor, profession=profession, is_regulator=is_regulator, mode=mode, relation=relation,
            representative_kind=rep_kind, patient_age=age, dossier_status=status, objects_break_glass=obj_bg,
            objects_regulation=obj_reg, confidentiality=frozenset(), invisible_patient_expired=False,
            actor_is_author=False, deleted_by_patient=False, requires_code=code, sees_hidden=sees_hidden,
            **NEUTRAL_DOC,
        )


@pytest.mark.parametrize("birthday_is_today", [True, False])  # two halves: the longest test, spread over workers
@pytest.mark.parametrize("actor", ACTOR_KINDS)
def test_every_dossier_level_combination_agrees(actor: str, birthday_is_today: bool) -> None:
    """The dossier-level actions, plus adding a document of each class, reading a plain summary (which stands for
    "may read the dossier at all") and reading a structured item, hidden or not, written by the caller or not
    (issue 13 §3), for the full cross product of the dossier-level fields; whether it is the patient's birthday is
    the test's second parameter."""
    found: list[str] = []
    count = 0
    for s in dossier_level_scenarios(actor):
        count += 1
        found += disagreements(s, (*DOSSIER_ACTIONS, "read_document"), birthday_is_today)
        decision, _ = decide_for(s, birthday_is_today)  # the variants below change only the document or item
        for hidden, author in itertools.product((False, True), (False, True)):
            found += disagreements(replace(s, item_hidden=hidden, actor_is_author=author), ("read_item",),
                                   birthday_is_today, decision)
            # a document the patient hid (MASQUE_PS), with or without the code for hidden documents
            found += disagreements(replace(s, confidentiality=frozenset({"MASQUE_PS"}) if hidden else
                                           frozenset(), actor_is_author=author), ("read_document",),
                                   birthday_is_today, decision)
        for doc_class in DOC_CLASSES:
            found += disagreements(replace(s, doc_class=doc_class), ("add_document",), birthday_is_today,
                                   decision)
    assert count >= 2 * 3 * 2 * 2 * 2 * len(EXHAUSTIVE_AGES)
    assert not found, report(found)


# A panel of actors standing on the dossier, each in front of every document: the document-level fields are crossed
# in full (11 classes x 11 types x 8 confidentiality sets x expired x author x deleted = 7,744 documents each).
DOC_PANEL: tuple[Scenario, ...] = (
    *(
        Scenario(actor="professional", profession=p, is_regulator=reg, mode=mode, relation=rel,
                 representative_kind=None, patient_age=40, dossier_status="active", objects_break_glass=False,
                 objects_regulation=False, confidentiality=frozenset(), invisible_patient_expired=False,
                 actor_is_author=False, deleted_by_patient=False, sees_hidden=hid, **NEUTRAL_DOC)
        for p in PROFESSIONS
        for rel, mode, reg, hid in (("authorized", "normal", False, False), ("care_team", "normal", False, False),
                                    ("treating_gp", "normal", False, False), ("gp_rights", "emergency", False, False),
                                    ("none", "emergency", False, False), ("none", "regulation", True, False),
                                    ("none", "normal", False, False), ("blocked", "emergency", False, False),
                                    # the code for hidden documents taken up (issue 13 §1): normal and emergency
                                    ("authorized", "normal", False, True), ("authorized", "emergency", False, True),
                                    # ... on a standing it does not belong to: it counts for nothing
                                    ("care_team", "normal", False, True), ("none", "emergency", False, True))
    ),
    *(
        Scenario(actor=a, profession=None, is_regulator=False, mode="normal", relation="none",
                 representative_kind=kind, patient_age=age, dossier_status="active", objects_break_glass=False,
                 objects_regulation=False, confidentiality=frozenset(), invisible_patient_expired=False,
                 actor_is_author=False, deleted_by_patient=False, **NEUTRAL_DOC)
        for a, kind, age in (("patient", None, 40), ("patient", None, 12), ("representative", "minor", 12),
                             ("representative", "minor", 18), ("representative", "protected_adult", 40),
                             ("assurance_maladie", None, 40), ("mutuelle", None, 40))
    ),
)


@pytest.mark.parametrize("base", DOC_PANEL, ids=lambda s: f"{s.actor}-{s.profession}-{s.relation}-{s.mode}"
                         f"-{s.representative_kind}-{s.patient_age}-{s.sees_hidden}")
def test_every_document_combination_agrees(base: Scenario) -> None:
    found: list[str] = []
    decision, _ = decide_for(base)  # every scenario below differs from base in its document or item only
    for doc_class, doc_type, conf, expired, author, deleted in itertools.product(
        DOC_CLASSES, DOC_TYPES, CONFIDENTIALITY_SETS, (False, True), (False, True), (False, True)
    ):
        s = replace(base, doc_class=doc_class, doc_type=doc_type, confidentiality=conf,
                    invisible_patient_expired=expired, actor_is_author=author, deleted_by_patient=deleted)
        found += disagreements(s, ("read_document", "add_document"), decision=decision)
    for hidden, author in itertools.product((False, True), (False, True)):
        found += disagreements(replace(base, item_hidden=hidden, actor_is_author=author), ("read_item",),
                               decision=decision)
    for hidden in (False, True):  # the measure's hidden flag is not decide()'s: policy_answer takes it
        found += disagreements(replace(base, measure_hidden=hidden), ("read_measures", "record_measures"),
                               decision=decision)
    assert not found, report(found)


# --- 3. what the oracle does not cover ---------------------------------------------------------------------------



def some_documents() -> Iterator[DocFacts]:
    for doc_class, masked, inv_p, inv_r in itertools.product(DOC_CLASSES, (False, True), (False, True),
                                                             (False, True)):
        yield DocFacts(class_code=doc_class, type_code="11488-4", author_id=OTHER_AUTHOR, masked=masked,
                       invisible_patient=inv_p, invisible_patient_until=EXPIRED, invisible_representatives=inv_r)


def assert_gets_nothing(decision: Decision) -> None:
    assert not decision.check
    assert not decision.read
    assert not decision.read_history
    assert not decision.manage_access
    assert not decision.close_or_reopen
    assert decision.add_classes == "none"
    assert not any(decision.may_add(c) for c in DOC_CLASSES)
    assert decision.visibility.nothing
    assert not any(decision.visibility.allows(d, NOW) for d in some_documents())


def active_dossier(age: int = 40) -> DossierFacts:
    return DossierFacts(dossier_key=DOSSIER_KEY, status="active", birth_date=birth_date_for(age, True))


@pytest.mark.parametrize("standing", [Standing(), Standing(relation="treating_gp"), Standing(is_owner=True),
                                      Standing(representative_kind="protected_adult")], ids=repr)
def test_an_operator_gets_nothing_on_a_dossier_whatever_its_standing(standing: Standing) -> None:
    operator = Actor(kind=ActorKind.OPERATOR, id="ops-1", profession="10", is_regulator=True, mode=Mode.EMERGENCY)
    assert_gets_nothing(decide(operator, active_dossier(), standing, TODAY, MATRIX))


@pytest.mark.parametrize("status", STATUSES)
def test_a_patient_who_is_not_the_owner_gets_nothing(status: str) -> None:
    stranger = Actor(kind=ActorKind.PATIENT, id="184012A12345678")
    dossier = replace(active_dossier(), status=status)
    assert_gets_nothing(decide(stranger, dossier, Standing(is_owner=False), TODAY, MATRIX))


@pytest.mark.parametrize("kind", [None, "", "parent", "sibling"])
def test_a_representative_not_recorded_on_the_dossier_gets_nothing(kind: str | None) -> None:
    parent = Actor(kind=ActorKind.REPRESENTATIVE, id=ACTOR_IDS["representative"])
    decision = decide(parent, active_dossier(age=8), Standing(representative_kind=kind), TODAY, MATRIX)
    assert_gets_nothing(decision)


@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize("relation", ["none", "authorized", "care_team", "treating_gp", "gp_rights"])
def test_a_professional_without_a_profession_gets_nothing(mode: Mode, relation: str) -> None:
    nobody = Actor(kind=ActorKind.PROFESSIONAL, id=ACTOR_IDS["professional"], profession=None, is_regulator=True,
                   mode=mode)
    assert_gets_nothing(decide(nobody, active_dossier(), Standing(relation=relation), TODAY, MATRIX))


@pytest.mark.parametrize("profession", [p for p in PROFESSIONS if p != "SOCIAL"])
def test_an_unauthorized_professional_in_normal_mode_is_told_about_consent_and_emergency_mode(
    profession: str,
) -> None:
    doctor = Actor(kind=ActorKind.PROFESSIONAL, id=ACTOR_IDS["professional"], profession=profession)
    decision = decide(doctor, active_dossier(), Standing(relation="none"), TODAY, MATRIX)
    assert not decision.read
    message = decision.refusal.lower()
    assert "consent" in message
    assert "emergency" in message


def test_every_prescription_combination_agrees() -> None:
    """Writing and dispensing prescriptions (issue 12 §2) for every actor and every combination of the fields they
    depend on, the pharmacist's presented prescription included."""
    found: list[str] = []
    for actor in ACTOR_KINDS:
        professional = actor == "professional"
        for (profession, is_regulator, mode, relation, status, obj_bg, obj_reg, code, presented) in itertools.product(
                PROFESSIONS if professional else (None,), (False, True), MODES,
                RELATIONS if professional else ("none",), STATUSES, (False, True), (False, True), (False, True),
                (False, True)):
            s = Scenario(actor=actor, profession=profession, is_regulator=is_regulator, mode=mode, relation=relation,
                         representative_kind="protected_adult" if actor == "representative" else None,
                         patient_age=40, dossier_status=status, objects_break_glass=obj_bg,
                         objects_regulation=obj_reg, confidentiality=frozenset(), invisible_patient_expired=False,
                         actor_is_author=False, deleted_by_patient=False, requires_code=code,
                         presented_prescription=presented, **NEUTRAL_DOC)
            found += disagreements(s, ("write_prescription", "dispense_prescription"))
    assert not found, report(found)
