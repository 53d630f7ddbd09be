"""Requests in the clinician portal, through its pages on both databases: asking a patient for access from the find
result, following one's access requests (no patient identity before the patient accepts), and answering the
corrections patients ask of one's documents (a reasoned refusal, or a corrected version filed with ``replaces``)."""

from __future__ import annotations

import re
from typing import Any

from markupsafe import escape

from carnet.context import run
from carnet.tasks import service as tasks
from tests.conftest import World
from tests.pro.conftest import csrf_of, signed_in
from tests.tasks.helpers import patient, publish, tasks_of

NAME = ("Alix", "Testé")  # the World patient's given and family names


def find(browser: Any, ins: str) -> Any:
    return browser.get("/pro/", params={"system": "test", "ins": ins})


def ask(browser: Any, world: World, reason: str = "Suivi après une chute") -> Any:
    page = find(browser, world.ins)
    assert 'action="/pro/request-access"' in page.text
    return browser.post("/pro/request-access", data={"csrf": csrf_of(page.text), "dossier": str(world.dossier),
                                                      "reason": reason})


def html_of(text: str) -> str:
    """``text`` as the templates write it (apostrophes escaped)."""
    return str(escape(text))


def card(html: str, task_id: Any) -> str:
    """The card of one request on /pro/requests."""
    start = html.index(f'id="task-{task_id}"')
    return html[start:html.index("</li>", start)]


def access_tasks(world: World) -> list[Any]:
    return [t for t in tasks_of(world) if t.kind == "access"]


def test_a_stranger_asks_and_sees_the_request_without_the_patients_identity(world: World, browser: Any) -> None:
    signed_in(browser, world.pros["stranger"])
    r = ask(browser, world)
    assert r.status_code == 303 and r.headers["location"].startswith("/pro/requests?done=sent")
    [t] = access_tasks(world)
    assert t.status == "requested" and t.requester_id == world.pros["stranger"] and t.reason == "Suivi après une chute"
    page = browser.get(r.headers["location"])
    assert page.status_code == 200
    assert "Votre demande est envoyée" in page.text and "24 heures" in page.text
    shown = card(page.text, t.task_id)
    assert "Un patient" in shown and "En attente de la réponse du patient" in shown and html_of("jusqu'au") in shown
    for name in NAME:
        assert name not in page.text  # neither the card nor anywhere else on the page
    assert f'href="/pro/dossier/{world.dossier}"' not in page.text and world.ins not in page.text


def test_once_the_patient_accepts_the_page_names_the_patient_and_the_dossier_opens(world: World,
                                                                                   browser: Any) -> None:
    signed_in(browser, world.pros["stranger"])
    assert ask(browser, world).status_code == 303
    [t] = access_tasks(world)
    run(world.services, patient(world), lambda ctx: tasks.answer_access(ctx, t.task_id, True, "D'accord"))
    shown = card(browser.get("/pro/requests").text, t.task_id)
    assert "Alix Testé" in shown and "Acceptée" in shown and "Note du patient : D&#39;accord" in shown
    link = re.search(r'href="(/pro/dossier/[^"]+)"', shown)
    assert link and link.group(1) == f"/pro/dossier/{world.dossier}"
    opened = browser.get(link.group(1))
    assert opened.status_code == 200 and "Testé" in opened.text


def test_a_refusal_by_the_patient_shows_with_their_note(world: World, browser: Any) -> None:
    signed_in(browser, world.pros["stranger"])
    assert ask(browser, world).status_code == 303
    [t] = access_tasks(world)
    run(world.services, patient(world), lambda ctx: tasks.answer_access(ctx, t.task_id, False, "Pas maintenant"))
    shown = card(browser.get("/pro/requests").text, t.task_id)
    assert "Refusée" in shown and "par le patient" in shown and "Pas maintenant" in shown
    assert "Testé" not in shown and "/pro/dossier/" not in shown


def test_a_patient_who_refuses_every_request_refuses_at_once(world: World, browser: Any) -> None:
    run(world.services, patient(world),
        lambda ctx: tasks.set_access_request_policy(ctx, world.dossier, "refuse"))
    signed_in(browser, world.pros["stranger"])
    r = ask(browser, world)
    assert r.status_code == 303 and "done=refused" in r.headers["location"]
    [t] = access_tasks(world)
    assert t.status == "rejected" and t.answered_by == tasks.BY_POLICY
    page = browser.get(r.headers["location"])
    assert html_of("Votre demande a été refusée d'emblée") in page.text
    shown = card(page.text, t.task_id)
    assert "Refusée" in shown and html_of("d'emblée : ce patient refuse toute demande d'accès") in shown
    assert "Testé" not in page.text


def test_asking_twice_gives_the_pending_request_back(world: World, browser: Any) -> None:
    signed_in(browser, world.pros["stranger"])
    assert "done=sent" in ask(browser, world).headers["location"]
    again = ask(browser, world, "Une autre raison")
    assert again.status_code == 303 and "done=pending" in again.headers["location"]
    [t] = access_tasks(world)
    assert t.reason == "Suivi après une chute"
    assert "Vous avez déjà fait une demande" in browser.get(again.headers["location"]).text


def test_a_blocked_or_already_authorized_professional_cannot_ask(world: World, browser: Any) -> None:
    signed_in(browser, world.pros["blocked"])
    page = browser.get("/pro/requests")
    r = browser.post("/pro/request-access", data={"csrf": csrf_of(page.text), "dossier": str(world.dossier)})
    assert r.status_code == 403 and "bloqué" in r.text
    assert access_tasks(world) == []
    browser.cookies.clear()
    signed_in(browser, world.pros["doctor"])
    page = browser.get("/pro/requests")
    r = browser.post("/pro/request-access", data={"csrf": csrf_of(page.text), "dossier": str(world.dossier)})
    assert r.status_code == 409 and "déjà accès" in r.text
    assert access_tasks(world) == []


def test_the_find_result_offers_the_request_only_without_access(world: World, browser: Any) -> None:
    signed_in(browser, world.pros["doctor"])
    assert 'action="/pro/request-access"' not in find(browser, world.ins).text
    assert 'href="/pro/requests"' in browser.get("/pro/").text


def rectification(world: World, text: str = "La date de l'examen est fausse") -> tuple[str, Any]:
    doc_id = publish(world, "doctor")
    view = run(world.services, patient(world), lambda ctx: tasks.request_rectification(ctx, doc_id, text))
    return doc_id, view.id


def test_a_correction_shows_to_the_author_only(world: World, browser: Any) -> None:
    doc_id, tid = rectification(world)
    signed_in(browser, world.pros["doctor"])
    shown = card(browser.get("/pro/requests").text, tid)
    assert "La date de l&#39;examen est fausse" in shown and "Alix Testé" in shown
    assert "En attente de votre réponse" in shown
    assert f'href="/pro/dossier/{world.dossier}/documents/{doc_id}"' in shown
    assert f'href="/pro/dossier/{world.dossier}/add?replaces={doc_id}"' in shown
    assert browser.get(f"/pro/dossier/{world.dossier}/documents/{doc_id}").status_code == 200
    browser.cookies.clear()
    signed_in(browser, world.pros["gp"])  # reads the dossier, but is not the author
    page = browser.get("/pro/requests")
    assert str(tid) not in page.text and "fausse" not in page.text


def test_the_author_refuses_with_a_reason_and_an_empty_reason_changes_nothing(world: World, browser: Any) -> None:
    _, tid = rectification(world)
    signed_in(browser, world.pros["doctor"])
    page = browser.get("/pro/requests")
    empty = browser.post(f"/pro/requests/{tid}/refuse", data={"csrf": csrf_of(page.text), "reason": "   "})
    assert empty.status_code == 422 and "Indiquez pourquoi vous refusez la correction" in empty.text
    [t] = tasks_of(world)
    assert t.status == "requested" and t.answer is None
    r = browser.post(f"/pro/requests/{tid}/refuse", data={"csrf": csrf_of(page.text),
                                                          "reason": "La date est celle du compte rendu signé"})
    assert r.status_code == 303 and r.headers["location"] == "/pro/requests?done=answered"
    [t] = tasks_of(world)
    assert t.status == "rejected" and t.answer == "La date est celle du compte rendu signé"
    shown = card(browser.get(r.headers["location"]).text, tid)
    assert "Refusée" in shown and "La date est celle du compte rendu signé" in shown
    assert "/refuse" not in shown and "add?replaces=" not in shown
    again = browser.post(f"/pro/requests/{tid}/refuse", data={"csrf": csrf_of(page.text), "reason": "Encore"})
    assert again.status_code == 409 and "déjà reçu une réponse" in again.text


def test_another_professional_cannot_refuse_the_authors_correction(world: World, browser: Any) -> None:
    _, tid = rectification(world)
    signed_in(browser, world.pros["gp"])
    page = browser.get("/pro/requests")
    r = browser.post(f"/pro/requests/{tid}/refuse", data={"csrf": csrf_of(page.text), "reason": "Non"})
    assert r.status_code == 404
    assert tasks_of(world)[0].status == "requested"


def test_filing_a_corrected_version_through_the_add_form_completes_the_correction(world: World,
                                                                                   browser: Any) -> None:
    doc_id, tid = rectification(world)
    signed_in(browser, world.pros["doctor"])
    add = browser.get(f"/pro/dossier/{world.dossier}/add", params={"replaces": doc_id})
    assert f'name="replaces" value="{doc_id}"' in add.text
    r = browser.post(f"/pro/dossier/{world.dossier}/add", data={
        "csrf": csrf_of(add.text), "type": "11488-4", "title": "Compte rendu corrigé", "text": "Date corrigée",
        "replaces": doc_id})
    assert r.status_code == 303
    [t] = tasks_of(world)
    assert t.status == "completed" and t.result_id and str(t.result_id) != doc_id
    shown = card(browser.get("/pro/requests").text, tid)
    assert "Corrigé : une nouvelle version remplace le document" in shown
    assert f'href="/pro/dossier/{world.dossier}/documents/{t.result_id}"' in shown
    assert "/refuse" not in shown


def test_the_posts_require_the_csrf_token(world: World, browser: Any) -> None:
    _, tid = rectification(world)
    signed_in(browser, world.pros["stranger"])
    assert browser.post("/pro/request-access", data={"dossier": str(world.dossier)}).status_code == 403
    assert access_tasks(world) == []
    browser.cookies.clear()
    signed_in(browser, world.pros["doctor"])
    r = browser.post(f"/pro/requests/{tid}/refuse", data={"reason": "Sans jeton", "csrf": "forged"})
    assert r.status_code == 403
    assert tasks_of(world)[0].status == "requested"


def test_the_page_is_refused_in_emergency_mode(world: World, browser: Any) -> None:
    signed_in(browser, world.pros["stranger"])
    assert ask(browser, world).status_code == 303
    page = browser.get(f"/pro/emergency?next=/pro/dossier/{world.dossier}")
    r = browser.post("/pro/emergency", data={"csrf": csrf_of(page.text), "reason": "Patient inconscient",
                                             "next": f"/pro/dossier/{world.dossier}"})
    assert r.status_code == 303
    refused = browser.get("/pro/requests")
    assert refused.status_code == 403 and "mode normal" in refused.text
    assert 'href="/pro/requests"' not in refused.text
