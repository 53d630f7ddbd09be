"""The complete copy holds everything the patient can see (issue 16 §3): a filled dossier is read through the
patient portal's own pages (Home, the care history, the requests, the settings), then its copy is downloaded from
the portal; every item a page shows must be in the copy's FHIR Bundle and in its booklet's text."""

from __future__ import annotations

import html
import io
import json
import re
import zipfile
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from carnet.access.actors import Actor, ActorKind
from carnet.claims.ingest import ingest
from carnet.context import run
from carnet.db.tables import audit
from carnet.documents.validate import validate
from carnet.dossier import contacts
from carnet.tasks import service as tasks
from tests.claims.helpers import byte_lines, claims_file, sample
from tests.clinical import samples
from tests.conftest import World
from tests.dossier.test_contacts import add as add_contact
from tests.portal.conftest import Patient, browser, patient  # noqa: F401 - fixtures
from tests.portal.test_documents import publish
from tests.portal.test_requests import ask_access
from tests.tasks.helpers import grant_task_scopes

DIRECTIVES = "Je refuse tout acharnement thérapeutique. Ma personne de confiance est ma sœur."


def fill(world: World) -> dict[str, str]:
    """Documents (one a VSM), advance directives, structured data, the care history, an emergency contact, access
    requests (one pending, one refused with a note) and a rectification request."""
    services = world.services
    me = Actor(ActorKind.PATIENT, id=world.ins)
    ids = {"report": publish(world, title="Compte rendu de cardiologie"),
           "vsm": publish(world, loinc="60591-5", title="Synthèse du médecin traitant")}
    ids["directive"] = str(run(services, me, lambda ctx: contacts.deposit_directive(
        ctx, world.dossier, DIRECTIVES.encode(), "text/plain", "Mes directives anticipées")))
    samples.grant_clinical_scopes(world)
    for make in samples.ALL:
        body = make(world.dossier)
        r = world.client.post(f"/fhir/{body['resourceType']}", json=body, headers=world.headers("doctor"))
        assert r.status_code == 201, r.text
        ids[body["resourceType"]] = r.json()["id"]
    wrong = samples.allergy(world.dossier)
    wrong["code"] = {"text": "Latex"}
    r = world.client.post("/fhir/AllergyIntolerance", json=wrong, headers=world.headers("gp"))
    ids["withdrawn"] = r.json()["id"]
    r = world.client.post(f"/fhir/AllergyIntolerance/{ids['withdrawn']}/$entered-in-error", headers=world.headers("gp"))
    assert r.status_code == 200, r.text
    ingest(services, byte_lines(claims_file(sample(world.ins, services.clock().date()))))
    add_contact(world)
    add_contact(world, name="Jules Bernard", relationship="voisin", phone="", email="jules@example.test")
    grant_task_scopes(world)
    world.pros["asker"] = world.add_pro("10")
    ids["pending"] = ask_access(world, role="asker", reason="suivi après une chute")
    ids["refused"] = ask_access(world, role="stranger", reason="bilan pré-opératoire")
    run(services, me, lambda ctx: tasks.answer_access(ctx, ids["refused"], False, "Je vois déjà mon médecin"))
    run(services, me, lambda ctx: tasks.request_rectification(ctx, ids["report"], "Ma tension est 12/8, pas 16/9."))
    return ids


def _texts(fragment: str, pattern: str) -> list[str]:
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", m)).split()) for m in re.findall(pattern, fragment, re.S)]


def _between(page: str, start: str, end: str) -> str:
    return page[page.index(start):page.index(end, page.index(start))]


def shown_by_the_portal(p: Patient) -> dict[str, list[str]]:
    """What the patient's pages show, read from their HTML."""
    def get(path: str) -> str:
        r = p.browser.get(path)
        assert r.status_code == 200, path
        return r.text

    home = get("/portal/")
    essentials = _between(home, 'id="clinical"', 'id="contacts"')
    care = get("/portal/care-history")
    requests = get("/portal/requests")
    settings = get("/portal/settings")
    return {
        "clinical": _texts(essentials, r"<li[^>]*><strong>(.*?)</strong>"),
        "contacts": _texts(_between(home, 'id="contacts"', 'id="directives"'), r"<li><strong>(.*?)</strong>"),
        "directives": _texts(_between(home, 'id="directives"', "</section>"), r'<a href="/portal/documents/[^"]+">'
                                                                             r"(.*?)</a>"),
        "summaries": _texts(_between(essentials, "<ul", "</section>"), r'<a href="/portal/documents/[^"]+">(.*?)</a>'),
        "care": _texts(_between(care, "<tbody>", "</tbody>"), r"<tr>\s*<td>[^<]*</td>\s*<td>(.*?)(?:<span|</td>)"),
        "requesters": _texts(requests, r"<h3><strong>(.*?)</strong>"),
        "request_texts": _texts(requests, r"<p>(?:Leur motif :|Votre note :|Their reason:|Your note:)\s*(.*?)</p>"),
        "settings_contacts": _texts(settings, r'<li class="card emergency">\s*<h3>(.*?)</h3>'),
        "settings_telecom": _texts(settings, r'<a href="(?:tel|mailto):[^"]+">(.*?)</a>'),
    }


@pytest.fixture
def copy_and_portal(world: World, patient: Patient) -> tuple[zipfile.ZipFile, dict[str, list[str]], dict[str, str]]:  # noqa: F811
    ids = fill(world)
    patient.ready()
    shown = shown_by_the_portal(patient)
    r = patient.browser.get("/portal/dossier/copy")
    assert r.status_code == 200, r.text
    return zipfile.ZipFile(io.BytesIO(r.content)), shown, ids


def booklet_text(zf: zipfile.ZipFile) -> str:
    pages = PdfReader(io.BytesIO(zf.read("dossier.pdf"))).pages
    return " ".join(" ".join(page.extract_text().split()) for page in pages)


def resources(zf: zipfile.ZipFile) -> dict[str, list[dict[str, Any]]]:
    bundle = json.loads(zf.read("fhir/bundle.json"))
    validate(bundle, "Bundle")
    out: dict[str, list[dict[str, Any]]] = {}
    for e in bundle["entry"]:
        out.setdefault(e["resource"]["resourceType"], []).append(e["resource"])
    return out


def in_json(value: str, found: list[dict[str, Any]]) -> bool:
    return any(value in json.dumps(r, ensure_ascii=False) for r in found)


def test_every_item_the_portal_shows_is_in_the_bundle_and_the_booklet(
        copy_and_portal: tuple[zipfile.ZipFile, dict[str, list[str]], dict[str, str]]) -> None:
    zf, shown, _ = copy_and_portal
    text, by_type = booklet_text(zf), resources(zf)
    # the portal shows them: the test reads a filled dossier, not empty pages
    assert {"Penicillin", "Hypertension", "Amlodipine 5 mg, one tablet a day", "O Rh+", "Influenza vaccine"} <= \
        set(shown["clinical"])
    assert len(shown["contacts"]) == 2 and len(shown["care"]) == 4 and len(shown["requesters"]) >= 2
    assert shown["directives"] == ["Mes directives anticipées"]
    assert "Synthèse du médecin traitant" in shown["summaries"]
    structured = [r for t in ("AllergyIntolerance", "Condition", "MedicationStatement", "Immunization", "Observation")
                  for r in by_type.get(t, [])]
    for item in shown["clinical"]:
        assert item in text, item
        assert in_json(item, structured), item
    for name in shown["contacts"]:
        assert name in text, name
        assert in_json(name, by_type["RelatedPerson"]), name
    for title in shown["directives"] + shown["summaries"]:
        assert title in text, title
        assert in_json(title, by_type["DocumentReference"]), title
    for label in shown["care"]:
        assert label in text, label
        assert in_json(label, by_type["ExplanationOfBenefit"]), label
    for who in shown["requesters"]:
        assert who in text, who
        assert in_json(who, by_type["Task"]), who
    for said in shown["request_texts"]:
        assert said in text, said
        assert in_json(said, by_type["Task"]), said
    assert set(shown["contacts"]) == set(shown["settings_contacts"])
    assert len(shown["settings_telecom"]) == 2
    for telecom in shown["settings_telecom"]:
        assert telecom in text, telecom
        assert in_json(telecom, by_type["RelatedPerson"]), telecom


def test_the_bundle_holds_each_kind_of_data_with_its_outcome(
        copy_and_portal: tuple[zipfile.ZipFile, dict[str, list[str]], dict[str, str]]) -> None:
    zf, _, ids = copy_and_portal
    by_type = resources(zf)
    assert len(by_type["ExplanationOfBenefit"]) == 4
    assert [o["valueCodeableConcept"]["text"] for o in by_type["Observation"]
            if o["code"]["coding"][0]["code"] == "882-1"] == ["O Rh+"]
    tasks_by_id = {t["id"]: t for t in by_type["Task"]}
    assert tasks_by_id[ids["pending"]]["status"] == "requested"
    assert tasks_by_id[ids["refused"]]["status"] == "rejected"
    assert tasks_by_id[ids["refused"]]["statusReason"]["text"] == "Je vois déjà mon médecin"
    rectification = next(t for t in by_type["Task"] if t["code"]["coding"][0]["code"] == "rectification")
    assert rectification["focus"]["reference"] == f"DocumentReference/{ids['report']}"
    contacts_ = [r for r in by_type["RelatedPerson"] if r["relationship"][0]["coding"][0]["code"] == "C"]
    assert sorted(c["name"][0]["text"] for c in contacts_) == ["Camille Martin", "Jules Bernard"]
    # the emergency summary: a Composition whose sections reference entries of the Bundle
    [composition] = by_type["Composition"]
    assert composition["type"]["coding"][0]["code"] == "60591-5"
    present = {f"{t}/{r['id']}" for t, rs in by_type.items() for r in rs}
    sections = {s["code"]["coding"][0]["code"]: s for s in composition["section"]}
    assert f"DocumentReference/{ids['directive']}" in [e["reference"] for e in sections["42348-3"]["entry"]]
    assert f"DocumentReference/{ids['vsm']}" in [e["reference"] for e in sections["60591-5"]["entry"]]
    for s in composition["section"]:
        for e in s.get("entry", []):
            assert e["reference"] in present, e
    # a withdrawn item is kept, marked, and every author an item names is in the Bundle
    [withdrawn] = [a for a in by_type["AllergyIntolerance"] if a["id"] == ids["withdrawn"]]
    assert withdrawn["verificationStatus"]["coding"][0]["code"] == "entered-in-error"
    for r in by_type["AllergyIntolerance"] + by_type["Observation"]:
        for ref in re.findall(r'"(Practitioner/[^"]+)"', json.dumps(r)):
            assert ref in present, ref
    ips = json.loads(zf.read("fhir/ips.json"))
    validate(ips, "Bundle")
    assert ips["type"] == "document" and ips["entry"][0]["resource"]["resourceType"] == "Composition"
    assert "fhir/ips.json" in zf.read("SHA256SUMS").decode()


def test_the_booklet_reads_the_essentials_the_care_history_and_the_requests_in_french(
        copy_and_portal: tuple[zipfile.ZipFile, dict[str, list[str]], dict[str, str]]) -> None:
    zf, _, _ = copy_and_portal
    text = booklet_text(zf)
    for heading in ("L'essentiel en cas d'urgence", "Allergies", "Traitements", "Problèmes de santé",
                    "Groupe sanguin", "Vaccinations", "Directives anticipées", "Contacts d'urgence",
                    "Demandes d'accès et de rectification", "Données de remboursement"):
        assert heading in text, heading
    assert "Camille Martin (sœur) - +33 6 12 34 56 78" in text
    assert "refusée - le " in text and "Je vois déjà mon médecin" in text
    assert "en attente de votre réponse" in text
    assert "Ma tension est 12/8, pas 16/9." in text
    assert "Latex" in text and "(retiré par son auteur)" in text
    assert "Paracétamol 500 mg" in text and "2,18 €" in text
    assert "fhir/ips.json" in zf.read("LISEZMOI.txt").decode() and "fhir/ips.json" in zf.read("README.txt").decode()


def test_the_copy_stays_one_audited_action(world: World, patient: Patient) -> None:  # noqa: F811
    """Reading the structured data, contacts, care history and requests for the copy adds no record of its own: the
    copy's one record is all the audit gains."""
    fill(world)
    patient.ready()
    with world.services.engine.connect() as conn:
        before = conn.execute(select(func.max(audit.c.seq)).where(audit.c.dossier_key == world.dossier)).scalar_one()
    assert patient.browser.get("/portal/dossier/copy").status_code == 200
    with world.services.engine.connect() as conn:
        added = conn.execute(select(audit.c.event, audit.c.detail).where(
            audit.c.dossier_key == world.dossier, audit.c.seq > before)).all()
    assert [(a.event, a.detail) for a in added] == [("dossier.copy", {"documents": 3})]
