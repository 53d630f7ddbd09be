"""The patient portal's Measurements page (issue 17 §1, §4): typing measurements with units and bounds (errors in
plain words, French by default), the devices and apps listed and stopped at once, a measure hidden from
professionals, a series deleted after confirming, an Apple Health export uploaded and imported by a job whose
progress the page polls."""

from __future__ import annotations

import html
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from carnet.access.actors import Actor, ActorKind
from carnet.context import run
from carnet.measures import service as measures
from carnet.measures.catalogue import Measure
from tests.conftest import World
from tests.measures.apple_export import write_export
from tests.portal.conftest import PORTAL_BASE, Patient, csrf_of


@pytest.fixture
def patient(world: World, app: Any) -> Iterator[Patient]:
    with TestClient(app, base_url=PORTAL_BASE, follow_redirects=False) as c:
        yield Patient(world, c).ready()


def text(r: Any) -> str:
    return html.unescape(r.text)


def add(p: Patient, **form: str) -> Any:
    page = p.browser.get("/portal/measures")
    assert page.status_code == 200
    return p.browser.post("/portal/measures", data={"csrf": csrf_of(page.text), **form})


def series(world: World) -> dict[str, int]:
    got = run(world.services, Actor(ActorKind.PATIENT, id=world.ins),
              lambda ctx: measures.visible_series(ctx, world.dossier))
    return {s.spec.name: s.readings for s in got}


def test_typed_measurements_are_saved_and_out_of_bounds_ones_explained(patient: Patient) -> None:
    world = patient.world
    assert add(patient, measure="weight", value="72,5", unit="kg", when="2026-11-30T08:00").status_code == 303
    assert add(patient, measure="blood-pressure", value="128", value2="82", unit="mm[Hg]",
               when="2026-11-30T08:05").status_code == 303
    assert add(patient, measure="glucose", value="6.2", unit="mmol/L", when="2026-11-30T08:10").status_code == 303
    wrong = add(patient, measure="glucose", value="120", unit="mmol/L", when="2026-11-30T08:15")
    assert wrong.status_code == 400
    assert "Glycémie : la valeur doit être comprise entre 0,56 et 55,51 mmol/L" in text(wrong)
    bp = add(patient, measure="blood-pressure", value="80", value2="120", unit="mm[Hg]")
    assert bp.status_code == 400 and "diastolique" in text(bp)
    assert series(world) == {"weight": 1, "blood-pressure": 1, "glucose": 1}
    page = text(patient.browser.get("/portal/measures"))
    assert "Poids" in page and "Tension artérielle" in page and "saisi par vous" in page


def test_a_device_is_stopped_a_measure_hidden_and_a_series_deleted_after_confirming(patient: Patient) -> None:
    world = patient.world
    cgm = measures.SourceRef("app", "client:cgm", "CGM app")
    reading = measures.reading(Measure.GLUCOSE, world.services.clock(), 110, "mg/dL")
    up = run(world.services, Actor(ActorKind.PATIENT, id=world.ins),
             lambda ctx: measures.record(ctx, world.dossier, cgm, [reading]))
    page = patient.browser.get("/portal/measures")
    assert "CGM app" in page.text
    r = patient.browser.post("/portal/measures/source", data={"csrf": csrf_of(page.text),
                                                              "source": str(up.source_no), "action": "stop"})
    assert r.status_code == 303
    with pytest.raises(measures.FhirError):
        run(world.services, Actor(ActorKind.PATIENT, id=world.ins),
            lambda ctx: measures.record(ctx, world.dossier, cgm, [reading]))
    r = patient.browser.post("/portal/measures/hide", data={"csrf": csrf_of(page.text), "measure": "glucose",
                                                            "hidden": "yes"})
    assert r.status_code == 303
    doctor = Actor(ActorKind.PROFESSIONAL, id=world.pros["doctor"], profession="10")
    assert run(world.services, doctor, lambda ctx: measures.visible_series(ctx, world.dossier)) == []
    ask = patient.browser.post("/portal/measures/delete", data={"csrf": csrf_of(page.text), "measure": "glucose"})
    assert ask.status_code == 200 and "Supprimer" in text(ask) and series(world) == {"glucose": 1}
    done = patient.browser.post("/portal/measures/delete", data={"csrf": csrf_of(page.text), "measure": "glucose",
                                                                 "confirm": "yes"})
    assert done.status_code == 303 and series(world) == {}


def test_an_apple_health_export_is_uploaded_and_its_import_progress_polled(patient: Patient,
                                                                            tmp_path: Path) -> None:
    path = tmp_path / "export.zip"
    write_export(path, 500)
    page = patient.browser.get("/portal/measures")
    with path.open("rb") as f:
        r = patient.browser.post("/portal/measures/import", data={"csrf": csrf_of(page.text)},
                                 files={"file": ("export.zip", f, "application/zip")},
                                 headers={"Accept": "application/json"})
    assert r.status_code == 200, r.text
    job = r.json()["job"]
    for _ in range(200):
        progress = patient.browser.get(f"/portal/measures/import/{job}/progress").json()
        if progress["state"] != "running":
            break
        time.sleep(0.05)
    assert progress["state"] == "done" and progress["percent"] == 100, progress
    assert "nouvelles mesures" in progress["summary"]
    assert series(patient.world)["glucose"] == 500
    assert "Import" in text(patient.browser.get(f"/portal/measures/import/{job}"))
