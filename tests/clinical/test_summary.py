"""The emergency summary: the IPS document Bundle ($summary), the portals' view, and the one-page PDF."""

from __future__ import annotations

import io
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import select, update

from carnet.access.actors import Actor, ActorKind
from carnet.clinical.pdf import render_summary_pdf
from carnet.clinical.service import check
from carnet.clinical.service import create as create_item
from carnet.clinical.summary import summary_view
from carnet.context import run
from carnet.db.tables import audit, client
from carnet.dossier import contacts
from tests.clinical import samples
from tests.conftest import World
from tests.tasks.helpers import publish

SECTION_CODES = {"48765-2", "10160-0", "11450-4", "11369-6", "30954-2", "42348-3", "60591-5"}


@pytest.fixture
def w(world: World) -> World:
    samples.grant_clinical_scopes(world)
    return world


def _summary(w: World, headers: dict[str, str]) -> dict[str, Any]:
    r = w.client.get(f"/fhir/Patient/{w.dossier}/$summary", headers=headers)
    assert r.status_code == 200, r.text
    bundle = r.json()
    Bundle.model_validate(bundle, strict=True)
    return dict(bundle)


def _sections(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    comp = bundle["entry"][0]["resource"]
    assert comp["resourceType"] == "Composition"
    return {s["code"]["coding"][0]["code"]: s for s in comp["section"]}


def _create(w: World, res: dict[str, Any], role: str = "doctor") -> str:
    r = w.client.post(f"/fhir/{res['resourceType']}", json=res, headers=w.headers(role))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_an_empty_dossier_gives_a_valid_document_whose_sections_carry_an_empty_reason(w: World) -> None:
    bundle = _summary(w, w.headers("gp"))
    assert bundle["type"] == "document"
    comp = bundle["entry"][0]["resource"]
    assert comp["type"]["coding"][0]["code"] == "60591-5"
    sections = _sections(bundle)
    assert set(sections) == SECTION_CODES
    for s in sections.values():
        assert "entry" not in s
        assert s["emptyReason"]["coding"][0]["code"] == "unavailable"
        assert "No information" in s["text"]["div"]
    assert bundle["entry"][1]["resource"]["resourceType"] == "Patient"


def test_the_summary_holds_each_item_in_its_section_with_its_author(w: World) -> None:
    ids = {make.__name__: _create(w, make(w.dossier)) for make in samples.ALL}
    bundle = _summary(w, w.headers("gp"))
    sections = _sections(bundle)
    refs = {code: [e["reference"] for e in s.get("entry", [])] for code, s in sections.items()}
    assert refs["48765-2"] == [f"AllergyIntolerance/{ids['allergy']}"]
    assert refs["10160-0"] == [f"MedicationStatement/{ids['medication']}"]
    assert refs["11450-4"] == [f"Condition/{ids['condition']}"]
    assert refs["11369-6"] == [f"Immunization/{ids['immunization']}"]
    assert sorted(refs["30954-2"]) == sorted([f"Observation/{ids['blood_group']}", f"Observation/{ids['vital']}"])
    assert "Penicillin" in sections["48765-2"]["text"]["div"]
    full = {e["fullUrl"].split("/fhir/")[1] for e in bundle["entry"]}
    assert all(r in full for rs in refs.values() for r in rs)
    assert f"Practitioner/{w.pros['doctor']}" in full
    assert "emptyReason" in sections["42348-3"]


def test_a_withdrawn_item_leaves_the_summary(w: World) -> None:
    item = _create(w, samples.allergy(w.dossier))
    w.client.post(f"/fhir/AllergyIntolerance/{item}/$entered-in-error", headers=w.headers("doctor"))
    assert "emptyReason" in _sections(_summary(w, w.headers("gp")))["48765-2"]


def test_a_masked_summary_document_is_hidden_from_a_professional_but_not_from_the_patient(w: World) -> None:
    vsm = publish(w, "gp", loinc="60591-5", labels=["MASQUE_PS"])
    doctor = _sections(_summary(w, w.headers("doctor")))["60591-5"]
    assert "entry" not in doctor
    patient = _sections(_summary(w, w.headers(None, kind="patient_portal")))["60591-5"]
    assert [e["reference"] for e in patient["entry"]] == [f"DocumentReference/{vsm}"]


def test_the_ans_vsm_and_the_ips_are_both_among_the_summary_documents(w: World) -> None:
    vsm = publish(w, "gp", loinc="SYNTH")  # the ANS VSM's type (TRE_A05, issue 16 §2)
    ips = publish(w, "gp", loinc="60591-5")
    other = publish(w, "gp", loinc="34133-9")  # a summary of an episode: a summary, but not a patient summary
    section = _sections(_summary(w, w.headers("doctor")))["60591-5"]
    assert {e["reference"] for e in section["entry"]} == {f"DocumentReference/{vsm}", f"DocumentReference/{ips}"}
    assert f"DocumentReference/{other}" not in str(section)


def test_advance_directives_appear_as_document_references(w: World) -> None:
    patient = Actor(ActorKind.PATIENT, id=w.ins)
    doc_id = run(w.services, patient, lambda ctx: contacts.deposit_directive(
        ctx, w.dossier, b"No resuscitation.", "text/plain", "My directives"))
    section = _sections(_summary(w, w.headers("doctor")))["42348-3"]
    assert [e["reference"] for e in section["entry"]] == [f"DocumentReference/{doc_id}"]
    assert "My directives" in section["text"]["div"]


def test_the_emergency_contacts_are_in_the_patient_resource_of_the_summary(w: World) -> None:
    patient = Actor(ActorKind.PATIENT, id=w.ins)
    run(w.services, patient, lambda ctx: contacts.add_contact(ctx, w.dossier, name="Camille Martin",
                                                              relationship="sœur", phone="+33 6 12 34 56 78"))
    bundle = _summary(w, w.headers("stranger", mode="emergency", reason="unconscious patient"))
    served = bundle["entry"][1]["resource"]
    assert served["contact"] == [{
        "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "C",
                                      "display": "Emergency Contact"}], "text": "sœur"}],
        "name": {"text": "Camille Martin"}, "telecom": [{"system": "phone", "value": "+33 6 12 34 56 78"}]}]


def test_a_stranger_is_refused_and_audited_but_breaking_the_glass_gives_the_summary(w: World) -> None:
    _create(w, samples.allergy(w.dossier))
    r = w.client.get(f"/fhir/Patient/{w.dossier}/$summary", headers=w.headers("stranger"))
    assert r.status_code == 403
    glass = _summary(w, w.headers("stranger", mode="emergency", reason="unconscious patient"))
    assert "entry" in _sections(glass)["48765-2"]
    with w.services.engine.connect() as conn:
        rows = list(conn.execute(select(audit.c.outcome, audit.c.mode).where(
            audit.c.dossier_key == w.dossier, audit.c.event == "summary.read",
            audit.c.actor_id == w.pros["stranger"]).order_by(audit.c.seq)))
    assert [o == "0" for o, _ in rows] == [False, True]
    assert rows[1][1] == "emergency"


def test_the_pdf_is_one_page_and_names_the_allergy(w: World) -> None:
    from pypdf import PdfReader

    _create(w, samples.allergy(w.dossier))
    _create(w, samples.blood_group(w.dossier))
    r = w.client.get(f"/fhir/Patient/{w.dossier}/$summary-pdf", headers=w.headers("gp"))
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/pdf"
    reader = PdfReader(io.BytesIO(r.content))
    assert len(reader.pages) == 1
    text = reader.pages[0].extract_text()
    assert "Penicillin" in text and "O Rh+" in text


def test_a_long_summary_still_fits_one_page(w: World) -> None:
    for _ in range(30):
        _create(w, samples.condition(w.dossier))
        _create(w, samples.medication(w.dossier))
    gp = Actor(ActorKind.PROFESSIONAL, id=w.pros["gp"], profession="10")
    view = run(w.services, gp, lambda ctx: summary_view(ctx, w.dossier))
    assert len(view.problems) == 30
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(render_summary_pdf(view)))
    assert len(reader.pages) == 1
    assert "more in the dossier" in reader.pages[0].extract_text()


def test_the_screen_names_the_sending_software_not_a_url(w: World) -> None:
    with w.services.engine.begin() as conn:
        conn.execute(update(client).where(client.c.client_id == w.client_ids["professional"])
                     .values(name="Logiciel du cabinet"))
    _create(w, samples.allergy(w.dossier))  # no meta.source: Carnet records the client
    sent = samples.condition(w.dossier)
    sent["meta"] = {"source": "urn:oid:1.2.250.1.999.1"}  # the sender's own system
    _create(w, sent)
    gp = Actor(ActorKind.PROFESSIONAL, id=w.pros["gp"], profession="10")
    typed = samples.medication(w.dossier)
    run(w.services, gp, lambda ctx: create_item(ctx, w.dossier, check(typed, "MedicationStatement")))  # in Carnet
    view = run(w.services, gp, lambda ctx: summary_view(ctx, w.dossier))
    assert view.allergies[0].source_label == "Logiciel du cabinet"
    assert view.allergies[0].source == f"{w.services.settings.base_url}/fhir#client={w.client_ids['professional']}"
    assert view.problems[0].source_label == "urn:oid:1.2.250.1.999.1"
    assert view.medications[0].source_label is None
