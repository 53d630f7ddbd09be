"""The Documents screens (issue 4 §2): by class, filters, preview and download, hide / show again, delete, the
patient's own documents and notes; each checked through the pages and through the API or the tables."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from carnet.db.tables import audit, document
from carnet.documents import codes
from carnet.portal import i18n
from carnet.portal.pages.documents import CLASS_LABELS, cda_html
from tests.conftest import World
from tests.portal.conftest import Patient, csrf_of

PDF = b"%PDF-1.4\n% portal test\n%%EOF\n"


def docref(world: World, loinc: str, title: str, data: bytes = PDF, ctype: str = "application/pdf",
           labels: list[str] | None = None, system: str = "http://loinc.org") -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "DocumentReference", "status": "current",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "type": {"coding": [{"system": system, "code": loinc}]},
        "subject": {"reference": f"Patient/{world.dossier}"},
        "content": [{"attachment": {"contentType": ctype, "data": base64.b64encode(data).decode(), "title": title}}]}
    if labels:
        res["securityLabel"] = [{"coding": [{"system": codes.TRE_A07, "code": c}]} for c in labels]
    return res


def publish(world: World, role: str = "gp", loinc: str = "11488-4", title: str = "Compte rendu", **kw: Any) -> str:
    r = world.client.post("/fhir/DocumentReference", json=docref(world, loinc, title, **kw),
                          headers=world.headers(role))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def search_ids(world: World, role: str) -> set[str]:
    r = world.client.get("/fhir/DocumentReference", params={"patient": str(world.dossier)},
                         headers=world.headers(role))
    assert r.status_code == 200, r.text
    return {e["resource"]["id"] for e in r.json().get("entry", [])}


def english(patient: Patient) -> None:
    page = patient.browser.get("/portal/documents")
    r = patient.browser.post("/portal/language", data={"csrf": csrf_of(page.text), "lang": "en",
                                                       "next": "/portal/documents"})
    assert r.status_code == 303


def post(patient: Patient, path: str, **data: Any) -> Any:
    page = patient.browser.get("/portal/documents")
    return patient.browser.post(path, data={"csrf": csrf_of(page.text), **data})


def events(world: World, entity_id: str) -> list[tuple[str, str, str]]:
    with world.services.engine.connect() as conn:
        return [(r.event, r.actor_kind, r.outcome) for r in conn.execute(
            select(audit.c.event, audit.c.actor_kind, audit.c.outcome).where(
                audit.c.dossier_key == world.dossier, audit.c.entity_id == entity_id).order_by(audit.c.seq))]


def test_the_list_groups_documents_by_class_with_the_domain_labels(patient: Patient) -> None:
    world = patient.world
    publish(world, loinc="57833-6", title="Ordonnance antibiotique", role="doctor")
    publish(world, loinc="60591-5", title="Synthèse du médecin traitant")
    publish(world, loinc="11488-4", title="Consultation de cardiologie")
    page = patient.ready().browser.get("/portal/documents")
    assert page.status_code == 200
    html = page.text
    headings = re.findall(r'<h2 id="class-(\d+)">([^<]+)</h2>', html)
    assert [c for c, _ in headings] == ["10", "11", "42"]
    assert [label for _, label in headings] == [codes.CLASSES["10"], codes.CLASSES["11"], codes.CLASSES["42"]]
    assert html.index("Consultation de cardiologie") < html.index("Synthèse du médecin traitant") < \
        html.index("Ordonnance antibiotique")


def test_the_filters_by_class_type_author_and_date_narrow_the_list(patient: Patient) -> None:
    world = patient.world
    publish(world, loinc="57833-6", title="Ordonnance antibiotique", role="doctor")
    publish(world, loinc="60591-5", title="Synthèse du médecin traitant")
    publish(world, loinc="11488-4", title="Consultation de cardiologie")
    b = patient.ready().browser
    titles = ("Ordonnance antibiotique", "Synthèse du médecin traitant", "Consultation de cardiologie")

    def shown(**params: str) -> set[str]:
        r = b.get("/portal/documents", params=params)
        assert r.status_code == 200
        return {t for t in titles if t in r.text}

    assert shown() == set(titles)
    assert shown(**{"class": "42"}) == {"Ordonnance antibiotique"}
    assert shown(type="60591-5") == {"Synthèse du médecin traitant"}
    assert shown(author=world.pros["doctor"]) == {"Ordonnance antibiotique"}
    today = dt.datetime.now(dt.UTC).date()
    assert shown(**{"from": (today + dt.timedelta(days=2)).isoformat()}) == set()
    assert shown(to=(today - dt.timedelta(days=2)).isoformat()) == set()
    assert shown(**{"from": (today - dt.timedelta(days=2)).isoformat()}) == set(titles)
    bad = b.get("/portal/documents", params={"from": "31/02/2025"})
    assert bad.status_code == 200 and 'role="alert"' in bad.text


def test_an_htmx_request_gets_only_the_list(patient: Patient) -> None:
    publish(patient.world, loinc="57833-6", title="Ordonnance antibiotique")
    b = patient.ready().browser
    r = b.get("/portal/documents", params={"class": "42"},
              headers={"HX-Request": "true", "HX-Target": "document-list"})
    assert r.status_code == 200
    assert r.text.lstrip().startswith('<div id="document-list">') and "<html" not in r.text
    assert "Ordonnance antibiotique" in r.text


def test_the_list_pages_through_many_documents(patient: Patient) -> None:
    for i in range(22):
        publish(patient.world, title=f"Rapport numéro {i:02d}", ctype="text/plain", data=b"x")
    b = patient.ready().browser
    first = b.get("/portal/documents")
    second = b.get("/portal/documents", params={"page": "2"})
    on_first = set(re.findall(r"Rapport numéro (\d\d)", first.text))
    on_second = set(re.findall(r"Rapport numéro (\d\d)", second.text))
    assert len(on_first) == 20 and len(on_second) == 2 and not on_first & on_second
    assert 'href="/portal/documents?page=2"' in first.text


def test_an_invisible_patient_document_is_not_listed_nor_opened(patient: Patient) -> None:
    world = patient.world
    hidden = publish(world, title="Résultat à annoncer", labels=["INVISIBLE_PATIENT"])
    b = patient.ready().browser
    assert "Résultat à annoncer" not in b.get("/portal/documents").text
    assert b.get(f"/portal/documents/{hidden}").status_code == 404
    assert b.get(f"/portal/documents/{hidden}/file").status_code == 404
    assert "Résultat à annoncer" not in b.get("/portal/").text


def test_hiding_a_document_hides_it_from_an_authorized_nurse_not_from_the_treating_gp_and_show_restores_it(
        patient: Patient) -> None:
    world = patient.world
    doc = publish(world, role="doctor", title="Compte rendu de consultation")
    assert doc in search_ids(world, "nurse")
    patient.ready()
    r = post(patient, f"/portal/documents/{doc}/hide")
    assert r.status_code == 303 and r.headers["location"] == f"/portal/documents/{doc}?done=hidden"
    assert doc not in search_ids(world, "nurse")
    assert doc in search_ids(world, "gp") and doc in search_ids(world, "doctor")  # médecin traitant, author
    page = patient.browser.get(f"/portal/documents/{doc}?done=hidden")
    assert i18n.language("fr").gettext("Hidden from professionals") in page.text
    assert f'action="/portal/documents/{doc}/show"' in page.text
    r = post(patient, f"/portal/documents/{doc}/show")
    assert r.status_code == 303 and r.headers["location"] == f"/portal/documents/{doc}?done=shown"
    assert doc in search_ids(world, "nurse")
    read = world.client.get(f"/fhir/DocumentReference/{doc}", headers=world.headers("nurse")).json()
    assert all(c.get("code") != "MASQUE_PS" for s in read.get("securityLabel", []) for c in s["coding"])
    assert ("document.update", "patient", "0") in events(world, doc)


def test_deleting_a_document_needs_the_confirmation_removes_it_for_everyone_and_the_history_keeps_it(
        patient: Patient) -> None:
    world = patient.world
    doc = publish(world, title="Document à supprimer")
    patient.ready()
    unconfirmed = post(patient, f"/portal/documents/{doc}/delete")
    assert unconfirmed.status_code == 303 and doc in search_ids(world, "gp")
    r = post(patient, f"/portal/documents/{doc}/delete", confirm="yes")
    assert r.status_code == 303 and r.headers["location"] == "/portal/documents?done=deleted"
    assert doc not in search_ids(world, "gp")
    assert world.client.get(f"/fhir/Binary/{doc}", headers=world.headers("gp")).status_code == 404
    assert patient.browser.get(f"/portal/documents/{doc}").status_code == 404
    assert "Document à supprimer" not in patient.browser.get("/portal/documents").text
    assert ("document.delete", "patient", "0") in events(world, doc)


def test_the_preview_and_the_download_return_the_exact_bytes_and_are_audited(patient: Patient) -> None:
    world = patient.world
    doc = publish(world, title="Compte rendu PDF")
    b = patient.ready().browser
    page = b.get(f"/portal/documents/{doc}")
    assert f'<iframe class="preview" src="/portal/documents/{doc}/file"' in page.text
    inline = b.get(f"/portal/documents/{doc}/file")
    assert inline.status_code == 200 and inline.headers["content-type"] == "application/pdf"
    assert hashlib.sha256(inline.content).hexdigest() == hashlib.sha256(PDF).hexdigest()
    assert inline.headers["content-disposition"].startswith("inline")
    download = b.get(f"/portal/documents/{doc}/file", params={"download": "1"})
    assert download.content == PDF and download.headers["content-disposition"].startswith("attachment")
    assert events(world, doc).count(("ITI-68", "patient", "0")) == 2


def test_a_text_document_is_shown_in_the_page(patient: Patient) -> None:
    doc = publish(patient.world, title="Note texte", ctype="text/plain", data=b"Tension 12/8 <b>ok</b>")
    page = patient.ready().browser.get(f"/portal/documents/{doc}")
    assert "Tension 12/8 &lt;b&gt;ok&lt;/b&gt;" in page.text


CDA = b"""<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3">
  <title>Lettre de liaison</title>
  <component><structuredBody>
    <component><section>
      <title>Allergies</title>
      <text><paragraph>P\xc3\xa9nicilline &amp; pollen &lt;script&gt;alert(1)&lt;/script&gt;</paragraph>
        <list><item>Urticaire</item></list><script>alert(2)</script>
        <table><tr><th>Produit</th><td onclick="x()">Amoxicilline</td></tr></table></text>
      <component><section><title>D\xc3\xa9tail</title><text>Sous-section</text></section></component>
    </section></component>
  </structuredBody></component>
</ClinicalDocument>
"""


def test_a_cda_document_renders_readable_and_what_its_narrative_holds_is_escaped(patient: Patient) -> None:
    doc = publish(patient.world, title="Lettre CDA", ctype="text/xml", data=CDA)
    page = patient.ready().browser.get(f"/portal/documents/{doc}").text
    assert "<h3>Lettre de liaison</h3>" in page and "<h4>Allergies</h4>" in page and "<h5>Détail</h5>" in page
    assert "<p>Pénicilline &amp; pollen &lt;script&gt;alert(1)&lt;/script&gt;</p>" in page
    assert "<ul><li>Urticaire</li></ul>" in page and "<td>Amoxicilline</td>" in page
    assert "<script>alert" not in page and "onclick" not in page and "root:" not in page
    file = patient.browser.get(f"/portal/documents/{doc}/file")
    assert file.content == CDA and file.headers["content-disposition"].startswith("attachment")


def test_what_is_not_a_cda_document_is_not_rendered_as_one() -> None:
    assert cda_html(b"not xml at all") is None
    assert cda_html(b"<html><body>x</body></html>") is None


def test_a_patient_adds_a_pdf_and_a_note_that_a_professional_then_reads_in_class_90(patient: Patient) -> None:
    world = patient.world
    b = patient.ready().browser
    english(patient)
    form = b.get("/portal/documents/new")
    assert form.status_code == 200 and 'enctype="multipart/form-data"' in form.text
    csrf = csrf_of(form.text)
    r = b.post("/portal/documents/new", data={"csrf": csrf, "kind": "file", "title": "Mon scanner",
                                              "type": "DOCPAT04"},
               files={"file": ("scanner.pdf", PDF, "application/pdf")})
    assert r.status_code == 303, r.text
    pdf_id = r.headers["location"].split("/portal/documents/")[1].split("?")[0]
    note = "Je suis allergique aux arachides.\nÀ savoir en urgence."
    r = b.post("/portal/documents/new", data={"csrf": csrf, "kind": "note", "title": "Ma note",
                                              "type": "DOCPAT01", "note": note})
    assert r.status_code == 303, r.text
    note_id = r.headers["location"].split("/portal/documents/")[1].split("?")[0]
    assert {pdf_id, note_id} <= search_ids(world, "doctor")
    got = world.client.get(f"/fhir/Binary/{note_id}", headers={**world.headers("doctor"), "Accept": "*/*"})
    assert got.content.decode() == note and got.headers["content-type"].startswith("text/plain")
    assert world.client.get(f"/fhir/Binary/{pdf_id}", headers={**world.headers("doctor"), "Accept": "*/*"}).content \
        == PDF
    with world.services.engine.connect() as conn:
        rows = conn.execute(select(document.c.class_code, document.c.type_code, document.c.author_id).where(
            document.c.dossier_key == world.dossier)).all()
    assert sorted((r.class_code, r.type_code) for r in rows) == [("90", "DOCPAT01"), ("90", "DOCPAT04")]
    assert {r.author_id for r in rows} == {world.ins}
    listing = b.get("/portal/documents").text
    assert listing.count("Added by you") == 2 and "Documents added by the patient" in listing


def count_documents(world: World) -> int:
    with world.services.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(document).where(
            document.c.dossier_key == world.dossier)).scalar_one())


def test_an_executable_or_too_large_upload_is_refused_with_a_message_and_nothing_is_saved(patient: Patient) -> None:
    world = patient.world
    b = patient.ready().browser
    english(patient)
    csrf = csrf_of(b.get("/portal/documents/new").text)
    exe = b.post("/portal/documents/new", data={"csrf": csrf, "kind": "file", "title": "Logiciel",
                                                "type": "DOCPAT09"},
                 files={"file": ("setup.exe", b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 64, "application/pdf")})
    assert exe.status_code == 415
    assert 'role="alert"' in exe.text and "This kind of file is not accepted" in exe.text
    big = b.post("/portal/documents/new", data={"csrf": csrf, "kind": "file", "title": "Gros scan",
                                                "type": "DOCPAT04"},
                 files={"file": ("big.pdf", b"%PDF-" + b"0" * world.services.settings.max_document_bytes,
                                 "application/pdf")})
    assert big.status_code == 413 and "too large" in big.text
    untitled = b.post("/portal/documents/new", data={"csrf": csrf, "kind": "note", "title": "", "type": "DOCPAT01",
                                                     "note": "texte"})
    assert untitled.status_code == 400 and 'value="texte"' not in untitled.text and "texte</textarea>" in untitled.text
    assert count_documents(world) == 0


@pytest.mark.parametrize("action", ["hide", "show", "delete"])
def test_a_document_action_without_the_csrf_token_is_refused(patient: Patient, action: str) -> None:
    world = patient.world
    doc = publish(world, title="Protégé")
    b = patient.ready().browser
    r = b.post(f"/portal/documents/{doc}/{action}", data={"confirm": "yes"})
    assert r.status_code == 403
    r = b.post(f"/portal/documents/{doc}/{action}", data={"confirm": "yes", "csrf": "not-the-token"})
    assert r.status_code == 403
    assert doc in search_ids(world, "nurse")


def test_adding_a_document_without_the_csrf_token_is_refused(patient: Patient) -> None:
    b = patient.ready().browser
    r = b.post("/portal/documents/new", data={"kind": "note", "title": "Sans jeton", "type": "DOCPAT01",
                                              "note": "texte"})
    assert r.status_code == 403
    assert count_documents(patient.world) == 0


def test_the_french_class_labels_are_those_of_the_domain() -> None:
    french = i18n.language("fr")
    assert {c: french.gettext(label) for c, label in CLASS_LABELS.items()} == codes.CLASSES


def test_a_closed_dossier_takes_no_new_document_and_says_why(patient: Patient) -> None:
    from carnet.access.actors import Actor, ActorKind
    from carnet.context import run
    from carnet.dossier import service as dossiers

    world = patient.world
    b = patient.ready().browser
    english(patient)
    csrf = csrf_of(b.get("/portal/documents/new").text)
    me = Actor(ActorKind.PATIENT, id=world.ins)
    run(world.services, me, lambda ctx: dossiers.close(ctx, world.dossier, "patient"))
    r = b.post("/portal/documents/new", data={"csrf": csrf, "kind": "note", "title": "Trop tard", "type": "DOCPAT01",
                                              "note": "texte"})
    assert r.status_code == 403 and "while it is closed" in r.text and 'role="alert"' in r.text
    assert count_documents(world) == 0
