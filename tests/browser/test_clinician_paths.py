"""The clinician's main paths in a real browser (issue 3 §1, §6): sign in through the demo identity provider, find a
patient by INS, record the patient's consent, read the emergency summary, add a document, break the glass and see
the patient notified by email."""

from __future__ import annotations

import email.header
import hashlib
import re
from email.message import Message
from typing import Any

from sqlalchemy import update

from carnet.access.actors import Actor, ActorKind
from carnet.context import Services, run
from carnet.db.tables import practitioner
from carnet.dossier import service as dossiers
from carnet.notify import worker
from carnet.notify.outbox import render
from carnet.portal import i18n
from tests.browser.conftest import Mailbox
from tests.browser.test_patient_paths import Person
from tests.clinical import samples
from tests.conftest import World

FR = i18n.language("fr").gettext
# A small synthetic PDF: what the portal recognises by its first bytes.
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def new_professional(world: World) -> tuple[str, str]:
    """A doctor with no rights on any dossier yet, named to come first on the demo identity provider's page (it
    lists the enabled professionals by family name); returns the national id and the name on its button."""
    nid = world.add_pro("10")
    family = f"Aabert{world.n}"
    with world.services.engine.begin() as conn:
        conn.execute(update(practitioner).where(practitioner.c.national_id == nid).values(family=family))
    return nid, f"Test {family}"


def sign_in(page: Any, base: str, button: str, target: str = "/pro/") -> None:
    """Through the real pages: the portal's sign-in, the demo identity provider's page, the callback."""
    page.goto(base + target)
    assert "/pro/sign-in" in page.url
    page.get_by_role("link", name=FR("Sign in with the demo identity provider")).click()
    page.wait_for_url("**/demo-idp/authorize**")
    assert page.get_by_role("alert").first.is_visible()  # the "no password — demo" banner
    page.get_by_label(FR("Find a professional")).fill(button.split()[-1])  # the family name
    page.get_by_role("button", name=FR("Search"), exact=True).click()
    page.wait_for_load_state()
    page.get_by_role("button", name=button, exact=True).click()
    page.wait_for_url(f"{base}/pro/")
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["carnet_pro"]["httpOnly"] and cookies["carnet_pro"]["sameSite"] == "Lax"


def find(page: Any, base: str, ins: str) -> Any:
    page.goto(base + "/pro/")
    page.get_by_label(FR("Kind of INS")).select_option("test")
    page.get_by_label(FR("INS (15 digits)")).fill(ins)
    page.get_by_role("button", name=FR("Find"), exact=True).click()
    page.wait_for_load_state()
    return page.locator("#result")


def grant(world: World, nid: str) -> None:
    patient = Actor(ActorKind.PATIENT, id=world.ins)
    run(world.services, patient, lambda ctx: dossiers.change_access(ctx, world.dossier, "practitioner", nid,
                                                                     "authorized"))


def test_a_professional_signs_in_finds_a_patient_records_the_consent_and_reads_the_emergency_summary(
        page: Any, live: tuple[str, Services], world: World) -> None:
    base, _ = live
    samples.grant_clinical_scopes(world)
    for body in (samples.allergy(world.dossier), samples.blood_group(world.dossier)):
        r = world.client.post(f"/fhir/{body['resourceType']}", json=body, headers=world.headers("doctor"))
        assert r.status_code == 201, r.text
    _, button = new_professional(world)
    sign_in(page, base, button)
    result = find(page, base, world.ins)
    assert FR("You may not read this dossier yet.") in result.inner_text()
    assert "Testé" not in result.inner_text()  # no traits before the rules allow reading
    page.get_by_label(FR("The patient consents to my access to their dossier.")).check()
    page.get_by_role("button", name=FR("Record the consent")).click()
    page.wait_for_url(f"**/pro/dossier/{world.dossier}")
    assert "Testé" in page.locator("#patient").inner_text()
    summary = page.locator("#summary")
    assert summary.get_by_role("heading", name=FR("Emergency summary")).is_visible()
    text = summary.inner_text()
    assert "Penicillin" in text and "O Rh+" in text
    first = page.locator("main section").first
    assert first.get_attribute("id") == "summary"  # the dossier opens on the summary
    result = find(page, base, world.ins)  # the traits now show, to compare with an identity document
    assert "Testé" in result.inner_text() and "75056" in result.inner_text()


def test_a_professional_adds_a_document_with_a_file_and_the_api_serves_the_same_bytes(
        page: Any, live: tuple[str, Services], world: World) -> None:
    base, _ = live
    nid, button = new_professional(world)
    grant(world, nid)
    sign_in(page, base, button, target=f"/pro/dossier/{world.dossier}")
    page.goto(f"{base}/pro/dossier/{world.dossier}")
    page.get_by_role("link", name=FR("Add a document")).click()
    page.wait_for_url(f"**/pro/dossier/{world.dossier}/add")
    title = f"Compte rendu navigateur {world.n}"
    page.get_by_label(FR("Type"), exact=True).select_option("11488-4")
    page.get_by_label(FR("Title")).fill(title)
    page.get_by_label(FR("File (PDF, JPEG, PNG or text)")).set_input_files(
        {"name": "compte-rendu.pdf", "mimeType": "application/pdf", "buffer": PDF})
    page.get_by_role("button", name=FR("Add the document")).click()
    page.wait_for_url(f"**/pro/dossier/{world.dossier}?done=added")
    assert FR("The document is added.") in page.get_by_role("status").inner_text()
    assert page.locator("#documents").get_by_role("link", name=title).is_visible()
    bundle = world.client.get(f"/fhir/DocumentReference?patient={world.dossier}", headers=world.headers("gp"))
    assert bundle.status_code == 200
    found = [e["resource"] for e in bundle.json().get("entry", [])
             if e["resource"]["resourceType"] == "DocumentReference"
             and e["resource"]["content"][0]["attachment"].get("title") == title]
    assert len(found) == 1
    ref = found[0]
    assert ref["type"]["coding"][0]["code"] == "11488-4"
    assert any(a.get("reference", "").endswith(nid) for a in ref["author"])
    attachment = ref["content"][0]["attachment"]
    assert attachment["contentType"] == "application/pdf"
    url = attachment["url"]
    served = world.client.get(url[url.index("/fhir/"):] if "/fhir/" in url else f"/fhir/{url}",
                              headers={"Authorization": world.headers("gp")["Authorization"]})
    assert served.status_code == 200
    assert hashlib.sha256(served.content).hexdigest() == hashlib.sha256(PDF).hexdigest()


def subject_of(msg: Message) -> str:
    return str(email.header.make_header(email.header.decode_header(msg["Subject"] or "")))


def body_of(msg: Message) -> str:
    body = msg.get_payload(decode=True)
    assert isinstance(body, bytes)
    return body.decode()


def test_breaking_the_glass_shows_on_every_page_and_the_patient_is_notified_by_email(
        page: Any, live: tuple[str, Services], world: World, services: Services, mailbox: Mailbox) -> None:
    base, live_services = live
    other = World(services, world.client)  # a dossier where this professional has no rights at all
    address = Person(other, live_services).email  # the patient activates their account with an email
    _, button = new_professional(world)
    reason = f"Patient inconscient aux urgences {world.n}"
    sign_in(page, base, button)
    result = find(page, base, other.ins)
    assert "Testé" not in result.inner_text()
    result.get_by_role("link", name=FR("Emergency: break the glass")).click()
    page.wait_for_url("**/pro/emergency**")
    assert page.locator("#mode-banner").count() == 0
    page.get_by_label(FR("Reason (required)")).fill(reason)
    page.get_by_role("button", name=FR("Break the glass")).click()
    page.wait_for_url(f"**/pro/dossier/{other.dossier}")
    assert "Testé" in page.locator("#patient").inner_text()
    visited = [page.url]
    for path in (f"/pro/dossier/{other.dossier}/add", "/pro/", f"/pro/?system=test&ins={other.ins}",
                 f"/pro/dossier/{other.dossier}"):
        page.goto(base + path)
        visited.append(page.url)
        banner = page.locator("#mode-banner")
        assert banner.get_attribute("role") == "alert", path
        assert FR("Emergency access") in banner.inner_text() and reason in banner.inner_text(), path
        assert page.get_by_role("link", name=FR("Break the glass")).count() == 0, path  # already in the mode
    assert len(visited) == 5

    def emergency_mail() -> list[Message]:
        subjects = {render("access_emergency", lang, {}, live_services.settings).subject for lang in ("fr", "en")}
        with mailbox.lock:
            return [m for m in mailbox.messages if m["To"] == address and subject_of(m) in subjects]

    assert emergency_mail() == []  # nothing is sent before the notification worker runs
    report = worker.run_once(live_services)
    assert report.sent >= 1
    (mail,) = emergency_mail()
    text = body_of(mail)
    assert "/portal/" in text
    assert reason not in text and "Testé" not in text  # no health content or identity in the message


def test_a_page_asked_for_before_signing_in_leads_to_the_sign_in_in_french(
        page: Any, live: tuple[str, Services]) -> None:
    base, _ = live
    page.goto(base + "/pro/dossier/00000000-0000-0000-0000-000000000000")
    assert re.search(r"/pro/sign-in\?next=", page.url)
    assert page.locator("html").get_attribute("lang") == "fr"
    assert page.get_by_role("link", name=FR("Sign in with the demo identity provider")).is_visible()
