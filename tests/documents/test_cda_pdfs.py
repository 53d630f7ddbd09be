"""The PDFs a CDA document carries (``carnet.documents.cda_media``, issue 16 §2): a level-1 body and the PDFs
embedded in a structured body (``observationMedia`` shown by ``renderMultiMedia``, an observation's ``ED`` value)
are links in both portals, served as PDF only when their bytes are one, each read audited."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from carnet.db.tables import audit
from carnet.documents import cda
from tests.conftest import World
from tests.documents.test_cda import docref, post105, sample
from tests.portal.conftest import Patient, browser, patient  # noqa: F401 - the portal's fixtures
from tests.pro.conftest import signed_in

COPY = b"%PDF-1.4\n% Carnet synthetic copy of a lab report\n%%EOF\n"
SECOND_LINE = b"%PDF-1.7\n% Carnet synthetic second-line lab report\n%%EOF\n"
NOT_A_PDF = b"<html><script>alert(1)</script></html>"


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


SECTIONS = (
    b'<component><section><title>Copie du document</title>'
    b'<text><paragraph>Compte rendu du laboratoire : <renderMultiMedia referencedObject="COPIE-1"/></paragraph></text>'
    b'<entry><observationMedia classCode="OBS" moodCode="EVN" ID="COPIE-1">'
    b'<value mediaType="application/pdf" representation="B64">' + b64(COPY) + b'</value></observationMedia></entry>'
    b'</section></component>'
    b'<component><section><title>Biologie de seconde intention</title><text><paragraph>Voir le compte rendu joint.'
    b'</paragraph></text><entry><observation classCode="OBS" moodCode="EVN"><code code="11502-2" '
    b'codeSystem="2.16.840.1.113883.6.1"/><value xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    b'xsi:type="ED" mediaType="application/pdf" representation="B64">' + b64(SECOND_LINE) + b'</value>'
    b'</observation></entry>'
    b'<entry><observationMedia classCode="OBS" moodCode="EVN" ID="FAUX"><value mediaType="application/pdf" '
    b'representation="B64">' + b64(NOT_A_PDF) + b'</value></observationMedia></entry>'
    b'</section></component>')


def with_pdfs(world: World | None = None) -> bytes:
    data = sample("consultation_structured.xml", world)
    return data.replace(b"<structuredBody>", b"<structuredBody>" + SECTIONS, 1)


def test_embedded_pdfs_are_links_where_the_narrative_shows_them_or_after_their_section() -> None:
    html = str(cda.render_html(with_pdfs(), pdf_url="/portal/documents/d/body"))
    copy_section = html[html.index("Copie du document"):html.index("Biologie de seconde intention")]
    assert 'Compte rendu du laboratoire : <a href="/portal/documents/d/body">Ouvrir le PDF</a>' in copy_section
    second = html[html.index("Biologie de seconde intention"):]
    assert 'PDF joint : <a href="/portal/documents/d/body?part=1">Ouvrir le PDF</a>' in second
    assert "n&#39;en est pas un" in second  # the fake one is said, neither dropped nor linked
    assert "?part=2" not in html and "<script" not in html
    assert "Motif et histoire" in html  # the rest renders as before


def test_each_part_is_served_only_when_its_bytes_are_a_pdf() -> None:
    data = with_pdfs()
    assert cda.pdf_part(data, 0) == COPY and cda.pdf_part(data, 1) == SECOND_LINE
    assert cda.pdf_part(data, 2) is None
    assert cda.pdf_part(sample("letter_pdf_body.xml"), 0) is not None
    fake_body = sample("letter_pdf_body.xml").replace(b"JVBERi0xLjQK", b"PGh0bWw+PHNj", 1)  # "<html><sc…"
    assert cda.pdf_part(fake_body, 0) is None
    assert "Ouvrir le PDF" not in str(cda.render_html(fake_body, pdf_url="/x"))


def deposit(world: World, data: bytes, **changes: Any) -> str:
    r = post105(world, docref(world, data, **changes))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def reads(world: World, doc: str) -> int:
    with world.services.engine.connect() as conn:
        return len(conn.execute(select(audit.c.seq).where(audit.c.dossier_key == world.dossier,
                                                          audit.c.event == "ITI-68", audit.c.entity_id == doc)).all())


def test_the_patient_portal_links_and_serves_the_embedded_pdfs(patient: Patient) -> None:  # noqa: F811
    world = patient.world
    doc = deposit(world, with_pdfs(world))
    b = patient.ready().browser
    page = b.get(f"/portal/documents/{doc}").text
    assert f'href="/portal/documents/{doc}/body"' in page and f'href="/portal/documents/{doc}/body?part=1"' in page
    before = reads(world, doc)
    r = b.get(f"/portal/documents/{doc}/body?part=1")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf" and r.content == SECOND_LINE
    assert r.headers["content-disposition"].startswith("inline")
    assert b.get(f"/portal/documents/{doc}/body?part=1&download=1").headers["content-disposition"].startswith(
        "attachment")
    assert reads(world, doc) == before + 2
    assert b.get(f"/portal/documents/{doc}/body?part=2").status_code == 404
    assert b.get(f"/portal/documents/{doc}/body?part=x").status_code == 404
    assert b.get(f"/portal/documents/{doc}/body?part=²").status_code == 404


@pytest.fixture
def clinician(app: Any) -> Iterator[TestClient]:
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as c:
        yield c


def test_the_clinician_portal_opens_a_cda_pdf_body_and_embedded_pdfs(world: World, clinician: TestClient) -> None:
    letter = deposit(world, sample("letter_pdf_body.xml", world), type_code="11490-0",
                     creation="2024-04-02T07:15:00Z", start="2024-03-28", end="2024-04-02")
    lab = deposit(world, with_pdfs(world))
    b = signed_in(clinician, world.pros["gp"])
    base = f"/pro/dossier/{world.dossier}/documents"
    page = b.get(f"{base}/{letter}").text
    assert "Ce document contient un PDF." in page and f'href="{base}/{letter}/body"' in page
    r = b.get(f"{base}/{letter}/body")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content == cda.pdf_part(sample("letter_pdf_body.xml"), 0)
    assert reads(world, letter) >= 2  # the page's read and the PDF's, each audited
    page = b.get(f"{base}/{lab}").text
    assert f'href="{base}/{lab}/body?part=1"' in page
    assert b.get(f"{base}/{lab}/body?part=1").content == SECOND_LINE
    assert b.get(f"{base}/{lab}/body?part=2").status_code == 404
