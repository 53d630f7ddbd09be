"""The Apple Health import's progress lives in the database (``measure_import``): the page's poll may reach any
Carnet node. Two nodes are two applications (each its own services and connection pool) over one database."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient

from carnet.access.actors import Actor, ActorKind
from carnet.context import run
from carnet.db.engine import is_postgres
from carnet.db.tables import audit, measure_import
from carnet.errors import FhirError
from carnet.measures import apple, imports
from tests.conftest import World
from tests.measures.apple_export import write_export
from tests.portal.conftest import PORTAL_BASE, Patient, csrf_of


@pytest.fixture
def patient(world: World, app: Any) -> Iterator[Patient]:
    with TestClient(app, base_url=PORTAL_BASE, follow_redirects=False) as c:
        yield Patient(world, c).ready()


@pytest.fixture
def node_b(world: World) -> Iterator[TestClient]:
    from carnet.app import create_app
    from carnet.compose import build_services
    from carnet.db.engine import make_engine

    settings = world.services.settings
    other = build_services(settings, make_engine(settings.effective_database_url, pool_size=2))
    try:
        with TestClient(create_app(other), base_url=PORTAL_BASE, follow_redirects=False) as c:
            yield c
    finally:
        other.engine.dispose()


def upload(p: Patient, path: Path) -> str:
    page = p.browser.get("/portal/measures")
    with path.open("rb") as f:
        r = p.browser.post("/portal/measures/import", data={"csrf": csrf_of(page.text)},
                           files={"file": ("export.zip", f, "application/zip")},
                           headers={"Accept": "application/json"})
    assert r.status_code == 200, r.text
    return str(r.json()["job"])


def test_the_upload_on_one_node_and_the_polls_on_another(patient: Patient, node_b: TestClient,
                                                         tmp_path: Path) -> None:
    path = tmp_path / "export.zip"
    counts = write_export(path, 300)
    job = upload(patient, path)
    node_b.cookies.update(patient.browser.cookies)
    for _ in range(400):
        progress = node_b.get(f"/portal/measures/import/{job}/progress")
        assert progress.status_code == 200, progress.text
        if progress.json()["state"] != "running":
            break
        time.sleep(0.05)
    got = progress.json()
    readings = sum(counts[k] for k in ("glucose", "weight", "blood-pressure", "heart-rate", "spo2"))
    assert got["state"] == "done" and got["percent"] == 100, got
    assert got["stored"] == readings and got["bad"] == counts["bad"], (got, counts)
    received = got["stored"] + got["duplicates"]  # the blood pressures inside their Correlation come twice
    assert got["records"] > readings and "nouvelles mesures" in got["summary"]
    assert "Import" in node_b.get(f"/portal/measures/import/{job}").text
    again = upload(patient, path)  # the same export again: all duplicates, read on node B
    for _ in range(400):
        got = node_b.get(f"/portal/measures/import/{again}/progress").json()
        if got["state"] != "running":
            break
        time.sleep(0.05)
    assert got["state"] == "done" and got["stored"] == 0 and got["duplicates"] == received, got
    with patient.services.engine.connect() as conn:  # one record at the start, one at the end; none per poll
        events = sorted(conn.execute(select(audit.c.event).where(
            audit.c.dossier_key == patient.world.dossier, audit.c.event.like("measures.import%"))).scalars())
    assert events == ["measures.import", "measures.import", "measures.import.start", "measures.import.start"]


def test_a_file_that_is_not_an_export_fails_and_says_so_on_the_other_node(patient: Patient, node_b: TestClient,
                                                                         tmp_path: Path) -> None:
    path = tmp_path / "export.zip"
    path.write_bytes(b"not a zip at all")
    job = upload(patient, path)
    node_b.cookies.update(patient.browser.cookies)
    for _ in range(400):
        got = node_b.get(f"/portal/measures/import/{job}/progress").json()
        if got["state"] != "running":
            break
        time.sleep(0.05)
    assert got["state"] == "failed" and "pas un export" in got["summary"], got


def test_a_running_import_without_news_for_two_minutes_shows_as_stopped(patient: Patient) -> None:
    world = patient.world
    me = Actor(ActorKind.PATIENT, id=world.ins)
    job = run(world.services, me, lambda ctx: imports.start(ctx, world.dossier, 1000))
    assert patient.browser.get(f"/portal/measures/import/{job}/progress").json()["state"] == "running"
    with world.services.engine.begin() as conn:  # the node running it died three minutes ago
        conn.execute(update(measure_import).where(measure_import.c.import_id == job).values(
            updated_at=world.services.clock() - dt.timedelta(minutes=3)))
    got = patient.browser.get(f"/portal/measures/import/{job}/progress").json()
    assert got["state"] == "failed" and got["percent"] == 100, got
    assert "arrêté" in got["summary"] and "rien n'a été enregistré" in got["summary"]
    assert "relancez" in patient.browser.get(f"/portal/measures/import/{job}").text.replace("&#39;", "'")


def test_the_worker_removes_the_imports_unchanged_for_a_week_and_keeps_the_others(world: World) -> None:
    from carnet.notify import worker

    me = Actor(ActorKind.PATIENT, id=world.ins)
    now = world.services.clock()
    ages = {"old-done": (8, "done"), "old-running": (8, "running"), "recent-done": (6, "done"),
            "running": (0, "running")}
    jobs = {name: run(world.services, me, lambda ctx: imports.start(ctx, world.dossier, 1000)) for name in ages}
    with world.services.engine.begin() as conn:
        for name, (days, status) in ages.items():
            conn.execute(update(measure_import).where(
                measure_import.c.dossier_key == world.dossier, measure_import.c.import_id == jobs[name]).values(
                status=status, updated_at=now - dt.timedelta(days=days)))
    assert worker.run_jobs(world.services).jobs_failed == []
    with world.services.engine.connect() as conn:
        left = set(conn.execute(select(measure_import.c.import_id).where(
            measure_import.c.dossier_key == world.dossier)).scalars())
    assert left == {jobs["recent-done"], jobs["running"]}
    with pytest.raises(FhirError) as refused:  # an operator's job only
        run(world.services, me, imports.prune)
    assert refused.value.status == 403


def test_another_patient_cannot_read_the_import(patient: Patient, services: Any, client: TestClient,
                                                 app: Any) -> None:
    world = patient.world
    job = run(world.services, Actor(ActorKind.PATIENT, id=world.ins),
              lambda ctx: imports.start(ctx, world.dossier, 1000))
    with TestClient(app, base_url=PORTAL_BASE, follow_redirects=False) as c:
        other = Patient(World(services, client), c).ready()
        assert other.browser.get(f"/portal/measures/import/{job}/progress").status_code == 404
        assert other.browser.get(f"/portal/measures/import/{job}").status_code == 404
    doctor = Actor(ActorKind.PROFESSIONAL, id=world.pros["doctor"], profession="10")
    with pytest.raises(FhirError) as refused:
        run(world.services, doctor, lambda ctx: imports.status(ctx, world.dossier, job))
    assert refused.value.status in (403, 404)


def test_on_postgresql_the_progress_is_written_while_the_import_runs(world: World, tmp_path: Path) -> None:
    """The heartbeat's short transactions on their own connection neither wait on the import's open transaction
    nor make it wait: another connection sees the counts before the import commits."""
    if not is_postgres(world.services.engine):
        pytest.skip("SQLite: one writer, the import holds it; no progress until the end (see carnet.measures.imports)")
    path = tmp_path / "export.zip"
    write_export(path, 10_000, extra=False)
    me = Actor(ActorKind.PATIENT, id=world.ins)
    key = world.dossier
    job = run(world.services, me, lambda ctx: imports.start(ctx, key, path.stat().st_size))
    beat = imports.heartbeat(world.services, key, job)
    seen: list[tuple[str, int]] = []

    def progress(done: int, report: apple.Report) -> None:
        beat(done, report)
        with world.services.engine.connect() as conn:
            row = conn.execute(select(measure_import).where(measure_import.c.dossier_key == key,
                                                            measure_import.c.import_id == job)).one()
            seen.append((row.status, int(row.records)))

    def work(ctx: Any) -> None:
        imports.finish(ctx, key, job, apple.import_export(ctx, key, str(path), progress))

    run(world.services, me, work)
    assert seen == [("running", 10_000)]
    state = run(world.services, me, lambda ctx: imports.status(ctx, key, job))
    assert state.status == "done" and state.stored == 10_000 and state.records == 10_000
