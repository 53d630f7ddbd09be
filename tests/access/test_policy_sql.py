"""``Visibility.where`` selects, in a real database, exactly the documents ``Visibility.allows`` allows.

Searches filter in SQL and reads check in Python: if the two drift apart, a document shows up in a search but 404s on
read, or worse, a search leaks a document the read would refuse. The same rows are loaded into SQLite (always) and
PostgreSQL (when reachable; required when ``CI=true``), then every Visibility the policy produces for a sample of
actors, plus hand-made ones exercising every field, is applied both ways.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, insert, select

from carnet.access.actors import Actor, ActorKind, Mode
from carnet.access.matrix import ProfessionRights, load_matrix
from carnet.access.policy import DocFacts, DossierFacts, ItemFacts, Standing, Visibility, decide
from carnet.db.engine import make_engine
from carnet.db.tables import clinical_item, document, dossier, metadata
from tests.conftest import fresh_postgres_database, require_postgres

NOW = dt.datetime(2025, 6, 15, 10, 30, tzinfo=dt.UTC)
TODAY = NOW.date()
ACTOR_ID = "810001045367"  # the author of some of the documents
STRANGER_ID = "899999999991"  # authored nothing here
OTHER_AUTHOR = "810002345678"

DOC_CLASSES = ("10", "11", "31", "42", "43", "44", "45", "52", "60", "90", "95")
DOC_TYPES = ("11488-4", "11502-2", "68599-0", "60591-5", "11369-6", "87273-9", "57833-6", "REMB", "DOCPAT01",
             "SOCIAL01", "18748-4", "SYNTH", "")  # "": a document published without a type
# Type codes that stress the SQL translation of the exclusions: LIKE wildcards, and an exact prefix. (The lower-case
# variant is kept apart: see test_type_prefix_exclusion_is_case_sensitive.)
TRICKY_TYPES = ("SOCIAL", "SOCIALX", "SOC_AL01", "SOCXAL01", "SOC%AL", "SOCIAL%", "68599-01", "1%", "_1488-4")
LOWERCASE_TYPE = "social01"
# invisible_patient, invisible_patient_until
INVISIBLE_PATIENT_STATES = (
    (False, None),
    (False, NOW - dt.timedelta(days=1)),
    (True, None),
    (True, NOW - dt.timedelta(days=3)),
    (True, NOW),  # the boundary: the period ends exactly now
    (True, NOW + dt.timedelta(microseconds=1)),
    (True, NOW + dt.timedelta(days=20)),
)
AUTHORS = (ACTOR_ID, OTHER_AUTHOR, None)


# --- the documents -----------------------------------------------------------------------------------------------


def generated_documents() -> list[DocFacts]:
    """A few hundred documents covering the cross product of the DocFacts fields.

    The flags (author x masked x invisible-to-patient state x invisible-to-representatives x deleted: 168
    combinations) are each paired with three (class, type) pairs, walking the 121 pairs with a stride prime to 121 so
    that every pair meets many flag combinations; then every pair appears once plain, once authored by the actor and
    masked, and once masked by somebody else; then the tricky types, in a few classes.
    """
    pairs = list(itertools.product(DOC_CLASSES, DOC_TYPES))
    flags = list(itertools.product(AUTHORS, (False, True), INVISIBLE_PATIENT_STATES, (False, True), (False, True)))
    docs: list[DocFacts] = []
    for i, (author, masked, (inv_p, until), inv_r, deleted) in enumerate(flags):
        for j in range(3):
            c, t = pairs[(i * 3 + j) * 7 % len(pairs)]
            docs.append(DocFacts(class_code=c, type_code=t, author_id=author, masked=masked, invisible_patient=inv_p,
                                 invisible_patient_until=until, invisible_representatives=inv_r, deleted=deleted))
    for c, t in pairs:
        docs.append(DocFacts(class_code=c, type_code=t, author_id=OTHER_AUTHOR))
        docs.append(DocFacts(class_code=c, type_code=t, author_id=ACTOR_ID, masked=True))
        docs.append(DocFacts(class_code=c, type_code=t, author_id=None, masked=True))
    for c, t, author in itertools.product(("10", "11", "52"), TRICKY_TYPES, (ACTOR_ID, OTHER_AUTHOR)):
        docs.append(DocFacts(class_code=c, type_code=t, author_id=author))
    return docs


def lowercase_documents() -> list[DocFacts]:
    return [DocFacts(class_code=c, type_code=LOWERCASE_TYPE, author_id=OTHER_AUTHOR) for c in ("10", "11", "52")]


def dossier_row(key: uuid.UUID) -> dict[str, object]:
    return {
        "dossier_key": key, "status": "active", "ins_system": "urn:oid:1.2.250.1.213.1.4.10", "ins": "255081416802538",
        "family": "TEST", "given": "CARNET", "birth_date": dt.date(1955, 8, 1), "gender": "female",
        "birthplace": "14168", "is_protected_adult": False, "objects_break_glass": False,
        "objects_regulation": False, "created_at": NOW, "created_by": "test", "creation_channel": "patient",
        "version": 1, "last_updated": NOW, "resource": "{}",
    }


def document_row(key: uuid.UUID, doc_id: uuid.UUID, d: DocFacts) -> dict[str, object]:
    return {
        "dossier_key": key, "document_id": doc_id, "master_identifier": f"urn:uuid:{doc_id}", "status": "current",
        "class_code": d.class_code, "type_system": "http://loinc.org", "type_code": d.type_code,
        "author_id": d.author_id, "masked": d.masked, "invisible_patient": d.invisible_patient,
        "invisible_patient_until": d.invisible_patient_until, "invisible_representatives": d.invisible_representatives,
        "deleted": d.deleted, "date": NOW - dt.timedelta(days=30), "content_type": "application/pdf", "size": 1,
        "sha256": "0" * 64, "blob_key": f"blob/{doc_id}", "wrapped_key": b"\0", "key_id": "k1", "version": 1,
        "last_updated": NOW, "resource": "{}",
    }


@dataclass
class Loaded:
    engine: Engine
    dossier_key: uuid.UUID
    docs: dict[uuid.UUID, DocFacts]  # the generated documents
    lowercase: dict[uuid.UUID, DocFacts]  # the lower-case type documents, in a dossier of their own
    lowercase_key: uuid.UUID
    items: dict[uuid.UUID, ItemFacts]  # structured items: every author x hidden or not, twice

    def selected_items(self, vis: Visibility) -> set[uuid.UUID]:
        query = select(clinical_item.c.item_id).where(clinical_item.c.dossier_key == self.dossier_key,
                                                      vis.item_where(clinical_item))
        with self.engine.connect() as conn:
            return {uuid.UUID(str(r)) for r in conn.scalars(query)}

    def allowed_items(self, vis: Visibility) -> set[uuid.UUID]:
        return {i for i, it in self.items.items() if vis.allows_item(it)}

    def selected(self, vis: Visibility, key: uuid.UUID | None = None) -> set[uuid.UUID]:
        query = select(document.c.document_id).where(document.c.dossier_key == (key or self.dossier_key),
                                                     vis.where(document, NOW))
        with self.engine.connect() as conn:
            return {uuid.UUID(str(r)) for r in conn.scalars(query)}

    def allowed(self, vis: Visibility, docs: dict[uuid.UUID, DocFacts] | None = None) -> set[uuid.UUID]:
        return {i for i, d in (self.docs if docs is None else docs).items() if vis.allows(d, NOW)}


def load(engine: Engine) -> Loaded:
    metadata.create_all(engine)
    key, lower_key = uuid.uuid4(), uuid.uuid4()
    docs = {uuid.uuid4(): d for d in generated_documents()}
    lowercase = {uuid.uuid4(): d for d in lowercase_documents()}
    items = {uuid.uuid4(): ItemFacts(author_id=a, hidden=h)
             for a, h, _ in itertools.product((ACTOR_ID, OTHER_AUTHOR, STRANGER_ID + "0"), (False, True), (1, 2))}
    with engine.begin() as conn:
        conn.execute(insert(dossier), [dossier_row(key), dossier_row(lower_key)])
        conn.execute(insert(document), [document_row(key, i, d) for i, d in docs.items()]
                     + [document_row(lower_key, i, d) for i, d in lowercase.items()])
        conn.execute(insert(clinical_item), [item_row(key, i, it) for i, it in items.items()])
    return Loaded(engine, key, docs, lowercase, lower_key, items)


def item_row(key: uuid.UUID, item_id: uuid.UUID, it: ItemFacts) -> dict[str, object]:
    return {"dossier_key": key, "item_id": item_id, "resource_type": "AllergyIntolerance", "status": "active",
            "author_id": it.author_id, "author_kind": "professional", "recorded_at": NOW, "masked": it.hidden,
            "version": 1, "last_updated": NOW, "resource": "{}"}


# --- the databases -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    if request.param == "sqlite":
        engine = make_engine("sqlite:///" + str(tmp_path_factory.mktemp("policy_sql") / "carnet.db"))
        try:
            yield load(engine)
        finally:
            engine.dispose()
        return
    require_postgres()
    url, drop = fresh_postgres_database()  # named and dropped as every test database (tests/conftest.py)
    engine = make_engine(url)
    try:
        yield load(engine)
    finally:
        engine.dispose()
        drop()


# --- the visibilities --------------------------------------------------------------------------------------------

MATRIX = load_matrix()
PROFESSIONS = ("10", "21", "40", "50", "60", "70", "91", "SOCIAL", None)
RELATIONS = ("none", "authorized", "care_team", "treating_gp", "gp_rights", "blocked")


def decided_visibilities() -> set[Visibility]:
    """Every Visibility ``decide`` hands out for a sample of actors, standings and modes on an active dossier."""
    dossier_facts = [DossierFacts(dossier_key="k", status="active", birth_date=TODAY.replace(year=TODAY.year - age),
                                  objects_break_glass=obj_bg, objects_regulation=obj_reg)
                     for age, obj_bg, obj_reg in itertools.product((10, 40), (False, True), (False, True))]
    found: set[Visibility] = set()
    for facts in dossier_facts:
        for actor_id, profession, mode, is_regulator, relation, sees_hidden in itertools.product(
            (ACTOR_ID, STRANGER_ID), PROFESSIONS, Mode, (False, True), RELATIONS, (False, True)
        ):  # sees_hidden: the code for hidden documents taken up (issue 13 §1)
            actor = Actor(kind=ActorKind.PROFESSIONAL, id=actor_id, profession=profession, mode=mode,
                          is_regulator=is_regulator)
            found.add(decide(actor, facts, Standing(relation=relation, sees_hidden=sees_hidden), TODAY,
                             MATRIX).visibility)
        for kind in ActorKind:
            for standing in (Standing(), Standing(is_owner=True), Standing(representative_kind="minor"),
                             Standing(representative_kind="protected_adult")):
                found.add(decide(Actor(kind=kind, id=ACTOR_ID), facts, standing, TODAY, MATRIX).visibility)
    return found


HAND_MADE_RIGHTS: tuple[ProfessionRights | None, ...] = (
    None,
    ProfessionRights(),  # no class at all
    ProfessionRights(access=False, read_all=True),
    ProfessionRights(read_all=True),
    ProfessionRights(read_all=True, exclude_types=frozenset({"68599-0", "REMB", "SOC%AL"})),
    ProfessionRights(read_all=True, exclude_type_prefixes=("SOC_",)),  # "_" is no wildcard
    ProfessionRights(read_all=True, exclude_type_prefixes=("SOC%",)),  # nor is "%"
    ProfessionRights(read_all=True, exclude_type_prefixes=("_", "1%")),
    ProfessionRights(read_all=True, exclude_type_prefixes=("SOCIAL", "6859")),
    ProfessionRights(classes=frozenset({"11", "42"})),
    ProfessionRights(class_types=frozenset({("10", "11502-2"), ("52", "11369-6"), ("52", "SOC_AL01")})),
    ProfessionRights(classes=frozenset({"31"}), class_types=frozenset({("10", "11502-2")}),
                     exclude_types=frozenset({"18748-4"}), exclude_type_prefixes=("SOCIAL",)),
    *(r for r in MATRIX.professions.values()),
    MATRIX.default,
)


def hand_made_visibilities() -> list[Visibility]:
    vis = [Visibility(), Visibility(nothing=True, rights=None, hide_masked=False)]
    for rights, author, hide_masked, hide_p, hide_r in itertools.product(
        HAND_MADE_RIGHTS, (None, ACTOR_ID, STRANGER_ID), (False, True), (False, True), (False, True)
    ):
        vis.append(Visibility(nothing=False, rights=rights, hide_masked=hide_masked, author_id=author,
                              hide_invisible_patient=hide_p, hide_invisible_representatives=hide_r))
    return vis


def describe_difference(loaded: Loaded, vis: Visibility, sql: set[uuid.UUID], py: set[uuid.UUID],
                        docs: dict[uuid.UUID, DocFacts]) -> str:
    only_sql = [docs[i] for i in sorted(sql - py)][:5]
    only_py = [docs[i] for i in sorted(py - sql)][:5]
    return (f"{loaded.engine.dialect.name}: where() and allows() disagree for {vis}\n"
            f"selected by SQL only ({len(sql - py)}): {only_sql}\nallowed in Python only ({len(py - sql)}): {only_py}")


# --- the tests ---------------------------------------------------------------------------------------------------


def test_the_documents_cover_every_field_value() -> None:
    docs = generated_documents()
    assert 300 <= len(docs) <= 1000
    assert {d.class_code for d in docs} == set(DOC_CLASSES)
    assert {d.type_code for d in docs} == set(DOC_TYPES) | set(TRICKY_TYPES)
    assert {(d.class_code, d.type_code) for d in docs} >= set(itertools.product(DOC_CLASSES, DOC_TYPES))
    assert {(d.invisible_patient, d.invisible_patient_until) for d in docs} == set(INVISIBLE_PATIENT_STATES)
    flags = {(d.author_id, d.masked, d.invisible_patient, d.invisible_patient_until, d.invisible_representatives,
              d.deleted) for d in docs}
    assert len(flags) == len(AUTHORS) * 2 * len(INVISIBLE_PATIENT_STATES) * 2 * 2


def test_the_sample_of_decided_visibilities_is_varied() -> None:
    vis = decided_visibilities()
    assert Visibility() in vis  # those who get nothing
    assert any(v.rights is None and v.hide_masked is False and not v.nothing and v.author_id for v in vis)  # gp
    # the code for hidden documents: the matrix still applies, MASQUE_PS shown
    assert any(v.rights is not None and v.hide_masked is False and not v.nothing and v.author_id for v in vis)
    assert any(v.hide_invisible_representatives for v in vis)  # representatives
    assert any(v.hide_invisible_patient and not v.hide_invisible_representatives for v in vis)  # the patient
    assert {v.rights for v in vis if v.rights is not None} == {MATRIX.rights(p) for p in PROFESSIONS
                                                              if MATRIX.rights(p).access}
    assert {v.author_id for v in vis if not v.nothing} >= {ACTOR_ID, STRANGER_ID, None}


def test_where_selects_what_allows_allows_for_every_decided_visibility(db: Loaded) -> None:
    for vis in sorted(decided_visibilities(), key=repr):
        sql, py = db.selected(vis), db.allowed(vis)
        assert sql == py, describe_difference(db, vis, sql, py, db.docs)


def test_where_selects_what_allows_allows_for_hand_made_visibilities(db: Loaded) -> None:
    checked = 0
    for vis in hand_made_visibilities():
        sql, py = db.selected(vis), db.allowed(vis)
        assert sql == py, describe_difference(db, vis, sql, py, db.docs)
        checked += 1
    assert checked > 400


def test_nothing_selects_nothing_and_everything_selects_all_but_deleted(db: Loaded) -> None:
    assert db.selected(Visibility()) == set()
    everything = Visibility(nothing=False)
    assert db.selected(everything) == {i for i, d in db.docs.items() if not d.deleted}


def test_the_filter_stays_inside_the_dossier(db: Loaded) -> None:
    everything = Visibility(nothing=False)
    assert db.selected(everything).isdisjoint(db.lowercase)
    assert db.selected(everything, db.lowercase_key) == set(db.lowercase)


CASE_CASES = {
    "dentist-matrix": (MATRIX.rights("40"), True),  # excludes the prefix "SOCIAL"
    "prefix-Social": (ProfessionRights(read_all=True, exclude_type_prefixes=("Social",)), True),
    "prefix-social": (ProfessionRights(read_all=True, exclude_type_prefixes=("social",)), False),  # same case
}


@pytest.mark.parametrize("case", sorted(CASE_CASES))
def test_type_prefix_exclusion_is_case_sensitive(db: Loaded, case: str, request: pytest.FixtureRequest) -> None:
    """``ProfessionRights.allows`` compares type codes case-sensitively (``str.startswith``), as codes are; the SQL
    clause must too. SQLite's LIKE is case-insensitive for ASCII, so on SQLite a dentist's search drops a
    ``social01`` document that reading it by id allows: the clause compares a substring instead."""
    rights, _ = CASE_CASES[case]
    vis = Visibility(nothing=False, rights=rights, hide_masked=True, author_id=STRANGER_ID)
    sql = db.selected(vis, db.lowercase_key)
    py = db.allowed(vis, db.lowercase)
    assert sql == py, describe_difference(db, vis, sql, py, db.lowercase)


def test_item_where_selects_what_allows_item_allows(db: Loaded) -> None:
    """Issue 13 §3: searches and the summary filter structured items in SQL with ``item_where``, a read by id checks
    ``allows_item``; both must hide the same items from the same callers."""
    hidden_seen_by_someone = hidden_hidden_from_someone = False
    for vis in [*sorted(decided_visibilities(), key=repr), *hand_made_visibilities()]:
        sql, py = db.selected_items(vis), db.allowed_items(vis)
        assert sql == py, f"{db.engine.dialect.name}: item_where() and allows_item() disagree for {vis}"
        hidden = {i for i, it in db.items.items() if it.hidden and it.author_id != vis.author_id}
        hidden_seen_by_someone |= bool(hidden & py)
        hidden_hidden_from_someone |= bool(hidden - py) and bool(py)
    assert hidden_seen_by_someone and hidden_hidden_from_someone


def test_measure_where_selects_what_allows_measure_allows(db: Loaded) -> None:
    """Issue 17 §4: a search of measurements filters the dossier's measures in SQL with ``measure_where``, a read
    checks ``allows_measure``; both must hide the same measures (hidden or not) from the same callers."""
    from sqlalchemy import delete, insert

    from carnet.db.tables import measure_series

    rows = {1: False, 2: True}
    with db.engine.begin() as conn:
        conn.execute(insert(measure_series), [{"dossier_key": db.dossier_key, "measure": m, "hidden": h,
                                               "readings": 1} for m, h in rows.items()])
    try:
        seen_hidden = refused_hidden = False
        for vis in [*sorted(decided_visibilities(), key=repr), *hand_made_visibilities()]:
            query = select(measure_series.c.measure).where(measure_series.c.dossier_key == db.dossier_key,
                                                           vis.measure_where(measure_series))
            with db.engine.connect() as conn:
                sql = set(conn.scalars(query))
            py = {m for m, hidden in rows.items() if vis.allows_measure(hidden)}
            assert sql == py, f"{db.engine.dialect.name}: measure_where() and allows_measure() disagree for {vis}"
            seen_hidden |= 2 in py
            refused_hidden |= 1 in py and 2 not in py
        assert seen_hidden and refused_hidden
    finally:
        with db.engine.begin() as conn:
            conn.execute(delete(measure_series).where(measure_series.c.dossier_key == db.dossier_key))
