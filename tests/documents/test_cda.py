"""CDA R2 documents (issue 3 §4): the header checked against the metadata on deposit (ITI-105, ITI-65), hostile XML
refused, and the rendering to safe HTML. Deposits run on SQLite and PostgreSQL; the samples are synthetic
(``cda_samples/SOURCES.md``) and bound to the test dossier by rewriting their INS and author id."""

from __future__ import annotations

import base64
import copy
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from carnet.db.tables import document, document_identifier, document_token, resource_locator, submission_set
from carnet.documents import cda
from carnet.identity.ins import fake_nir_for
from tests.conftest import World, provide_bundle
from tests.portal.conftest import Patient, browser, patient  # noqa: F401 - the portal's fixtures, used below

SAMPLES = Path(__file__).parent / "cda_samples"
SAMPLE_INS = b"255081416802538"
SAMPLE_AUTHOR = b"810001045367"
LOINC = "http://loinc.org"
V3_CONF = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"


def sample(name: str, world: World | None = None) -> bytes:
    data = (SAMPLES / name).read_bytes()
    if world is not None:
        data = data.replace(SAMPLE_INS, world.ins.encode()).replace(SAMPLE_AUTHOR, world.pros["gp"].encode())
    return data


def docref(world: World, data: bytes, **changes: Any) -> dict[str, Any]:
    """An ITI-105 DocumentReference whose metadata agree with the structured sample; ``changes`` override."""
    res: dict[str, Any] = {
        "resourceType": "DocumentReference", "status": "current",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "contained": [{"resourceType": "Practitioner", "id": "author", "identifier": [
            {"system": "urn:oid:1.2.250.1.71.4.2.1", "value": changes.pop("author_id", world.pros["gp"])}],
            "name": [{"family": "Exemple", "given": ["Paul"]}]}],
        "type": {"coding": [{"system": LOINC, "code": changes.pop("type_code", "11488-4")}]},
        "subject": {"reference": f"Patient/{world.dossier}"},
        "author": [{"reference": "#author"}],
        "securityLabel": [{"coding": [{"system": V3_CONF, "code": changes.pop("confidentiality", "N")}]}],
        "context": {"period": {"start": changes.pop("start", "2024-03-12T13:00:00Z"),
                               "end": changes.pop("end", "2024-03-12T13:30:00Z")}},
        "content": [{"attachment": {"contentType": changes.pop("content_type", "text/xml"),
                                    "creation": changes.pop("creation", "2024-03-12T14:30:00+01:00"),
                                    "data": base64.b64encode(data).decode(), "title": "CR de consultation"},
                     "format": {"system": "urn:oid:1.3.6.1.4.1.19376.1.2.3", "code": "urn:asip:ci-sis:2010"}}],
    }
    assert not changes
    return res


def stored(world: World) -> dict[str, int]:
    """How many rows and blob files the deposit left: what a refusal must leave at zero."""
    with world.services.engine.connect() as conn:
        counts = {t.name: conn.execute(select(func.count()).select_from(t).where(t.c.dossier_key == world.dossier))
                  .scalar_one() for t in (document, document_token, submission_set, document_identifier)}
        counts["locator"] = conn.execute(select(func.count()).select_from(resource_locator).where(
            resource_locator.c.dossier_key == world.dossier)).scalar_one()
    root = world.services.blobs.root  # type: ignore[attr-defined]
    counts["blobs"] = sum(1 for p in root.rglob("*") if p.is_file())
    return counts


def post105(world: World, res: dict[str, Any]) -> Any:
    return world.client.post("/fhir/DocumentReference", json=res, headers=world.headers("gp"))


def refused(world: World, res: dict[str, Any], before: dict[str, int]) -> dict[str, Any]:
    r = post105(world, res)
    assert r.status_code == 422, r.text
    assert stored(world) == before
    issue = r.json()["issue"][0]
    text = r.text
    assert world.ins not in text and world.pros["gp"] not in text  # never the values
    return dict(issue)


# --- the header against the metadata ------------------------------------------------------------------------------

def test_a_cda_whose_header_agrees_with_its_metadata_is_accepted_through_iti105(world: World) -> None:
    data = sample("consultation_structured.xml", world)
    r = post105(world, docref(world, data))
    assert r.status_code == 201, r.text
    got = world.client.get(f"/fhir/Binary/{r.json()['id']}", headers={**world.headers("gp"), "Accept": "*/*"})
    assert got.content == data


def test_a_cda_is_accepted_in_an_iti65_bundle(world: World) -> None:
    data = sample("letter_pdf_body.xml", world)
    res = docref(world, data, type_code="11490-0", creation="2024-04-02T07:15:00Z", start="2024-03-28",
                 end="2024-04-02")
    bundle = provide_bundle(res, data, date="2024-04-02T08:00:00Z", ids=(
        "urn:uuid:00000000-0000-4000-8000-0000000000a1", "urn:uuid:00000000-0000-4000-8000-0000000000c1",
        "urn:uuid:00000000-0000-4000-8000-0000000000b1"))
    r = world.client.post("/fhir", json=bundle, headers=world.headers("gp"))
    assert r.status_code == 200, r.text
    assert [e["response"]["status"][:3] for e in r.json()["entry"]] == ["201", "201", "201"]

    before = stored(world)
    wrong = copy.deepcopy(bundle)
    wrong["entry"][1]["resource"]["masterIdentifier"]["value"] = f"urn:uuid:{uuid.uuid4()}"
    wrong["entry"][1]["resource"]["type"]["coding"][0]["code"] = "11488-4"
    r = world.client.post("/fhir", json=wrong, headers=world.headers("gp"))
    assert r.status_code == 422, r.text
    assert r.json()["issue"][0]["expression"] == ["DocumentReference.type"]
    assert stored(world) == before


CONTRADICTIONS = [
    pytest.param({"type_code": "11490-0"}, "DocumentReference.type", "code", id="type"),
    pytest.param({"author_id": "810002345670"}, "DocumentReference.author", "author/assignedAuthor/id", id="author"),
    pytest.param({"creation": "2024-03-12T13:31:00Z"}, "DocumentReference.content[0].attachment.creation",
                 "effectiveTime", id="effective-time"),
    pytest.param({"creation": "2024-03-13"}, "DocumentReference.content[0].attachment.creation", "effectiveTime",
                 id="effective-day"),
    pytest.param({"start": "2024-03-12T12:00:00Z"}, "DocumentReference.context.period.start",
                 "documentationOf/serviceEvent/effectiveTime/low", id="service-start"),
    pytest.param({"end": "2024-03-12T14:30:00Z"}, "DocumentReference.context.period.end",
                 "documentationOf/serviceEvent/effectiveTime/high", id="service-end"),
    pytest.param({"confidentiality": "R"}, "DocumentReference.securityLabel", "confidentialityCode",
                 id="confidentiality"),
]


@pytest.mark.parametrize(("changes", "expression", "element"), CONTRADICTIONS)
def test_metadata_that_the_cda_header_contradicts_is_refused_and_nothing_is_stored(
        world: World, changes: dict[str, str], expression: str, element: str) -> None:
    before = stored(world)
    issue = refused(world, docref(world, sample("consultation_structured.xml", world), **changes), before)
    assert issue["expression"] == [expression]
    assert element in issue["diagnostics"]


def test_a_cda_about_another_patient_than_the_dossiers_is_refused(world: World) -> None:
    other = fake_nir_for(world.n + 9000).encode()
    data = sample("consultation_structured.xml", world).replace(world.ins.encode(), other)
    before = stored(world)
    issue = refused(world, docref(world, data), before)
    assert issue["expression"] == ["DocumentReference.subject"]
    assert "recordTarget/patientRole/id" in issue["diagnostics"] and other.decode() not in issue["diagnostics"]


def test_a_very_restricted_cda_filed_as_normal_is_refused(world: World) -> None:
    data = sample("consultation_structured.xml", world).replace(b'confidentialityCode code="N"',
                                                                 b'confidentialityCode code="V"')
    issue = refused(world, docref(world, data), stored(world))
    assert issue["expression"] == ["DocumentReference.securityLabel"]


def test_a_cda_hidden_from_professionals_needs_the_same_label_in_its_metadata(world: World) -> None:
    data = sample("consultation_structured.xml", world).replace(
        b'<confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25" displayName="Normal"/>',
        b'<confidentialityCode code="MASQUE_PS" codeSystem="1.2.250.1.213.1.1.4.13"/>')
    res = docref(world, data)
    issue = refused(world, res, stored(world))
    assert issue["expression"] == ["DocumentReference.securityLabel"]
    res["securityLabel"] = [{"coding": [{"system": "urn:oid:1.2.250.1.213.1.1.4.13", "code": "MASQUE_PS"}]}]
    assert post105(world, res).status_code == 201


def test_times_agree_to_the_minute_in_the_cdas_timezone_and_at_the_precision_both_state(world: World) -> None:
    data = sample("consultation_structured.xml", world)
    for creation in ("2024-03-12T13:30:59Z", "2024-03-12T15:30:00+02:00", "2024-03-12"):
        assert post105(world, docref(world, data, creation=creation)).status_code == 201, creation


def test_what_the_header_leaves_out_contradicts_nothing(world: World) -> None:
    bare = b'<?xml version="1.0" encoding="UTF-8"?><ClinicalDocument xmlns="urn:hl7-org:v3"/>'
    assert post105(world, docref(world, bare)).status_code == 201


BILLION_LAUGHS = ('<?xml version="1.0"?>\n<!DOCTYPE ClinicalDocument [<!ENTITY a "lol">'
                  + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
                  + ']>\n<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&j;</title></ClinicalDocument>').encode()
HOSTILE = [
    pytest.param(b"<ClinicalDocument xmlns='urn:hl7-org:v3'><title>x</ClinicalDocument>", id="malformed"),
    pytest.param(b"<html><body>not a CDA</body></html>", id="not-a-clinical-document"),
    pytest.param(b'<?xml version="1.0"?>\n<!DOCTYPE ClinicalDocument [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
                 b'<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&x;</title></ClinicalDocument>', id="xxe"),
    pytest.param(BILLION_LAUGHS, id="billion-laughs"),
    pytest.param(b'<!DOCTYPE ClinicalDocument SYSTEM "http://127.0.0.1:9/cda.dtd">'
                 b'<ClinicalDocument xmlns="urn:hl7-org:v3"/>', id="external-dtd"),
]


@pytest.mark.parametrize("data", HOSTILE)
def test_hostile_or_broken_xml_is_refused_on_deposit_and_nothing_is_stored(world: World, data: bytes) -> None:
    issue = refused(world, docref(world, data), stored(world))
    assert issue["expression"] == ["DocumentReference.content[0].attachment"]


def test_a_caller_without_rights_gets_403_before_the_header_is_read(world: World) -> None:
    """A caller without rights learns nothing from the header check: the 403 comes first."""
    other = fake_nir_for(world.n + 9001).encode()
    data = sample("consultation_structured.xml", world).replace(world.ins.encode(), other)
    r = world.client.post("/fhir/DocumentReference", json=docref(world, data), headers=world.headers("stranger"))
    assert r.status_code == 403, r.text


# --- rendering ------------------------------------------------------------------------------------------------------

def test_a_structured_cda_renders_its_header_and_sections_as_escaped_html() -> None:
    html = str(cda.render_html(sample("consultation_structured.xml"), lang="en"))
    assert "<h3>Compte rendu de consultation de cardiologie</h3>" in html
    assert "<dt>Patient</dt><dd>Jeanne Essai</dd>" in html and "<dd>Dr Paul Exemple</dd>" in html
    assert "<dd>12/03/2024 14:30</dd>" in html
    assert "<h4>Motif et histoire</h4>" in html and "<h5>ECG</h5>" in html
    assert "<span>trois semaines</span>.<br>Pas de syncope." in html
    assert "<th>Mesure</th>" in html and "<ol><li>Rythme sinusal</li>" in html
    assert "<span>dossier du cabinet</span>" in html and "javascript" not in html and "href" not in html
    assert "border" not in html and "styleCode" not in html


def test_a_script_in_the_narrative_is_escaped_or_dropped_never_written() -> None:
    data = b"""<ClinicalDocument xmlns="urn:hl7-org:v3"><title>T &lt;script&gt;</title><component><structuredBody>
      <component><section><title>&lt;img src=x onerror=alert(1)&gt;</title><text><paragraph>a &lt;script&gt;alert(1)
      &lt;/script&gt;</paragraph><script>alert(2)</script><content onclick="x()">b</content></text></section>
      </component></structuredBody></component></ClinicalDocument>"""
    html = str(cda.render_html(data))
    assert "<script" not in html and "<img" not in html and "onclick" not in html and "alert(2)" not in html
    assert "&lt;script&gt;alert(1)" in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_a_pdf_body_renders_a_note_and_a_link_and_its_bytes_are_decoded() -> None:
    data = sample("letter_pdf_body.xml")
    html = str(cda.render_html(data, pdf_url="/portal/documents/1/body?a=1&b=2", lang="en"))
    assert "This document holds a PDF." in html and '<a href="/portal/documents/1/body?a=1&amp;b=2">' in html
    body = cda.body_of(data)
    assert body is not None and body.media_type == "application/pdf" and body.data.startswith(b"%PDF-1.4")


def test_a_text_body_renders_in_pre_escaped() -> None:
    html = str(cda.render_html(sample("note_text_body.xml")))
    assert "<pre>Intervention : appendicectomie coelioscopique.\nSuites simples. &lt;script&gt;" in html


def test_an_entity_of_a_stored_document_is_never_resolved_when_rendered() -> None:
    data = (b'<!DOCTYPE ClinicalDocument [<!ENTITY x SYSTEM "file:///etc/passwd">]><ClinicalDocument '
            b'xmlns="urn:hl7-org:v3"><title>T</title><component><structuredBody><component><section><text>'
            b"<paragraph>a&x;b</paragraph></text></section></component></structuredBody></component>"
            b"</ClinicalDocument>")
    html = str(cda.render_html(data))
    assert "<p>ab</p>" in html and "root:" not in html


def test_what_is_not_a_cda_is_not_rendered() -> None:
    for data in (b"not xml", b"<html/>"):
        with pytest.raises(cda.CdaError):
            cda.render_html(data)


def test_the_patient_portal_shows_a_cda_pdf_body_and_serves_the_pdf(patient: Patient) -> None:  # noqa: F811
    world = patient.world
    data = sample("letter_pdf_body.xml", world)
    res = docref(world, data, type_code="11490-0", creation="2024-04-02T07:15:00Z", start="2024-03-28",
                 end="2024-04-02")
    r = post105(world, res)
    assert r.status_code == 201, r.text
    doc = r.json()["id"]
    b = patient.ready().browser
    page = b.get(f"/portal/documents/{doc}").text
    assert f'href="/portal/documents/{doc}/body"' in page
    pdf = b.get(f"/portal/documents/{doc}/body")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    body = cda.body_of(data)
    assert body is not None and pdf.content == body.data
