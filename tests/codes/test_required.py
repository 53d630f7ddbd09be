"""Requiring a code (issue 13 §1, as My Health Record's Record Access Code): once the patient requires it, a
professional not yet authorized can no longer record the patient's consent themselves, only take up a code; the
médecin traitant, the authorized professionals and emergency access keep their rules."""

from __future__ import annotations

import pytest

from carnet import codes
from carnet.context import run
from carnet.errors import FhirError
from tests.api.test_matrix import authorization
from tests.conftest import World
from tests.tasks.helpers import audit_events, patient, pro


def _require(world: World, value: bool = True) -> None:
    run(world.services, patient(world), lambda ctx: codes.set_required(ctx, world.dossier, value))


def _self_consent(world: World) -> int:
    body = authorization(world.dossier, world.pros["stranger"])
    return world.client.post("/fhir/Consent", json=body, headers=world.headers("stranger")).status_code


def test_a_professional_cannot_record_consent_once_a_code_is_required(world: World) -> None:
    _require(world)
    assert _self_consent(world) == 403
    r = world.client.get(f"/fhir/Patient/{world.dossier}", headers=world.headers("stranger"))
    assert r.status_code == 403 and "access code" in r.json()["issue"][0]["diagnostics"]
    r = world.client.get("/fhir/Patient", params={"identifier": f"urn:oid:1.2.250.1.213.1.4.10|{world.ins}"},
                         headers=world.headers("stranger"))
    [access] = [e for e in r.json()["entry"][0]["resource"]["extension"] if "extension" in e]
    assert {"url": "requiresCode", "valueBoolean": True} in access["extension"]
    code = run(world.services, patient(world), lambda ctx: codes.issue(ctx, world.dossier)).code
    r = world.client.post(f"/fhir/Patient/{world.dossier}/$redeem-access-code",
                          json={"resourceType": "Parameters", "parameter": [{"name": "code", "valueString": code}]},
                          headers=world.headers("stranger"))
    assert r.status_code == 200, r.text
    assert world.client.get(f"/fhir/Patient/{world.dossier}", headers=world.headers("stranger")).status_code == 200
    assert "access.code.require" in audit_events(world, outcome="0")


def test_the_gp_the_authorized_and_emergency_access_keep_their_rules(world: World) -> None:
    _require(world)
    for role in ("gp", "doctor"):
        assert world.client.get(f"/fhir/Patient/{world.dossier}", headers=world.headers(role)).status_code == 200
    r = world.client.get(f"/fhir/Patient/{world.dossier}",
                         headers=world.headers("stranger", mode="emergency", reason="unconscious in the ER"))
    assert r.status_code == 200


def test_no_longer_requiring_a_code_restores_the_consent_path(world: World) -> None:
    _require(world)
    _require(world, False)
    assert _self_consent(world) == 201


def test_only_the_patient_side_may_require_a_code(world: World) -> None:
    with pytest.raises(FhirError) as err:
        run(world.services, pro(world, "gp"), lambda ctx: codes.set_required(ctx, world.dossier, True))
    assert err.value.status == 403
    assert "access.code.require" in audit_events(world, outcome="4")
