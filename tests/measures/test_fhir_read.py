"""Measurements read as FHIR Observations: search by patient, code and date (newest first, paged, the policy's
filter before paging), read by id; a hidden measure is absent for a professional other than the médecin traitant,
and a profession the matrix does not let read measurements finds none."""

from __future__ import annotations

import datetime as dt
from typing import Any

from carnet.access.actors import Actor, ActorKind
from carnet.context import run
from carnet.measures import service as measures
from carnet.measures.catalogue import Measure
from tests.conftest import World

T0 = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)


def seed(world: World) -> None:
    readings = [measures.reading(Measure.GLUCOSE, T0 + dt.timedelta(hours=i), 100 + i, "mg/dL") for i in range(48)]
    readings.append(measures.reading(Measure.BLOOD_PRESSURE, T0, 131, "mm[Hg]", 84))
    run(world.services, Actor(ActorKind.PATIENT, id=world.ins), lambda ctx: measures.record(
        ctx, world.dossier, measures.SourceRef("app", "client:x", "Glucose app"), readings))


def search(world: World, role: str, **params: Any) -> Any:
    return world.client.get("/fhir/Observation", params={"patient": str(world.dossier), **params},
                            headers=world.headers(role))


def test_a_doctor_searches_glucose_by_date_and_reads_one_by_id(world: World) -> None:
    seed(world)
    r = search(world, "doctor", code="http://loinc.org|2339-0",
               date=["ge2026-11-01T10:00:00Z", "lt2026-11-01T20:00:00Z"], _count="5")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 10 and len(body["entry"]) == 5
    first = body["entry"][0]["resource"]
    assert first["effectiveDateTime"] == "2026-11-01T19:00:00Z" and first["valueQuantity"]["value"] == 111
    assert first["valueQuantity"]["code"] == "mg/dL"
    one = world.client.get(f"/fhir/Observation/{first['id']}", headers=world.headers("doctor"))
    assert one.status_code == 200 and one.json()["id"] == first["id"]
    bp = search(world, "gp", code="85354-9").json()["entry"][0]["resource"]
    assert [c["valueQuantity"]["value"] for c in bp["component"]] == [131, 84]


def test_hidden_measures_and_professions_without_rights_find_nothing(world: World) -> None:
    seed(world)
    run(world.services, Actor(ActorKind.PATIENT, id=world.ins),
        lambda ctx: measures.set_hidden(ctx, world.dossier, Measure.GLUCOSE, True))
    assert search(world, "doctor", code="2339-0").json()["total"] == 0
    assert search(world, "gp", code="2339-0").json()["total"] == 48
    assert search(world, "physio", code="85354-9").json()["total"] == 0
    assert search(world, "nurse", code="85354-9").json()["total"] == 1
    gp_first = search(world, "gp", code="2339-0", _count="1").json()["entry"][0]["resource"]["id"]
    assert world.client.get(f"/fhir/Observation/{gp_first}", headers=world.headers("doctor")).status_code == 404


def test_an_unknown_search_parameter_on_a_measurement_search_is_refused(world: World) -> None:
    assert search(world, "doctor", code="2339-0", status="final").status_code == 400
