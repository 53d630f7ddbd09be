"""The médecin traitant's inbox, on both databases: an emergency or regulation access by another professional leaves
one notice a day for the dossier's médecin traitant (written with the patient's message, rolled back with it), which
their clinician-portal inbox shows with the reason and the patient while they are the médecin traitant."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from carnet.access.actors import Actor, ActorKind, Mode
from carnet.context import Context, run
from carnet.db.tables import audit, practitioner, pro_notice, pro_notice_by_recipient
from carnet.dossier import service as dossiers
from carnet.errors import FhirError
from tests.conftest import World
from tests.pro.conftest import csrf_of, signed_in


@pytest.fixture(autouse=True)
def midday(world: World, monkeypatch: pytest.MonkeyPatch) -> dt.datetime:
    """A fixed clock at noon (UTC): "the same day" never straddles midnight."""
    noon = dt.datetime.combine(world.services.clock().date(), dt.time(12, 0), tzinfo=dt.UTC)
    monkeypatch.setattr(world.services, "clock", lambda: noon)
    return noon


def midday_of(world: World) -> dt.datetime:
    return world.services.clock()


def pro(world: World, role: str, mode: Mode = Mode.NORMAL, reason: str | None = None) -> Actor:
    return Actor(ActorKind.PROFESSIONAL, id=world.pros[role], display=role, profession="10",
                 organisation_id=f"ORG{world.n}", is_regulator=role == "regulator", mode=mode, reason=reason,
                 client_id="test")


def patient(world: World) -> Actor:
    return Actor(ActorKind.PATIENT, id=world.ins)


def read_as(world: World, actor: Actor) -> None:
    run(world.services, actor, lambda ctx: dossiers.read(ctx, world.dossier))


def notices(world: World) -> list[Any]:
    with world.services.engine.connect() as conn:
        return list(conn.execute(select(pro_notice).where(pro_notice.c.dossier_key == world.dossier)
                                 .order_by(pro_notice.c.at, pro_notice.c.notice_id)))


def lookups(world: World, recipient: str) -> list[Any]:
    with world.services.engine.connect() as conn:
        return list(conn.execute(select(pro_notice_by_recipient).where(
            pro_notice_by_recipient.c.recipient_id == recipient)))


# --- the notices --------------------------------------------------------------------------------------------------

def test_a_break_the_glass_read_leaves_one_notice_a_day_for_the_treating_gp(world: World) -> None:
    stranger = pro(world, "stranger", Mode.EMERGENCY, "Coma aux urgences")
    read_as(world, stranger)
    read_as(world, stranger)  # the same day: no second notice
    found = notices(world)
    assert [(n.recipient_id, n.kind, n.accessor_id, n.read_at) for n in found] == [
        (world.pros["gp"], "emergency", world.pros["stranger"], None)]
    assert found[0].notice_id.version == 7
    assert [(r.notice_id, r.dossier_key, r.read_at) for r in lookups(world, world.pros["gp"])] == [
        (found[0].notice_id, world.dossier, None)]


def test_a_regulation_read_leaves_a_regulation_notice(world: World) -> None:
    read_as(world, pro(world, "regulator", Mode.REGULATION, "Appel au 15"))
    assert [(n.kind, n.accessor_id) for n in notices(world)] == [("regulation", world.pros["regulator"])]


def test_no_notice_without_a_treating_gp_or_when_the_gp_is_the_one_accessing(world: World) -> None:
    read_as(world, pro(world, "gp", Mode.EMERGENCY, "Malaise au cabinet"))
    assert notices(world) == []
    run(world.services, patient(world), lambda ctx: dossiers.set_treating_gp(ctx, world.dossier, None))
    read_as(world, pro(world, "stranger", Mode.EMERGENCY, "Coma"))
    assert notices(world) == []


def test_a_normal_mode_access_leaves_no_notice(world: World) -> None:
    read_as(world, pro(world, "doctor"))
    assert notices(world) == []


def test_a_refused_or_rolled_back_access_leaves_no_notice(world: World) -> None:
    run(world.services, patient(world), lambda ctx: dossiers.set_objections(ctx, world.dossier, True, None))
    with pytest.raises(FhirError) as err:
        read_as(world, pro(world, "stranger", Mode.EMERGENCY, "Coma"))
    assert err.value.status == 403
    run(world.services, patient(world), lambda ctx: dossiers.set_objections(ctx, world.dossier, False, None))

    def read_then_fail(ctx: Context) -> None:
        dossiers.read(ctx, world.dossier)
        assert [n.kind for n in ctx.conn.execute(select(pro_notice).where(
            pro_notice.c.dossier_key == world.dossier))] == ["emergency"]  # written, in the transaction
        raise RuntimeError("the request failed after the read")

    with pytest.raises(RuntimeError):
        run(world.services, pro(world, "stranger", Mode.EMERGENCY, "Coma"), read_then_fail)
    assert notices(world) == [] and lookups(world, world.pros["gp"]) == []
    read_as(world, pro(world, "stranger", Mode.EMERGENCY, "Coma"))  # not "already notified today" either
    assert len(notices(world)) == 1


def test_the_purge_removes_the_notices_and_their_lookup_rows(world: World, monkeypatch: pytest.MonkeyPatch,
                                                             midday: dt.datetime) -> None:
    read_as(world, pro(world, "stranger", Mode.EMERGENCY, "Coma"))
    assert len(notices(world)) == 1
    run(world.services, patient(world), lambda ctx: dossiers.close(ctx, world.dossier))
    monkeypatch.setattr(world.services, "clock", lambda: midday + dt.timedelta(days=366 * 11))
    assert world.dossier in run(world.services, Actor(ActorKind.OPERATOR, id="test-purge"), dossiers.purge_due)
    assert notices(world) == [] and lookups(world, world.pros["gp"]) == []


# --- the inbox page -----------------------------------------------------------------------------------------------

def break_the_glass(world: World, browser: Any, reason: str) -> None:
    signed_in(browser, world.pros["stranger"])
    page = browser.get("/pro/emergency")
    browser.post("/pro/emergency", data={"csrf": csrf_of(page.text), "reason": reason})
    assert browser.get(f"/pro/dossier/{world.dossier}").status_code == 200
    browser.cookies.clear()


def family_of(world: World, role: str) -> str:
    with world.services.engine.connect() as conn:
        return str(conn.execute(select(practitioner.c.family).where(
            practitioner.c.national_id == world.pros[role])).scalar_one())


def test_the_gp_reads_the_notice_with_the_reason_and_marks_it_read(world: World, browser: Any) -> None:
    reason = f"Détresse respiratoire {world.n}"
    break_the_glass(world, browser, reason)
    signed_in(browser, world.pros["gp"])
    home = browser.get("/pro/")
    assert 'id="inbox-count">1 non lue<' in home.text  # in every page's header
    page = browser.get("/pro/inbox")
    assert page.status_code == 200
    text = page.text
    assert reason in text and f"Test {family_of(world, 'stranger')}" in text and "Testé" in text
    assert f'href="/pro/dossier/{world.dossier}"' in text and "Non lue" in text and "17 mai 1980" in text
    paris = midday_of(world).astimezone(ZoneInfo("Europe/Paris"))  # the access at noon UTC, shown in French time
    assert f"{paris:%d/%m/%Y %H:%M}" in text and "UTC" not in text and "1 notification · 1 non lue" in text
    with world.services.engine.connect() as conn:
        shown = conn.execute(select(audit.c.detail).where(
            audit.c.dossier_key == world.dossier, audit.c.actor_id == world.pros["gp"],
            audit.c.event == "patient.read")).scalars().all()
    assert [d.get("query") for d in shown] == ["pro-inbox"]  # the page view is in the dossier's audit
    notice_id = notices(world)[0].notice_id
    r = browser.post("/pro/inbox/read", data={"csrf": csrf_of(text), "dossier": str(world.dossier),
                                              "notice": str(notice_id)})
    assert r.status_code == 303
    after = browser.get(r.headers["location"])
    assert 'id="inbox-count"' not in after.text and "Non lue" not in after.text and reason in after.text
    assert notices(world)[0].read_at is not None
    assert all(r.read_at is not None for r in lookups(world, world.pros["gp"]))


def test_another_professional_sees_neither_the_notice_nor_can_mark_it(world: World, browser: Any) -> None:
    reason = f"Chute {world.n}"
    break_the_glass(world, browser, reason)
    signed_in(browser, world.pros["doctor"])  # authorized on the dossier, but not its médecin traitant
    page = browser.get("/pro/inbox")
    assert page.status_code == 200 and reason not in page.text and "Testé" not in page.text
    assert 'id="inbox-count"' not in page.text
    r = browser.post("/pro/inbox/read", data={"csrf": csrf_of(page.text), "dossier": str(world.dossier),
                                              "notice": str(notices(world)[0].notice_id)})
    assert r.status_code == 404
    assert notices(world)[0].read_at is None


def test_a_former_gp_no_longer_sees_the_patient(world: World, browser: Any) -> None:
    reason = f"Douleur thoracique {world.n}"
    break_the_glass(world, browser, reason)
    run(world.services, patient(world),
        lambda ctx: dossiers.set_treating_gp(ctx, world.dossier, world.pros["doctor"]))
    signed_in(browser, world.pros["gp"])
    page = browser.get("/pro/inbox")
    assert page.status_code == 200 and 'id="inbox-count">1 non lue<' in page.text
    assert reason not in page.text and "Testé" not in page.text and str(world.dossier) not in page.text.split(
        'name="dossier"')[0]  # no link to the dossier, only the form's hidden field
    assert "plus le médecin traitant" in page.text
    r = browser.post("/pro/inbox/read", data={"csrf": csrf_of(page.text), "dossier": str(world.dossier),
                                              "notice": str(notices(world)[0].notice_id)})
    assert r.status_code == 303 and 'id="inbox-count"' not in browser.get("/pro/inbox").text
    browser.cookies.clear()
    signed_in(browser, world.pros["doctor"])  # the new médecin traitant: the old notice was not theirs
    assert reason not in browser.get("/pro/inbox").text


def test_the_inbox_is_read_in_normal_mode_only(world: World, browser: Any) -> None:
    signed_in(browser, world.pros["gp"])
    page = browser.get("/pro/emergency")
    browser.post("/pro/emergency", data={"csrf": csrf_of(page.text), "reason": "Urgence"})
    r = browser.get("/pro/inbox")
    assert r.status_code == 403 and "mode normal" in r.text


def test_the_inbox_pages_newest_first(world: World, monkeypatch: pytest.MonkeyPatch, midday: dt.datetime) -> None:
    from carnet.notify import notices
    from carnet.pro.pages.inbox import PAGE

    for day in range(PAGE + 2):  # one notice a day
        at = midday - dt.timedelta(days=day)
        monkeypatch.setattr(world.services, "clock", lambda at=at: at)
        read_as(world, pro(world, "stranger", Mode.EMERGENCY, f"Jour {day}"))
    monkeypatch.setattr(world.services, "clock", lambda: midday)
    gp = pro(world, "gp")
    first, total, unread = run(world.services, gp, lambda ctx: notices.inbox(ctx, PAGE, 0))
    rest, _, _ = run(world.services, gp, lambda ctx: notices.inbox(ctx, PAGE, PAGE))
    assert total == unread == PAGE + 2 and len(first) == PAGE and len(rest) == 2
    assert [n.reason for n in first[:2]] == ["Jour 0", "Jour 1"] and [n.reason for n in rest] == [
        f"Jour {PAGE}", f"Jour {PAGE + 1}"]
    assert all(n.shown and n.patient_family == "Testé" for n in first + rest)
    assert len({n.notice_id for n in first + rest}) == PAGE + 2
    assert isinstance(first[0].notice_id, uuid.UUID)
