"""My dossier through the portal pages (issue 4 §2, "The dossier itself"): state, complete copy, close, reopen,
object. Effects are checked through the API and the tables."""

from __future__ import annotations

import base64
import hashlib
import io
import uuid
import zipfile

from sqlalchemy import select

from carnet.db.tables import audit, creation_objection, dossier
from tests.portal.conftest import Patient, csrf_of

PDF = b"%PDF-1.4\n% a report\n%%EOF\n"


def publish(patient: Patient, data: bytes, ctype: str = "application/pdf") -> str:
    world = patient.world
    r = world.client.post("/fhir/DocumentReference", headers=world.headers("gp"), json={
        "resourceType": "DocumentReference", "status": "current",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "type": {"coding": [{"system": "http://loinc.org", "code": "11488-4"}]},
        "subject": {"reference": f"Patient/{world.dossier}"},
        "content": [{"attachment": {"contentType": ctype, "data": base64.b64encode(data).decode(),
                                    "title": "Compte rendu"}}]})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def status(patient: Patient) -> str:
    with patient.services.engine.connect() as conn:
        return str(conn.execute(select(dossier.c.status).where(
            dossier.c.dossier_key == patient.world.dossier)).scalar_one())


def gp_reads(patient: Patient) -> int:
    world = patient.world
    return world.client.get(f"/fhir/Patient/{world.dossier}", headers=world.headers("gp")).status_code


def confirm(patient: Patient, what: str):  # type: ignore[no-untyped-def]
    page = patient.browser.get(f"/portal/dossier/{what}")
    assert page.status_code == 200
    return patient.browser.post(f"/portal/dossier/{what}", data={"csrf": csrf_of(page.text), "confirm": "yes"})


def test_the_page_shows_the_dossier_open_and_how_it_was_created(patient: Patient) -> None:
    patient.ready()
    patient.browser.cookies.set("carnet_lang", "en")
    page = patient.browser.get("/portal/dossier")
    assert page.status_code == 200 and 'class="lead"' in page.text
    assert "open" in page.text and "by a health professional, with your consent" in page.text
    assert 'href="/portal/dossier/copy"' in page.text and 'href="/portal/dossier/close"' in page.text


def test_close_then_reopen_through_the_pages_changes_the_status_and_the_professionals_access(
        patient: Patient) -> None:
    patient.ready()
    assert gp_reads(patient) == 200
    page = patient.browser.get("/portal/dossier/close")
    assert "10" in page.text  # the retention period is explained
    unconfirmed = patient.browser.post("/portal/dossier/close", data={"csrf": csrf_of(page.text)})
    assert unconfirmed.status_code == 303 and status(patient) == "active"
    r = confirm(patient, "close")
    assert r.status_code == 303 and r.headers["location"] == "/portal/dossier?done=closed"
    assert status(patient) == "closed"
    assert gp_reads(patient) in (403, 404)  # refused (a closed dossier answers as absent to professionals)
    settings = patient.browser.get("/portal/settings")  # contacts and directives: readable, not changeable
    assert settings.status_code == 200 and 'action="/portal/settings/contacts"' not in settings.text
    page = patient.browser.get(r.headers["location"])
    assert 'role="status"' in page.text and 'action="/portal/dossier/reopen"' in page.text
    r = patient.browser.post("/portal/dossier/reopen", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 303 and status(patient) == "active"
    assert gp_reads(patient) == 200


def test_objecting_records_the_objection_and_closes_and_reopening_withdraws_it(patient: Patient) -> None:
    patient.ready()
    r = confirm(patient, "object")
    assert r.status_code == 303 and r.headers["location"] == "/portal/dossier?done=objected"
    assert status(patient) == "closed"
    with patient.services.engine.connect() as conn:
        assert conn.execute(select(creation_objection).where(
            creation_objection.c.ins == patient.world.ins)).first() is not None
        events = list(conn.execute(select(audit.c.event).where(
            audit.c.dossier_key == patient.world.dossier, audit.c.outcome == "0")).scalars())
    assert "dossier.objection" in events and "dossier.close" in events
    page = patient.browser.get("/portal/dossier")
    r = patient.browser.post("/portal/dossier/reopen", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 303 and status(patient) == "active"
    with patient.services.engine.connect() as conn:
        assert conn.execute(select(creation_objection).where(
            creation_objection.c.ins == patient.world.ins)).first() is None


def test_the_copy_downloads_as_a_zip_with_every_visible_document(patient: Patient) -> None:
    patient.ready()
    contents = [PDF, b"%PDF-1.4\n% a second report\n%%EOF\n"]
    for data in contents:
        publish(patient, data)
    r = patient.browser.get("/portal/dossier/copy")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"].startswith("attachment;")
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        docs = [n for n in z.namelist() if n.startswith("documents/")]
        hashes = {hashlib.sha256(z.read(n)).hexdigest() for n in docs}
    assert hashes == {hashlib.sha256(c).hexdigest() for c in contents}


def test_the_copy_is_still_given_once_the_dossier_is_closed(patient: Patient) -> None:
    patient.ready()
    publish(patient, PDF)
    confirm(patient, "close")
    r = patient.browser.get("/portal/dossier/copy")
    assert r.status_code == 200
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        assert len([n for n in z.namelist() if n.startswith("documents/")]) == 1


def test_every_post_without_csrf_is_refused(patient: Patient) -> None:
    patient.ready()
    for url in ("/portal/dossier/close", "/portal/dossier/reopen", "/portal/dossier/object"):
        assert patient.browser.post(url, data={"confirm": "yes"}).status_code == 403, url
    assert status(patient) == "active"
