"""The claims ingest: idempotence, bad lines, unknown and closed dossiers, the 24-month window, streaming, audit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from carnet.access.actors import Actor, ActorKind
from carnet.audit.log import verify_chain
from carnet.claims import service as claims
from carnet.claims.ingest import HeaderError, ingest, months_before
from carnet.context import Services, run
from carnet.db.tables import audit, claim_line, dossier
from carnet.dossier import service as dossiers
from carnet.identity.ins import fake_nir_for
from tests.claims.helpers import byte_lines, claims_file, line, sample
from tests.conftest import World

OPERATOR = Actor(ActorKind.OPERATOR, id="test-operator")


def _count(services: Services, table, key) -> int:  # type: ignore[no-untyped-def]
    with services.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(table.c.dossier_key == key))
                   .scalar_one())


def _ingest_events(services: Services, key) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    with services.engine.connect() as conn:
        return [dict(r.detail) for r in conn.execute(select(audit).where(
            audit.c.dossier_key == key, audit.c.event == "claims.ingest").order_by(audit.c.seq))]


def test_ingesting_the_same_file_twice_changes_nothing(world: World) -> None:
    svc = world.services
    data = claims_file(sample(world.ins, svc.clock().date()))
    first = ingest(svc, byte_lines(data))
    assert (first.read, first.inserted, first.duplicates, first.bad) == (4, 4, 0, 0)
    assert _ingest_events(svc, world.dossier) == [{"lines": 4}]
    second = ingest(svc, byte_lines(data))
    assert (second.read, second.inserted, second.duplicates) == (4, 0, 4)
    assert second.dossiers == 0
    assert _count(svc, claim_line, world.dossier) == 4
    assert _ingest_events(svc, world.dossier) == [{"lines": 4}]  # no new audit record


def test_a_line_written_differently_but_meaning_the_same_is_a_duplicate(world: World) -> None:
    svc = world.services
    day = svc.clock().date() - dt.timedelta(days=5)
    ingest(svc, byte_lines(claims_file([line(world.ins, day, system="NGAP", code="AMI 1.5", amount="3,15")])))
    s = ingest(svc, byte_lines(claims_file([line(world.ins, day, system="ngap", code=" ami  1.5", amount="3.15")])))
    assert (s.inserted, s.duplicates) == (0, 1)


def test_bad_lines_are_reported_with_their_number_and_reason_without_stopping(world: World) -> None:
    svc = world.services
    today = svc.clock().date()
    wrong_key = world.ins[:13] + f"{(int(world.ins[13:]) % 97) + 1:02d}"
    lines = [
        line(world.ins, today),                                     # line 2: good
        line(wrong_key, today),                                     # line 3: bad NIR key
        line(world.ins, today).replace(today.isoformat(), "2025-13-40"),  # line 4: bad date
        line(world.ins, today, system="LOINC"),                     # line 5: unknown code system
        line(world.ins, today) + ";extra",                          # line 6: wrong column count
        line(world.ins, today, system="CCAM", code="QZF001"),       # line 7: bad CCAM code
        line(world.ins, today - dt.timedelta(days=1)),              # line 8: good
    ]
    seen: list[tuple[int, str]] = []
    s = ingest(svc, byte_lines(claims_file(lines)), on_bad=lambda n, r: seen.append((n, r)))
    assert (s.read, s.inserted, s.bad) == (7, 2, 5)
    assert [n for n, _ in seen] == [3, 4, 5, 6, 7]
    reasons = dict(seen)
    assert "key" in reasons[3]
    assert reasons[4].startswith("care_date")
    assert reasons[5].startswith("code_system")
    assert "columns" in reasons[6]
    assert reasons[7].startswith("code")
    assert s.bad_lines == seen
    for _, reason in seen:  # never the content: health data
        assert world.ins not in reason and "Exérèse" not in reason


def test_a_file_without_the_header_is_refused_before_anything_is_written(world: World) -> None:
    data = line(world.ins, world.services.clock().date()).encode() + b"\n"
    with pytest.raises(HeaderError):
        ingest(world.services, [data])
    assert _count(world.services, claim_line, world.dossier) == 0


def test_unknown_and_closed_dossiers_are_counted_and_not_written(world: World) -> None:
    svc = world.services
    today = svc.clock().date()
    closed = World(svc, world.client)
    run(svc, Actor(ActorKind.PATIENT, id=closed.ins), lambda ctx: dossiers.close(ctx, closed.dossier, "patient"))
    nobody = fake_nir_for(9_000_000 + world.n)
    data = claims_file([line(world.ins, today), line(nobody, today), line(nobody, today, code="QZFA002"),
                        line(closed.ins, today)])
    s = ingest(svc, byte_lines(data))
    assert (s.inserted, s.unknown) == (1, 3)
    assert _count(svc, claim_line, closed.dossier) == 0


def test_lines_older_than_the_window_are_skipped_purged_and_never_shown(world: World,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    svc = world.services
    now = svc.clock()
    today = now.date()
    old_day = months_before(today, 24) - dt.timedelta(days=1)
    s = ingest(svc, byte_lines(claims_file([line(world.ins, old_day), line(world.ins, today - dt.timedelta(days=2)),
                                            line(world.ins, months_before(today, 23))])))
    assert (s.inserted, s.too_old) == (2, 1)
    patient = Actor(ActorKind.PATIENT, id=world.ins)
    assert len(run(svc, patient, lambda ctx: claims.care_history(ctx, world.dossier))) == 2
    later = now + dt.timedelta(days=62)  # two months on: the 23-month-old line is now outside the window
    monkeypatch.setattr(svc, "clock", lambda: later)
    assert len(run(svc, patient, lambda ctx: claims.care_history(ctx, world.dossier))) == 1  # filtered at once
    assert _count(svc, claim_line, world.dossier) == 2
    removed = run(svc, OPERATOR, claims.purge_old)
    assert removed >= 1
    assert _count(svc, claim_line, world.dossier) == 1


def test_only_an_operator_runs_the_claims_purge(world: World) -> None:
    from carnet.errors import FhirError

    with pytest.raises(FhirError):
        run(world.services, Actor(ActorKind.PATIENT, id=world.ins), claims.purge_old)


def test_the_file_is_consumed_incrementally_batch_by_batch(world: World) -> None:
    svc = world.services
    today = svc.clock().date()
    lines = [line(world.ins, today - dt.timedelta(days=i % 600), code=f"QZFA{i:03d}") for i in range(25)]
    data = byte_lines(claims_file(lines))
    written_while_reading: list[int] = []

    def stream() -> Iterator[bytes]:
        for i, raw in enumerate(data):
            if i == 15:  # header + 14 lines handed out: batches of 5 have been written before the file's end
                written_while_reading.append(_count(svc, claim_line, world.dossier))
            yield raw

    s = ingest(svc, stream(), batch=5)
    assert written_while_reading[0] >= 5  # the first batch at least (the second may still be in flight)
    assert s.inserted == 25
    assert [d["lines"] for d in _ingest_events(svc, world.dossier)] == [5, 5, 5, 5, 5]  # one record per batch


def test_the_audit_chain_verifies_after_bulk_ingests_between_single_records(world: World) -> None:
    svc = world.services
    today = svc.clock().date()
    ingest(svc, byte_lines(claims_file([line(world.ins, today, code=f"QZFA{i:03d}") for i in range(3)])), batch=2)
    patient = Actor(ActorKind.PATIENT, id=world.ins)
    run(svc, patient, lambda ctx: claims.care_history(ctx, world.dossier))  # a single-record append in between
    ingest(svc, byte_lines(claims_file([line(world.ins, today, code="QZFA900")])))
    other = World(svc, world.client)  # a chain written first by the bulk path? its head exists already; still chained
    ingest(svc, byte_lines(claims_file([line(other.ins, today), line(world.ins, today, code="QZFA901")])))
    with svc.engine.connect() as conn:
        assert verify_chain(conn, world.dossier) == []
        assert verify_chain(conn, other.dossier) == []
    assert [d["lines"] for d in _ingest_events(svc, world.dossier)] == [2, 1, 1, 1]


def test_the_bulk_append_starts_a_chain_that_verifies(services: Services) -> None:
    import uuid

    from carnet.audit.log import record, record_many

    fresh = [uuid.uuid4(), uuid.uuid4()]
    now = services.clock()
    with services.engine.begin() as conn:
        record_many(conn, [(k, {"lines": 1}) for k in fresh], actor=OPERATOR, action="C", event="claims.ingest",
                    now=now)
        record(conn, dossier_key=fresh[0], actor=OPERATOR, action="R", event="claims.read", now=now)
        record_many(conn, [(fresh[0], {"lines": 2})], actor=OPERATOR, action="C", event="claims.ingest", now=now)
    with services.engine.connect() as conn:
        assert verify_chain(conn, fresh[0]) == []
        assert verify_chain(conn, fresh[1]) == []
        assert conn.execute(select(func.count()).select_from(audit).where(audit.c.dossier_key == fresh[0])
                            ).scalar_one() == 3


def test_a_quoted_label_keeps_its_semicolon_and_backslash(world: World) -> None:
    svc = world.services
    day = svc.clock().date()
    text = line(world.ins, day, label="X").replace(";X;", ';"Bilan; suite \\ contrôle";')
    s = ingest(svc, byte_lines(claims_file([text])))
    assert s.inserted == 1
    patient = Actor(ActorKind.PATIENT, id=world.ins)
    [view] = run(svc, patient, lambda ctx: claims.care_history(ctx, world.dossier))
    assert view.label == "Bilan; suite \\ contrôle"


def test_interleaved_patients_with_identical_lines_each_get_their_own(world: World) -> None:
    svc = world.services
    today = svc.clock().date()
    other = World(svc, world.client)
    same = [line(ins, today - dt.timedelta(days=d)) for d in (1, 2) for ins in (world.ins, other.ins, world.ins)]
    s = ingest(svc, byte_lines(claims_file(same)))
    assert (s.read, s.inserted, s.duplicates) == (6, 4, 2)  # the repeated line of world.ins is a duplicate
    assert _count(svc, claim_line, world.dossier) == 2
    assert _count(svc, claim_line, other.dossier) == 2
    assert _ingest_events(svc, world.dossier) == [{"lines": 2}]
    assert _ingest_events(svc, other.dossier) == [{"lines": 2}]


def test_purging_a_closed_dossier_takes_its_claim_lines_with_it(world: World) -> None:
    """claim_line has no foreign key to dossier (migration 0006): the purge itself must leave no orphan line."""
    svc = world.services
    ingest(svc, byte_lines(claims_file(sample(world.ins, svc.clock().date()))))
    assert _count(svc, claim_line, world.dossier) == 4
    run(svc, Actor(ActorKind.PATIENT, id=world.ins), lambda ctx: dossiers.close(ctx, world.dossier))
    later = svc.clock() + dt.timedelta(days=366 * 11)
    original = svc.clock
    svc.clock = lambda: later
    try:
        assert world.dossier in run(svc, OPERATOR, dossiers.purge_due)
    finally:
        svc.clock = original
    assert _count(svc, claim_line, world.dossier) == 0


def test_a_line_for_a_dossier_closed_since_the_lookup_is_not_written(world: World) -> None:
    """The insert joins the dossier, active, in the same statement as it writes: the check the foreign key gave."""
    from carnet.claims import ingest as ingest_module

    svc = world.services
    if svc.engine.dialect.name == "sqlite":
        pytest.skip("SQLite has one writer: the ingest's transaction keeps any close out until it commits")
    original = ingest_module._allowed_dossiers

    def close_after_lookup(ctx, nirs):  # type: ignore[no-untyped-def]
        allowed = original(ctx, nirs)
        with svc.engine.begin() as conn:  # another transaction closes the dossier in between
            conn.execute(dossier.update().where(dossier.c.dossier_key == world.dossier).values(status="closed"))
        return allowed

    ingest_module._allowed_dossiers = close_after_lookup
    try:
        s = ingest(svc, byte_lines(claims_file(sample(world.ins, svc.clock().date()))))
    finally:
        ingest_module._allowed_dossiers = original
    assert s.inserted == 0 and _count(svc, claim_line, world.dossier) == 0
