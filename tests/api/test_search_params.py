"""ITI-67 Find Document References, GET and POST ``_search``: every parameter MHD requires, on SQLite and PostgreSQL.

A small fixed set of documents with distinct, fully populated metadata is published once per database (ITI-105,
``attachment.data``) by one doctor, then searched by the treating GP, who sees all of them:

====  ===========  ======================  ========================  =====================  =========================
doc   status       type / class            date / creation           period                 author (given / family)
====  ===========  ======================  ========================  =====================  =========================
A     superseded   11488-4 / 10 (derived)  2023-03-15 / 2023-03-14   2023-03-01..03-10      Alice Marie / Martin
B     ent-in-err.  57833-6 / 42 (OID cat.) 2024-06-01 / 2024-05-31   2024-05-20..(open)     Bernard / Durand
C     current      60591-5 / 11, MASQUE_PS 2024-06-20 / 2024-06-20   2024-06-19..06-20      Alina / Martinez
D     current      11488-4 / 10, replaces A 2025-01-10 / 2025-01-09  2025-01-01..01-05      Alice Marie / Martin
====  ===========  ======================  ========================  =====================  =========================

Each parameter is checked with a matching value (exactly the expected documents) and a non-matching one (none).
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from carnet.context import Services
from carnet.documents.codes import TRE_A03, TRE_A03_OID, TRE_A07, V3_CONFIDENTIALITY
from carnet.identity.ins import fake_nir_for
from tests.conftest import BASE, INS_SYSTEM, World

LOINC = "http://loinc.org"
EVENT = "http://snomed.info/sct"
FACILITY = "https://mos.esante.gouv.fr/NOS/TRE_R02-SecteurActivite/FHIR/TRE-R02-SecteurActivite"
SETTING = "https://mos.esante.gouv.fr/NOS/TRE_A00-ProducteurDocNonPS/FHIR/TRE-A00-ProducteurDocNonPS"
FORMAT = "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode"
PDF_FMT, TEXT_FMT = "urn:ihe:iti:xds-sd:pdf:2008", "urn:ihe:iti:xds-sd:text:2008"
LOCAL_ID = "urn:oid:1.2.250.1.999.1"
RFC3986 = "urn:ietf:rfc:3986"
PATCH_JSON = "application/json-patch+json"

# The published metadata, one entry per document. ``replaces`` names a letter published before.
DOCS: dict[str, dict[str, Any]] = {
    "A": {"type": "11488-4", "date": "2023-03-15T10:00:00Z", "creation": "2023-03-14T09:00:00Z",
          "period": {"start": "2023-03-01", "end": "2023-03-10"}, "events": ["E1"], "facility": "SA01",
          "setting": "CARDIO", "format": PDF_FMT, "ctype": "application/pdf",
          "identifier": {"system": LOCAL_ID, "value": "A-1"}, "given": ["Alice", "Marie"], "family": "Martin",
          "labels": [(V3_CONFIDENTIALITY, "N")]},
    "B": {"type": "57833-6", "category": (TRE_A03_OID, "42"), "date": "2024-06-01T08:30:00Z",
          "creation": "2024-05-31T17:00:00Z", "period": {"start": "2024-05-20"}, "events": ["E2"],
          "facility": "SA07", "setting": "GENERAL", "format": TEXT_FMT, "ctype": "text/plain",
          "identifier": {"value": "B-1"}, "given": ["Bernard"], "family": "Durand"},
    "C": {"type": "60591-5", "date": "2024-06-20T12:00:00Z", "creation": "2024-06-20T11:00:00Z",
          "period": {"start": "2024-06-19", "end": "2024-06-20"}, "events": ["E1", "E3"], "facility": "SA01",
          "setting": "PEDIA", "format": PDF_FMT, "ctype": "application/pdf",
          "identifier": {"system": LOCAL_ID, "value": "C-1"}, "given": ["Alina"], "family": "Martinez",
          "labels": [(TRE_A07, "MASQUE_PS")]},
    "D": {"type": "11488-4", "date": "2025-01-10T00:00:00Z", "creation": "2025-01-09T15:00:00Z",
          "period": {"start": "2025-01-01", "end": "2025-01-05"}, "events": ["E4"], "facility": "SA09",
          "setting": "CARDIO", "format": PDF_FMT, "ctype": "application/pdf",
          "identifier": {"system": LOCAL_ID, "value": "D-1"}, "given": ["Alice", "Marie"], "family": "Martin",
          "replaces": "A"},
}
ALL = "ABCD"
NEWEST_FIRST = ["D", "C", "B", "A"]


def docref(dossier: uuid.UUID, spec: dict[str, Any], master: str, ids: dict[str, str]) -> dict[str, Any]:
    """A fully populated ITI-105 DocumentReference with its content inline and a contained Practitioner author."""
    data = f"document {master}".encode() if spec["ctype"] == "text/plain" else b"%PDF-1.4\n% " + master.encode()
    res: dict[str, Any] = {
        "resourceType": "DocumentReference", "status": "current",
        "contained": [{"resourceType": "Practitioner", "id": "auteur",
                       "name": [{"family": spec["family"], "given": spec["given"]}]}],
        "masterIdentifier": {"system": RFC3986, "value": master},
        "identifier": [spec["identifier"]],
        "type": {"coding": [{"system": LOINC, "code": spec["type"]}]},
        "subject": {"reference": f"Patient/{dossier}"},
        "date": spec["date"],
        "author": [{"reference": "#auteur"}],
        "context": {"event": [{"coding": [{"system": EVENT, "code": e}]} for e in spec["events"]],
                    "facilityType": {"coding": [{"system": FACILITY, "code": spec["facility"]}]},
                    "practiceSetting": {"coding": [{"system": SETTING, "code": spec["setting"]}]},
                    "period": spec["period"]},
        "content": [{"attachment": {"contentType": spec["ctype"], "data": base64.b64encode(data).decode(),
                                    "title": f"Document {master[-4:]}", "creation": spec["creation"]},
                     "format": {"system": FORMAT, "code": spec["format"]}}]}
    if "category" in spec:
        system, code = spec["category"]
        res["category"] = [{"coding": [{"system": system, "code": code}]}]
    if "labels" in spec:
        res["securityLabel"] = [{"coding": [{"system": s, "code": c}]} for s, c in spec["labels"]]
    if "replaces" in spec:
        res["relatesTo"] = [{"code": "replaces", "target": {"reference": f"DocumentReference/{ids[spec['replaces']]}"}}]
    return res


@dataclass
class Corpus:
    world: World
    headers: dict[str, str]
    ids: dict[str, str] = field(default_factory=dict)  # letter -> DocumentReference id
    masters: dict[str, str] = field(default_factory=dict)  # letter -> masterIdentifier value
    last_updated: dict[str, str] = field(default_factory=dict)  # letter -> meta.lastUpdated as served
    other_dossier: uuid.UUID | None = None
    other_doc: str = ""

    @property
    def client(self) -> TestClient:
        return self.world.client

    def letter(self, doc_id: str) -> str:
        return next((k for k, v in self.ids.items() if v == doc_id), f"?{doc_id}")

    def fill(self, value: str) -> str:
        """Placeholders in case values: ``{A}`` is document A's id, ``{mA}`` its masterIdentifier."""
        return value.format(**self.ids, **{f"m{k}": v for k, v in self.masters.items()})

    def get(self, params: list[tuple[str, str]], with_patient: bool = True) -> Any:
        full = ([("patient", str(self.world.dossier))] if with_patient else []) + params
        return self.client.get("/fhir/DocumentReference", params=full, headers=self.headers)

    def post(self, params: list[tuple[str, str]]) -> Any:
        full = [("patient", str(self.world.dossier))] + params
        return self.client.post("/fhir/DocumentReference/_search", content=urlencode(full),
                                headers={**self.headers, "Content-Type": "application/x-www-form-urlencoded"})

    def letters(self, r: Any) -> list[str]:
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["resourceType"] == "Bundle" and body["type"] == "searchset"
        return [self.letter(e["resource"]["id"]) for e in body.get("entry", [])]

    def find(self, params: list[tuple[str, str]], with_patient: bool = True) -> set[str]:
        r = self.get(params, with_patient)
        found = self.letters(r)
        assert r.json()["total"] == len(found)
        return set(found)


def _patch(corpus: Corpus, doc_id: str, ops: list[dict[str, Any]], headers: dict[str, str]) -> None:
    r = corpus.client.patch(f"/fhir/DocumentReference/{doc_id}", json=ops,
                            headers={**headers, "Content-Type": PATCH_JSON})
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def corpus(services: Services, client: TestClient) -> Corpus:
    """Published once per database: A, B, C, D (D replaces A, B is withdrawn), and one document elsewhere."""
    world = World(services, client)
    author = world.headers("doctor")
    c = Corpus(world, world.headers("gp"))
    for letter, spec in DOCS.items():
        master = f"urn:uuid:{uuid.uuid4()}"
        r = client.post("/fhir/DocumentReference", json=docref(world.dossier, spec, master, c.ids), headers=author)
        assert r.status_code == 201, r.text
        c.ids[letter], c.masters[letter] = r.json()["id"], master
    _patch(c, c.ids["B"], [{"op": "replace", "path": "/status", "value": "entered-in-error"}], author)
    for letter, doc_id in c.ids.items():
        r = client.get(f"/fhir/DocumentReference/{doc_id}", headers=c.headers)
        assert r.status_code == 200, r.text
        c.last_updated[letter] = r.json()["meta"]["lastUpdated"]
    assert {k: client.get(f"/fhir/DocumentReference/{v}", headers=c.headers).json()["status"]
            for k, v in c.ids.items()} == {"A": "superseded", "B": "entered-in-error", "C": "current",
                                           "D": "current"}
    c.other_dossier = world.create_dossier(fake_nir_for(world.n + 900_000))
    spec = {**DOCS["D"], "identifier": {"system": LOCAL_ID, "value": "X-1"}}
    del spec["replaces"]
    r = client.post("/fhir/DocumentReference", json=docref(c.other_dossier, spec, f"urn:uuid:{uuid.uuid4()}", {}),
                    headers=author)
    assert r.status_code == 201, r.text
    c.other_doc = r.json()["id"]
    return c


# (parameters after ``patient``, expected documents). Placeholders: {A} = id of A, {mA} = masterIdentifier of A.
CASES: list[Any] = [
    # _id
    ([("_id", "{A}")], "A"),
    ([("_id", "{A},{C}")], "AC"),
    ([("_id", str(uuid.UUID(int=1)))], ""),
    ([("_id", "not-a-uuid")], ""),
    # status (token, comma = OR)
    ([("status", "current")], "CD"),
    ([("status", "superseded")], "A"),
    ([("status", "entered-in-error")], "B"),
    ([("status", "current,superseded")], "ACD"),
    ([("status", "preliminary")], ""),
    # type: system|code, |code, code, comma-OR, :not
    ([("type", f"{LOINC}|11488-4")], "AD"),
    ([("type", "11488-4")], "AD"),
    ([("type", "|11488-4")], ""),
    ([("type", "http://example.org/other|11488-4")], ""),
    ([("type", f"{LOINC}|57833-6,{LOINC}|60591-5")], "BC"),
    ([("type", f"{LOINC}|11490-0")], ""),
    ([("type:not", f"{LOINC}|11488-4")], "BC"),
    ([("type", f"{LOINC}|11488-4"), ("type", f"{LOINC}|57833-6")], ""),
    # category: the derived TRE_A03 class and the category as published (B names the class by its OID)
    ([("category", f"{TRE_A03}|10")], "AD"),
    ([("category", f"{TRE_A03}|42")], "B"),
    ([("category", f"{TRE_A03_OID}|42")], "B"),
    ([("category", "11")], "C"),
    ([("category", "10,11")], "ACD"),
    ([("category", "|10")], ""),
    ([("category", f"{TRE_A03}|60")], ""),
    ([("category:not", "10")], "BC"),
    # security-label: the implicit TRE_A07 N, explicit labels, :not
    ([("security-label", f"{TRE_A07}|N")], "ABD"),
    ([("security-label", "N")], "ABD"),
    ([("security-label", f"{V3_CONFIDENTIALITY}|N")], "A"),
    ([("security-label", "MASQUE_PS")], "C"),
    ([("security-label", f"{TRE_A07}|MASQUE_PS")], "C"),
    ([("security-label", "|N")], ""),
    ([("security-label", "INVISIBLE_PATIENT")], ""),
    ([("security-label:not", f"{TRE_A07}|MASQUE_PS")], "ABD"),
    # event: repeated = AND, comma = OR
    ([("event", f"{EVENT}|E1")], "AC"),
    ([("event", "E3")], "C"),
    ([("event", "E1"), ("event", "E3")], "C"),
    ([("event", "E2,E4")], "BD"),
    ([("event", "|E1")], ""),
    ([("event", f"{EVENT}|E9")], ""),
    ([("event:not", "E1")], "BD"),
    # facility (context.facilityType)
    ([("facility", f"{FACILITY}|SA01")], "AC"),
    ([("facility", "SA07")], "B"),
    ([("facility", f"{FACILITY}|SA99")], ""),
    ([("facility", f"{SETTING}|SA01")], ""),
    # setting (context.practiceSetting)
    ([("setting", f"{SETTING}|CARDIO")], "AD"),
    ([("setting", "PEDIA,GENERAL")], "BC"),
    ([("setting", "DERMA")], ""),
    ([("setting:not", "CARDIO")], "BC"),
    # format (content.format)
    ([("format", f"{FORMAT}|{PDF_FMT}")], "ACD"),
    ([("format", TEXT_FMT)], "B"),
    ([("format", f"{FORMAT}|urn:ihe:iti:xds-sd:jpeg:2008")], ""),
    # identifier: masterIdentifier and identifier[]; B's identifier has no system
    ([("identifier", f"{LOCAL_ID}|A-1")], "A"),
    ([("identifier", "C-1,D-1")], "CD"),
    ([("identifier", "|B-1")], "B"),
    ([("identifier", "B-1")], "B"),
    ([("identifier", f"{LOCAL_ID}|B-1")], ""),
    ([("identifier", f"{RFC3986}|{{mC}}")], "C"),
    ([("identifier", "{mD}")], "D"),
    ([("identifier", f"{LOCAL_ID}|Z-9")], ""),
    # related: the replaced document (relatesTo target)
    ([("related", "{A}")], "D"),
    ([("related", "{C}")], ""),
    ([("related", "DocumentReference/{A}")], "D"),
    # author.given / author.family: prefix, case-insensitive; :exact
    ([("author.given", "Alice")], "AD"),
    ([("author.given", "al")], "ACD"),
    ([("author.given", "Bern")], "B"),
    ([("author.given", "Zoé")], ""),
    ([("author.given:exact", "Alina")], "C"),
    ([("author.given:exact", "alina")], ""),
    ([("author.given", "Marie")], "AD"),
    ([("author.given:exact", "Alice")], "AD"),
    ([("author.family", "Martin")], "ACD"),
    ([("author.family", "MARTIN")], "ACD"),
    ([("author.family:exact", "Martin")], "AD"),
    ([("author.family", "Martin,Durand")], "ABCD"),
    ([("author.family", "Martin"), ("author.given", "Alina")], "C"),
    ([("author.family", "Dupont")], ""),
    ([("author.family", "artin")], ""),
    ([("author.family", "Mar%in")], ""),
    ([("author.family", "Mart_n")], ""),
    # date: eq/ne/lt/le/gt/ge/sa/eb at year, month, day and instant precision; repeated = AND
    ([("date", "2023")], "A"),
    ([("date", "2024")], "BC"),
    ([("date", "2022")], ""),
    ([("date", "2024-06")], "BC"),
    ([("date", "2024-06-01")], "B"),
    ([("date", "eq2024-06-01")], "B"),
    ([("date", "eq2024-06-02")], ""),
    ([("date", "ne2024")], "AD"),
    ([("date", "ge2024-06-01")], "BCD"),
    ([("date", "gt2024-06-01")], "CD"),
    ([("date", "le2024-06-01")], "AB"),
    ([("date", "lt2024-06-01")], "A"),
    ([("date", "ge2024")], "BCD"),
    ([("date", "gt2024")], "D"),
    ([("date", "le2024")], "ABC"),
    ([("date", "lt2024")], "A"),
    ([("date", "lt2023")], ""),
    ([("date", "gt2025")], ""),
    ([("date", "sa2024-06-01")], "CD"),
    ([("date", "eb2024-06-20")], "AB"),
    ([("date", "ge2024"), ("date", "lt2025")], "BC"),
    ([("date", "ge2025"), ("date", "lt2024")], ""),
    ([("date", "2024-06-01T08:30:00Z")], "B"),
    ([("date", "ge2024-06-01T08:30:01Z")], "CD"),
    # creation (content.attachment.creation)
    ([("creation", "2023-03-14")], "A"),
    ([("creation", "2024")], "BC"),
    ([("creation", "ge2024-06-01")], "CD"),
    ([("creation", "lt2024")], "A"),
    ([("creation", "le2024-05-31")], "AB"),
    ([("creation", "1999")], ""),
    ([("creation", "2023-03-15")], ""),
    # period (context.period): overlap with the searched range; B's period has no end
    ([("period", "2023-03-05")], "A"),
    ([("period", "2023-03-10")], "A"),
    ([("period", "2024-06")], "BC"),
    ([("period", "2024-06-20")], "BC"),
    ([("period", "2025-01-03")], "BD"),
    ([("period", "2022")], ""),
    ([("period", "2023-03-11")], ""),
    ([("period", "lt2024")], "A"),
    ([("period", "ge2025")], "BD"),
    ([("period", "gt2024-06-20")], "BD"),
    ([("period", "lt2023")], ""),
    # several parameters together are ANDed
    ([("type", "11488-4"), ("status", "current")], "D"),
    ([("event", "E1"), ("security-label", "N"), ("date", "2023")], "A"),
    ([("event", "E1"), ("date", "2025")], ""),
]


def _case_id(case: Any) -> str:
    params = case.values[0] if hasattr(case, "values") else case[0]
    return "&".join(f"{k}={v}" for k, v in params)


@pytest.mark.parametrize(("params", "expected"), CASES, ids=[_case_id(c) for c in CASES])
def test_each_parameter_finds_exactly_the_matching_documents_by_get_and_post(
        corpus: Corpus, params: list[tuple[str, str]], expected: str) -> None:
    filled = [(k, corpus.fill(v)) for k, v in params]
    assert corpus.find(filled) == set(expected)
    assert set(corpus.letters(corpus.post(filled))) == set(expected)


def test_the_patient_alone_finds_all_four_documents_and_nothing_from_another_dossier(corpus: Corpus) -> None:
    assert corpus.find([]) == set(ALL)
    r = corpus.client.get("/fhir/DocumentReference", params={"patient": f"Patient/{corpus.other_dossier}"},
                          headers=corpus.headers)
    assert [e["resource"]["id"] for e in r.json()["entry"]] == [corpus.other_doc]
    r = corpus.client.get("/fhir/DocumentReference", params={"patient": f"{BASE}/fhir/Patient/{corpus.world.dossier}"},
                          headers=corpus.headers)
    assert set(corpus.letters(r)) == set(ALL)


def test_patient_identifier_finds_the_dossier_by_its_ins(corpus: Corpus) -> None:
    ins = f"{INS_SYSTEM}|{corpus.world.ins}"
    assert corpus.find([("patient.identifier", ins)], with_patient=False) == set(ALL)
    assert corpus.find([("patient.identifier", ins), ("type", f"{LOINC}|11488-4")], with_patient=False) == {"A", "D"}
    unknown = f"{INS_SYSTEM}|{fake_nir_for(8_888_888)}"
    assert corpus.find([("patient.identifier", unknown)], with_patient=False) == set()


def test_last_updated_follows_each_documents_meta_last_updated(corpus: Corpus) -> None:
    lu = corpus.last_updated
    assert lu["C"] < lu["D"] == lu["A"] < lu["B"]  # D superseded A in its own transaction; B was patched last
    for pivot in sorted(set(lu.values())):
        assert corpus.find([("_lastUpdated", f"ge{pivot}")]) == {k for k, v in lu.items() if v >= pivot}, pivot
        assert corpus.find([("_lastUpdated", f"lt{pivot}")]) == {k for k, v in lu.items() if v < pivot}, pivot
    assert corpus.find([("_lastUpdated", lu["B"])]) == {"B"}
    first_day, first_year = lu["C"][:10], lu["C"][:4]
    assert corpus.find([("_lastUpdated", f"ge{first_day}")]) == set(ALL)
    assert corpus.find([("_lastUpdated", f"lt{first_day}")]) == set()
    assert corpus.find([("_lastUpdated", f"ge{first_year}")]) == set(ALL)
    assert corpus.find([("_lastUpdated", f"gt{lu['B'][:4]}")]) == set()


def test_sort_by_date_descending_is_the_default_and_ascending_is_available(corpus: Corpus) -> None:
    assert corpus.letters(corpus.get([])) == NEWEST_FIRST
    assert corpus.letters(corpus.get([("_sort", "-date")])) == NEWEST_FIRST
    assert corpus.letters(corpus.get([("_sort", "date")])) == NEWEST_FIRST[::-1]
    assert corpus.letters(corpus.post([("_sort", "date")])) == NEWEST_FIRST[::-1]
    assert corpus.letters(corpus.get([("_sort", "-date"), ("type", "11488-4")])) == ["D", "A"]


def test_an_unsupported_sort_is_refused(corpus: Corpus) -> None:
    r = corpus.get([("_sort", "title")])
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["_sort"]


def _follow(corpus: Corpus, params: list[tuple[str, str]], count: int) -> list[list[str]]:
    """Every page of a search, following ``next`` links until there is none."""
    pages: list[list[str]] = []
    r = corpus.get([*params, ("_count", str(count))])
    while True:
        letters = corpus.letters(r)
        body = r.json()
        pages.append(letters)
        assert len(letters) <= count
        nxt = [link["url"] for link in body["link"] if link["relation"] == "next"]
        if not nxt:
            return pages
        assert len(pages) < 10, "the next links never end"
        assert nxt[0].startswith(f"{BASE}/fhir/DocumentReference?")
        r = corpus.client.get(nxt[0].removeprefix(BASE), headers=corpus.headers)


def test_count_pages_through_every_document_once_following_next_links(corpus: Corpus) -> None:
    pages = _follow(corpus, [], 1)
    assert pages == [["D"], ["C"], ["B"], ["A"]]
    r = corpus.get([("_count", "1")])
    assert r.json()["total"] == 4
    pages = _follow(corpus, [("_sort", "date")], 3)
    assert pages == [["A", "B", "C"], ["D"]]


def test_next_links_keep_the_filters_and_the_sort(corpus: Corpus) -> None:
    pages = _follow(corpus, [("security-label", "N"), ("_sort", "date")], 1)
    assert pages == [["A"], ["B"], ["D"]]
    pages = _follow(corpus, [("event", "E1"), ("event", "E3")], 1)
    assert pages == [["C"]]


def test_count_zero_answers_the_total_without_entries_or_next_link(corpus: Corpus) -> None:
    r = corpus.get([("_count", "0")])
    body = r.json()
    assert r.status_code == 200 and body["total"] == 4 and not body.get("entry")
    assert [link for link in body["link"] if link["relation"] == "next"] == []


def test_post_search_pages_with_count_in_the_form_body(corpus: Corpus) -> None:
    r = corpus.post([("_count", "1")])
    assert corpus.letters(r) == ["D"]
    assert r.json()["total"] == 4
    assert any(link["relation"] == "next" for link in r.json()["link"])


def test_post_search_gives_the_same_bundle_entries_as_get(corpus: Corpus) -> None:
    params = [("event", "E1,E4"), ("security-label", "N"), ("_sort", "date")]
    got, posted = corpus.get(params), corpus.post(params)
    assert corpus.letters(got) == corpus.letters(posted) == ["A", "D"]
    assert [e["resource"] for e in got.json()["entry"]] == [e["resource"] for e in posted.json()["entry"]]


@pytest.mark.parametrize("name", ["colour", "author", "type:exact", "security-label:text", "date:above"])
def test_an_unknown_parameter_or_modifier_is_refused_naming_it(corpus: Corpus, name: str) -> None:
    for r in (corpus.get([(name, "2024")]), corpus.post([(name, "2024")])):
        assert r.status_code == 400, r.text
        body = r.json()
        assert body["resourceType"] == "OperationOutcome"
        assert body["issue"][0]["expression"] == [name]


def test_status_not_excludes_the_status(corpus: Corpus) -> None:
    r = corpus.get([("status:not", "current")])
    assert set(corpus.letters(r)) == {"A", "B"}


def test_author_family_contains_is_honoured_or_refused(corpus: Corpus) -> None:
    r = corpus.get([("author.family:contains", "artin")])
    assert r.status_code == 400 or set(corpus.letters(r)) == {"A", "C", "D"}


@pytest.mark.parametrize("name", ["date", "creation", "_lastUpdated", "period"])
@pytest.mark.parametrize("value", ["2024-13-01", "2024-02-30", "yesterday", "ge", "abcd", "2024-00",
                                   "2024-06-01T25:00:00Z"])
def test_a_malformed_date_is_refused_with_400(corpus: Corpus, name: str, value: str) -> None:
    r = corpus.get([(name, value)])
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["expression"] == [name]


@pytest.mark.parametrize("count", ["abc", "-1"])
def test_a_malformed_count_is_refused_with_400(corpus: Corpus, count: str) -> None:
    r = corpus.get([("_count", count)])
    assert r.status_code == 400
    assert r.json()["resourceType"] == "OperationOutcome"


def test_searching_needs_the_patient(corpus: Corpus) -> None:
    r = corpus.get([("type", "11488-4")], with_patient=False)
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["patient"]


def test_a_date_with_an_offset_is_found_at_the_same_instant_on_every_database(
        world: World, request: pytest.FixtureRequest) -> None:
    """2024-06-01T23:30:00-02:00 is 2024-06-02T01:30:00Z: both the stored date and the searched one are instants."""
    spec = {**DOCS["B"], "date": "2024-06-01T23:30:00-02:00", "creation": "2024-06-01T23:00:00-02:00"}
    r = world.client.post("/fhir/DocumentReference", json=docref(world.dossier, spec, f"urn:uuid:{uuid.uuid4()}", {}),
                          headers=world.headers("doctor"))
    assert r.status_code == 201, r.text
    doc_id, h = r.json()["id"], world.headers("gp")

    def ids(**params: str) -> set[str]:
        res = world.client.get("/fhir/DocumentReference", params={"patient": str(world.dossier), **params}, headers=h)
        assert res.status_code == 200, res.text
        return {e["resource"]["id"] for e in res.json().get("entry", [])}

    assert ids(date="2024-06-02T01:30:00Z") == {doc_id}
    assert ids(date="2024-06-02T03:30:00+02:00") == {doc_id}
    assert ids(date="2024-06-01T23:30:00Z") == set()
    assert ids(date="ge2024-06-02T01:00:00Z") == {doc_id}
    assert ids(creation="2024-06-02T01:00:00Z") == {doc_id}
