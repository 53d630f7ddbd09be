"""Which events queue which messages, for whom, on which channels: the outbox rows written in the event's own
transaction (issue 4 §5). Recipients are inserted directly; events come through the real services and API."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import insert

from carnet.access.actors import Actor, Mode
from carnet.context import Context, run
from carnet.db.tables import professional_seen
from carnet.dossier import service as dossiers
from carnet.errors import FhirError
from carnet.notify import outbox as notify_outbox
from carnet.notify.rules import announce_due
from carnet.notify.worker import WORKER_ACTOR
from tests.conftest import World
from tests.notify.conftest import (
    add_account,
    at,
    messages,
    patient,
    pro,
    publish,
    publish_over_api,
)


def channels(rows: list[Any]) -> list[str]:
    return sorted(r.channel for r in rows)


def read_dossier(world: World, actor: Actor, when: dt.datetime | None = None) -> None:
    services = at(world.services, when) if when else world.services
    run(services, actor, lambda ctx: dossiers.read(ctx, world.dossier))


def test_a_published_document_queues_one_message_per_chosen_channel(world: World) -> None:
    both = add_account(world, email=f"both-{world.n}@example.org", phone="+33612345678",
                       notify={"documents": ["email", "sms"]})
    default = add_account(world, email=f"default-{world.n}@example.org", phone="+33698765432")
    phone_only = add_account(world, phone="+33611111111")
    publish_over_api(world)
    assert channels(messages(world.services, world.dossier, event="document.new", account_id=both)) == \
        ["email", "sms"]
    assert channels(messages(world.services, world.dossier, event="document.new", account_id=default)) == ["email"]
    assert channels(messages(world.services, world.dossier, event="document.new", account_id=phone_only)) == ["sms"]
    row = messages(world.services, world.dossier, event="document.new", account_id=both)[0]
    assert (row.status, row.attempts, row.template, row.params) == ("pending", 0, "document_new", {})


def test_several_documents_in_one_transaction_give_each_person_one_message(world: World) -> None:
    acc = add_account(world, email=f"bundle-{world.n}@example.org")
    from carnet.documents import service as documents
    from tests.notify.conftest import PDF, docref

    def two(ctx: Context) -> None:
        for _ in range(2):
            documents.publish(ctx, world.dossier, docref(), documents.Content(PDF, "application/pdf"), "ITI-65")

    run(world.services, pro(world), two)
    assert len(messages(world.services, world.dossier, event="document.new", account_id=acc)) == 1


def test_a_refused_publication_queues_nothing(world: World) -> None:
    add_account(world, email=f"refused-{world.n}@example.org")
    before = messages(world.services, world.dossier)
    r = world.client.post("/fhir/DocumentReference", json={}, headers=world.headers("blocked"))
    assert r.status_code in (400, 403, 422)
    with pytest.raises(FhirError):
        publish(world.services, world, pro(world, "blocked"))
    with pytest.raises(FhirError):
        read_dossier(world, pro(world, "blocked"))
    assert messages(world.services, world.dossier) == before


def test_a_rolled_back_request_queues_nothing(world: World) -> None:
    add_account(world, email=f"rollback-{world.n}@example.org")
    before = messages(world.services, world.dossier)
    from carnet.documents import service as documents
    from tests.notify.conftest import PDF, docref

    def publish_then_fail(ctx: Context) -> None:
        documents.publish(ctx, world.dossier, docref(), documents.Content(PDF, "application/pdf"), "ITI-105")
        raise RuntimeError("the request fails after the document was stored")

    with pytest.raises(RuntimeError):
        run(world.services, pro(world, "doctor"), publish_then_fail)
    assert messages(world.services, world.dossier) == before


def test_an_invisible_patient_document_is_not_announced_as_new_but_as_awaiting_after_the_notice_delay(
        world: World) -> None:
    acc = add_account(world, email=f"invisible-{world.n}@example.org")
    t0 = dt.datetime.now(dt.UTC).replace(microsecond=0)
    publish(at(world.services, t0), world, labels=["INVISIBLE_PATIENT"])
    assert messages(world.services, world.dossier, event="document.new") == []
    notice = world.services.settings.announcement_notice_days
    run(at(world.services, t0 + dt.timedelta(days=notice) - dt.timedelta(hours=1)), WORKER_ACTOR, announce_due)
    assert messages(world.services, world.dossier, event="document.announcement") == []
    later = at(world.services, t0 + dt.timedelta(days=notice, minutes=1))
    run(later, WORKER_ACTOR, announce_due)
    run(later, WORKER_ACTOR, announce_due)  # a second pass does not announce it again
    rows = messages(world.services, world.dossier, event="document.announcement")
    assert [(r.account_id, r.channel) for r in rows] == [(acc, "email")]


def test_a_document_already_visible_again_is_not_announced_as_awaiting(world: World) -> None:
    add_account(world, email=f"lapsed-{world.n}@example.org")
    t0 = dt.datetime.now(dt.UTC)
    publish(at(world.services, t0), world, labels=["INVISIBLE_PATIENT"])
    days = world.services.settings.invisible_patient_days
    run(at(world.services, t0 + dt.timedelta(days=days, hours=1)), WORKER_ACTOR, announce_due)
    assert messages(world.services, world.dossier, event="document.announcement") == []


def test_a_document_the_patient_adds_themselves_is_not_notified(world: World) -> None:
    add_account(world, email=f"own-{world.n}@example.org")
    publish(world.services, world, patient(world), loinc="DOCPAT01")
    assert messages(world.services, world.dossier, event="document.new") == []


def test_a_document_hidden_from_representatives_is_not_announced_to_them(world: World) -> None:
    rep_id = run(world.services, patient(world), lambda ctx: dossiers.add_representative(
        ctx, world.dossier, "protected_adult", "Tuteur", "Jean", "GUARD"))
    owner = add_account(world, email=f"owner-{world.n}@example.org")
    tutor = add_account(world, email=f"tutor-{world.n}@example.org", role="representative",
                        representative_id=rep_id)
    publish(world.services, world, labels=["INVISIBLE_REPRESENTANTS_LEGAUX"])
    assert [r.account_id for r in messages(world.services, world.dossier, event="document.new")] == [owner]
    publish(world.services, world)
    assert tutor in {r.account_id for r in messages(world.services, world.dossier, event="document.new")}


def test_a_minors_representative_is_not_told_once_the_person_is_of_age(world: World) -> None:
    # The World patient is an adult: a representative recorded for a minor no longer acts (the policy's rule).
    rep_id = run(world.services, patient(world), lambda ctx: dossiers.add_representative(
        ctx, world.dossier, "minor", "Parent", "Marie", "MTH"))
    parent = add_account(world, email=f"parent-{world.n}@example.org", role="representative",
                         representative_id=rep_id)
    publish(world.services, world)
    assert messages(world.services, world.dossier, account_id=parent) == []


def test_ended_links_and_disabled_accounts_get_nothing_and_invited_ones_do(world: World) -> None:
    ended = add_account(world, email=f"ended-{world.n}@example.org", ended=True)
    disabled = add_account(world, email=f"disabled-{world.n}@example.org", status="disabled")
    invited = add_account(world, email=f"invited-{world.n}@example.org", status="invited")
    publish(world.services, world)
    got = {r.account_id for r in messages(world.services, world.dossier, event="document.new")}
    assert invited in got and ended not in got and disabled not in got


def test_preferences_are_honoured_group_by_group(world: World) -> None:
    acc = add_account(world, email=f"prefs-{world.n}@example.org", phone="+33612121212",
                      notify={"documents": [], "rights": ["sms"]})
    publish(world.services, world)
    assert messages(world.services, world.dossier, event="document.new", account_id=acc) == []
    run(world.services, patient(world), lambda ctx: dossiers.change_access(
        ctx, world.dossier, "practitioner", world.pros["stranger"], "authorized"))
    assert channels(messages(world.services, world.dossier, event="access.rights", account_id=acc)) == ["sms"]


def test_always_sent_events_ignore_preferences(world: World) -> None:
    nothing: dict[str, list[str]] = {group: [] for group, _ in notify_outbox.EVENT_GROUPS}
    acc = add_account(world, email=f"always-{world.n}@example.org", phone="+33613131313", notify=nothing)
    read_dossier(world, pro(world, "stranger", Mode.EMERGENCY))
    assert channels(messages(world.services, world.dossier, event="access.emergency", account_id=acc)) == \
        ["email", "sms"]
    assert messages(world.services, world.dossier, event="access.first", account_id=acc) == []

    def ask(ctx: Context) -> None:  # the tasks module's audit event for a professional's access request
        ctx.audit(world.dossier, "C", "task.access.request", entity_type="Task", entity_id=str(uuid.uuid4()))

    run(world.services, pro(world, "physio"), ask)
    assert channels(messages(world.services, world.dossier, event="access.request", account_id=acc)) == \
        ["email", "sms"]


def test_the_first_access_by_a_professional_is_notified_once(world: World) -> None:
    acc = add_account(world, email=f"first-{world.n}@example.org")
    read_dossier(world, pro(world, "doctor"))
    read_dossier(world, pro(world, "doctor"))
    r = world.client.get("/fhir/DocumentReference", params={"patient": str(world.dossier)},
                         headers=world.headers("doctor"))
    assert r.status_code == 200
    assert len(messages(world.services, world.dossier, event="access.first", account_id=acc)) == 1
    read_dossier(world, pro(world, "nurse"))
    assert len(messages(world.services, world.dossier, event="access.first", account_id=acc)) == 2


def test_a_professional_seen_before_any_account_existed_is_not_notified_later(world: World) -> None:
    acc = add_account(world, email=f"gp-{world.n}@example.org")
    read_dossier(world, pro(world, "gp"))  # the GP created the dossier: already seen
    assert messages(world.services, world.dossier, event="access.first", account_id=acc) == []


def test_break_the_glass_is_notified_once_per_professional_and_day(world: World) -> None:
    acc = add_account(world, email=f"glass-{world.n}@example.org")
    day1 = dt.datetime(2030, 3, 1, 9, 0, tzinfo=dt.UTC)
    glass = pro(world, "stranger", Mode.EMERGENCY)
    read_dossier(world, glass, day1)
    read_dossier(world, glass, day1 + dt.timedelta(hours=5))
    assert len(messages(world.services, world.dossier, event="access.emergency", account_id=acc)) == 1
    read_dossier(world, glass, day1 + dt.timedelta(days=1))
    assert len(messages(world.services, world.dossier, event="access.emergency", account_id=acc)) == 2
    read_dossier(world, pro(world, "regulator", Mode.REGULATION), day1)
    assert len(messages(world.services, world.dossier, event="access.regulation", account_id=acc)) == 1


def test_a_refused_emergency_access_is_not_notified(world: World) -> None:
    acc = add_account(world, email=f"objected-{world.n}@example.org")
    run(world.services, patient(world), lambda ctx: dossiers.set_objections(ctx, world.dossier, True, None))
    with pytest.raises(FhirError):
        read_dossier(world, pro(world, "stranger", Mode.EMERGENCY))
    assert messages(world.services, world.dossier, event="access.emergency", account_id=acc) == []


def test_lifecycle_and_rights_changes_are_notified(world: World) -> None:
    acc = add_account(world, email=f"life-{world.n}@example.org")
    run(world.services, patient(world), lambda ctx: dossiers.set_objections(ctx, world.dossier, None, True))
    run(world.services, patient(world), lambda ctx: dossiers.close(ctx, world.dossier))
    run(world.services, patient(world), lambda ctx: dossiers.reopen(ctx, world.dossier))

    def activated(ctx: Context) -> None:  # the accounts module's audit event when the person activates
        ctx.audit(world.dossier, "E", "account.activate", entity_type="Patient", entity_id=str(world.dossier))

    run(world.services, patient(world), activated)
    events = [r.event for r in messages(world.services, world.dossier, account_id=acc)]
    assert events == ["access.rights", "dossier.closed", "dossier.reopened", "dossier.activated"]


def test_a_read_by_a_professional_already_seen_costs_no_more_than_one_statement(world: World) -> None:
    from sqlalchemy import event

    read_dossier(world, pro(world, "doctor"))
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    def work(ctx: Context) -> None:
        event.listen(ctx.conn, "before_cursor_execute", count)
        try:
            ctx.audit(world.dossier, "R", "document.read", entity_type="DocumentReference", entity_id="x")
        finally:
            event.remove(ctx.conn, "before_cursor_execute", count)

    run(world.services, pro(world, "doctor"), work)
    if world.services.engine.dialect.name == "postgresql":  # the marker goes in with the audit append: one statement
        assert len(statements) == 1 and "professional_seen" in statements[0] and "INSERT INTO audit" in statements[0]
    else:
        notify_statements = [s for s in statements if "audit" not in s.lower()]
        assert len(notify_statements) == 1 and "professional_seen" in notify_statements[0]


def test_the_seen_marker_is_added_once_and_says_whether_it_was_new(world: World) -> None:
    from carnet.notify.rules import first_time

    now = dt.datetime.now(dt.UTC)
    with world.services.engine.begin() as conn:
        assert first_time(conn, world.dossier, "race-subject", now) is True
        assert first_time(conn, world.dossier, "race-subject", now) is False
    with world.services.engine.begin() as conn, pytest.raises(Exception):  # noqa: B017 - the key exists
        conn.execute(insert(professional_seen).values(dossier_key=world.dossier, subject_id="race-subject",
                                                      first_at=now))


def test_unknown_events_and_channels_are_refused(world: World) -> None:
    with pytest.raises(ValueError):
        run(world.services, patient(world), lambda ctx: notify_outbox.enqueue(ctx, world.dossier, "nope"))
    with pytest.raises(ValueError):
        run(world.services, patient(world), lambda ctx: notify_outbox.enqueue_direct(
            ctx, world.dossier, "pigeon", "x", "activation", {"code": "1"}, "fr"))
    with pytest.raises(KeyError):
        run(world.services, patient(world), lambda ctx: notify_outbox.enqueue_direct(
            ctx, world.dossier, "post", "x", "activation", {}, "fr"))  # $code missing


def test_effective_preferences_fall_back_to_the_address_the_account_has() -> None:
    prefs = notify_outbox.effective_prefs({"rights": ["sms", "email"], "access": []}, None, "+33600000000")
    assert prefs["documents"] == ["sms"] and prefs["rights"] == ["sms"] and prefs["access"] == []
    assert notify_outbox.effective_prefs(notify_outbox.default_prefs(), "a@example.org", None)["dossier"] == \
        ["email"]
    assert not set(notify_outbox.ALWAYS_SENT) & set(notify_outbox.GROUP_OF)
