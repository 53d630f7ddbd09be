"""PHD uploads over FHIR (HL7 PHD IG 2.0.0) with a patient app's token granted ``patient/Observation.c`` and
``patient/Device.c``: the official examples in ``../shared/examples/phd/`` are accepted (bundle-example-1 as
published; the single Observations wrapped in a transaction with their Device), duplicates are recognised, and what
Carnet does not know is refused with an OperationOutcome naming the field, nothing stored."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from carnet.access.actors import Actor, ActorKind
from carnet.context import run
from carnet.measures import service as measures
from carnet.measures.catalogue import Measure
from tests.auth.test_smart import App, app_for, bearer, signed_in  # noqa: F401
from tests.conftest import World
from tests.portal.conftest import Patient, browser, patient  # noqa: F401

PHD = Path(__file__).resolve().parents[2].parent / "shared" / "examples" / "phd"
SCOPES = "launch/patient patient/Observation.c patient/Device.c"


def example(name: str) -> dict[str, Any]:
    return dict(json.loads((PHD / name).read_text(encoding="utf-8")))


def wrap(observation: str, device: str) -> dict[str, Any]:
    """A single published Observation and its Device, as a gateway would send them: the Patient entry (no INS) and
    the Device with the ids the Observation references."""
    pat, dev, obs = example("patientExample-1.json"), example(device), example(observation)
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:0f3a1e2c-1111-4a5b-9c1d-000000000001", "resource": pat,
         "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": "urn:uuid:0f3a1e2c-1111-4a5b-9c1d-000000000002", "resource": dev,
         "request": {"method": "POST", "url": "Device"}},
        {"fullUrl": "urn:uuid:0f3a1e2c-1111-4a5b-9c1d-000000000003", "resource": obs,
         "request": {"method": "POST", "url": "Observation"}}]}


@pytest.fixture
def token(signed_in: Patient, app_for: Any) -> str:  # noqa: F811
    app: App = app_for(SCOPES)
    return str(app.tokens(scope=SCOPES)["access_token"])


def post(world: World, token: str, bundle: dict[str, Any]) -> Any:
    return world.client.post("/fhir", json=bundle, headers={**bearer(token), "Content-Type": "application/fhir+json"})


def series(world: World) -> dict[str, int]:
    got = run(world.services, Actor(ActorKind.PATIENT, id=world.ins),
              lambda ctx: measures.visible_series(ctx, world.dossier))
    return {s.spec.name: s.readings for s in got}


def test_the_published_transaction_bundle_is_stored_and_a_repeat_is_recognised(world: World, token: str) -> None:
    r = post(world, token, example("bundle-example-1.json"))
    assert r.status_code == 200, r.text
    statuses = [e["response"]["status"] for e in r.json()["entry"]]
    assert statuses == ["200 OK", "200 OK", "200 OK", "200 OK", "201 Created", "201 Created"]
    assert series(world) == {"heart-rate": 1, "spo2": 1}
    again = post(world, token, example("bundle-example-1.json"))
    assert [e["response"]["status"] for e in again.json()["entry"]][4:] == ["200 OK", "200 OK"]
    assert series(world) == {"heart-rate": 1, "spo2": 1}
    sources = run(world.services, Actor(ActorKind.PATIENT, id=world.ins),
                  lambda ctx: measures.sources(ctx, world.dossier))
    assert {(s.label, s.readings) for s in sources} >= {("Nonin Medical, Inc. Model 3150", 2)}


@pytest.mark.parametrize(("observation", "device", "name"), [
    ("compound-numeric-blood-pressure.json", "phd-711000FEFF5F49B0.B0495F001071.json", "blood-pressure"),
    ("glucose-observation.json", "phd-74E8FFFEFF051C00.001C05FFE874.json", "glucose"),
    ("temperature-observation.json", "phd-74E8FFFEFF051C00.001C05FFE874.json", "temperature"),
    ("numeric-spo2-alarm.json", "phd-74E8FFFEFF051C00.001C05FFE874.json", "spo2"),
    ("numeric-spotnumeric.json", "phd-74E8FFFEFF051C00.001C05FFE874.json", "heart-rate"),
])
def test_each_published_observation_is_stored_in_its_canonical_unit(world: World, token: str, observation: str,
                                                                      device: str, name: str) -> None:
    r = post(world, token, wrap(observation, device))
    assert r.status_code == 200, r.text
    assert r.json()["entry"][2]["response"]["status"] == "201 Created"
    assert series(world) == {name: 1}
    if name == "blood-pressure":
        got = run(world.services, Actor(ActorKind.PATIENT, id=world.ins),
                  lambda ctx: measures.readings(ctx, world.dossier, Measure.BLOOD_PRESSURE))
        assert (got[0].value, got[0].value2) == (116, 71)


@pytest.mark.parametrize(("change", "field", "status"), [
    (lambda o: o["code"].update(coding=[{"system": "urn:iso:std:iso:11073:10101", "code": "188740"}]),
     "Bundle.entry[2].resource.code", 422),
    (lambda o: o["valueQuantity"].update(code="mmol/L", value=99), "Bundle.entry[2].resource.valueQuantity", 422),
    (lambda o: o["valueQuantity"].update(code="kg"), "Bundle.entry[2].resource.valueQuantity.code", 422),
    (lambda o: o.update(status="preliminary"), "Bundle.entry[2].resource.status", 422),
    (lambda o: o.update(effectiveDateTime="2025-01-08"), "Bundle.entry[2].resource.effectiveDateTime", 422),
    (lambda o: o["subject"].update(reference="Patient/someone-else"), "Bundle.entry[2].resource.subject", 422),
])
def test_what_carnet_does_not_know_is_refused_naming_the_field_and_nothing_is_stored(
        world: World, token: str, change: Any, field: str, status: int) -> None:
    bundle = wrap("glucose-observation.json", "phd-74E8FFFEFF051C00.001C05FFE874.json")
    change(bundle["entry"][2]["resource"])
    r = post(world, token, bundle)
    assert r.status_code == status, r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    assert field in r.json()["issue"][0]["expression"][0]
    assert series(world) == {}


def test_a_token_without_the_write_scopes_cannot_upload(world: World, signed_in: Patient,  # noqa: F811
                                                         app_for: Any) -> None:  # noqa: F811
    read_only = app_for().tokens()["access_token"]
    r = post(world, read_only, copy.deepcopy(example("bundle-example-1.json")))
    assert r.status_code == 403 and series(world) == {}


def test_a_stopped_device_is_refused_at_once(world: World, token: str) -> None:
    assert post(world, token, example("bundle-example-1.json")).status_code == 200
    patient_actor = Actor(ActorKind.PATIENT, id=world.ins)
    nonin = next(s for s in run(world.services, patient_actor, lambda ctx: measures.sources(ctx, world.dossier))
                 if s.label.startswith("Nonin"))
    run(world.services, patient_actor, lambda ctx: measures.stop_source(ctx, world.dossier, nonin.source_no))
    r = post(world, token, example("bundle-example-1.json"))
    assert r.status_code == 403 and "stopped" in r.json()["issue"][0]["diagnostics"]


def test_only_the_measurement_write_scopes_are_registrable_and_the_consent_screen_says_so(
        world: World, signed_in: Patient, app_for: Any) -> None:  # noqa: F811
    from carnet import admin

    with world.services.engine.begin() as conn:
        with pytest.raises(ValueError):
            admin.add_client(conn, client_id=f"bad-{world.n}", name="x", kind="patient_app", jwks=None,
                             scopes="patient/Observation.cu", redirect_uris=["https://app.example.test/cb"])
    app: App = app_for(SCOPES)
    page = app.authorize(scope=SCOPES)
    assert page.status_code == 200
    assert "ajouter des mesures" in page.text and "Elle peut seulement lire" not in page.text


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*path, i))
    return out


def test_a_mutated_phd_bundle_is_refused_cleanly_or_stored(world: World) -> None:
    """Any element of the published Bundle replaced by a value of another JSON type: a FHIR error (4xx) and nothing
    stored, or a success; never another exception."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from carnet.errors import FhirError
    from carnet.measures import phd

    base = example("bundle-example-1.json")
    paths = [p for p in _paths(base) if p]
    patient_actor = Actor(ActorKind.PATIENT, id=world.ins)

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(where=st.sampled_from(paths), value=st.one_of(st.integers(), st.text(max_size=5), st.none(),
                                                          st.just([]), st.just({}), st.just([1, {"a": []}])))
    def mutate(where: tuple[Any, ...], value: Any) -> None:
        bundle = copy.deepcopy(base)
        node: Any = bundle
        for k in where[:-1]:
            node = node[k]
        node[where[-1]] = value
        try:
            run(world.services, patient_actor, lambda ctx: phd.upload(
                ctx, world.dossier, bundle, frozenset({"patient/Observation.c", "patient/Device.c"}), "fuzz",
                "https://carnet.test/fhir", lambda rtype: True))
        except FhirError as exc:
            assert 400 <= exc.status < 500

    mutate()
