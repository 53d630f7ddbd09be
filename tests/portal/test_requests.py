"""The Requests screen (issue 4 §3): professionals' access requests answered in one step, and the patient's
requests for a correction, followed to their outcome — through the pages, checked through the API."""

from __future__ import annotations

import re
from typing import Any

from carnet.tasks.fhir import CODE_SYSTEM
from tests.conftest import World
from tests.portal.conftest import Patient, csrf_of
from tests.portal.test_access import english, name_of
from tests.tasks.helpers import grant_task_scopes, provide_replacement, publish, tasks_of


def ready(patient: Patient) -> World:
    world = english(patient).world
    grant_task_scopes(world)
    return world


def ask_access(world: World, role: str = "stranger", reason: str = "suivi après une chute") -> str:
    task = {"resourceType": "Task", "status": "requested", "intent": "proposal",
            "code": {"coding": [{"system": CODE_SYSTEM, "code": "access-request"}]},
            "for": {"reference": f"Patient/{world.dossier}"}, "reasonCode": {"text": reason}}
    r = world.client.post("/fhir/Task", json=task, headers=world.headers(role))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def search_status(world: World, role: str) -> int:
    return world.client.get("/fhir/DocumentReference", params={"patient": str(world.dossier)},
                            headers=world.headers(role)).status_code


def post(patient: Patient, path: str, **data: str) -> Any:
    page = patient.browser.get("/portal/requests")
    return patient.browser.post(path, data={"csrf": csrf_of(page.text), **data})


def section(html: str, start: str, end: str | None = None) -> str:
    part = html[html.index(start):]
    return part[:part.index(end)] if end else part


def test_a_pending_request_shows_who_asked_and_why(patient: Patient) -> None:
    world = ready(patient)
    ask_access(world)
    html = patient.browser.get("/portal/requests").text
    pending = section(html, "Waiting for your answer", "Past access requests")
    assert name_of(world, "stranger") in pending and "suivi après une chute" in pending
    assert "/portal/requests/accept" in pending and "/portal/requests/refuse" in pending


def test_accepting_an_access_request_grants_access(patient: Patient) -> None:
    world = ready(patient)
    tid = ask_access(world)
    assert search_status(world, "stranger") == 403
    r = post(patient, "/portal/requests/accept", task=tid)
    assert r.status_code == 303 and r.headers["location"] == "/portal/requests?done=accepted"
    assert search_status(world, "stranger") == 200
    assert [t.status for t in tasks_of(world)] == ["completed"]
    html = patient.browser.get(r.headers["location"]).text
    assert "No professional is waiting for your answer." in html
    assert "accepted" in section(html, "Past access requests", "My requests for a correction")


def test_refusing_an_access_request_grants_nothing_and_keeps_the_note(patient: Patient) -> None:
    world = ready(patient)
    tid = ask_access(world)
    r = post(patient, "/portal/requests/refuse", task=tid, note="Je préfère en parler avec vous d'abord")
    assert r.status_code == 303 and r.headers["location"] == "/portal/requests?done=refused"
    assert search_status(world, "stranger") == 403
    seen = world.client.get(f"/fhir/Task/{tid}", headers=world.headers("stranger")).json()
    assert seen["status"] == "rejected"
    past = section(patient.browser.get("/portal/requests").text, "Past access requests",
                   "My requests for a correction")
    assert "refused" in past and "Je préfère en parler avec vous d&#39;abord" in past


def test_a_request_cannot_be_answered_twice(patient: Patient) -> None:
    world = ready(patient)
    tid = ask_access(world)
    assert post(patient, "/portal/requests/refuse", task=tid).status_code == 303
    again = post(patient, "/portal/requests/accept", task=tid)
    assert again.status_code == 409
    assert search_status(world, "stranger") == 403


def test_an_unknown_request_is_not_found(patient: Patient) -> None:
    ready(patient)
    assert post(patient, "/portal/requests/accept", task="not-a-task").status_code == 404
    assert post(patient, "/portal/requests/accept",
                task="01900000-0000-7000-8000-000000000000").status_code == 404


def test_a_correction_request_reaches_the_authors_task_list_and_a_refusal_shows_its_reason(
        patient: Patient) -> None:
    world = ready(patient)
    doc = publish(world, "gp")
    form = patient.browser.get("/portal/requests/correction", params={"document": doc})
    assert form.status_code == 200 and f'name="document" value="{doc}"' in form.text
    r = patient.browser.post("/portal/requests/correction", data={
        "csrf": csrf_of(form.text), "document": doc, "text": "Le côté opéré est le gauche, pas le droit"})
    assert r.status_code == 303 and r.headers["location"] == "/portal/requests?done=correction"
    gp = world.headers("gp")
    inbox = world.client.get("/fhir/Task", params={"owner": f"Practitioner/{world.pros['gp']}",
                                                  "status": "requested"}, headers=gp).json()
    tasks = [e["resource"] for e in inbox.get("entry", [])]
    assert len(tasks) == 1 and tasks[0]["focus"]["reference"].endswith(doc)
    assert "Le côté opéré est le gauche" in str(tasks[0])
    mine = section(patient.browser.get("/portal/requests").text, "My requests for a correction")
    assert "waiting for the author&#39;s answer" in mine and name_of(world, "gp") in mine
    refusal = {"resourceType": "Parameters",
               "parameter": [{"name": "reason", "valueString": "Le compte rendu est conforme au dossier opératoire"}]}
    r = world.client.post(f"/fhir/Task/{tasks[0]['id']}/$reject", json=refusal, headers=gp)
    assert r.status_code == 200, r.text
    mine = section(patient.browser.get("/portal/requests").text, "My requests for a correction")
    assert "refused by the author" in mine and "Le compte rendu est conforme au dossier opératoire" in mine


def test_a_correction_answered_by_a_new_version_links_to_it(patient: Patient) -> None:
    world = ready(patient)
    doc = publish(world, "gp")
    form = patient.browser.get("/portal/requests/correction", params={"document": doc})
    patient.browser.post("/portal/requests/correction", data={"csrf": csrf_of(form.text), "document": doc,
                                                              "text": "Mauvaise date d'intervention"})
    status, new = provide_replacement(world, "gp", doc)
    assert status == 200 and new
    mine = section(patient.browser.get("/portal/requests").text, "My requests for a correction")
    assert "corrected: a new version replaces the document" in mine and f"/portal/documents/{new}" in mine


def test_the_correction_form_offers_the_documents_of_professionals_and_needs_a_text(patient: Patient) -> None:
    world = ready(patient)
    doc = publish(world, "gp")
    form = patient.browser.get("/portal/requests/correction")
    assert re.search(rf'<option value="{doc}">', form.text)
    r = patient.browser.post("/portal/requests/correction", data={"csrf": csrf_of(form.text), "document": doc,
                                                                  "text": "  "})
    assert r.status_code == 400 and 'role="alert"' in r.text
    r = patient.browser.post("/portal/requests/correction", data={"csrf": csrf_of(form.text), "document": "",
                                                                  "text": "Erreur"})
    assert r.status_code == 400
    assert tasks_of(world) == []


def test_a_correction_of_a_document_the_patient_cannot_see_is_not_found(patient: Patient) -> None:
    world = ready(patient)
    hidden = publish(world, "gp", labels=["INVISIBLE_PATIENT"])
    form = patient.browser.get("/portal/requests/correction", params={"document": hidden})
    assert form.status_code == 404
    assert hidden not in patient.browser.get("/portal/requests/correction").text
