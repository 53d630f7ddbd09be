"""FHIR search as unchanged clients use it (issue 16 §4), on SQLite and PostgreSQL: ``_summary=count``, ``_total``,
``Prefer: handling=lenient`` (unknown parameters ignored and left out of the ``self`` link; strict is the default),
``_include`` refused naming it, authors resolved from the directory at publish time, ``Practitioner?name=``, ITI-66's
``identifier`` / ``designationType`` / ``sourceId`` / ``date`` and AuditEvent's ``date``."""

from __future__ import annotations

import base64
import uuid
from typing import Any

from sqlalchemy import event, select

from carnet.db.tables import audit
from carnet.documents.codes import TRE_A07
from carnet.identity.ins import INS_SYSTEM_TEST
from tests.conftest import World, provide_bundle

PDF = b"%PDF-1.4\n% search modes\n%%EOF\n"
LENIENT = {"Prefer": "handling=lenient"}
DESIGNATION = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-designationType"
SOURCE_ID = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-sourceId"


def docref(world: World, author: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "DocumentReference", "status": "current",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "type": {"coding": [{"system": "http://loinc.org", "code": "11488-4"}]},
        "subject": {"reference": f"Patient/{world.dossier}"},
        "content": [{"attachment": {"contentType": "application/pdf", "data": base64.b64encode(PDF).decode()}}]}
    if author is not None:
        res["author"] = author
    return res


def publish(world: World, n: int = 1, author: list[dict[str, Any]] | None = None) -> list[str]:
    out = []
    for _ in range(n):
        r = world.client.post("/fhir/DocumentReference", json=docref(world, author), headers=world.headers("gp"))
        assert r.status_code == 201, r.text
        out.append(str(r.json()["id"]))
    return out


def get(world: World, path: str, params: dict[str, str] | list[tuple[str, str]], role: str = "gp",
        **headers: str) -> Any:
    return world.client.get(path, params=params, headers={**world.headers(role), **headers})


def self_link(bundle: dict[str, Any]) -> str:
    return next(lk["url"] for lk in bundle["link"] if lk["relation"] == "self")


def search_audits(world: World) -> int:
    with world.services.engine.connect() as conn:
        return len(conn.execute(select(audit.c.seq).where(audit.c.dossier_key == world.dossier,
                                                          audit.c.event == "ITI-67")).all())


# --- _summary=count and _total ---------------------------------------------------------------------------------------

def test_summary_count_returns_only_the_total_and_is_still_an_audited_search(world: World) -> None:
    publish(world, 3)
    before = search_audits(world)
    r = get(world, "/fhir/DocumentReference", {"patient": str(world.dossier), "_summary": "count"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 3 and body.get("entry", []) == []
    assert "_summary=count" in self_link(body)
    assert search_audits(world) == before + 1


def test_summary_count_of_a_dossier_the_caller_may_not_read_is_refused(world: World) -> None:
    publish(world, 1)
    r = get(world, "/fhir/DocumentReference", {"patient": str(world.dossier), "_summary": "count"}, "stranger")
    assert r.status_code == 403, r.text


def test_summary_count_counts_only_what_the_caller_may_see(world: World) -> None:
    publish(world, 2)
    masked = docref(world)
    masked["securityLabel"] = [{"coding": [{"system": TRE_A07, "code": "MASQUE_PS"}]}]
    r = world.client.post("/fhir/DocumentReference", json=masked, headers=world.headers("gp"))
    assert r.status_code == 201, r.text
    gp = get(world, "/fhir/DocumentReference", {"patient": str(world.dossier), "_summary": "count"}).json()
    doctor = get(world, "/fhir/DocumentReference", {"patient": str(world.dossier), "_summary": "count"},
                "doctor").json()
    assert (gp["total"], doctor["total"]) == (3, 2)  # MASQUE_PS: the treating GP only


def test_total_none_leaves_the_total_out_and_accurate_keeps_it(world: World) -> None:
    publish(world, 2)
    none = get(world, "/fhir/DocumentReference", {"patient": str(world.dossier), "_total": "none"}).json()
    assert "total" not in none and len(none["entry"]) == 2
    assert "_total=none" in self_link(none)
    accurate = get(world, "/fhir/DocumentReference", {"patient": str(world.dossier), "_total": "accurate"}).json()
    assert accurate["total"] == 2


def test_total_none_counts_nothing_and_pages_as_the_counted_search_does(world: World) -> None:
    """``_total=none`` spares the count (no statement counts, on either database), and its pages are those of the
    counted search: the same entries, a ``next`` link exactly when another page follows."""
    publish(world, 5)
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement.lower())

    def pages(total: str) -> list[tuple[list[str], bool]]:
        out = []
        for offset in (0, 2, 4, 5):
            body = get(world, "/fhir/DocumentReference", {"patient": str(world.dossier), "_count": "2",
                                                          "_offset": str(offset), "_total": total}).json()
            assert ("total" in body) == (total == "accurate"), body
            out.append(([e["resource"]["id"] for e in body.get("entry", [])],
                        any(lk["relation"] == "next" for lk in body["link"])))
        return out

    event.listen(world.services.engine, "before_cursor_execute", seen)
    try:
        uncounted = pages("none")
    finally:
        event.remove(world.services.engine, "before_cursor_execute", seen)
    assert [s for s in statements if "from document" in s]
    assert not [s for s in statements if "count(" in s and "from document" in s]  # (the audit append counts its CTEs)
    assert uncounted == pages("accurate")
    assert [len(ids) for ids, _ in uncounted] == [2, 2, 1, 0]
    assert [more for _, more in uncounted] == [True, True, False, False]


def test_a_bad_total_or_summary_is_refused_naming_it_even_when_lenient(world: World) -> None:
    for name, value in (("_total", "exact"), ("_summary", "text")):
        for headers in ({}, LENIENT):
            r = get(world, "/fhir/DocumentReference", {"patient": str(world.dossier), name: value}, **headers)
            assert r.status_code == 400, (name, headers, r.text)
            assert r.json()["issue"][0]["expression"] == [name]


def test_summary_count_works_on_the_other_searches(world: World) -> None:
    publish(world, 2)
    for path, params in (("/fhir/List", {"patient": str(world.dossier)}),
                         ("/fhir/Patient", {"identifier": f"{INS_SYSTEM_TEST}|{world.ins}"}),  # its own patient
                         ("/fhir/Practitioner", {"identifier": world.pros["gp"]})):
        r = get(world, path, {**params, "_summary": "count"})
        assert r.status_code == 200, (path, r.text)
        assert r.json()["total"] >= 1 and r.json().get("entry", []) == [], path


# --- strict and lenient handling ------------------------------------------------------------------------------------

def test_an_unknown_parameter_is_refused_by_default_naming_it(world: World) -> None:
    r = get(world, "/fhir/DocumentReference", {"patient": str(world.dossier), "colour": "blue"})
    assert r.status_code == 400, r.text
    assert r.json()["issue"][0]["expression"] == ["colour"]
    r = get(world, "/fhir/DocumentReference", {"patient": str(world.dossier), "colour": "blue"},
            Prefer="handling=strict")
    assert r.status_code == 400, r.text


def test_lenient_handling_ignores_unknown_parameters_and_leaves_them_out_of_the_self_link(world: World) -> None:
    ids = publish(world, 2)
    r = get(world, "/fhir/DocumentReference", [("patient", str(world.dossier)), ("colour", "blue"),
                                               ("_include", "DocumentReference:custodian"),
                                               ("_totalMethod", "count")], **LENIENT)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {e["resource"]["id"] for e in body["entry"]} == set(ids)
    link = self_link(body)
    assert "colour" not in link and "_include" not in link and "_totalMethod" not in link
    assert f"patient={world.dossier}" in link


def test_lenient_handling_still_refuses_a_known_parameter_with_a_bad_value(world: World) -> None:
    r = get(world, "/fhir/DocumentReference", {"patient": str(world.dossier), "date": "yesterday"}, **LENIENT)
    assert r.status_code == 400, r.text
    assert r.json()["issue"][0]["expression"] == ["date"]
    r = get(world, "/fhir/DocumentReference", {"patient": str(world.dossier), "_count": "many"}, **LENIENT)
    assert r.status_code == 400, r.text


def test_lenient_handling_applies_to_a_post_search(world: World) -> None:
    publish(world, 1)
    r = world.client.post("/fhir/DocumentReference/_search", data={"patient": str(world.dossier), "colour": "x"},
                          headers={**world.headers("gp"), **LENIENT})
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 1 and "colour" not in self_link(r.json())


def test_an_unsupported_include_is_refused_naming_it_and_saying_what_is_supported(world: World) -> None:
    r = get(world, "/fhir/DocumentReference", {"patient": str(world.dossier),
                                               "_include": "DocumentReference:custodian"})
    assert r.status_code == 400, r.text
    issue = r.json()["issue"][0]
    assert issue["expression"] == ["_include"] and "DocumentReference:author" in issue["diagnostics"]
    r = get(world, "/fhir/List", {"patient": str(world.dossier), "_include": "List:item"})
    assert r.status_code == 400, r.text
    assert r.json()["issue"][0]["expression"] == ["_include"]
    assert "not supported" in r.json()["issue"][0]["diagnostics"]
    assert "by its id" in r.json()["issue"][0]["diagnostics"]
    r = get(world, "/fhir/DocumentReference", {"patient": str(world.dossier), "_totalMethod": "count"})
    assert r.status_code == 400 and "_summary=count" in r.json()["issue"][0]["diagnostics"]


def test_include_adds_the_patient_and_the_directory_authors_each_read_through_its_door(world: World) -> None:
    doctor = world.pros["doctor"]
    ids = publish(world, 2, [{"reference": f"Practitioner/{doctor}"}, {"reference": "Practitioner/81234567890"}])
    reads = patient_reads(world)
    r = get(world, "/fhir/DocumentReference", [("patient", str(world.dossier)),
                                               ("_include", "DocumentReference:subject"),
                                               ("_include", "DocumentReference:author")])
    assert r.status_code == 200, r.text
    body = r.json()
    modes = {(e["resource"]["resourceType"], e["resource"]["id"]): e["search"]["mode"] for e in body["entry"]}
    assert modes == {**{("DocumentReference", i): "match" for i in ids}, ("Patient", str(world.dossier)): "include",
                     ("Practitioner", doctor): "include"}
    assert body["total"] == 2  # the matches only
    assert "_include=DocumentReference%3Asubject" in self_link(body)
    assert patient_reads(world) == reads + 1  # the included Patient is a read the policy allowed and the audit keeps


def test_include_needs_a_scope_that_reads_the_included_type(world: World) -> None:
    publish(world, 1)
    headers = {"Authorization": f"Bearer {world.token('gp', scope='system/DocumentReference.rs')}"}
    r = world.client.get("/fhir/DocumentReference", params={"patient": str(world.dossier),
                                                             "_include": "DocumentReference:subject"},
                         headers=headers)
    assert r.status_code == 403, r.text
    assert r.json()["issue"][0]["expression"] == ["_include"]


def patient_reads(world: World) -> int:
    with world.services.engine.connect() as conn:
        return len(conn.execute(select(audit.c.seq).where(audit.c.dossier_key == world.dossier,
                                                          audit.c.event == "patient.read")).all())


# --- authors resolved from the directory ----------------------------------------------------------------------------

def test_a_document_whose_author_references_a_known_practitioner_is_found_by_the_authors_name(world: World) -> None:
    doctor = world.pros["doctor"]
    with world.services.engine.connect() as conn:
        row = by_ids_conn(conn, doctor)
    by_ref = publish(world, 1, [{"reference": f"Practitioner/{doctor}"}])
    by_abs = publish(world, 1, [{"reference": f"{world.services.settings.base_url}/fhir/PractitionerRole/{doctor}"}])
    by_ident = publish(world, 1, [{"identifier": {"system": "urn:oid:1.2.250.1.71.4.2.1", "value": doctor}}])
    unknown = publish(world, 1, [{"reference": "Practitioner/81234567890"}])
    found = get(world, "/fhir/DocumentReference", {"patient": str(world.dossier), "author.family": row.family})
    assert found.status_code == 200, found.text
    ids = {e["resource"]["id"] for e in found.json().get("entry", [])}
    assert ids == set(by_ref + by_abs + by_ident)
    assert not ids & set(unknown)
    given = get(world, "/fhir/DocumentReference", {"patient": str(world.dossier), "author.given": row.given})
    assert set(by_ref) <= {e["resource"]["id"] for e in given.json().get("entry", [])}


def by_ids_conn(conn: Any, national_id: str) -> Any:
    from carnet.identity.practitioners import by_ids as rows

    return rows(conn, [national_id])[national_id]


# --- Practitioner?name= ---------------------------------------------------------------------------------------------

def test_practitioners_are_found_by_name_family_or_given(world: World) -> None:
    doctor = world.pros["doctor"]
    with world.services.engine.connect() as conn:
        row = by_ids_conn(conn, doctor)
    for params in ({"name": row.family}, {"name": row.family.lower()}, {"family": row.family}):
        r = get(world, "/fhir/Practitioner", params)
        assert r.status_code == 200, r.text
        assert doctor in {e["resource"]["id"] for e in r.json()["entry"]}, params
    r = get(world, "/fhir/Practitioner", {"name": "Zzzz-nobody"})
    assert r.status_code == 200 and r.json()["total"] == 0
    r = get(world, "/fhir/Practitioner", {"name": "%"})
    assert r.status_code == 200 and r.json()["total"] == 0  # a wildcard is a character, not a pattern


# --- ITI-66 and AuditEvent ------------------------------------------------------------------------------------------

def submit(world: World, designation: str, source: str, date: str) -> tuple[str, str]:
    """An ITI-65 bundle whose SubmissionSet has a designationType, a sourceId and a uniqueId; its List id and
    uniqueId."""
    unique = f"urn:oid:1.2.250.1.999.{uuid.uuid4().int % 10**9}"
    doc = docref(world)
    bundle = provide_bundle(doc, PDF, date=date, ids=(f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}",
                                                      f"urn:uuid:{uuid.uuid4()}"))
    slist = bundle["entry"][0]["resource"]
    slist["identifier"] = [{"use": "usual", "system": "urn:ietf:rfc:3986", "value": unique}]
    slist["extension"] = [
        {"url": DESIGNATION, "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct",
                                                                  "code": designation}]}},
        {"url": SOURCE_ID, "valueIdentifier": {"value": source}}]
    r = world.client.post("/fhir", json=bundle, headers=world.headers("gp"))
    assert r.status_code == 200, r.text
    list_id = next(e["response"]["location"].split("/")[1] for e in r.json()["entry"]
                   if e["response"]["location"].startswith("List/"))
    return list_id, unique


def list_ids(world: World, **params: str) -> set[str]:
    r = get(world, "/fhir/List", {"patient": str(world.dossier), **params})
    assert r.status_code == 200, r.text
    return {e["resource"]["id"] for e in r.json().get("entry", [])}


def test_iti66_finds_submission_sets_by_identifier_designation_type_source_id_and_date(world: World) -> None:
    a, a_unique = submit(world, "225728007", "urn:oid:1.2.3.4", "2024-03-01T10:00:00Z")
    b, b_unique = submit(world, "11111111", "urn:oid:1.2.3.5", "2025-06-01T10:00:00Z")
    assert list_ids(world, identifier=f"urn:ietf:rfc:3986|{a_unique}") == {a}
    assert list_ids(world, identifier=b_unique) == {b}
    assert list_ids(world, designationType="http://snomed.info/sct|225728007") == {a}
    assert list_ids(world, designationType="11111111") == {b}
    assert list_ids(world, designationType="http://loinc.org|225728007") == set()
    assert list_ids(world, sourceId="urn:oid:1.2.3.5") == {b}
    assert list_ids(world, date="lt2025") == {a}
    assert a in list_ids(world, date="2024-03")
    r = get(world, "/fhir/List", {"patient": str(world.dossier), "code:not": "folder"})
    assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["code:not"]


def test_the_access_history_is_searched_by_date(world: World) -> None:
    publish(world, 1)
    patient = {"Authorization": f"Bearer {world.token(kind='patient_portal')}", "Accept": "application/fhir+json"}
    everything = world.client.get("/fhir/AuditEvent", params={"patient": str(world.dossier)}, headers=patient)
    assert everything.status_code == 200, everything.text
    assert everything.json()["total"] >= 2
    past = world.client.get("/fhir/AuditEvent", params={"patient": str(world.dossier), "date": "lt2000-01-01"},
                            headers=patient)
    assert past.status_code == 200, past.text
    assert past.json()["total"] == 0 and past.json().get("entry", []) == []
    since = world.client.get("/fhir/AuditEvent", params=[("patient", str(world.dossier)), ("date", "ge2000-01-01")],
                             headers=patient)
    assert since.json()["total"] >= 2
    bad = world.client.get("/fhir/AuditEvent", params={"patient": str(world.dossier), "date": "soon"}, headers=patient)
    assert bad.status_code == 400 and bad.json()["issue"][0]["expression"] == ["date"]


def test_the_capability_statement_declares_the_new_parameters_and_the_includes(world: World) -> None:
    cs = world.client.get("/fhir/metadata").json()
    res = {r["type"]: r for r in cs["rest"][0]["resource"]}
    names = {t: {p["name"] for p in r.get("searchParam", [])} for t, r in res.items()}
    assert {"identifier", "designationType", "sourceId", "date"} <= names["List"]
    assert "date" in names["AuditEvent"]
    assert "name" in names["Practitioner"]
    assert res["DocumentReference"]["searchInclude"] == ["DocumentReference:subject", "DocumentReference:patient",
                                                         "DocumentReference:author"]
    assert all("searchInclude" not in r for t, r in res.items() if t != "DocumentReference")



def test_every_search_route_accepts_each_parameter_it_declares(world: World) -> None:
    """Parameters are checked against the route table in one place: a parameter the CapabilityStatement declares is
    never refused as unknown (it may still be refused for its value)."""
    from carnet.fhir.routes import ROUTES

    for route in ROUTES:
        if route.interaction != "search-type" or route.method != "GET":
            continue
        for name, _ in route.search_params:
            declared = {n for n, _ in route.search_params}
            base = {"patient": str(world.dossier)} if "patient" in declared and name != "patient" else {}
            r = get(world, route.path, {**base, name: "x"})
            assert not (r.status_code == 400 and r.json()["issue"][0].get("diagnostics") == "Unknown search parameter"
                        ), (route.path, name, r.text)
