"""Alerts evaluated as data arrives, on both databases: an upload marks the dossier, the worker's job evaluates it
as the trend evaluator, one alert per episode to the médecin traitant, acknowledged (audited); none when the patient
turned alerts off or has no médecin traitant; a copy to the patient only if they chose so."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from carnet.access.actors import Actor, ActorKind
from carnet.context import run
from carnet.db.tables import audit, outbox, trend_alert_by_recipient, trend_dossier, trend_episode
from carnet.dossier import service as dossiers
from carnet.errors import FhirError
from carnet.measures import service as measures
from carnet.measures.catalogue import Measure
from carnet.trends import alerts
from carnet.trends import service as trends
from tests.conftest import World
from tests.notify.conftest import add_account

OXIMETER = measures.SourceRef("device", "urn:oid:1.2.3|oxi-1", "Oximeter")


def patient(world: World) -> Actor:
    return Actor(ActorKind.PATIENT, id=world.ins)


def gp(world: World, role: str = "gp") -> Actor:
    return Actor(ActorKind.PROFESSIONAL, id=world.pros[role], profession="10")


def spo2(world: World, *values: float) -> None:
    """Readings a minute apart, the last one a minute ago (the worker evaluates at the clock's now)."""
    now = world.services.clock()
    rs = [measures.reading(Measure.SPO2, now - dt.timedelta(minutes=len(values) - i), v, "%")
          for i, v in enumerate(values)]
    run(world.services, patient(world), lambda ctx: measures.record(ctx, world.dossier, OXIMETER, rs))


def episodes(world: World) -> list[tuple[str, bool]]:
    with world.services.engine.connect() as conn:
        return [(r.rule_id, r.closed_at is None) for r in conn.execute(
            select(trend_episode).where(trend_episode.c.dossier_key == world.dossier)
            .order_by(trend_episode.c.opened_at, trend_episode.c.episode_id))]


def evaluate(world: World) -> trends.Outcome:
    """What the worker's job does for this dossier (the job takes every pending dossier of the database)."""
    return run(world.services, trends.EVALUATOR, lambda ctx: trends.evaluate(ctx, world.dossier))


def test_an_upload_marks_the_dossier_and_the_job_evaluates_it(world: World) -> None:
    spo2(world, 97, 91)
    with world.services.engine.connect() as conn:
        assert conn.execute(select(trend_dossier.c.pending).where(
            trend_dossier.c.dossier_key == world.dossier)).scalar() is True
    assert trends.evaluate_pending(world.services) >= 1
    assert episodes(world) == [("spo2-low", True)]
    with world.services.engine.connect() as conn:
        assert conn.execute(select(trend_dossier.c.pending).where(
            trend_dossier.c.dossier_key == world.dossier)).scalar() is False
        lookup = conn.execute(select(trend_alert_by_recipient).where(
            trend_alert_by_recipient.c.recipient_id == world.pros["gp"])).all()
        detail = conn.execute(select(audit.c.detail).where(
            audit.c.dossier_key == world.dossier, audit.c.event == "trends.evaluate")
            .order_by(audit.c.seq)).scalars().all()
    assert [r.dossier_key for r in lookup] == [world.dossier]
    assert detail[-1]["opened"] == ["spo2-low"] and "91" not in str(detail)  # rule ids and counts, never a value


def test_one_alert_per_episode_and_a_new_one_after_it_closed(world: World) -> None:
    spo2(world, 91)
    assert evaluate(world).opened == ["spo2-low"]
    spo2(world, 90, 89)  # still low: the open episode holds, no new alert
    assert evaluate(world).opened == []
    spo2(world, 96)  # recovered: the episode closes
    assert evaluate(world).closed == ["spo2-low"]
    spo2(world, 90)  # low again: a new episode, a new alert
    assert evaluate(world).opened == ["spo2-low"]
    assert episodes(world) == [("spo2-low", False), ("spo2-low", True)]


def test_the_gp_reads_the_alert_and_acknowledges_it_audited(world: World) -> None:
    spo2(world, 91)
    evaluate(world)
    listed, total = run(world.services, gp(world), lambda ctx: alerts.inbox(ctx))
    mine = [a for a in listed if a.dossier_key == world.dossier]
    assert total >= 1 and len(mine) == 1 and mine[0].readable and mine[0].patient is not None
    assert mine[0].rule_id == "spo2-low" and mine[0].figure == 91
    # another professional cannot acknowledge it: it looks absent
    with pytest.raises(FhirError) as refused:
        run(world.services, gp(world, "doctor"),
            lambda ctx: alerts.acknowledge(ctx, world.dossier, mine[0].episode_id))
    assert refused.value.status == 404
    assert run(world.services, gp(world), lambda ctx: alerts.acknowledge(ctx, world.dossier, mine[0].episode_id))
    with world.services.engine.connect() as conn:
        assert alerts.unacknowledged(conn, world.pros["gp"]) == 0
        acks = conn.execute(select(audit.c.actor_id, audit.c.outcome).where(
            audit.c.dossier_key == world.dossier, audit.c.event == "trends.alert.ack")).all()
    assert {a.actor_id for a in acks} == {world.pros["gp"], world.pros["doctor"]} and len(acks) == 2


def test_no_alert_when_the_patient_turned_alerts_off_and_a_copy_only_if_they_chose_it(world: World) -> None:
    add_account(world, email=f"alix{world.n}@example.org")
    spo2(world, 91)
    assert evaluate(world).opened == ["spo2-low"]  # by default: to the médecin traitant, no copy to the patient
    spo2(world, 96)
    evaluate(world)
    run(world.services, patient(world), lambda ctx: alerts.set_choices(ctx, world.dossier, False, True))
    spo2(world, 88)
    assert not evaluate(world).evaluated and episodes(world) == [("spo2-low", False)]
    run(world.services, patient(world), lambda ctx: alerts.set_choices(ctx, world.dossier, True, True))
    spo2(world, 88)
    assert evaluate(world).opened == ["spo2-low"]
    with world.services.engine.connect() as conn:
        sent = conn.execute(select(outbox.c.event).where(outbox.c.dossier_key == world.dossier,
                                                         outbox.c.event == trends.ALERT_EVENT)).all()
    assert len(sent) == 1  # the second episode only, once the patient chose it
    choices = run(world.services, patient(world), lambda ctx: alerts.choices(ctx, world.dossier))
    assert choices == alerts.Choices(gp_alerts=True, patient_alerts=True)


def test_no_alert_for_a_patient_without_a_medecin_traitant(world: World) -> None:
    run(world.services, patient(world), lambda ctx: dossiers.set_treating_gp(ctx, world.dossier, None))
    spo2(world, 85)
    assert not evaluate(world).evaluated and episodes(world) == []


def test_the_evaluator_reads_nothing_through_the_other_doors(world: World) -> None:
    with pytest.raises(FhirError) as refused:
        run(world.services, trends.EVALUATOR, lambda ctx: measures.readings(ctx, world.dossier, Measure.SPO2))
    assert refused.value.status in (403, 404)
    with pytest.raises(FhirError):
        run(world.services, trends.EVALUATOR, lambda ctx: dossiers.read(ctx, world.dossier))
    with pytest.raises(FhirError):
        run(world.services, trends.EVALUATOR, lambda ctx: trends.evaluate(ctx, uuid.uuid4()))


def test_a_closed_dossier_is_refused_and_no_longer_pending(world: World) -> None:
    spo2(world, 97)
    run(world.services, patient(world), lambda ctx: dossiers.close(ctx, world.dossier))
    trends.evaluate_pending(world.services)
    with world.services.engine.connect() as conn:
        assert conn.execute(select(trend_dossier.c.pending).where(
            trend_dossier.c.dossier_key == world.dossier)).scalar() is False
        refused = conn.execute(select(audit.c.outcome).where(
            audit.c.dossier_key == world.dossier, audit.c.event == "trends.evaluate")
            .order_by(audit.c.seq)).scalars().all()
    assert refused and all(o != "0" for o in refused)


def test_a_rules_file_that_does_not_load_stops_the_job_not_the_worker(
        world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "rules.json"
    bad.write_text('{"rules": {"r": {"kind": "rising"}}}')
    monkeypatch.setattr(world.services, "settings", dataclasses.replace(world.services.settings,
                                                                        trend_rules_file=str(bad)))
    spo2(world, 85)
    assert trends.evaluate_pending(world.services) == 0  # logged, nothing evaluated, no exception
    assert episodes(world) == []
    with world.services.engine.connect() as conn:
        assert conn.execute(select(trend_dossier.c.pending).where(
            trend_dossier.c.dossier_key == world.dossier)).scalar() is True  # evaluated once the file is fixed


def test_a_watchs_irregular_rhythm_notification_in_an_apple_health_export_alerts_the_gp(world: World,
                                                                                         tmp_path: Path) -> None:
    import zipfile

    from carnet.measures import apple

    when = (world.services.clock() - dt.timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S +0000")
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(apple.MEMBER, '<?xml version="1.0" encoding="UTF-8"?>\n<HealthData locale="fr_FR">\n'
                   f' <Record type="{apple.IRREGULAR_RHYTHM_EVENT}" sourceName="Apple Watch" sourceVersion="10.1" '
                   f'creationDate="{when}" startDate="{when}" endDate="{when}" value="HKCategoryValueNotApplicable"/>\n'
                   '</HealthData>\n')
    report = run(world.services, patient(world), lambda ctx: apple.import_export(ctx, world.dossier, str(path)))
    assert (report.stored, report.bad) == (1, 0)
    evaluate(world)
    assert ("irregular-rhythm", True) in episodes(world)
