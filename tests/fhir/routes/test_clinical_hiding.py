"""The patient hides one structured item from professionals (issue 13 §3) through the FHIR API: ``$meta-add`` /
``$meta-delete`` with ``meta.security`` ``MASQUE_PS``, then search, read, ``$summary`` (IPS) and ``$summary-pdf`` for
every role: the patient, the médecin traitant and the item's author see it; an authorized nurse, pharmacist or
physiotherapist, a doctor breaking the glass and a SAMU regulator do not (absent from searches and the summary, 404 on
read)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from carnet.db.tables import audit
from carnet.documents import codes
from tests.clinical import samples
from tests.conftest import World
from tests.fhir.routes.test_clinical import create_item

MASK = {"system": codes.TRE_A07, "code": "MASQUE_PS"}


@pytest.fixture
def w(world: World) -> World:
    samples.grant_clinical_scopes(world)
    return world


def meta_params(*security: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": [{"name": "meta", "valueMeta": {"security": list(security),
                                                                                       **more}}]}


def patient(w: World) -> dict[str, str]:
    return w.headers(None, kind="patient_portal")


def hide(w: World, rtype: str, item_id: str, headers: dict[str, str] | None = None) -> Any:
    return w.client.post(f"/fhir/{rtype}/{item_id}/$meta-add", json=meta_params(MASK),
                         headers=headers or patient(w))


def show(w: World, rtype: str, item_id: str, headers: dict[str, str] | None = None) -> Any:
    return w.client.post(f"/fhir/{rtype}/{item_id}/$meta-delete", json=meta_params(MASK),
                         headers=headers or patient(w))


# who reads the dossier, and how they call
SEEING = {"the patient": lambda w: patient(w), "the médecin traitant": lambda w: w.headers("gp"),
          "the author": lambda w: w.headers("doctor")}
NOT_SEEING = {
    "an authorized nurse": lambda w: w.headers("nurse"),
    "an authorized pharmacist": lambda w: w.headers("pharmacist"),
    "an authorized physiotherapist": lambda w: w.headers("physio"),
    "a doctor breaking the glass": lambda w: w.headers("stranger", mode="emergency", reason="Unconscious patient"),
    "a SAMU regulator": lambda w: w.headers("regulator", mode="regulation", reason="Call to centre 15"),
}


def summary_ids(w: World, headers: dict[str, str]) -> set[str]:
    r = w.client.get(f"/fhir/Patient/{w.dossier}/$summary", headers=headers)
    assert r.status_code == 200, r.text
    return {e["resource"]["id"] for e in r.json()["entry"]}


def allergy_section(w: World, headers: dict[str, str]) -> dict[str, Any]:
    bundle = w.client.get(f"/fhir/Patient/{w.dossier}/$summary", headers=headers).json()
    composition = bundle["entry"][0]["resource"]
    return next(s for s in composition["section"] if s["code"]["coding"][0]["code"] == "48765-2")


@pytest.fixture
def hidden(w: World) -> dict[str, Any]:
    """An allergy written by the authorized doctor and hidden by the patient, next to a condition nobody hid."""
    item = create_item(w, samples.allergy(w.dossier))
    create_item(w, samples.condition(w.dossier), role="gp")
    r = hide(w, "AllergyIntolerance", item["id"])
    assert r.status_code == 200, r.text
    return item


def test_hiding_answers_the_meta_with_the_label_and_a_new_version(w: World) -> None:
    item = create_item(w, samples.allergy(w.dossier))
    r = hide(w, "AllergyIntolerance", item["id"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["resourceType"] == "Parameters"
    meta = body["parameter"][0]["valueMeta"]
    assert body["parameter"][0]["name"] == "return"
    assert [(c["system"], c["code"]) for c in meta["security"]] == [(codes.TRE_A07, "MASQUE_PS")]
    assert meta["versionId"] == "2"
    again = hide(w, "AllergyIntolerance", item["id"])  # already hidden: nothing changes
    assert again.json()["parameter"][0]["valueMeta"]["versionId"] == "2"


@pytest.mark.parametrize("who", sorted(SEEING))
def test_the_patient_the_medecin_traitant_and_the_author_still_see_a_hidden_item(
        w: World, hidden: dict[str, Any], who: str) -> None:
    h = SEEING[who](w)
    r = w.client.get(f"/fhir/AllergyIntolerance/{hidden['id']}", headers=h)
    assert r.status_code == 200
    assert {"system": codes.TRE_A07, "code": "MASQUE_PS"}.items() <= r.json()["meta"]["security"][0].items()
    found = w.client.get(f"/fhir/AllergyIntolerance?patient={w.dossier}", headers=h).json()
    assert found["total"] == 1
    assert [e["resource"]["id"] for e in found["entry"]] == [hidden["id"]]
    assert hidden["id"] in summary_ids(w, h)
    assert allergy_section(w, h)["entry"] == [{"reference": f"AllergyIntolerance/{hidden['id']}"}]


@pytest.mark.parametrize("who", sorted(NOT_SEEING))
def test_other_professionals_never_learn_of_a_hidden_item_even_in_an_emergency(
        w: World, hidden: dict[str, Any], who: str) -> None:
    h = NOT_SEEING[who](w)
    assert w.client.get(f"/fhir/AllergyIntolerance/{hidden['id']}", headers=h).status_code == 404
    found = w.client.get(f"/fhir/AllergyIntolerance?patient={w.dossier}", headers=h).json()
    assert found["total"] == 0
    assert not found.get("entry")
    assert w.client.get(f"/fhir/Condition?patient={w.dossier}", headers=h).json()["total"] == 1  # they do read items
    ids = summary_ids(w, h)
    assert hidden["id"] not in ids
    section = allergy_section(w, h)
    assert "entry" not in section and section["emptyReason"]["coding"][0]["code"] == "unavailable"
    assert "Penicillin" not in str(section)
    r = w.client.get(f"/fhir/Patient/{w.dossier}/$summary", headers=h)
    assert "MASQUE_PS" not in r.text and hidden["id"] not in r.text
    # nor may they show it again (it does not exist for them)
    assert show(w, "AllergyIntolerance", hidden["id"], h).status_code == 404


def test_showing_it_again_gives_it_back_to_every_professional_who_may_read(w: World, hidden: dict[str, Any]) -> None:
    nurse = w.headers("nurse")
    assert w.client.get(f"/fhir/AllergyIntolerance/{hidden['id']}", headers=nurse).status_code == 404
    r = show(w, "AllergyIntolerance", hidden["id"])
    assert r.status_code == 200, r.text
    assert "security" not in r.json()["parameter"][0]["valueMeta"]
    seen = w.client.get(f"/fhir/AllergyIntolerance/{hidden['id']}", headers=nurse)
    assert seen.status_code == 200
    assert "security" not in seen.json()["meta"]
    assert hidden["id"] in summary_ids(w, w.headers("stranger", mode="emergency", reason="Unconscious patient"))


@pytest.mark.parametrize("role", ["gp", "doctor"])
def test_professionals_do_not_hide_or_show_an_item_the_refusal_is_audited(w: World, role: str) -> None:
    item = create_item(w, samples.allergy(w.dossier))
    assert hide(w, "AllergyIntolerance", item["id"], w.headers(role)).status_code == 403
    hide(w, "AllergyIntolerance", item["id"])
    assert show(w, "AllergyIntolerance", item["id"], w.headers(role)).status_code == 403
    with w.services.engine.connect() as conn:
        rows = list(conn.execute(select(audit.c.event, audit.c.outcome, audit.c.actor_id).where(
            audit.c.dossier_key == w.dossier, audit.c.event.in_(["clinical.hide", "clinical.show"]))
            .order_by(audit.c.seq)))
    assert [(e, o != "0", a == w.pros[role]) for e, o, a in rows] == [
        ("clinical.hide", True, True), ("clinical.hide", False, False), ("clinical.show", True, True)]
    assert w.client.get(f"/fhir/AllergyIntolerance/{item['id']}", headers=w.headers("nurse")).status_code == 404


@pytest.mark.parametrize("body, where", [
    (meta_params({"system": codes.TRE_A07, "code": "INVISIBLE_PATIENT"}), "valueMeta.security"),
    (meta_params({"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}),
     "valueMeta.security"),
    (meta_params({"code": "MASQUE_PS"}), "valueMeta.security"),
    (meta_params(MASK, tag=[{"code": "x"}]), "valueMeta.tag"),
    (meta_params(), "valueMeta.security"),
    ({"resourceType": "Parameters", "parameter": [{"name": "text", "valueString": "x"}]}, "parameter[meta]"),
])
def test_any_other_meta_change_is_refused_and_changes_nothing(w: World, body: dict[str, Any], where: str) -> None:
    item = create_item(w, samples.allergy(w.dossier))
    r = w.client.post(f"/fhir/AllergyIntolerance/{item['id']}/$meta-add", json=body, headers=patient(w))
    assert r.status_code == 422
    assert where in str(r.json()["issue"][0].get("expression"))
    assert w.client.get(f"/fhir/AllergyIntolerance/{item['id']}", headers=w.headers("nurse")).json() == item


@pytest.mark.parametrize("make", samples.ALL, ids=lambda f: f.__name__)
def test_each_kind_of_item_can_be_hidden(w: World, make: Any) -> None:
    item = create_item(w, make(w.dossier))
    rtype = item["resourceType"]
    assert hide(w, rtype, item["id"]).status_code == 200
    assert w.client.get(f"/fhir/{rtype}/{item['id']}", headers=w.headers("nurse")).status_code == 404
    assert w.client.get(f"/fhir/{rtype}/{item['id']}", headers=w.headers("gp")).status_code == 200


def test_the_pdf_summary_leaves_a_hidden_item_out_for_an_emergency_doctor(w: World, hidden: dict[str, Any]) -> None:
    def text(h: dict[str, str]) -> str:
        r = w.client.get(f"/fhir/Patient/{w.dossier}/$summary-pdf", headers=h)
        assert r.status_code == 200
        return "".join(p.extract_text() for p in PdfReader(io.BytesIO(r.content)).pages)

    assert "Penicillin" in text(w.headers("gp"))
    assert "Penicillin" not in text(w.headers("stranger", mode="emergency", reason="Unconscious patient"))
