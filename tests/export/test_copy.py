"""The complete copy (``carnet.export.copy``, ``GET /fhir/Patient/{id}/$copy``), end to end on SQLite and PostgreSQL:
what the zip holds, who may have it, and what the audit keeps."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import re
import time
import uuid
import zipfile
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from carnet.access.actors import Actor, ActorKind
from carnet.auth.assertions import make_client_assertion
from carnet.context import run
from carnet.db.tables import audit, practitioner
from carnet.documents.codes import TRE_A07
from carnet.documents.validate import validate
from carnet.dossier import service as dossiers
from carnet.export.copy import build_copy
from carnet.identity.ins import fake_nir_for
from tests.conftest import BASE, World

PDF = b"%PDF-1.4\n% synthetic\n%%EOF\n"
NOTE = "Consultation : œdème du genou, fièvre à 39 °C ; l’infirmière revient jeudi. Coût : 25 €.\n\nÀ revoir."


def docref(key: uuid.UUID, loinc: str, data: bytes, ctype: str, title: str,
           labels: tuple[str, ...] = ()) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "DocumentReference", "status": "current",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "type": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "subject": {"reference": f"Patient/{key}"},
        "content": [{"attachment": {"contentType": ctype, "data": base64.b64encode(data).decode(), "title": title}}]}
    if labels:
        res["securityLabel"] = [{"coding": [{"system": TRE_A07, "code": c}]} for c in labels]
    return res


def publish(world: World, key: uuid.UUID, loinc: str = "11488-4", data: bytes = PDF, ctype: str = "application/pdf",
            title: str = "Compte rendu", labels: tuple[str, ...] = ()) -> str:
    r = world.client.post("/fhir/DocumentReference", json=docref(key, loinc, data, ctype, title, labels),
                          headers=world.headers("gp"))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def patient(world: World) -> dict[str, str]:
    return world.headers(None, kind="patient_portal")


def copy_of(world: World, headers: dict[str, str], key: uuid.UUID | None = None) -> Any:
    return world.client.get(f"/fhir/Patient/{key or world.dossier}/$copy", headers=headers)


def unzip(response: Any) -> zipfile.ZipFile:
    assert response.status_code == 200, response.text
    return zipfile.ZipFile(io.BytesIO(response.content))


def sums(zf: zipfile.ZipFile) -> dict[str, str]:
    out = {}
    for line in zf.read("SHA256SUMS").decode().splitlines():
        digest, name = line.split("  ", 1)
        out[name] = digest
    return out


def documents_in(zf: zipfile.ZipFile) -> dict[str, str]:
    """document id -> path in the zip (``documents/<class>/<YYYY-MM-DD>-<id>.<ext>``)"""
    return {name.rsplit("/", 1)[1].rsplit(".", 1)[0][11:]: name
            for name in zf.namelist() if name.startswith("documents/")}


def audit_rows(world: World, key: uuid.UUID, event: str) -> list[Any]:
    with world.services.engine.connect() as conn:
        return list(conn.execute(select(audit).where(audit.c.dossier_key == key, audit.c.event == event)
                                 .order_by(audit.c.seq)).all())


def visible_to_patient(world: World) -> set[str]:
    r = world.client.get("/fhir/DocumentReference", params={"patient": str(world.dossier), "_count": "100"},
                         headers=patient(world))
    assert r.status_code == 200, r.text
    return {e["resource"]["id"] for e in r.json().get("entry", [])}


@pytest.fixture
def filled(world: World) -> dict[str, str]:
    """The World's dossier with documents of several classes, one hidden from the patient, one deleted."""
    ids = {
        "report": publish(world, world.dossier, title="Compte rendu de consultation"),
        "note": publish(world, world.dossier, "11502-2", NOTE.encode(), "text/plain", "Résultats de biologie"),
        "prescription": publish(world, world.dossier, "57833-6", b"%PDF-1.4 ordonnance\n%%EOF\n",
                                title="Ordonnance"),
        "masked": publish(world, world.dossier, "68599-0", title="Synthèse psychiatrique", labels=("MASQUE_PS",)),
        "hidden": publish(world, world.dossier, "11526-1", title="Anatomopathologie à annoncer",
                          labels=("INVISIBLE_PATIENT",)),
        "deleted": publish(world, world.dossier, "18748-4", title="Imagerie supprimée"),
    }
    r = world.client.delete(f"/fhir/DocumentReference/{ids['deleted']}", headers=patient(world))
    assert r.status_code == 204, r.text
    return ids


def test_the_patient_downloads_a_zip_named_for_the_day_with_every_part(world: World, filled: dict[str, str]) -> None:
    r = copy_of(world, patient(world))
    assert r.headers["content-type"] == "application/zip"
    recorded = audit_rows(world, world.dossier, "dossier.copy")[0].recorded
    day = (recorded.replace(tzinfo=dt.UTC) if recorded.tzinfo is None else recorded).astimezone(_paris()).date()
    assert r.headers["content-disposition"] == f'attachment; filename="carnet-copy-{day.isoformat()}.zip"'
    assert int(r.headers["content-length"]) == len(r.content)
    names = set(unzip(r).namelist())
    assert {"LISEZMOI.txt", "README.txt", "dossier.pdf", "fhir/bundle.json", "SHA256SUMS"} <= names


def test_the_zip_holds_every_document_the_patient_sees_byte_for_byte(world: World, filled: dict[str, str]) -> None:
    zf = unzip(copy_of(world, patient(world)))
    in_zip = documents_in(zf)
    assert set(in_zip) == visible_to_patient(world)
    assert set(in_zip) == {filled[k] for k in ("report", "note", "prescription", "masked")}
    for doc_id, path in in_zip.items():
        r = world.client.get(f"/fhir/Binary/{doc_id}", headers={**patient(world), "Accept": "*/*"})
        assert r.status_code == 200
        assert zf.read(path) == r.content
        assert sums(zf)[path] == hashlib.sha256(r.content).hexdigest()


def test_a_document_invisible_to_the_patient_and_a_deleted_one_are_left_out(world: World,
                                                                            filled: dict[str, str]) -> None:
    zf = unzip(copy_of(world, patient(world)))
    bundle = json.loads(zf.read("fhir/bundle.json"))
    docrefs = [e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DocumentReference"]
    files = zf.read("SHA256SUMS").decode() + " ".join(zf.namelist())
    for left_out in (filled["hidden"], filled["deleted"]):
        assert left_out not in docrefs
        assert left_out not in files
    assert len(docrefs) == 4
    # the history must not reveal a document awaiting its announcement; the deletion's trace stays
    assert filled["hidden"] not in zf.read("fhir/bundle.json").decode()
    traces = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "AuditEvent"]
    assert any(f"DocumentReference/{filled['deleted']}" in json.dumps(t) and t["action"] == "D" for t in traces)
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(zf.read("dossier.pdf"))).pages)
    assert "Anatomopathologie" not in text
    assert "Imagerie supprimée" not in text


def test_sha256sums_matches_every_file_and_checks_like_sha256sum(world: World, filled: dict[str, str]) -> None:
    zf = unzip(copy_of(world, patient(world)))
    listed = sums(zf)
    assert set(listed) == set(zf.namelist()) - {"SHA256SUMS"}
    for name, digest in listed.items():
        assert hashlib.sha256(zf.read(name)).hexdigest() == digest
    assert zf.read("SHA256SUMS").decode().endswith("\n")


def test_the_files_are_filed_by_class_and_date(world: World, filled: dict[str, str]) -> None:
    in_zip = documents_in(unzip(copy_of(world, patient(world))))
    day = r"\d{4}-\d{2}-\d{2}"
    assert re.fullmatch(rf"documents/10-compte-rendu/{day}-{filled['report']}\.pdf", in_zip[filled["report"]])
    assert re.fullmatch(rf"documents/10-compte-rendu/{day}-{filled['note']}\.txt", in_zip[filled["note"]])
    assert re.fullmatch(rf"documents/42-prescription/{day}-{filled['prescription']}\.pdf",
                        in_zip[filled["prescription"]])
    assert in_zip[filled["masked"]].startswith("documents/11-synthese/")


def test_the_bundle_is_a_valid_r4_collection_of_the_whole_dossier(world: World, filled: dict[str, str]) -> None:
    zf = unzip(copy_of(world, patient(world)))
    bundle = json.loads(zf.read("fhir/bundle.json"))
    validate(bundle, "Bundle")
    assert bundle["type"] == "collection"
    by_type: dict[str, list[dict[str, Any]]] = {}
    for entry in bundle["entry"]:
        assert entry["fullUrl"].endswith(f"/{entry['resource']['resourceType']}/{entry['resource']['id']}")
        by_type.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
    assert [p["id"] for p in by_type["Patient"]] == [str(world.dossier)]
    assert "RelatedPerson" not in by_type  # an adult without legal representatives
    # the médecin traitant; five authorizations (the GP's, recorded when they created the dossier, and the doctor,
    # nurse, pharmacist and physio the patient authorized); one blocked doctor
    consents = by_type["Consent"]
    roles = sorted(c["provision"]["actor"][0]["role"]["coding"][0]["code"] for c in consents)
    assert roles == ["authorized"] * 5 + ["blocked", "treating_gp"]
    blocked = next(c for c in consents if c["provision"]["type"] == "deny")
    assert blocked["provision"]["actor"][0]["reference"]["reference"] == f"Practitioner/{world.pros['blocked']}"
    docs = {d["id"]: d for d in by_type["DocumentReference"]}
    assert set(docs) == set(documents_in(zf))
    for doc_id, path in documents_in(zf).items():
        assert docs[doc_id]["content"][0]["attachment"]["url"] == path
    with world.services.engine.connect() as conn:
        recorded = conn.execute(select(audit.c.event_id, audit.c.entity_id).where(
            audit.c.dossier_key == world.dossier)).all()
    # every trace, less those about the document still invisible to the patient
    assert {a["id"] for a in by_type["AuditEvent"]} == {str(e) for e, ent in recorded if ent != filled["hidden"]}
    assert len(by_type["AuditEvent"]) < len(recorded)


def test_objections_are_consents_in_the_bundle_and_sentences_in_the_booklet(world: World) -> None:
    run(world.services, Actor(ActorKind.PATIENT, id=world.ins),
        lambda ctx: dossiers.set_objections(ctx, world.dossier, True, False))
    zf = unzip(copy_of(world, patient(world)))
    bundle = json.loads(zf.read("fhir/bundle.json"))
    validate(bundle, "Bundle")
    purposes = [c["resource"]["provision"]["purpose"][0]["code"] for c in bundle["entry"]
                if c["resource"]["resourceType"] == "Consent" and "purpose" in c["resource"]["provision"]]
    assert purposes == ["ETREAT"]
    text = " ".join(" ".join(page.extract_text().split())
                    for page in PdfReader(io.BytesIO(zf.read("dossier.pdf"))).pages)
    assert "Accès en urgence (bris de glace) : vous vous y êtes opposé" in text
    assert "régulateur du SAMU (centre 15) : possible" in text


def test_the_booklet_is_a_pdf_naming_the_patient_the_documents_and_the_history(world: World,
                                                                               filled: dict[str, str]) -> None:
    zf = unzip(copy_of(world, patient(world)))
    data = zf.read("dossier.pdf")
    assert data.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(data))
    text = "\n".join(page.extract_text() for page in reader.pages)
    flat = "".join(text.split())
    assert "Alix Testé" in text
    assert "17/05/1980" in text
    for title in ("Compte rendu de consultation", "Résultats de biologie", "Ordonnance", "Synthèse psychiatrique"):
        assert title in text
    for path in documents_in(zf).values():
        assert path in flat
        assert sums(zf)[path] in flat
    assert "œdème du genou, fièvre à 39 °C" in text  # a text document's content, accents intact
    assert "Compte rendu" in text and "Prescription" in text  # the DOMAIN.md class labels
    assert "Historique des accès" in text
    assert "Copie complète du dossier" in text  # the copy's own audit record ends the history
    with world.services.engine.connect() as conn:
        gp = conn.execute(select(practitioner).where(practitioner.c.national_id == world.pros["gp"])).one()
    words = " ".join(text.split())
    assert f"Médecin traitant : {gp.given} {gp.family}, Médecin" in words
    assert "Compte rendu d'examens de biologie (11502-2) - " in words  # the type, in French
    assert f"auteur : {gp.given} {gp.family}, Médecin" in words  # the author as the directory names them


def test_the_readme_says_what_the_copy_holds_in_french_and_english(world: World, filled: dict[str, str]) -> None:
    zf = unzip(copy_of(world, patient(world)))
    french, english = zf.read("LISEZMOI.txt").decode(), zf.read("README.txt").decode()
    assert "sha256sum -c SHA256SUMS" in french and "sha256sum -c SHA256SUMS" in english
    assert "4 document(s)" in french and "4 document(s)" in english
    assert "documents/10-compte-rendu/  (2)" in french
    assert "Ce qui n'y est pas" in french and "What is not here" in english


def test_the_export_is_audited_once_without_a_record_per_document(world: World, filled: dict[str, str]) -> None:
    reads_before = len(audit_rows(world, world.dossier, "ITI-68"))
    unzip(copy_of(world, patient(world)))
    copies = audit_rows(world, world.dossier, "dossier.copy")
    assert len(copies) == 1
    assert copies[0].outcome == "0" and copies[0].action == "R"
    assert copies[0].entity_type == "Patient" and copies[0].entity_id == str(world.dossier)
    assert copies[0].detail == {"documents": 4}
    assert copies[0].actor_kind == "patient"
    assert len(audit_rows(world, world.dossier, "ITI-68")) == reads_before


@pytest.mark.parametrize(("role", "kind", "status"), [
    ("gp", "professional", 403),  # the médecin traitant
    ("doctor", "professional", 403),  # an authorized doctor
    ("stranger", "professional", 403),  # a doctor without authorization
    ("blocked", "professional", 404),  # a blocked doctor may not even learn that the dossier exists
    (None, "assurance_maladie", 403),
])
def test_nobody_but_the_patient_side_gets_the_copy_and_the_refusal_is_audited(
        world: World, filled: dict[str, str], role: str | None, kind: str, status: int) -> None:
    r = copy_of(world, world.headers(role, kind=kind))
    assert r.status_code == status
    assert r.json()["resourceType"] == "OperationOutcome"
    assert b"PK" not in r.content[:2]
    refused = audit_rows(world, world.dossier, "dossier.copy")
    assert [(a.outcome, a.actor_kind) for a in refused] == [("4", kind)]


def test_another_patient_is_told_the_dossier_does_not_exist(world: World) -> None:
    other = fake_nir_for(11_000_000 + world.n)
    r = copy_of(world, world.headers(None, kind="patient_portal", patient_ins=other))
    assert r.status_code == 404
    assert [a.outcome for a in audit_rows(world, world.dossier, "dossier.copy")] == ["4"]


def test_an_unknown_dossier_answers_404(world: World) -> None:
    r = copy_of(world, patient(world), uuid.uuid4())
    assert r.status_code == 404


def _minor_with_parent(world: World) -> tuple[uuid.UUID, str, uuid.UUID]:
    ins = fake_nir_for(12_000_000 + world.n)
    res = world.patient_resource(ins)
    res["birthDate"] = (dt.date.today() - dt.timedelta(days=365 * 9)).isoformat()
    gp = Actor(ActorKind.PROFESSIONAL, id=world.pros["gp"], profession="10")
    key, _ = run(world.services, gp, lambda ctx: dossiers.create(ctx, res))
    rep = run(world.services, Actor(ActorKind.OPERATOR, id="ops"),
              lambda ctx: dossiers.add_representative(ctx, key, "minor", "Parent", "Camille", "MTH"))
    return key, ins, rep


def representative_headers(world: World, ins: str, rep: uuid.UUID) -> dict[str, str]:
    assertion = make_client_assertion(world.key, world.client_ids["patient_portal"], f"{BASE}/oauth/token",
                                      int(time.time()), patient_ins=ins, representative_id=str(rep))
    r = world.client.post("/oauth/token", data={
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_a_minors_legal_representative_gets_the_copy_without_the_confidential_care(world: World) -> None:
    key, ins, rep = _minor_with_parent(world)
    seen = publish(world, key, "11488-4", title="Vaccins à jour")
    confidential = publish(world, key, "11488-4", title="Consultation confidentielle",
                           labels=("INVISIBLE_REPRESENTANTS_LEGAUX",))
    zf = unzip(copy_of(world, representative_headers(world, ins, rep), key))
    assert set(documents_in(zf)) == {seen}
    assert confidential not in zf.read("fhir/bundle.json").decode()
    bundle = json.loads(zf.read("fhir/bundle.json"))
    validate(bundle, "Bundle")
    parents = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "RelatedPerson"]
    assert [(p["id"], p["active"], p["relationship"][0]["coding"][0]["code"]) for p in parents] == \
        [(str(rep), True, "MTH")]
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(zf.read("dossier.pdf"))).pages)
    assert "Camille Parent (mère)" in text
    assert "représentant légal" in zf.read("LISEZMOI.txt").decode()
    copies = audit_rows(world, key, "dossier.copy")
    assert [(a.outcome, a.actor_kind, a.detail) for a in copies] == [("0", "representative", {"documents": 1})]


def test_the_copy_works_on_a_closed_dossier(world: World, filled: dict[str, str]) -> None:
    run(world.services, Actor(ActorKind.PATIENT, id=world.ins), lambda ctx: dossiers.close(ctx, world.dossier))
    assert copy_of(world, world.headers("gp")).status_code == 404  # closed: professionals see nothing
    zf = unzip(copy_of(world, patient(world)))
    assert len(documents_in(zf)) == 4
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(zf.read("dossier.pdf"))).pages)
    assert "fermé le" in text


def test_a_tampered_document_fails_the_copy_rather_than_shipping_it(world: World, filled: dict[str, str]) -> None:
    from carnet.db.tables import document

    with world.services.engine.connect() as conn:
        blob_key = conn.execute(select(document.c.blob_key).where(
            document.c.document_id == uuid.UUID(filled["report"]))).scalar_one()
    path = world.services.blobs.path_for(blob_key)  # type: ignore[attr-defined]
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.chmod(0o600)
    path.write_bytes(bytes(data))
    r = copy_of(world, patient(world))
    assert r.status_code == 500
    assert r.json()["resourceType"] == "OperationOutcome"
    assert audit_rows(world, world.dossier, "dossier.copy") == []  # nothing was handed out


def test_build_copy_streams_into_any_binary_file(world: World, filled: dict[str, str]) -> None:
    out = io.BytesIO()
    summary = run(world.services, Actor(ActorKind.PATIENT, id=world.ins),
                  lambda ctx: build_copy(ctx, world.dossier, out))
    zf = zipfile.ZipFile(io.BytesIO(out.getvalue()))
    assert summary.documents == 4
    assert list(summary.files) == zf.namelist()
    assert summary.filename == f"carnet-copy-{summary.created.astimezone(_paris()).date().isoformat()}.zip"


def _paris() -> dt.tzinfo:
    from zoneinfo import ZoneInfo

    return ZoneInfo("Europe/Paris")


def test_the_capability_statement_lists_the_copy_operation(world: World) -> None:
    r = world.client.get("/fhir/metadata")
    patient_res = next(res for res in r.json()["rest"][0]["resource"] if res["type"] == "Patient")
    assert "copy" in {op["name"] for op in patient_res.get("operation", [])}
