"""Contacts and settings through the portal pages (issue 4 §2): emergency contacts, advance directives, notification
preferences, my account. Effects are checked through the services, the API and the tables."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import and_, select

from carnet.access.actors import Actor, ActorKind, Mode
from carnet.context import run
from carnet.db.tables import account_dossier, audit, outbox
from carnet.dossier import contacts
from carnet.dossier import service as dossiers
from carnet.errors import FhirError
from carnet.notify import outbox as notify_outbox
from tests.portal.conftest import Patient, csrf_of

PDF = b"%PDF-1.4\n% my directives\n%%EOF\n"


def csrf(patient: Patient) -> str:
    return csrf_of(patient.browser.get("/portal/settings").text)


def post(patient: Patient, url: str, data: dict[str, str] | None = None, **kw: object):  # type: ignore[no-untyped-def]
    return patient.browser.post(url, data={"csrf": csrf(patient), **(data or {})}, **kw)  # type: ignore[arg-type]


def gp(patient: Patient) -> Actor:
    return Actor(ActorKind.PROFESSIONAL, id=patient.world.pros["gp"], profession="10")


def audited(patient: Patient, event: str) -> list[str | None]:
    with patient.services.engine.connect() as conn:
        return list(conn.execute(select(audit.c.entity_id).where(
            audit.c.dossier_key == patient.world.dossier, audit.c.event == event, audit.c.outcome == "0")).scalars())


def test_the_settings_page_explains_itself_and_has_a_label_for_every_input(patient: Patient) -> None:
    page = patient.ready().browser.get("/portal/settings")
    assert page.status_code == 200
    assert 'class="lead"' in page.text and page.text.count("<h1>") == 1
    ids = set(re.findall(r'<(?:input|select|textarea)[^>]*\bid="([^"]+)"', page.text))
    labelled = set(re.findall(r'<label for="([^"]+)"', page.text))
    assert ids and ids <= labelled


def test_contacts_are_added_changed_and_removed_through_the_pages_and_the_medecin_traitant_sees_them(
        patient: Patient) -> None:
    patient.ready()
    r = post(patient, "/portal/settings/contacts", {"name": "Jeanne Voisin", "relationship": "voisine",
                                                    "phone": "06 11 22 33 44", "email": "", "note": "a les clés"})
    assert r.status_code == 303 and r.headers["location"].startswith("/portal/settings?done=contact-added")
    assert "Jeanne Voisin" in patient.browser.get("/portal/settings").text
    world = patient.world
    [c] = run(patient.services, gp(patient), lambda ctx: contacts.list_contacts(ctx, world.dossier))
    assert (c.name, c.phone, c.note) == ("Jeanne Voisin", "06 11 22 33 44", "a les clés")

    edit = patient.browser.get(f"/portal/settings/contacts/{c.contact_id}")
    assert edit.status_code == 200 and 'value="Jeanne Voisin"' in edit.text
    r = patient.browser.post(f"/portal/settings/contacts/{c.contact_id}", data={
        "csrf": csrf_of(edit.text), "name": "Jeanne Voisin", "phone": "", "email": "jeanne@example.org"})
    assert r.status_code == 303
    [c2] = run(patient.services, gp(patient), lambda ctx: contacts.list_contacts(ctx, world.dossier))
    assert (c2.phone, c2.email) == (None, "jeanne@example.org")

    r = post(patient, f"/portal/settings/contacts/{c.contact_id}/remove")
    assert r.status_code == 303
    assert run(patient.services, gp(patient), lambda ctx: contacts.list_contacts(ctx, world.dossier)) == []
    for event in ("contact.add", "contact.update", "contact.remove"):
        assert audited(patient, event) == [str(c.contact_id)]
    assert audited(patient, "contact.read")


def test_a_contact_without_a_phone_or_email_is_refused_with_a_message_and_nothing_is_saved(patient: Patient) -> None:
    patient.ready()
    r = post(patient, "/portal/settings/contacts", {"name": "Sans Numéro", "phone": "", "email": ""})
    assert r.status_code == 400 and 'role="alert"' in r.text
    assert 'value="Sans Numéro"' in r.text  # what was typed is kept
    world = patient.world
    assert run(patient.services, gp(patient), lambda ctx: contacts.list_contacts(ctx, world.dossier)) == []


def test_a_stranger_does_not_read_the_contacts(patient: Patient) -> None:
    patient.ready()
    post(patient, "/portal/settings/contacts", {"name": "Jeanne Voisin", "phone": "0611223344"})
    world = patient.world
    stranger = Actor(ActorKind.PROFESSIONAL, id=world.pros["stranger"], profession="10")
    with pytest.raises(FhirError) as err:
        run(patient.services, stranger, lambda ctx: contacts.list_contacts(ctx, world.dossier))
    assert err.value.status == 403


def test_an_uploaded_directive_is_an_exppat_3_class_90_document_the_professionals_find(patient: Patient) -> None:
    patient.ready()
    r = patient.browser.post("/portal/settings/directives",
                             data={"csrf": csrf(patient), "title": "Mes directives anticipées"},
                             files={"file": ("directives.pdf", PDF, "application/octet-stream")})
    assert r.status_code == 303, r.text
    world = patient.world
    found = world.client.get("/fhir/DocumentReference", params={"patient": str(world.dossier),
                                                                "type": f"{contacts.TRE_A05}|EXPPAT_3"},
                             headers=world.headers("gp"))
    assert found.status_code == 200
    [entry] = found.json()["entry"]
    res = entry["resource"]
    assert {c["code"] for cat in res["category"] for c in cat["coding"]} == {"90"}
    assert res["content"][0]["attachment"]["title"] == "Mes directives anticipées"
    raw = world.client.get(f"/fhir/Binary/{res['id']}", headers={**world.headers("doctor"), "Accept": "*/*"})
    assert raw.content == PDF
    assert "Mes directives anticipées" in patient.browser.get("/portal/settings").text


def test_typed_directives_replace_the_previous_ones(patient: Patient) -> None:
    patient.ready()
    patient.browser.post("/portal/settings/directives", data={"csrf": csrf(patient), "title": "Version 1"},
                         files={"file": ("d.pdf", PDF, "application/pdf")})
    world = patient.world
    [old] = run(patient.services, gp(patient), lambda ctx: contacts.list_directives(ctx, world.dossier))
    r = post(patient, "/portal/settings/directives", {"title": "Version 2", "text": "Pas de réanimation.",
                                                      "replaces": old.document_id})
    assert r.status_code == 303
    [new] = run(patient.services, gp(patient), lambda ctx: contacts.list_directives(ctx, world.dossier))
    assert new.title == "Version 2" and new.content_type == "text/plain" and new.document_id != old.document_id


def test_a_file_that_is_not_a_pdf_or_an_image_is_refused_and_nothing_is_saved(patient: Patient) -> None:
    patient.ready()
    r = patient.browser.post("/portal/settings/directives", data={"csrf": csrf(patient), "title": "x"},
                             files={"file": ("setup.pdf", b"MZ\x90\x00 not a pdf", "application/pdf")})
    assert r.status_code == 400 and 'role="alert"' in r.text
    world = patient.world
    assert run(patient.services, gp(patient), lambda ctx: contacts.list_directives(ctx, world.dossier)) == []


def _notify(patient: Patient) -> dict[str, list[str]]:
    with patient.services.engine.connect() as conn:
        return dict(conn.execute(select(account_dossier.c.notify).where(and_(
            account_dossier.c.account_id == patient.account_id,
            account_dossier.c.dossier_key == patient.world.dossier))).scalar_one())


def test_notification_choices_are_saved_for_this_dossier_and_always_sent_events_cannot_be_turned_off(
        patient: Patient) -> None:
    patient.ready()
    groups = [g for g, _ in notify_outbox.EVENT_GROUPS]
    page = patient.browser.get("/portal/settings").text
    assert f'name="notify.{groups[0]}" value="email"' in page and "notify.access.emergency" not in page
    r = patient.browser.post("/portal/settings/notifications", data={
        "csrf": csrf_of(page), "notify.dossier": "email", "notify.access.emergency": "email",
        "notify.access.request": "sms"})
    assert r.status_code == 303
    saved = _notify(patient)
    assert saved == {g: (["email"] if g == "dossier" else []) for g in groups}
    world = patient.world
    with patient.services.engine.connect() as conn:
        before = len(conn.execute(select(outbox.c.message_id).where(outbox.c.account_id == patient.account_id)).all())
    # a new document (group "documents", now off) is not sent; a break-the-glass access (always sent) is
    r = world.client.post("/fhir/DocumentReference", headers=world.headers("gp"), json={
        "resourceType": "DocumentReference", "status": "current",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "type": {"coding": [{"system": "http://loinc.org", "code": "11488-4"}]},
        "subject": {"reference": f"Patient/{world.dossier}"},
        "content": [{"attachment": {"contentType": "application/pdf", "data": "JVBERi0xLjQK"}}]})
    assert r.status_code == 201, r.text
    glass = Actor(ActorKind.PROFESSIONAL, id=world.pros["stranger"], profession="10", mode=Mode.EMERGENCY,
                  reason="Unconscious on arrival")
    run(patient.services, glass, lambda ctx: dossiers.read(ctx, world.dossier))
    with patient.services.engine.connect() as conn:
        sent = [r.event for r in conn.execute(select(outbox.c.event).where(  # in the order they were written
            outbox.c.account_id == patient.account_id).order_by(outbox.c.message_id))]
    assert "document.new" not in sent[before:] and "access.emergency" in sent[before:]


def test_the_password_change_needs_the_current_password_then_the_new_one_signs_in(patient: Patient) -> None:
    patient.ready()
    new = "une phrase toute neuve 2024"
    wrong = post(patient, "/portal/settings/password", {"current": "not my password", "new": new, "new2": new})
    assert wrong.status_code == 400 and 'role="alert"' in wrong.text
    mismatch = post(patient, "/portal/settings/password", {"current": patient.password, "new": new, "new2": new + "x"})
    assert mismatch.status_code == 400
    ok = post(patient, "/portal/settings/password", {"current": patient.password, "new": new, "new2": new})
    assert ok.status_code == 303
    assert patient.account_row().password_hash.startswith("$argon2id$")
    post(patient, "/portal/sign-out")
    assert patient.sign_in().status_code == 400  # the old password no longer works
    assert patient.sign_in(password=new).status_code == 303


def test_a_password_change_signs_out_the_other_sessions(patient: Patient, app) -> None:  # type: ignore[no-untyped-def]
    from starlette.testclient import TestClient

    from tests.portal.conftest import PORTAL_BASE

    patient.ready()
    with TestClient(app, base_url=PORTAL_BASE, follow_redirects=False) as other_browser:
        other = Patient(patient.world, other_browser)
        other.email = patient.email
        assert other.sign_in().status_code == 303
        assert other_browser.get("/portal/settings").status_code == 200
        new = "une phrase toute neuve 2024"
        assert post(patient, "/portal/settings/password",
                    {"current": patient.password, "new": new, "new2": new}).status_code == 303
        assert other_browser.get("/portal/settings").status_code == 303  # back to sign-in
        assert patient.browser.get("/portal/settings").status_code == 200


def test_contact_details_change_only_with_the_current_password(patient: Patient) -> None:
    patient.ready()
    data = {"email": "nouvelle@example.org", "phone": "+33 6 00 00 00 01", "otp_channel": "sms"}
    assert post(patient, "/portal/settings/account", {**data, "current": "wrong password"}).status_code == 400
    assert patient.account_row().email == patient.email
    assert post(patient, "/portal/settings/account", {**data, "current": patient.password}).status_code == 303
    row = patient.account_row()
    assert (row.email, row.phone, row.otp_channel) == ("nouvelle@example.org", "+33600000001", "sms")


def test_the_language_is_saved_on_the_account(patient: Patient) -> None:
    patient.ready()
    r = post(patient, "/portal/settings/language", {"lang": "en"})
    assert r.status_code == 303 and patient.account_row().lang == "en"
    assert "Contacts and settings" in patient.browser.get("/portal/settings").text


def test_sign_out_everywhere_is_offered_as_a_form_to_the_sign_out_page(patient: Patient) -> None:
    page = patient.ready().browser.get("/portal/settings").text
    assert re.search(r'action="/portal/sign-out">\s*<input type="hidden" name="csrf"[^>]*>\s*'
                     r'<input type="hidden" name="everywhere" value="1">', page)


def test_every_post_without_csrf_is_refused(patient: Patient) -> None:
    patient.ready()
    cid = uuid.uuid4()
    for url in ("/portal/settings/contacts", f"/portal/settings/contacts/{cid}",
                f"/portal/settings/contacts/{cid}/remove", "/portal/settings/directives",
                "/portal/settings/notifications", "/portal/settings/account", "/portal/settings/password",
                "/portal/settings/language"):
        r = patient.browser.post(url, data={"name": "x", "phone": "0600000000", "current": patient.password})
        assert r.status_code == 403, url
    world = patient.world
    assert run(patient.services, gp(patient), lambda ctx: contacts.list_contacts(ctx, world.dossier)) == []
