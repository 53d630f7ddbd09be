"""The Task API end to end (``/fhir/Task``, ``$accept``, ``$reject``, ``Patient/$access-requests``), on SQLite and
PostgreSQL, with real tokens."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from carnet.db.tables import access_grant
from carnet.tasks.fhir import CODE_SYSTEM
from tests.conftest import INS_SYSTEM, World
from tests.tasks.helpers import (
    add_representative,
    audit_events,
    grant_task_scopes,
    grants_of,
    provide_replacement,
    publish,
    rep_headers,
    tasks_of,
)


@pytest.fixture
def tw(world: World) -> World:
    grant_task_scopes(world)
    return world


def access_task(world: World, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Task", "status": "requested", "intent": "proposal",
            "code": {"coding": [{"system": CODE_SYSTEM, "code": "access-request"}]},
            "for": {"reference": f"Patient/{world.dossier}"}, "reasonCode": {"text": "suivi post-opératoire"},
            **extra}


def rect_task(doc_id: str, text: str | None = "Mauvais côté opéré") -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "Task", "status": "requested", "intent": "order",
                           "code": {"coding": [{"system": CODE_SYSTEM, "code": "rectification"}]},
                           "focus": {"reference": f"DocumentReference/{doc_id}"}}
    if text is not None:
        res["description"] = text
    return res


def params(**values: str) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": [{"name": k, "valueString": v} for k, v in values.items()]}


def patient_headers(world: World) -> dict[str, str]:
    return world.headers(None, kind="patient_portal")


def search_documents(world: World, role: str) -> int:
    return world.client.get("/fhir/DocumentReference", params={"patient": str(world.dossier)},
                            headers=world.headers(role)).status_code


def test_an_accepted_request_opens_the_dossier_to_the_professional(tw: World) -> None:
    assert search_documents(tw, "stranger") == 403
    r = tw.client.post("/fhir/Task", json=access_task(tw), headers=tw.headers("stranger"))
    assert r.status_code == 201, r.text
    t = r.json()
    assert t["status"] == "requested" and t["intent"] == "proposal"
    assert t["requester"]["reference"] == f"Practitioner/{tw.pros['stranger']}"
    assert t["for"] == {"reference": f"Patient/{tw.dossier}"}
    assert t["restriction"]["period"]["end"] > t["authoredOn"]
    assert r.headers["Location"].endswith(f"/Task/{t['id']}/_history/1")
    pending = tw.client.get("/fhir/Task", params={"patient": str(tw.dossier), "status": "requested"},
                            headers=patient_headers(tw)).json()
    assert [e["resource"]["id"] for e in pending["entry"]] == [t["id"]]
    r = tw.client.post(f"/fhir/Task/{t['id']}/$accept", json=params(reason="Bien sûr"), headers=patient_headers(tw))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "completed" and r.json()["note"] == [{"text": "Bien sûr"}]
    assert search_documents(tw, "stranger") == 200
    assert tw.client.get(f"/fhir/Task/{t['id']}", headers=tw.headers("stranger")).json()["status"] == "completed"
    assert {"access.consent", "task.access.accept"} <= set(audit_events(tw))


def test_a_refused_request_leaves_the_dossier_closed_to_the_professional(tw: World) -> None:
    t = tw.client.post("/fhir/Task", json=access_task(tw), headers=tw.headers("stranger")).json()
    grants = grants_of(tw)
    r = tw.client.post(f"/fhir/Task/{t['id']}/$reject", json=params(reason="Je ne vous connais pas"),
                       headers=patient_headers(tw))
    assert r.status_code == 200
    assert r.json()["status"] == "rejected" and r.json()["statusReason"]["text"] == "Je ne vous connais pas"
    assert grants_of(tw) == grants
    assert search_documents(tw, "stranger") == 403


def test_the_requester_is_the_caller_whatever_the_body_says(tw: World) -> None:
    body = access_task(tw, requester={"reference": f"Practitioner/{tw.pros['gp']}"})
    r = tw.client.post("/fhir/Task", json=body, headers=tw.headers("stranger"))
    assert r.status_code == 201
    assert r.json()["requester"]["reference"] == f"Practitioner/{tw.pros['stranger']}"
    assert tasks_of(tw)[0].requester_id == tw.pros["stranger"]


def test_a_request_may_name_the_patient_by_ins(tw: World) -> None:
    body = access_task(tw, **{"for": {"identifier": {"system": INS_SYSTEM, "value": tw.ins}}})
    r = tw.client.post("/fhir/Task", json=body, headers=tw.headers("stranger"))
    assert r.status_code == 201, r.text
    assert r.json()["for"] == {"reference": f"Patient/{tw.dossier}"}


def test_asking_again_answers_200_with_the_pending_request(tw: World) -> None:
    first = tw.client.post("/fhir/Task", json=access_task(tw), headers=tw.headers("stranger"))
    again = tw.client.post("/fhir/Task", json=access_task(tw), headers=tw.headers("stranger"))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert len(tasks_of(tw)) == 1


@pytest.mark.parametrize("role, status", [("gp", 409), ("blocked", 403)])
def test_an_authorized_or_blocked_professional_does_not_ask(tw: World, role: str, status: int) -> None:
    r = tw.client.post("/fhir/Task", json=access_task(tw), headers=tw.headers(role))
    assert r.status_code == status
    assert r.json()["resourceType"] == "OperationOutcome"
    assert tasks_of(tw) == []


def test_a_professional_in_emergency_mode_does_not_ask(tw: World) -> None:
    r = tw.client.post("/fhir/Task", json=access_task(tw),
                       headers=tw.headers("stranger", mode="emergency", reason="inconscient"))
    assert r.status_code == 403
    assert tasks_of(tw) == []


def test_the_refuse_setting_answers_at_once_with_a_rejected_task(tw: World) -> None:
    r = tw.client.post(f"/fhir/Patient/{tw.dossier}/$access-requests",
                       json={"resourceType": "Parameters", "parameter": [{"name": "policy", "valueCode": "refuse"}]},
                       headers=patient_headers(tw))
    assert r.status_code == 200, r.text
    r = tw.client.post("/fhir/Task", json=access_task(tw), headers=tw.headers("stranger"))
    assert r.status_code == 201
    assert r.json()["status"] == "rejected"
    assert r.json()["statusReason"]["text"] == "The patient does not accept access requests"
    assert "task.access.request" not in audit_events(tw)


def test_only_the_patient_changes_the_access_request_setting(tw: World) -> None:
    body = {"resourceType": "Parameters", "parameter": [{"name": "policy", "valueCode": "refuse"}]}
    assert tw.client.post(f"/fhir/Patient/{tw.dossier}/$access-requests", json=body,
                          headers=tw.headers("gp")).status_code == 403
    bad = {"resourceType": "Parameters", "parameter": [{"name": "policy", "valueCode": "maybe"}]}
    assert tw.client.post(f"/fhir/Patient/{tw.dossier}/$access-requests", json=bad,
                          headers=patient_headers(tw)).status_code == 422


def test_an_expired_request_is_served_as_cancelled_with_the_reason_expired(tw: World,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as dt

    t = tw.client.post("/fhir/Task", json=access_task(tw), headers=tw.headers("stranger")).json()
    real = tw.services.clock
    monkeypatch.setattr(tw.services, "clock", lambda: real() + dt.timedelta(hours=25))
    r = tw.client.get(f"/fhir/Task/{t['id']}", headers=patient_headers(tw))
    assert r.json()["status"] == "cancelled" and r.json()["statusReason"]["text"] == "expired"
    found = tw.client.get("/fhir/Task", params={"patient": str(tw.dossier), "status": "cancelled"},
                          headers=patient_headers(tw)).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [t["id"]]
    assert tw.client.post(f"/fhir/Task/{t['id']}/$accept", headers=patient_headers(tw)).status_code == 409


def test_a_representative_accepts_through_the_api(tw: World) -> None:
    rep = add_representative(tw)
    t = tw.client.post("/fhir/Task", json=access_task(tw), headers=tw.headers("stranger")).json()
    grant_task_scopes(tw)
    r = tw.client.post(f"/fhir/Task/{t['id']}/$accept", headers=rep_headers(tw, rep))
    assert r.status_code == 200, r.text
    assert search_documents(tw, "stranger") == 200


@pytest.mark.parametrize("role, status", [("stranger", 403), ("gp", 404), ("blocked", 404)])
def test_nobody_else_answers_an_access_request(tw: World, role: str, status: int) -> None:
    t = tw.client.post("/fhir/Task", json=access_task(tw), headers=tw.headers("stranger")).json()
    for op in ("$accept", "$reject"):
        assert tw.client.post(f"/fhir/Task/{t['id']}/{op}", headers=tw.headers(role)).status_code == status
    assert tasks_of(tw)[0].status == "requested"
    with tw.services.engine.connect() as conn:
        assert conn.execute(select(access_grant).where(access_grant.c.dossier_key == tw.dossier,
                                                       access_grant.c.subject_id == tw.pros["stranger"])).all() == []


def test_someone_elses_task_looks_absent(tw: World) -> None:
    t = tw.client.post("/fhir/Task", json=access_task(tw), headers=tw.headers("stranger")).json()
    for role in ("gp", "doctor", "blocked"):
        assert tw.client.get(f"/fhir/Task/{t['id']}", headers=tw.headers(role)).status_code == 404
    assert tw.client.get("/fhir/Task/not-a-uuid", headers=tw.headers("gp")).status_code == 404
    assert tw.client.get("/fhir/Task/0197a6f0-0000-7000-8000-000000000001",
                         headers=tw.headers("gp")).status_code == 404
    mine = tw.client.get("/fhir/Task", params={"patient": str(tw.dossier)}, headers=tw.headers("gp")).json()
    assert mine["total"] == 0


def test_the_rectification_cycle_through_the_api(tw: World) -> None:
    doc_id = publish(tw, "doctor")
    r = tw.client.post("/fhir/Task", json=rect_task(doc_id), headers=patient_headers(tw))
    assert r.status_code == 201, r.text
    t = r.json()
    assert t["owner"]["reference"] == f"Practitioner/{tw.pros['doctor']}"
    assert t["focus"] == {"reference": f"DocumentReference/{doc_id}"} and t["description"] == "Mauvais côté opéré"
    todo = tw.client.get("/fhir/Task", params={"owner": f"Practitioner/{tw.pros['doctor']}",
                                               "status": "requested"}, headers=tw.headers("doctor")).json()
    assert [e["resource"]["id"] for e in todo["entry"]] == [t["id"]]
    status, new_id = provide_replacement(tw, "doctor", doc_id)
    assert status == 200
    done = tw.client.get(f"/fhir/Task/{t['id']}", headers=patient_headers(tw)).json()
    assert done["status"] == "completed"
    assert done["output"][0]["valueReference"] == {"reference": f"DocumentReference/{new_id}"}


def test_a_rectification_refusal_without_a_reason_answers_422_and_changes_nothing(tw: World) -> None:
    doc_id = publish(tw, "doctor")
    t = tw.client.post("/fhir/Task", json=rect_task(doc_id), headers=patient_headers(tw)).json()
    before = tasks_of(tw)
    r = tw.client.post(f"/fhir/Task/{t['id']}/$reject", headers=tw.headers("doctor"))
    assert r.status_code == 422
    assert tasks_of(tw) == before
    r = tw.client.post(f"/fhir/Task/{t['id']}/$reject", json=params(reason="Le côté est exact"),
                       headers=tw.headers("doctor"))
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    seen = tw.client.get(f"/fhir/Task/{t['id']}", headers=patient_headers(tw)).json()
    assert seen["statusReason"]["text"] == "Le côté est exact"


@pytest.mark.parametrize("body, status", [
    ({"resourceType": "Patient"}, 400),
    ({"resourceType": "Task", "status": "requested"}, 422),  # intent is required
    ({"resourceType": "Task", "status": "requested", "intent": "proposal"}, 422),  # no code
    ({"resourceType": "Task", "status": "requested", "intent": "proposal",
      "code": {"coding": [{"system": CODE_SYSTEM, "code": "coffee"}]}}, 422),
    ({"resourceType": "Task", "status": "requested", "intent": "proposal",
      "code": {"coding": [{"system": CODE_SYSTEM, "code": "access-request"}]}}, 422),  # no for
    ({"resourceType": "Task", "status": "requested", "intent": "order",
      "code": {"coding": [{"system": CODE_SYSTEM, "code": "rectification"}]}}, 422),  # no focus
    ({"resourceType": "Task", "status": 3, "intent": "order"}, 422),
])
def test_a_malformed_task_is_refused_and_stores_nothing(tw: World, body: dict[str, Any], status: int) -> None:
    r = tw.client.post("/fhir/Task", json=body, headers=tw.headers("stranger"))
    assert r.status_code == status, r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    assert tasks_of(tw) == []


def test_a_rectification_without_text_is_refused(tw: World) -> None:
    doc_id = publish(tw, "doctor")
    r = tw.client.post("/fhir/Task", json=rect_task(doc_id, None), headers=patient_headers(tw))
    assert r.status_code == 422
    assert r.json()["issue"][0]["expression"] == ["Task.description"]


@pytest.mark.parametrize("query, status", [
    ({"foo": "1"}, 400), ({}, 400), ({"owner": "Practitioner/810000000000"}, 400),
    ({"patient": "x", "status": "weird"}, 400), ({"patient": "x", "code": "coffee"}, 400),
])
def test_task_search_refuses_what_it_does_not_support(tw: World, query: dict[str, str], status: int) -> None:
    query = {k: (str(tw.dossier) if v == "x" else v) for k, v in query.items()}
    assert tw.client.get("/fhir/Task", params=query, headers=tw.headers("gp")).status_code == status


def test_without_the_task_scope_the_api_refuses(world: World) -> None:
    narrow = world.headers("stranger", scope="system/DocumentReference.rs system/Patient.rs")
    r = world.client.post("/fhir/Task", json=access_task(world), headers=narrow)
    assert r.status_code == 403
    assert tasks_of(world) == []


def test_the_capability_statement_lists_task_and_its_operations(tw: World) -> None:
    cs = tw.client.get("/fhir/metadata").json()
    task = next(r for r in cs["rest"][0]["resource"] if r["type"] == "Task")
    assert {i["code"] for i in task["interaction"]} == {"create", "read", "search-type"}
    assert {o["name"] for o in task["operation"]} == {"accept", "reject"}
    assert all(o["definition"].endswith(f"Task-{o['name']}") for o in task["operation"])
    assert {p["name"] for p in task["searchParam"]} == {"patient", "status", "code", "owner", "requester"}
