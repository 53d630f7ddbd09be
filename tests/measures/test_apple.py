"""Apple Health exports (``carnet.measures.apple``): streamed with bounded memory, mapped to the catalogue's
measures in their canonical units, blood pressure paired, bad records counted with reasons, a second import of the
same export stored once, one audit record; and through ``carnet ingest measurements``."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from sqlalchemy import select

from carnet.access.actors import Actor, ActorKind
from carnet.context import run
from carnet.db.tables import audit
from carnet.measures import apple
from carnet.measures import service as measures
from carnet.measures.catalogue import Measure
from tests.conftest import World
from tests.measures.apple_export import write_export


def patient(world: World) -> Actor:
    return Actor(ActorKind.PATIENT, id=world.ins)


def test_the_parser_keeps_no_element_it_has_read(tmp_path: Path) -> None:
    """Memory stays bounded whatever the size: the peak while reading 2,000 records is that of reading 200 (the
    200,000-record run, by peak resident memory, is tests/scale/test_apple_memory.py)."""
    peaks = []
    for n in (200, 2_000):
        path = tmp_path / f"export-{n}.zip"
        write_export(path, n, extra=False)
        tracemalloc.start()
        try:
            archive, member = apple.open_export(str(path))
            with archive, member:
                assert sum(1 for _ in apple.readings(member, apple.Report())) == n
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert peaks[1] < peaks[0] * 1.5, peaks


def test_an_export_is_imported_once_with_bad_records_reported(world: World, tmp_path: Path) -> None:
    path = tmp_path / "export.zip"
    counts = write_export(path, 1_000)
    report = run(world.services, patient(world), lambda ctx: apple.import_export(ctx, world.dossier, str(path)))
    assert report.bad == counts["bad"] == 20 and len(report.reasons) == apple.MAX_REASONS
    assert "HeartRate: value outside the accepted range (20-300 bpm)" in report.reasons
    assert report.skipped["ActiveEnergyBurned"] == counts["skipped"]
    series = {s.spec.name: s.readings for s in run(world.services, patient(world),
                                                   lambda ctx: measures.visible_series(ctx, world.dossier))}
    assert series == {"glucose": 1000, "weight": 10, "blood-pressure": 10, "heart-rate": 10, "spo2": 10}
    bp = run(world.services, patient(world),
             lambda ctx: measures.readings(ctx, world.dossier, Measure.BLOOD_PRESSURE, limit=1))
    assert (bp[0].value, bp[0].value2) == (128, 82)
    spo2 = run(world.services, patient(world), lambda ctx: measures.readings(ctx, world.dossier, Measure.SPO2))
    assert spo2[0].value == pytest.approx(97)
    glucose = run(world.services, patient(world),
                  lambda ctx: measures.readings(ctx, world.dossier, Measure.GLUCOSE, limit=2))
    assert glucose[0].value == pytest.approx(6.1 * 18.0156) and glucose[1].value == 91
    again = run(world.services, patient(world), lambda ctx: apple.import_export(ctx, world.dossier, str(path)))
    assert again.stored == 0 and again.duplicates == again.readings
    with world.services.engine.connect() as conn:
        details = [r.detail for r in conn.execute(select(audit.c.detail).where(
            audit.c.dossier_key == world.dossier, audit.c.event == "measures.import").order_by(audit.c.seq))]
    assert len(details) == 2 and details[0]["bad"] == 20 and details[0]["stored"] == report.stored


def test_a_file_that_is_not_an_export_is_refused_in_plain_words(world: World, tmp_path: Path) -> None:
    path = tmp_path / "notes.zip"
    apple.zipfile.ZipFile(path, "w").writestr("notes.txt", "hello")
    with pytest.raises(apple.NotAnExport):
        run(world.services, patient(world), lambda ctx: apple.import_export(ctx, world.dossier, str(path)))
