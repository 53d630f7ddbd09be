"""Dossiers through the API (:mod:`carnet.fhir.routes.patients`): creation, TD0.2 check, PDQm search, identity errors,
tokens, the dossier's life."""

from __future__ import annotations

import time

from carnet.identity.ins import fake_nir_for
from tests.conftest import INS_SYSTEM, World


def test_a_professional_creates_a_dossier_with_consent_and_is_then_authorized(world: World) -> None:
    ins = fake_nir_for(5_000_000 + world.n % 1_000_000)
    r = world.client.post("/fhir/Patient", json=world.patient_resource(ins), headers=world.headers("stranger"))
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    r = world.client.get(f"/fhir/Patient/{pid}", headers=world.headers("stranger"))
    assert r.status_code == 200


def test_creation_without_recorded_consent_is_refused(world: World) -> None:
    ins = fake_nir_for(6_000_000 + world.n % 1_000_000)
    r = world.client.post("/fhir/Patient", json=world.patient_resource(ins, consent=False),
                          headers=world.headers("gp"))
    assert r.status_code == 422
    assert r.json()["issue"][0]["expression"] == ["Patient.extension"]


def test_a_wrong_nir_key_is_refused_with_422_naming_the_field(world: World) -> None:
    ins = fake_nir_for(4_000_000)
    bad = ins[:13] + f"{(int(ins[13:]) % 97) + 1:02d}"
    r = world.client.post("/fhir/Patient", json=world.patient_resource(bad), headers=world.headers("gp"))
    assert r.status_code == 422
    assert r.json()["issue"][0]["expression"][0].startswith("Patient.identifier[0]")
    assert bad not in r.text


def test_a_second_dossier_for_the_same_ins_is_refused(world: World) -> None:
    r = world.client.post("/fhir/Patient", json=world.patient_resource(world.ins), headers=world.headers("gp"))
    assert r.status_code == 409


def test_the_existence_check_tells_a_professional_what_they_may_do(world: World) -> None:
    r = world.client.get("/fhir/Patient", params={"identifier": f"{INS_SYSTEM}|{world.ins}"},
                         headers=world.headers("stranger"))
    assert r.status_code == 200
    entry = r.json()["entry"][0]["resource"]
    access = {e["url"]: e for e in entry["extension"][-1]["extension"]}
    assert access["canRead"]["valueBoolean"] is False
    assert "name" not in entry and "birthDate" not in entry  # no traits for a mere existence check
    r = world.client.get("/fhir/Patient", params={"identifier": f"{INS_SYSTEM}|{world.ins}"},
                         headers=world.headers("gp"))
    access = {e["url"]: e for e in r.json()["entry"][0]["resource"]["extension"][-1]["extension"]}
    assert access["canRead"]["valueBoolean"] is True


def test_a_demographic_search_returns_only_dossiers_the_caller_may_read(world: World) -> None:
    r = world.client.get("/fhir/Patient", params={"family": "teste", "birthdate": "1980-05-17"},
                         headers=world.headers("gp"))
    assert r.status_code == 200
    ids = {e["resource"]["id"] for e in r.json()["entry"]}
    assert str(world.dossier) in ids
    r = world.client.get("/fhir/Patient", params={"family": "teste", "birthdate": "1980-05-17"},
                         headers=world.headers("stranger"))
    assert str(world.dossier) not in {e["resource"]["id"] for e in r.json().get("entry", [])}


def test_an_insurer_like_client_without_scope_is_refused(world: World) -> None:
    token = world.token(None, kind="assurance_maladie")
    r = world.client.get("/fhir/DocumentReference", params={"patient": str(world.dossier)},
                         headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403


def test_a_request_without_a_token_gets_401(world: World) -> None:
    r = world.client.get(f"/fhir/Patient/{world.dossier}")
    assert r.status_code == 401
    assert r.json()["resourceType"] == "OperationOutcome"


def test_a_disabled_professional_stops_working_at_once(world: World) -> None:
    from carnet import admin

    h = world.headers("doctor")
    assert world.client.get(f"/fhir/Patient/{world.dossier}", headers=h).status_code == 200
    with world.services.engine.begin() as conn:
        admin.set_practitioner_enabled(conn, world.pros["doctor"], False)
    assert world.client.get(f"/fhir/Patient/{world.dossier}", headers=h).status_code == 401


def test_a_replayed_client_assertion_is_refused(world: World) -> None:
    from carnet.auth.assertions import make_client_assertion

    a = make_client_assertion(world.key, world.client_ids["professional"], "http://testserver/oauth/token",
                              int(time.time()), professional_id=world.pros["gp"])
    form = {"grant_type": "client_credentials", "client_assertion": a,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
    assert world.client.post("/oauth/token", data=form).status_code == 200
    r = world.client.post("/oauth/token", data=form)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_a_patient_sent_as_xml_is_accepted(world: World) -> None:
    from fhir.resources.R4B.patient import Patient

    ins = fake_nir_for(7_000_000 + world.n)
    xml = Patient.model_validate(world.patient_resource(ins)).model_dump_xml()
    r = world.client.post("/fhir/Patient", content=xml,
                          headers={**world.headers("gp"), "Content-Type": "application/fhir+xml"})
    assert r.status_code == 201, r.text
    assert r.json()["identifier"][0]["value"] == ins


CLOSE = {"resourceType": "Parameters", "parameter": [{"name": "reason", "valueCode": "patient"}]}


def test_the_patient_closes_and_reopens_the_dossier_through_the_api(world: World) -> None:
    patient = world.headers(None, kind="patient_portal")
    r = world.client.post(f"/fhir/Patient/{world.dossier}/$close", headers=patient,
                          json=CLOSE)
    assert r.status_code == 200, r.text
    # to professionals a closed dossier looks absent, as in the existence check
    assert world.client.get(f"/fhir/Patient/{world.dossier}", headers=world.headers("gp")).status_code == 404
    r = world.client.post(f"/fhir/Patient/{world.dossier}/$reopen", headers=patient)
    assert r.status_code == 200, r.text
    assert world.client.get(f"/fhir/Patient/{world.dossier}", headers=world.headers("gp")).status_code == 200


def test_a_professional_cannot_close_a_dossier_through_the_api(world: World) -> None:
    r = world.client.post(f"/fhir/Patient/{world.dossier}/$close", headers=world.headers("gp"),
                          json=CLOSE)
    assert r.status_code == 403


def test_an_assurance_maladie_counter_records_an_objection_then_creation_is_refused(world: World) -> None:
    ins = fake_nir_for(7_500_000 + world.n)
    r = world.client.post("/fhir/Patient/$object-creation", headers=world.headers(None, kind="assurance_maladie"),
                          json={"resourceType": "Parameters", "parameter": [
                              {"name": "identifier", "valueIdentifier": {"system": INS_SYSTEM, "value": ins}}]})
    assert r.status_code == 201, r.text
    r = world.client.post("/fhir/Patient", json=world.patient_resource(ins), headers=world.headers("gp"))
    assert r.status_code == 409


def test_a_counter_agent_records_a_guardian_who_then_reads_the_dossier(world: World) -> None:
    body = {"resourceType": "RelatedPerson", "patient": {"reference": f"Patient/{world.dossier}"},
            "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                                          "code": "GUARD"}]}],
            "name": [{"family": "Tuteur", "given": ["Jean"]}]}
    r = world.client.post("/fhir/RelatedPerson", json=body, headers=world.headers(None, kind="assurance_maladie"))
    assert r.status_code == 201, r.text
    rep_id = r.json()["id"]
    from carnet.access.actors import Actor, ActorKind
    from carnet.context import run
    from carnet.dossier import service as dossiers

    guardian = Actor(ActorKind.REPRESENTATIVE, id=rep_id)
    assert run(world.services, guardian, lambda ctx: dossiers.read(ctx, world.dossier))
    body["relationship"] = [{"coding": [{"code": "FRND"}]}]
    r = world.client.post("/fhir/RelatedPerson", json=body, headers=world.headers(None, kind="assurance_maladie"))
    assert r.status_code == 422


def test_no_identifier_or_name_reaches_the_logs(world: World, capsys) -> None:  # type: ignore[no-untyped-def]
    world.client.get("/fhir/Patient", params={"identifier": f"{INS_SYSTEM}|{world.ins}"}, headers=world.headers())
    world.client.post("/fhir/Patient", json=world.patient_resource(world.ins[:13] + "00"), headers=world.headers())
    world.client.get("/fhir/Patient", params={"family": "Testé"}, headers=world.headers())
    out = capsys.readouterr()
    logged = out.out + out.err
    assert "request" in logged  # the request log line is there...
    assert world.ins not in logged and world.ins[:13] not in logged and "Testé" not in logged  # ...without identity
