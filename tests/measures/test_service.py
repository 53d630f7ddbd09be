"""``carnet.measures.service`` on both databases: the bulk path stores once (duplicates recognised), the bounds and
units fail closed, a stopped source is refused, hiding follows a hidden document's rule, deleting a series, and one
audit record per upload."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from carnet.access.actors import Actor, ActorKind
from carnet.context import run
from carnet.db.tables import audit, measurement
from carnet.errors import FhirError
from carnet.measures import service as measures
from carnet.measures.catalogue import Measure
from tests.conftest import World

T0 = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)
PHONE = measures.SourceRef("app", "client:test-cgm", "CGM app")


def patient(world: World) -> Actor:
    return Actor(ActorKind.PATIENT, id=world.ins)


def pro(world: World, role: str) -> Actor:
    profession = {"nurse": "60", "pharmacist": "21", "physio": "70"}.get(role, "10")
    return Actor(ActorKind.PROFESSIONAL, id=world.pros[role], profession=profession)


def cgm(n: int, start: dt.datetime = T0) -> list[measures.Reading]:
    return [measures.reading(Measure.GLUCOSE, start + dt.timedelta(minutes=5 * i), 5.5 + (i % 7) / 10, "mmol/L")
            for i in range(n)]


def upload(world: World, readings: list[measures.Reading], source: measures.SourceRef = PHONE) -> measures.Upload:
    return run(world.services, patient(world), lambda ctx: measures.record(ctx, world.dossier, source, readings))


def test_an_upload_is_stored_once_and_a_repeat_counts_as_duplicates(world: World) -> None:
    first = upload(world, cgm(300))
    assert (first.received, first.stored_total, first.duplicates) == (300, 300, 0)
    again = upload(world, cgm(310))
    assert (again.received, again.stored_total, again.duplicates) == (310, 10, 300)
    with world.services.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(measurement)
                            .where(measurement.c.dossier_key == world.dossier)).scalar() == 310
        events = [r.detail for r in conn.execute(select(audit.c.detail).where(
            audit.c.dossier_key == world.dossier, audit.c.event == "measures.record").order_by(audit.c.seq))]
    assert len(events) == 2 and events[1]["duplicates"] == 300 and events[1]["measures"] == {"glucose": 10}


def test_glucose_is_stored_in_mg_per_dl_and_read_back_by_time_range(world: World) -> None:
    upload(world, cgm(12))
    got = run(world.services, patient(world), lambda ctx: measures.readings(
        ctx, world.dossier, Measure.GLUCOSE, T0 + dt.timedelta(minutes=10), T0 + dt.timedelta(minutes=30)))
    assert [r.taken_at for r in got] == [T0 + dt.timedelta(minutes=m) for m in (10, 15, 20, 25)]
    assert got[0].value == pytest.approx(5.7 * 18.0156)
    series = run(world.services, patient(world), lambda ctx: measures.visible_series(ctx, world.dossier))
    assert [(s.measure, s.readings, s.first_at) for s in series] == [(Measure.GLUCOSE, 12, T0)]


@pytest.mark.parametrize(("measure", "value", "unit", "value2", "ok"), [
    (Measure.WEIGHT, 500, "kg", None, True), (Measure.WEIGHT, 500.1, "kg", None, False),
    (Measure.WEIGHT, 80, "mg", None, False), (Measure.GLUCOSE, 55.5, "mmol/L", None, True),
    (Measure.GLUCOSE, 56, "mmol/L", None, False), (Measure.BLOOD_PRESSURE, 120, "mm[Hg]", 80, True),
    (Measure.BLOOD_PRESSURE, 80, "mm[Hg]", 120, False), (Measure.BLOOD_PRESSURE, 120, "mm[Hg]", None, False),
    (Measure.SPO2, 100, "%", None, True), (Measure.SPO2, 100.5, "%", None, False),
    (Measure.TEMPERATURE, 98.6, "[degF]", None, True), (Measure.TEMPERATURE, 98.6, "Cel", None, False),
])
def test_units_and_bounds_fail_closed(measure: Measure, value: float, unit: str, value2: float | None,
                                      ok: bool) -> None:
    if ok:
        measures.reading(measure, T0, value, unit, value2)
    else:
        with pytest.raises(measures.BadReading):
            measures.reading(measure, T0, value, unit, value2)


def test_a_stopped_source_is_refused_at_once_and_can_be_resumed(world: World) -> None:
    up = upload(world, cgm(3))
    assert run(world.services, patient(world), lambda ctx: measures.stop_source(ctx, world.dossier, up.source_no))
    with pytest.raises(FhirError) as refused:
        upload(world, cgm(5, T0 + dt.timedelta(days=1)))
    assert refused.value.status == 403
    listed = run(world.services, patient(world), lambda ctx: measures.sources(ctx, world.dossier))
    assert [(s.label, s.readings, s.stopped_at is not None) for s in listed] == [("CGM app", 3, True)]
    run(world.services, patient(world), lambda ctx: measures.stop_source(ctx, world.dossier, up.source_no,
                                                                          stop=False))
    assert upload(world, cgm(5, T0 + dt.timedelta(days=1))).stored_total == 5


def test_a_hidden_measure_is_seen_by_the_medecin_traitant_only(world: World) -> None:
    upload(world, cgm(3))
    run(world.services, patient(world), lambda ctx: measures.set_hidden(ctx, world.dossier, Measure.GLUCOSE, True))

    def names(role: str) -> list[str]:
        return [s.spec.name for s in run(world.services, pro(world, role),
                                         lambda ctx: measures.visible_series(ctx, world.dossier))]

    assert names("gp") == ["glucose"] and names("doctor") == [] and names("nurse") == []
    with pytest.raises(FhirError) as hidden:
        run(world.services, pro(world, "doctor"),
            lambda ctx: measures.readings(ctx, world.dossier, Measure.GLUCOSE))
    assert hidden.value.status == 404
    run(world.services, patient(world), lambda ctx: measures.set_hidden(ctx, world.dossier, Measure.GLUCOSE, False))
    assert names("doctor") == ["glucose"] and names("nurse") == ["glucose"]


def test_professions_read_measures_as_the_matrix_says_and_never_write(world: World) -> None:
    upload(world, cgm(2))
    assert run(world.services, pro(world, "pharmacist"),
               lambda ctx: len(measures.readings(ctx, world.dossier, Measure.GLUCOSE))) == 2
    with pytest.raises(FhirError):  # a physiotherapist's matrix entry (the default) has no measures
        run(world.services, pro(world, "physio"), lambda ctx: measures.readings(ctx, world.dossier, Measure.GLUCOSE))
    with pytest.raises(FhirError) as refused:
        run(world.services, pro(world, "gp"), lambda ctx: measures.record(ctx, world.dossier, PHONE, cgm(1)))
    assert refused.value.status == 403


def test_deleting_a_series_removes_its_readings(world: World) -> None:
    upload(world, cgm(20))
    assert run(world.services, patient(world),
               lambda ctx: measures.delete_series(ctx, world.dossier, Measure.GLUCOSE)) == 20
    assert run(world.services, patient(world), lambda ctx: measures.visible_series(ctx, world.dossier)) == []
    assert run(world.services, patient(world),
               lambda ctx: measures.readings(ctx, world.dossier, Measure.GLUCOSE)) == []
