"""A document's bytes decide, not its label (issue 15 §7): every deposit, whatever the route (ITI-105, ITI-65, the
patient's and the clinician's upload forms, the document service itself), sniffs the content; a CDA is checked as a
CDA whatever its declared type, and a declared type that the bytes contradict is refused with 422 naming the
attachment. A refusal stores nothing. On SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from carnet.access.actors import Actor, ActorKind
from carnet.context import run
from carnet.documents import codes
from carnet.documents import service as documents
from carnet.errors import FhirError
from carnet.identity.ins import fake_nir_for
from tests.conftest import INS_SYSTEM, World, provide_bundle
from tests.documents.test_cda import docref, sample, stored
from tests.portal.conftest import Patient, browser, csrf_of, patient  # noqa: F401 - the portal's fixtures
from tests.pro.conftest import BASE as PRO_BASE
from tests.pro.conftest import signed_in

CONTENT_TYPE = "DocumentReference.content[0].attachment.contentType"
PDF = b"%PDF-1.4\n% a synthetic test document\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
OTHER_BYTES = {
    "application/pdf": PDF, "image/png": PNG, "image/jpeg": JPEG, "text/plain": b"Tension 12/8.",
    "application/fhir+json": b'{"resourceType": "Bundle", "type": "document"}',
    "application/fhir+xml": b'<Bundle xmlns="http://hl7.org/fhir"><type value="document"/></Bundle>',
}
CDA_TYPES = ("text/xml", "application/xml", "application/hl7-v3+xml", "application/hl7-cda+xml")
EVERY_TYPE = (*OTHER_BYTES, *CDA_TYPES)
ROUTES = ("ITI-105", "ITI-65")


def another_patients_vsm(world: World) -> bytes:
    """A VSM (type SYNTH) of another patient, A, whose INS is not this dossier's (B's): the attack of issue 15 §7."""
    data = sample("consultation_structured.xml", world).replace(world.ins.encode(),
                                                                fake_nir_for(world.n + 7000).encode())
    return data.replace(b'code="11488-4" codeSystem="2.16.840.1.113883.6.1"',
                        b'code="SYNTH" codeSystem="1.2.250.1.213.1.1.4.12"')


def vsm_docref(world: World, data: bytes, content_type: str) -> dict[str, Any]:
    """The DocumentReference an attacker would send with the VSM: everything agrees but the patient."""
    res = docref(world, data, content_type=content_type)
    res["type"] = {"coding": [{"system": codes.TRE_A05, "code": "SYNTH"}]}
    return res


def plain_docref(world: World, data: bytes, content_type: str) -> dict[str, Any]:
    res = docref(world, data, content_type=content_type)
    for key in ("contained", "author", "context"):
        res.pop(key)
    res["content"][0].pop("format")
    return res


def good(world: World, content_type: str) -> tuple[dict[str, Any], bytes]:
    """A deposit whose bytes are what its declared type says (a CDA of this dossier's patient for the CDA types)."""
    if content_type in CDA_TYPES:
        data = sample("consultation_structured.xml", world)
        return docref(world, data, content_type=content_type), data
    data = OTHER_BYTES[content_type]
    return plain_docref(world, data, content_type), data


def deposit(world: World, route: str, res: dict[str, Any], data: bytes) -> Any:
    if route == "ITI-105":
        return world.client.post("/fhir/DocumentReference", json=res, headers=world.headers("gp"))
    return world.client.post("/fhir", json=provide_bundle(copy.deepcopy(res), data), headers=world.headers("gp"))


def issue_expressions(r: Any) -> list[str]:
    return [e for i in r.json()["issue"] for e in i.get("expression", [])]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("content_type", EVERY_TYPE)
def test_a_content_whose_bytes_are_its_declared_type_is_accepted(world: World, route: str,
                                                                  content_type: str) -> None:
    res, data = good(world, content_type)
    r = deposit(world, route, res, data)
    assert r.status_code in (200, 201), r.text
    doc_id = r.json()["id"] if route == "ITI-105" else r.json()["entry"][1]["response"]["location"].split("/")[1]
    got = world.client.get(f"/fhir/Binary/{doc_id}", headers={**world.headers("gp"), "Accept": "*/*"})
    assert got.content == data and got.headers["content-type"].startswith(content_type)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("content_type", EVERY_TYPE)
def test_another_patients_vsm_is_refused_whatever_type_it_is_declared(world: World, route: str,
                                                                      content_type: str) -> None:
    data = another_patients_vsm(world)
    before = stored(world)
    r = deposit(world, route, vsm_docref(world, data, content_type), data)
    assert r.status_code == 422, r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    assert issue_expressions(r) == ["DocumentReference.subject"]  # checked as a CDA first, whatever its label
    assert world.ins not in r.text
    assert stored(world) == before


@pytest.mark.parametrize("content_type", OTHER_BYTES)
def test_this_patients_own_cda_under_another_label_is_refused_naming_the_content_type(world: World,
                                                                                       content_type: str) -> None:
    data = sample("consultation_structured.xml", world)
    before = stored(world)
    r = deposit(world, "ITI-105", docref(world, data, content_type=content_type), data)
    assert r.status_code == 422, r.text
    assert issue_expressions(r) == [CONTENT_TYPE]
    assert stored(world) == before


@pytest.mark.parametrize(("content_type", "data"), [
    ("application/pdf", b"Hello World"),  # the published examples' placeholder
    ("application/pdf", PNG), ("image/png", JPEG), ("image/jpeg", PNG), ("image/png", PDF),
    ("text/plain", PDF), ("text/plain", b"MZ\x90\x00\x03\x00"), ("application/fhir+json", PDF),
    ("application/fhir+xml", b'{"resourceType": "Bundle"}'), ("application/fhir+json", b"plain words"),
    ("text/xml", PDF), ("application/hl7-cda+xml", b'<Bundle xmlns="http://hl7.org/fhir"/>'),
])
@pytest.mark.parametrize("route", ROUTES)
def test_bytes_that_contradict_the_declared_type_are_refused(world: World, route: str, content_type: str,
                                                             data: bytes) -> None:
    before = stored(world)
    r = deposit(world, route, plain_docref(world, data, content_type), data)
    assert r.status_code == 422, r.text
    assert [x.rsplit(".", 1)[-1] for x in issue_expressions(r)][0] in ("contentType", "attachment")
    assert stored(world) == before


def test_a_media_type_carnet_does_not_store_is_refused_with_415(world: World) -> None:
    before = stored(world)
    r = deposit(world, "ITI-105", plain_docref(world, PDF, "application/octet-stream"), PDF)
    assert r.status_code == 415, r.text
    assert issue_expressions(r) == [CONTENT_TYPE]
    assert stored(world) == before


def test_no_face_can_skip_the_check_the_document_service_sniffs_itself(world: World) -> None:
    data = another_patients_vsm(world)
    res = vsm_docref(world, data, "application/pdf")
    res["content"][0]["attachment"].pop("data")
    before = stored(world)
    gp = Actor(ActorKind.PROFESSIONAL, id=world.pros["gp"], profession="10")
    with pytest.raises(FhirError) as caught:
        run(world.services, gp, lambda ctx: documents.publish(
            ctx, world.dossier, res, documents.Content(bytearray(data), "application/pdf"), "ITI-105"))
    assert caught.value.status == 422
    assert stored(world) == before


# --- the upload forms ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "declared"), [("vsm.txt", "text/plain"), ("vsm.pdf", "application/pdf"),
                                                ("vsm.xml", "text/xml")])
def test_the_patient_cannot_upload_another_patients_vsm(patient: Patient,  # noqa: F811
                                                        name: str, declared: str) -> None:
    world = patient.world
    b = patient.ready().browser
    before = stored(world)
    csrf = csrf_of(b.get("/portal/documents/new").text)
    r = b.post("/portal/documents/new", data={"csrf": csrf, "kind": "file", "title": "Synthèse", "type": "DOCPAT01"},
               files={"file": (name, another_patients_vsm(world), declared)})
    assert r.status_code in (415, 422) and 'role="alert"' in r.text
    assert stored(world) == before


def test_a_clinician_cannot_file_another_patients_vsm_through_the_form(world: World, app: Any) -> None:
    with TestClient(app, base_url=PRO_BASE, follow_redirects=False) as pro_browser:
        _clinician_files_the_vsm(world, pro_browser)


def _clinician_files_the_vsm(world: World, pro_browser: TestClient) -> None:
    signed_in(pro_browser, world.pros["gp"])
    before = stored(world)
    page = pro_browser.get(f"/pro/dossier/{world.dossier}/add")
    for files, text in (({"file": ("vsm.pdf", another_patients_vsm(world), "application/pdf")}, ""),
                        ({}, another_patients_vsm(world).decode())):
        r = pro_browser.post(f"/pro/dossier/{world.dossier}/add", files=files or None,
                         data={"csrf": csrf_of(page.text), "type": "SYNTH", "title": "VSM", "text": text})
        assert r.status_code in (400, 415, 422), r.text
    assert stored(world) == before


def test_the_patient_still_uploads_a_pdf_a_png_and_a_text(patient: Patient) -> None:  # noqa: F811
    world = patient.world
    b = patient.ready().browser
    csrf = csrf_of(b.get("/portal/documents/new").text)
    for name, data, declared in (("scan.pdf", PDF, "application/pdf"), ("photo.png", PNG, "image/png"),
                                 ("note.txt", b"Tension 12/8", "text/plain")):
        r = b.post("/portal/documents/new", data={"csrf": csrf, "kind": "file", "title": name, "type": "DOCPAT03"},
                   files={"file": (name, data, declared)})
        assert r.status_code == 303, (name, r.text)
    assert stored(world)["document"] == 3


def test_a_document_without_a_type_shows_as_type_not_stated_and_opens(patient: Patient) -> None:  # noqa: F811
    world = patient.world
    res = plain_docref(world, PDF, "application/pdf")
    res.pop("type")
    res["content"][0]["attachment"].pop("title")
    r = world.client.post("/fhir/DocumentReference", json=res, headers=world.headers("gp"))
    assert r.status_code == 201, r.text
    doc_id = r.json()["id"]
    listing = patient.ready().browser.get("/portal/documents").text
    assert f"/portal/documents/{doc_id}" in listing and "Type non précisé" in listing
    assert patient.browser.get(f"/portal/documents/{doc_id}").status_code == 200


LAUGHS = ('<!ENTITY l0 "lollollollollollollollollollol">'
          + "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10)))
HOSTILE = [
    pytest.param(f'<?xml version="1.0"?><!DOCTYPE ClinicalDocument [{LAUGHS}]><ClinicalDocument '
                 'xmlns="urn:hl7-org:v3" a="&l9;"><title>&l9;</title></ClinicalDocument>', id="billion-laughs"),
    pytest.param('<?xml version="1.0"?><!DOCTYPE ClinicalDocument SYSTEM "http://127.0.0.1:9/evil.dtd">'
                 '<ClinicalDocument xmlns="urn:hl7-org:v3"/>', id="external-dtd"),
]


@pytest.mark.parametrize("text", HOSTILE)
@pytest.mark.parametrize("content_type", ["text/plain", "application/pdf"])
def test_a_hostile_cda_under_another_label_is_refused_as_a_cda(world: World, text: str, content_type: str) -> None:
    data = text.encode()
    before = stored(world)
    r = deposit(world, "ITI-105", plain_docref(world, data, content_type), data)
    assert r.status_code == 422, r.text
    assert issue_expressions(r) == ["DocumentReference.content[0].attachment"]  # a CDA may carry no DOCTYPE
    assert stored(world) == before


# --- FHIR contents: their Patient is the dossier's ---------------------------------------------------------------

def fhir_document(ins: str | None, xml: bool = False) -> bytes:
    """A FHIR document Bundle whose Patient carries ``ins`` (or no INS: a local identifier only)."""
    ident = [{"system": "urn:oid:1.2.250.1.999.1.1.2", "value": "IPP-778899"}]
    if ins is not None:
        ident.append({"system": INS_SYSTEM, "value": ins})
    if xml:
        ids = "".join(f'<identifier><system value="{i["system"]}"/><value value="{i["value"]}"/></identifier>'
                      for i in ident)
        return (f'<Bundle xmlns="http://hl7.org/fhir"><type value="document"/><entry><resource><Patient>{ids}'
                '</Patient></resource></entry></Bundle>').encode()
    return json.dumps({"resourceType": "Bundle", "type": "document", "entry": [
        {"resource": {"resourceType": "Composition", "status": "final", "subject": {"reference": "urn:uuid:p"},
                      "type": {"coding": [{"system": "http://loinc.org", "code": "60591-5"}]},
                      "date": "2026-12-04T10:00:00Z", "author": [{"display": "Dr Test"}], "title": "Synthèse"}},
        {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient", "identifier": ident}}]}).encode()


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("content_type", ["application/fhir+json", "application/fhir+xml"])
def test_a_fhir_document_of_another_patient_is_refused_and_one_of_this_patient_accepted(
        world: World, route: str, content_type: str) -> None:
    xml = content_type.endswith("xml")
    before = stored(world)
    data = fhir_document(fake_nir_for(world.n + 7000), xml)
    r = deposit(world, route, plain_docref(world, data, content_type), data)
    assert r.status_code == 422, r.text
    assert issue_expressions(r) == ["DocumentReference.subject"]
    assert stored(world) == before
    for ins in (world.ins, None):  # this patient's INS, or none stated
        data = fhir_document(ins, xml)
        r = deposit(world, route, plain_docref(world, data, content_type), data)
        assert r.status_code in (200, 201), r.text


def test_an_iti65_fhir_document_publish_of_another_patient_is_refused(world: World) -> None:
    """MHD "FHIR Document Publish": the content is the document Bundle itself, an entry of the transaction."""
    data = fhir_document(fake_nir_for(world.n + 7000))
    bundle = provide_bundle(plain_docref(world, data, "application/fhir+json"), data)
    bundle["entry"][2]["resource"] = json.loads(data)
    before = stored(world)
    r = world.client.post("/fhir", json=bundle, headers=world.headers("gp"))
    assert r.status_code == 422, r.text
    assert issue_expressions(r) == ["DocumentReference.subject"]
    assert stored(world) == before
