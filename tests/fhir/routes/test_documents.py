"""The MHD API end to end, on SQLite and PostgreSQL: publish, find, read, retrieve, rules, audit."""

from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Any

from sqlalchemy import select

from carnet.audit.log import verify_chain
from carnet.db.tables import audit, document
from carnet.documents.codes import TRE_A07
from tests.conftest import INS_SYSTEM, World

PDF = b"%PDF-1.4\n% test\n%%EOF\n"


def docref(world: World, loinc: str = "11488-4", data: bytes = PDF, ctype: str = "application/pdf",
           labels: list[str] | None = None, master: str | None = None) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "DocumentReference", "status": "current",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": master or f"urn:uuid:{uuid.uuid4()}"},
        "type": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "subject": {"reference": f"Patient/{world.dossier}"},
        "content": [{"attachment": {"contentType": ctype, "data": base64.b64encode(data).decode(),
                                    "title": "Compte rendu"}}]}
    if labels:
        res["securityLabel"] = [{"coding": [{"system": TRE_A07, "code": c}]} for c in labels]
    return res


def publish(world: World, role: str = "gp", **kw: Any) -> str:
    r = world.client.post("/fhir/DocumentReference", json=docref(world, **kw), headers=world.headers(role))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def search_ids(world: World, role: str = "gp", **kw: Any) -> set[str]:
    r = world.client.get("/fhir/DocumentReference", params={"patient": str(world.dossier)},
                         headers=world.headers(role, **kw))
    assert r.status_code == 200, r.text
    return {e["resource"]["id"] for e in r.json().get("entry", [])}


def test_a_published_document_is_retrieved_byte_for_byte(world: World) -> None:
    doc_id = publish(world)
    r = world.client.get(f"/fhir/Binary/{doc_id}", headers={**world.headers(), "Accept": "*/*"})
    assert r.status_code == 200
    assert r.content == PDF
    assert r.headers["content-type"].startswith("application/pdf")


def test_the_stored_bytes_are_encrypted_at_rest(world: World) -> None:
    doc_id = publish(world, data=b"%PDF-1.4 secret-marker-xyz")
    with world.services.engine.connect() as conn:
        blob_key = conn.execute(select(document.c.blob_key).where(
            document.c.document_id == uuid.UUID(doc_id))).scalar_one()
    stored = world.services.blobs.get(blob_key)
    assert b"secret-marker-xyz" not in stored


def test_a_tampered_blob_is_never_served(world: World) -> None:
    doc_id = publish(world)
    with world.services.engine.connect() as conn:
        blob_key = conn.execute(select(document.c.blob_key).where(
            document.c.document_id == uuid.UUID(doc_id))).scalar_one()
    path = world.services.blobs.path_for(blob_key)  # type: ignore[attr-defined]
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.chmod(0o600)
    path.write_bytes(bytes(data))
    r = world.client.get(f"/fhir/Binary/{doc_id}", headers=world.headers())
    assert r.status_code == 500
    assert r.json()["resourceType"] == "OperationOutcome"
    assert "%PDF" not in r.text


def test_a_second_document_with_the_same_master_identifier_is_refused(world: World) -> None:
    master = f"urn:uuid:{uuid.uuid4()}"
    publish(world, master=master)
    r = world.client.post("/fhir/DocumentReference", json=docref(world, master=master), headers=world.headers())
    assert r.status_code == 409
    assert r.json()["issue"][0]["expression"] == ["DocumentReference.masterIdentifier"]
    with world.services.engine.connect() as conn:
        n = conn.execute(select(document.c.document_id).where(document.c.master_identifier == master)).all()
    assert len(n) == 1


def test_an_unsupported_format_is_refused_with_415(world: World) -> None:
    r = world.client.post("/fhir/DocumentReference", json=docref(world, ctype="application/zip"),
                          headers=world.headers())
    assert r.status_code == 415
    assert r.json()["issue"][0]["expression"] == ["DocumentReference.content[0].attachment.contentType"]


def test_a_too_large_document_is_refused_with_413_and_leaves_nothing(world: World) -> None:
    before = set(world.services.blobs.root.rglob("*"))  # type: ignore[attr-defined]
    r = world.client.post("/fhir/DocumentReference", json=docref(world, data=b"x" * (65 * 1024),
                                                                  ctype="text/plain"), headers=world.headers())
    assert r.status_code == 413
    assert set(world.services.blobs.root.rglob("*")) == before  # type: ignore[attr-defined]


def test_a_refused_transaction_leaves_no_blob_behind(world: World) -> None:
    master = f"urn:uuid:{uuid.uuid4()}"
    publish(world, master=master)
    before = {p for p in world.services.blobs.root.rglob("*") if p.is_file()}  # type: ignore[attr-defined]
    r = world.client.post("/fhir/DocumentReference", json=docref(world, master=master, data=b"%PDF-1.4 other"),
                          headers=world.headers())
    assert r.status_code == 409
    after = {p for p in world.services.blobs.root.rglob("*") if p.is_file()}  # type: ignore[attr-defined]
    assert after == before


def test_a_masked_document_is_hidden_from_an_authorized_doctor_but_not_from_the_treating_gp(world: World) -> None:
    doc_id = publish(world, labels=["MASQUE_PS"], loinc="68599-0", ctype="text/plain", data=b"psy")
    assert doc_id in search_ids(world, "gp")
    assert doc_id not in search_ids(world, "doctor")
    r = world.client.get(f"/fhir/DocumentReference/{doc_id}", headers=world.headers("doctor"))
    assert r.status_code == 404


def test_a_pharmacist_sees_a_prescription_but_not_a_consultation_note(world: World) -> None:
    rx = publish(world, loinc="57833-6")
    note = publish(world, loinc="11488-4")
    seen = search_ids(world, "pharmacist")
    assert rx in seen and note not in seen


def test_a_professional_without_authorization_gets_403_saying_what_would_grant_access(world: World) -> None:
    r = world.client.get("/fhir/DocumentReference", params={"patient": str(world.dossier)},
                         headers=world.headers("stranger"))
    assert r.status_code == 403
    text = r.json()["issue"][0]["diagnostics"]
    assert "consent" in text and "emergency" in text


def test_break_the_glass_opens_the_dossier_unless_the_patient_objected(world: World) -> None:
    doc_id = publish(world)
    assert doc_id in search_ids(world, "stranger", mode="emergency", reason="unconscious patient")
    consent = {"resourceType": "Consent", "status": "active", "scope": {"coding": [{"code": "patient-privacy"}]},
               "category": [{"coding": [{"code": "59284-0", "system": "http://loinc.org"}]}],
               "patient": {"reference": f"Patient/{world.dossier}"},
               "provision": {"type": "deny", "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                                                    "v3-ActReason", "code": "ETREAT"}]}}
    r = world.client.post("/fhir/Consent", json=consent, headers=world.headers(None, kind="patient_portal"))
    assert r.status_code == 201, r.text
    r = world.client.get("/fhir/DocumentReference", params={"patient": str(world.dossier)},
                         headers=world.headers("stranger", mode="emergency", reason="unconscious patient"))
    assert r.status_code == 403


def test_a_blocked_doctor_gets_nothing_even_in_an_emergency(world: World) -> None:
    r = world.client.get("/fhir/DocumentReference", params={"patient": str(world.dossier)},
                         headers=world.headers("blocked", mode="emergency", reason="cardiac arrest"))
    assert r.status_code == 403


def test_a_professional_declaring_consent_gains_access(world: World) -> None:
    doc_id = publish(world)
    consent = {"resourceType": "Consent", "status": "active", "scope": {"coding": [{"code": "patient-privacy"}]},
               "category": [{"coding": [{"code": "59284-0", "system": "http://loinc.org"}]}],
               "patient": {"reference": f"Patient/{world.dossier}"},
               "provision": {"type": "permit", "actor": [{"role": {"coding": [{"code": "authorized"}]},
                                                          "reference": {"reference":
                                                                        f"Practitioner/{world.pros['stranger']}"}}]}}
    r = world.client.post("/fhir/Consent", json=consent, headers=world.headers("stranger"))
    assert r.status_code == 201, r.text
    assert doc_id in search_ids(world, "stranger")


def test_searches_filter_by_type_and_page_with_next_links(world: World) -> None:
    for _ in range(3):
        publish(world, loinc="11502-2", ctype="text/plain", data=uuid.uuid4().bytes.hex().encode())
    publish(world, loinc="57833-6")
    h = world.headers()
    r = world.client.get("/fhir/DocumentReference", headers=h, params={
        "patient": str(world.dossier), "type": "http://loinc.org|11502-2", "_count": "2"})
    body = r.json()
    assert body["total"] == 3 and len(body["entry"]) == 2
    nxt = next(link["url"] for link in body["link"] if link["relation"] == "next")
    r2 = world.client.get(nxt.replace("http://testserver", ""), headers=h)
    assert len(r2.json()["entry"]) == 1
    r3 = world.client.post("/fhir/DocumentReference/_search", headers=h,
                           data={"patient": str(world.dossier), "category": "60", "_count": "50"})
    assert r3.status_code == 200
    assert r3.json()["total"] == 0


def test_an_unknown_search_parameter_is_refused(world: World) -> None:
    r = world.client.get("/fhir/DocumentReference", params={"patient": str(world.dossier), "colour": "blue"},
                         headers=world.headers())
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["colour"]


def test_the_author_withdraws_and_masks_by_patch(world: World) -> None:
    doc_id = publish(world, role="doctor")
    patch = [{"op": "replace", "path": "/securityLabel/0", "value": {"coding": [
        {"system": TRE_A07, "code": "MASQUE_PS"}]}}]
    r = world.client.patch(f"/fhir/DocumentReference/{doc_id}", json=patch,
                           headers={**world.headers("doctor"), "Content-Type": "application/json-patch+json"})
    assert r.status_code == 200, r.text
    assert doc_id not in search_ids(world, "nurse")
    r = world.client.patch(f"/fhir/DocumentReference/{doc_id}", json=[{"op": "replace", "path": "/status",
                                                                       "value": "entered-in-error"}],
                           headers={**world.headers("nurse"), "Content-Type": "application/json-patch+json"})
    assert r.status_code == 404  # the nurse no longer sees it: forbidden looks like not found
    r = world.client.patch(f"/fhir/DocumentReference/{doc_id}", json=[{"op": "replace", "path": "/status",
                                                                       "value": "entered-in-error"}],
                           headers={**world.headers("doctor"), "Content-Type": "application/json-patch+json"})
    assert r.status_code == 200
    assert r.json()["status"] == "entered-in-error"


def test_every_access_is_audited_in_a_verifiable_chain(world: World) -> None:
    doc_id = publish(world)
    world.client.get(f"/fhir/Binary/{doc_id}", headers=world.headers())
    world.client.get("/fhir/DocumentReference", params={"patient": str(world.dossier)},
                     headers=world.headers("stranger"))
    with world.services.engine.connect() as conn:
        events = conn.execute(select(audit.c.event, audit.c.outcome).where(
            audit.c.dossier_key == world.dossier).order_by(audit.c.seq)).all()
        assert verify_chain(conn, world.dossier) == []
    assert ("ITI-105", "0") in [tuple(e) for e in events]
    assert ("ITI-68", "0") in [tuple(e) for e in events]
    assert ("ITI-67", "4") in [tuple(e) for e in events]  # the refused search is traced too


def test_a_tampered_audit_record_is_detected(world: World) -> None:
    publish(world)
    with world.services.engine.begin() as conn:
        seq = conn.execute(select(audit.c.seq).where(audit.c.dossier_key == world.dossier)
                           .order_by(audit.c.seq.desc())).scalars().first()
        conn.execute(audit.update().where(audit.c.dossier_key == world.dossier, audit.c.seq == seq)
                     .values(actor_id="someone-else"))
    with world.services.engine.connect() as conn:
        problems = verify_chain(conn, world.dossier)
    assert [p.problem for p in problems] == ["altered"]


def test_a_removed_audit_record_is_detected(world: World) -> None:
    publish(world)
    with world.services.engine.begin() as conn:
        conn.execute(audit.delete().where(audit.c.dossier_key == world.dossier, audit.c.seq == 2))
    with world.services.engine.connect() as conn:
        problems = {p.problem for p in verify_chain(conn, world.dossier)}
    assert "removed" in problems


def test_the_patient_reads_the_history_as_audit_events_and_a_doctor_cannot(world: World) -> None:
    publish(world)
    r = world.client.get("/fhir/AuditEvent", params={"patient": str(world.dossier)},
                         headers=world.headers(None, kind="patient_portal"))
    assert r.status_code == 200, r.text
    events = [e["resource"] for e in r.json()["entry"]]
    assert any(e["subtype"][0]["code"] == "ITI-105" for e in events)
    r = world.client.get("/fhir/AuditEvent", params={"patient": str(world.dossier)}, headers=world.headers("gp"))
    assert r.status_code == 403


def test_the_retrieved_document_hash_matches_its_metadata(world: World) -> None:
    doc_id = publish(world, data=b"hello world", ctype="text/plain")
    meta = world.client.get(f"/fhir/DocumentReference/{doc_id}", headers=world.headers()).json()
    att = meta["content"][0]["attachment"]
    assert att["size"] == 11
    assert att["hash"] == base64.b64encode(hashlib.sha1(b"hello world").digest()).decode()  # noqa: S324


def test_an_unknown_ins_in_a_search_answers_an_empty_bundle(world: World) -> None:
    from carnet.identity.ins import fake_nir_for

    r = world.client.get("/fhir/DocumentReference", params={
        "patient.identifier": f"{INS_SYSTEM}|{fake_nir_for(7_777_777)}"}, headers=world.headers())
    assert r.status_code == 200 and r.json()["total"] == 0


def test_find_document_lists_returns_the_submission_sets_including_implicit_ones(world: World) -> None:
    doc_id = publish(world)
    r = world.client.get("/fhir/List", params={"patient": str(world.dossier), "code": "submissionset"},
                         headers=world.headers())
    assert r.status_code == 200
    lists = [e["resource"] for e in r.json()["entry"]]
    assert any(f"DocumentReference/{doc_id}" == ent["item"]["reference"] for lst in lists for ent in lst["entry"])
    masked = publish(world, labels=["MASQUE_PS"])
    r = world.client.get("/fhir/List", params={"patient": str(world.dossier)}, headers=world.headers("doctor"))
    refs = {ent["item"]["reference"] for e in r.json()["entry"] for ent in e["resource"]["entry"]}
    assert f"DocumentReference/{masked}" not in refs  # a List never reveals a document hidden from the caller
    assert f"DocumentReference/{doc_id}" in refs


def test_search_entries_carry_their_own_ids_even_with_contained_resources(world: World) -> None:
    res = docref(world)
    contained = [{"resourceType": "Practitioner", "id": "author-1", "name": [{"family": "Dupont"}]}]
    res = {"contained": contained, **res, "author": [{"reference": "#author-1"}]}  # contained sent first
    r = world.client.post("/fhir/DocumentReference", json=res, headers=world.headers())
    assert r.status_code == 201, r.text
    doc_id = r.json()["id"]
    entries = world.client.get("/fhir/DocumentReference", params={"patient": str(world.dossier)},
                               headers=world.headers()).json()["entry"]
    by_url = {e["fullUrl"]: e["resource"]["id"] for e in entries}
    assert by_url[f"http://testserver/fhir/DocumentReference/{doc_id}"] == doc_id


def test_the_id_is_read_from_the_head_or_parsed() -> None:
    from carnet.fhir.http import _id_of

    assert _id_of('{"resourceType":"List","id":"abc","entry":[]}') == "abc"
    assert _id_of('{"resourceType":"List","contained":[{"id":"inner"}],"id":"outer"}') == "outer"


def test_the_patient_deletes_a_document_for_everyone_and_the_trace_stays(world: World) -> None:
    doc_id = publish(world)
    r = world.client.delete(f"/fhir/DocumentReference/{doc_id}", headers=world.headers("gp"))
    assert r.status_code == 403  # professionals withdraw or replace, they never delete
    patient = world.headers(None, kind="patient_portal")
    r = world.client.delete(f"/fhir/DocumentReference/{doc_id}", headers=patient)
    assert r.status_code == 204
    assert doc_id not in search_ids(world, "gp")
    assert world.client.get(f"/fhir/Binary/{doc_id}", headers=world.headers("gp")).status_code == 404
    r = world.client.get(f"/fhir/DocumentReference/{doc_id}", headers=patient)
    assert r.status_code == 404
    with world.services.engine.connect() as conn:
        events = conn.execute(select(audit.c.event, audit.c.outcome).where(
            audit.c.dossier_key == world.dossier, audit.c.entity_id == doc_id)).all()
    assert ("document.delete", "0") in [tuple(e) for e in events]
    assert ("document.delete", "4") in [tuple(e) for e in events]


def test_a_submission_set_lists_only_the_documents_the_caller_sees(world: World) -> None:
    pdf = base64.b64encode(PDF).decode()
    docs = []
    for labels in ([], ["MASQUE_PS"]):
        d = docref(world, labels=labels)
        d["content"][0]["attachment"] = {"contentType": "application/pdf", "url": f"urn:uuid:bin-{len(docs)}"}
        docs.append(d)
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:list", "request": {"method": "POST", "url": "List"},
         "resource": {"resourceType": "List", "status": "current", "mode": "working",
                      "code": {"coding": [{"system": "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes",
                                           "code": "submissionset"}]},
                      "subject": {"reference": f"Patient/{world.dossier}"},
                      "entry": [{"item": {"reference": "urn:uuid:doc-0"}}, {"item": {"reference": "urn:uuid:doc-1"}}]}},
        *[{"fullUrl": f"urn:uuid:doc-{i}", "request": {"method": "POST", "url": "DocumentReference"}, "resource": d}
          for i, d in enumerate(docs)],
        *[{"fullUrl": f"urn:uuid:bin-{i}", "request": {"method": "POST", "url": "Binary"},
           "resource": {"resourceType": "Binary", "contentType": "application/pdf", "data": pdf}} for i in range(2)]]}
    r = world.client.post("/fhir", json=bundle, headers=world.headers())
    assert r.status_code == 200, r.text
    shown = {}
    for role in ("gp", "doctor"):
        lists = world.client.get("/fhir/List", params={"patient": str(world.dossier)}, headers=world.headers(role))
        shown[role] = max((len(e["resource"]["entry"]) for e in lists.json()["entry"]), default=0)
    assert shown == {"gp": 2, "doctor": 1}


def test_a_disabled_caller_publishing_gets_401_first_and_leaves_nothing(world: World) -> None:
    """The publishes read the caller with the dossier (issue 11): a professional or a client disabled since the token
    was issued gets its 401 whatever else the request did wrong (a patient that does not exist, a subject that is no
    patient, a bundle refused), and nothing is written."""
    from sqlalchemy import func, update

    from carnet import admin
    from carnet.db.tables import client
    from tests.conftest import provide_bundle

    def bodies() -> list[tuple[str, dict[str, Any]]]:
        out = []
        for subject in (f"Patient/{world.dossier}", f"Patient/{uuid.uuid4()}", "Practitioner/x"):
            doc = docref(world)
            doc["subject"] = {"reference": subject}
            out.append(("/fhir/DocumentReference", doc))
            doc = docref(world)
            doc["subject"] = {"reference": subject}
            out.append(("/fhir", provide_bundle(doc, PDF)))
        return out

    def counts() -> tuple[int, int]:
        with world.services.engine.begin() as conn:
            return (conn.execute(select(func.count()).select_from(document)).scalar_one(),
                    conn.execute(select(func.count()).select_from(audit)).scalar_one())

    h = world.headers("doctor")
    answered = [world.client.post(path, json=body, headers=h).status_code for path, body in bodies()]
    assert answered == [201, 200, 404, 404, 422, 422]  # the same requests, by a caller who may call
    for disable, enable in (
            (lambda conn: admin.set_practitioner_enabled(conn, world.pros["doctor"], False),
             lambda conn: admin.set_practitioner_enabled(conn, world.pros["doctor"], True)),
            (lambda conn: conn.execute(update(client).where(client.c.client_id == world.client_ids["professional"])
                                       .values(enabled=False)),
             lambda conn: conn.execute(update(client).where(client.c.client_id == world.client_ids["professional"])
                                       .values(enabled=True)))):
        with world.services.engine.begin() as conn:
            disable(conn)
        before = counts()
        for path, body in bodies():
            r = world.client.post(path, json=body, headers=h)
            assert r.status_code == 401 and r.json()["resourceType"] == "OperationOutcome", (path, r.text)
        assert counts() == before
        with world.services.engine.begin() as conn:
            enable(conn)
