"""Structured data through the FHIR API (:mod:`carnet.fhir.routes.clinical`): create, read, search, withdraw, dispute,
under the dossier's rules."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from sqlalchemy import select

from carnet.clinical.service import DISPUTE_EXT
from carnet.db.tables import audit
from tests.clinical import samples
from tests.conftest import World


@pytest.fixture
def w(world: World) -> World:
    samples.grant_clinical_scopes(world)
    return world


def _valid(res: dict[str, Any]) -> None:
    rtype = res["resourceType"]
    model = getattr(importlib.import_module(f"fhir.resources.R4B.{rtype.lower()}"), rtype)
    model.model_validate(res, strict=True)


def _events(w: World, event: str) -> list[Any]:
    with w.services.engine.connect() as conn:
        return list(conn.execute(select(audit.c.outcome, audit.c.actor_id).where(
            audit.c.dossier_key == w.dossier, audit.c.event == event)))


def create_item(w: World, res: dict[str, Any], role: str = "doctor") -> dict[str, Any]:
    r = w.client.post(f"/fhir/{res['resourceType']}", json=res, headers=w.headers(role))
    assert r.status_code == 201, r.text
    return dict(r.json())


@pytest.mark.parametrize("make", samples.ALL, ids=lambda f: f.__name__)
def test_an_authorized_doctor_creates_reads_and_searches_each_type(w: World, make: Any) -> None:
    body = make(w.dossier)
    rtype = body["resourceType"]
    created = create_item(w, body)
    _valid(created)
    assert created["meta"]["source"]
    r = w.client.get(f"/fhir/{rtype}/{created['id']}", headers=w.headers("doctor"))
    assert r.status_code == 200
    assert r.json() == created
    found = w.client.get(f"/fhir/{rtype}?patient={w.dossier}", headers=w.headers("gp")).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [created["id"]]
    assert found["total"] == 1
    assert [o for o, _ in _events(w, "clinical.create")] == ["0"]
    assert _events(w, "clinical.read") and _events(w, "clinical.search")


def test_the_author_is_taken_from_the_token_never_from_the_body(w: World) -> None:
    body = samples.allergy(w.dossier)
    body["recorder"] = {"reference": "Practitioner/810000000000", "display": "Someone else"}
    created = create_item(w, body)
    me = w.pros["doctor"]
    assert created["recorder"]["reference"] == f"Practitioner/{me}"
    assert created["asserter"]["reference"] == f"Practitioner/{me}"
    assert created["recorder"]["display"].startswith("Test Doc")
    imm = create_item(w, samples.immunization(w.dossier))
    assert imm["performer"][0]["actor"]["reference"] == f"Practitioner/{me}"
    med = create_item(w, samples.medication(w.dossier))
    assert med["informationSource"]["reference"] == f"Practitioner/{me}"


def test_a_stranger_may_neither_add_nor_read_and_the_refusals_are_audited(w: World) -> None:
    r = w.client.post("/fhir/Condition", json=samples.condition(w.dossier), headers=w.headers("stranger"))
    assert r.status_code == 403
    created = create_item(w, samples.condition(w.dossier))
    assert w.client.get(f"/fhir/Condition/{created['id']}", headers=w.headers("stranger")).status_code == 404
    assert w.client.get(f"/fhir/Condition?patient={w.dossier}", headers=w.headers("stranger")).status_code == 403
    assert w.client.get(f"/fhir/Condition/{created['id']}", headers=w.headers("blocked")).status_code == 404
    refused = [a for o, a in _events(w, "clinical.create") + _events(w, "clinical.read") +
               _events(w, "clinical.search") if o != "0"]
    assert refused.count(w.pros["stranger"]) == 3
    assert w.pros["blocked"] in refused


def test_the_patient_may_not_create_an_item(w: World) -> None:
    r = w.client.post("/fhir/Condition", json=samples.condition(w.dossier),
                      headers=w.headers(None, kind="patient_portal"))
    assert r.status_code == 403


def test_a_nurse_and_a_pharmacist_read_structured_data_as_a_summary_and_may_add(w: World) -> None:
    created = create_item(w, samples.allergy(w.dossier))
    for role in ("nurse", "pharmacist"):
        r = w.client.get(f"/fhir/AllergyIntolerance/{created['id']}", headers=w.headers(role))
        assert r.status_code == 200, role
    mine = create_item(w, samples.vital(w.dossier), role="nurse")
    assert mine["performer"][0]["reference"] == f"Practitioner/{w.pros['nurse']}"


def test_a_profession_whose_matrix_excludes_summaries_sees_only_its_own_items(w: World) -> None:
    import dataclasses

    from carnet.access.matrix import ProfessionRights

    created = create_item(w, samples.allergy(w.dossier))
    own = create_item(w, samples.condition(w.dossier), role="pharmacist")
    matrix = w.services.matrix
    narrowed = dataclasses.replace(matrix, professions={**matrix.professions,
                                                        "21": ProfessionRights(classes=frozenset({"42"}))})
    w.services.matrix = narrowed
    try:
        h = w.headers("pharmacist")
        assert w.client.get(f"/fhir/AllergyIntolerance/{created['id']}", headers=h).status_code == 404
        assert w.client.get(f"/fhir/Condition/{own['id']}", headers=h).status_code == 200
        assert w.client.get(f"/fhir/AllergyIntolerance?patient={w.dossier}", headers=h).json()["total"] == 0
    finally:
        w.services.matrix = matrix


def test_the_patient_reads_everything_and_disputes_an_item_which_the_author_then_sees(w: World) -> None:
    created = create_item(w, samples.allergy(w.dossier))
    create_item(w, samples.condition(w.dossier), role="gp")
    patient = w.headers(None, kind="patient_portal")
    assert w.client.get(f"/fhir/Condition?patient={w.dossier}", headers=patient).json()["total"] == 1
    params = {"resourceType": "Parameters", "parameter": [{"name": "text", "valueString": "I am not allergic."}]}
    r = w.client.post(f"/fhir/AllergyIntolerance/{created['id']}/$dispute", json=params, headers=patient)
    assert r.status_code == 200, r.text
    seen = w.client.get(f"/fhir/AllergyIntolerance/{created['id']}", headers=w.headers("doctor")).json()
    _valid(seen)
    note = seen["note"][-1]
    assert note["text"] == "I am not allergic."
    assert note["authorReference"]["reference"] == f"Patient/{w.dossier}"
    assert note["extension"] == [{"url": DISPUTE_EXT, "valueBoolean": True}]
    assert seen["meta"]["versionId"] == "2"
    assert [o for o, _ in _events(w, "clinical.dispute")] == ["0"]


def test_a_professional_may_not_dispute_an_item(w: World) -> None:
    created = create_item(w, samples.allergy(w.dossier))
    params = {"resourceType": "Parameters", "parameter": [{"name": "text", "valueString": "No."}]}
    r = w.client.post(f"/fhir/AllergyIntolerance/{created['id']}/$dispute", json=params, headers=w.headers("gp"))
    assert r.status_code == 403


def test_only_the_author_withdraws_an_item_and_it_leaves_the_searches(w: World) -> None:
    created = create_item(w, samples.condition(w.dossier))
    url = f"/fhir/Condition/{created['id']}/$entered-in-error"
    assert w.client.post(url, headers=w.headers("gp")).status_code == 403
    r = w.client.post(url, headers=w.headers("doctor"))
    assert r.status_code == 200
    _valid(r.json())
    assert r.json()["verificationStatus"]["coding"][0]["code"] == "entered-in-error"
    assert w.client.get(f"/fhir/Condition?patient={w.dossier}", headers=w.headers("gp")).json()["total"] == 0
    asked = w.client.get(f"/fhir/Condition?patient={w.dossier}&status=entered-in-error", headers=w.headers("gp"))
    assert asked.json()["total"] == 1


def test_an_invalid_item_is_refused_with_422(w: World) -> None:
    body = samples.medication(w.dossier)
    body["status"] = 3
    r = w.client.post("/fhir/MedicationStatement", json=body, headers=w.headers("doctor"))
    assert r.status_code == 422


def test_search_filters_by_category_in_sql(w: World) -> None:
    create_item(w, samples.blood_group(w.dossier))
    create_item(w, samples.vital(w.dossier))
    h = w.headers("doctor")
    found = w.client.get(f"/fhir/Observation?patient={w.dossier}&category=vital-signs", headers=h).json()
    assert [e["resource"]["code"]["coding"][0]["code"] for e in found["entry"]] == ["29463-7"]
    assert w.client.get(f"/fhir/Observation?patient={w.dossier}&code=http://loinc.org|882-1",
                        headers=h).json()["total"] == 1


def test_the_capability_statement_lists_the_structured_types_and_the_summary_operations(w: World) -> None:
    cap = w.client.get("/fhir/metadata").json()
    resources = {r["type"]: r for r in cap["rest"][0]["resource"]}
    for rtype in ("AllergyIntolerance", "Condition", "MedicationStatement", "Immunization", "Observation"):
        assert {i["code"] for i in resources[rtype]["interaction"]} == {"create", "read", "search-type"}
        assert {o["name"] for o in resources[rtype]["operation"]} == {"entered-in-error", "dispute", "meta-add",
                                                                        "meta-delete"}
    assert {"summary", "summary-pdf"} <= {o["name"] for o in resources["Patient"]["operation"]}
