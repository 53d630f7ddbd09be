"""Booking, reading, cancelling and ending a teleconsultation (issue 12 §1): the policy decides who may hold one,
every step is audited, the patient side is told, and the visit reads as FHIR Appointment and Encounter (VR)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import uuid

import pytest
from sqlalchemy import select

from carnet import teleconsult
from carnet.access.actors import Mode
from carnet.context import run
from carnet.db.tables import audit, outbox, teleconsult_signal, teleconsultation
from carnet.errors import FhirError
from carnet.portal import i18n
from carnet.portal.pages.history import OTHER_EVENT, event_label
from tests.conftest import World
from tests.teleconsult.helpers import activate, book_now, patient, pro, publish


def audited(world: World, event: str) -> list[str]:
    with world.services.engine.connect() as conn:
        return [r.outcome for r in conn.execute(select(audit.c.outcome).where(
            audit.c.dossier_key == world.dossier, audit.c.event == event).order_by(audit.c.seq))]  # chain order


def test_a_professional_the_patient_authorized_books_a_visit_and_the_patient_is_told(world: World) -> None:
    account = activate(world)
    when = world.services.clock() + dt.timedelta(days=2)
    visit = run(world.services, pro(world, "doctor"), lambda ctx: teleconsult.schedule(ctx, world.dossier, when, 20))
    assert visit.status == "planned" and visit.minutes == 20 and visit.clinician_id == world.pros["doctor"]
    assert audited(world, "teleconsult.schedule") == ["0"]
    with world.services.engine.connect() as conn:
        sent = conn.execute(select(outbox).where(outbox.c.dossier_key == world.dossier,
                                                 outbox.c.event == "teleconsult.scheduled")).all()
    assert [(m.account_id, m.channel) for m in sent] == [(account, "email")]


def test_starting_one_now_tells_the_patient_a_professional_waits(world: World) -> None:
    activate(world)
    cid = book_now(world)
    visit = run(world.services, patient(world), lambda ctx: teleconsult.get(ctx, world.dossier, cid))
    assert visit.status == "in-progress" and visit.started_at is not None
    with world.services.engine.connect() as conn:
        assert conn.execute(select(outbox.c.event).where(outbox.c.dossier_key == world.dossier,
                                                         outbox.c.event == "teleconsult.started")).first()


@pytest.mark.parametrize(("role", "mode"), [("stranger", Mode.NORMAL), ("blocked", Mode.NORMAL),
                                            ("stranger", Mode.EMERGENCY)])
def test_a_professional_the_patient_did_not_authorize_cannot_book_one(world: World, role: str, mode: Mode) -> None:
    with pytest.raises(FhirError) as err:
        run(world.services, pro(world, role, mode), lambda ctx: teleconsult.schedule(ctx, world.dossier, None, 15))
    assert err.value.status == 403
    assert audited(world, "teleconsult.start") == ["4"]  # the refusal, audited; nothing else written
    with world.services.engine.connect() as conn:
        assert conn.execute(select(teleconsultation).where(teleconsultation.c.dossier_key == world.dossier)).first() \
            is None


def test_a_time_already_past_is_refused(world: World) -> None:
    past = world.services.clock() - dt.timedelta(hours=1)
    with pytest.raises(FhirError) as err:
        run(world.services, pro(world, "gp"), lambda ctx: teleconsult.schedule(ctx, world.dossier, past, 15))
    assert err.value.status == 422


def test_another_professional_of_the_dossier_does_not_see_the_visit(world: World) -> None:
    cid = book_now(world)
    with pytest.raises(FhirError) as err:
        run(world.services, pro(world, "doctor"), lambda ctx: teleconsult.get(ctx, world.dossier, cid))
    assert err.value.status == 404
    assert run(world.services, pro(world, "doctor"), lambda ctx: teleconsult.for_dossier(ctx, world.dossier)) == []
    assert len(run(world.services, patient(world), lambda ctx: teleconsult.for_dossier(ctx, world.dossier))) == 1


def test_the_visit_reads_as_an_appointment_and_a_virtual_encounter(world: World) -> None:
    cid = book_now(world)
    headers = world.headers("gp")
    appointment = world.client.get(f"/fhir/Appointment/{cid}", headers=headers)
    assert appointment.status_code == 200, appointment.text
    assert appointment.json()["status"] == "arrived"
    encounter = world.client.get(f"/fhir/Encounter/{cid}", headers=headers).json()
    assert encounter["class"]["code"] == "VR" and encounter["status"] == "in-progress"
    assert encounter["subject"]["reference"] == f"Patient/{world.dossier}"
    found = world.client.get(f"/fhir/Encounter?patient={world.dossier}", headers=headers).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [str(cid)]
    other = world.client.get(f"/fhir/Appointment/{cid}", headers=world.headers("doctor"))
    assert other.status_code == 404
    assert world.client.get(f"/fhir/Appointment/{uuid.uuid4()}", headers=headers).status_code == 404
    statement = world.client.get("/fhir/metadata").json()
    types = {r["type"] for r in statement["rest"][0]["resource"]}
    assert {"Appointment", "Encounter"} <= types


def test_ending_finishes_the_visit_for_both_sides(world: World) -> None:
    cid = book_now(world)
    s = world.services
    clinician = run(s, pro(world, "gp"), lambda ctx: teleconsult.join(ctx, world.dossier, cid, "clinician"))
    side = run(s, patient(world), lambda ctx: teleconsult.join(ctx, world.dossier, cid, "patient"))
    assert side.peer_present
    assert teleconsult.relay(s, world.dossier, cid, "clinician", clinician.conn, {"type": "offer", "sdp": "v=0"})
    with pytest.raises(FhirError):  # only the professional ends it
        run(s, patient(world), lambda ctx: teleconsult.end(ctx, world.dossier, cid))
    run(s, pro(world, "gp"), lambda ctx: teleconsult.end(ctx, world.dossier, cid))
    for who, joined in (("clinician", clinician), ("patient", side)):
        seen = [m["type"] for _, m in teleconsult.poll(s, world.dossier, cid, who, joined.conn, 0)]
        assert seen[-1] == "ended" and "offer" not in seen  # the relay keeps only the end
    assert not teleconsult.relay(s, world.dossier, cid, "clinician", clinician.conn, {"type": "offer", "sdp": "v=0"})
    with pytest.raises(FhirError) as err:
        run(s, patient(world), lambda ctx: teleconsult.join(ctx, world.dossier, cid, "patient"))
    assert err.value.status == 409
    assert audited(world, "teleconsult.end") == ["4", "0"]  # the patient's attempt refused, then the end
    with s.engine.connect() as conn:
        assert len(conn.execute(select(teleconsult_signal).where(
            teleconsult_signal.c.dossier_key == world.dossier)).all()) == 1


def test_a_document_the_patient_may_not_see_is_never_shown_to_them(world: World) -> None:
    cid = book_now(world)
    s = world.services
    hidden = publish(world, "Résultat à annoncer", "pas encore", invisible=True)
    shown = publish(world, "Compte rendu", "ligne 1")
    clinician = run(s, pro(world, "gp"), lambda ctx: teleconsult.join(ctx, world.dossier, cid, "clinician"))
    side = run(s, patient(world), lambda ctx: teleconsult.join(ctx, world.dossier, cid, "patient"))
    with pytest.raises(FhirError) as err:
        run(s, pro(world, "gp"), lambda ctx: teleconsult.show(ctx, world.dossier, cid, clinician.conn, hidden))
    assert err.value.status == 403
    assert audited(world, "teleconsult.show") == ["4"]
    run(s, pro(world, "gp"), lambda ctx: teleconsult.show(ctx, world.dossier, cid, clinician.conn, shown))
    messages = [m for _, m in teleconsult.poll(s, world.dossier, cid, "patient", side.conn, side.seq)]
    assert [m["shown"]["document"] for m in messages if m["type"] == "shown"] == [shown]
    assert all(hidden not in str(m) for m in messages)
    assert "ligne 1" not in str(messages)  # the relay names the document; the browser fetches its content
    assert audited(world, "teleconsult.show") == ["4", "0"]


def test_a_second_tab_of_the_same_side_replaces_the_first(world: World) -> None:
    cid = book_now(world)
    s = world.services
    first = run(s, patient(world), lambda ctx: teleconsult.join(ctx, world.dossier, cid, "patient"))
    second = run(s, patient(world), lambda ctx: teleconsult.join(ctx, world.dossier, cid, "patient"))
    told = [m["type"] for _, m in teleconsult.poll(s, world.dossier, cid, "patient", first.conn, first.seq)
            if m["type"] != "skip"]
    assert told == ["replaced"]
    assert not teleconsult.relay(s, world.dossier, cid, "patient", first.conn, {"type": "answer", "sdp": "v=0"})
    assert teleconsult.relay(s, world.dossier, cid, "patient", second.conn, {"type": "answer", "sdp": "v=0"})


def test_turn_credentials_follow_coturns_shared_secret_scheme() -> None:
    username, credential = teleconsult.turn_credential("s3cret", "abc", 1_900_000_000)
    assert username == "1900000000:abc"
    expected = base64.b64encode(hmac.new(b"s3cret", b"1900000000:abc", hashlib.sha1).digest()).decode()
    assert credential == expected


def test_the_history_says_what_happened_in_plain_words() -> None:
    for event in ("teleconsult.schedule", "teleconsult.start", "teleconsult.join", "teleconsult.leave",
                  "teleconsult.show", "teleconsult.end", "teleconsult.cancel"):
        label = event_label(event)
        assert label != OTHER_EVENT, event
        assert i18n.language("fr").gettext(label) != label, event


def test_a_purged_dossier_leaves_no_visit_behind(world: World) -> None:
    from carnet.access.actors import Actor, ActorKind
    from carnet.db.tables import resource_locator, teleconsult_by_clinician
    from carnet.dossier import service as dossiers

    cid = book_now(world)
    s = world.services
    joined = run(s, pro(world, "gp"), lambda ctx: teleconsult.join(ctx, world.dossier, cid, "clinician"))
    assert teleconsult.relay(s, world.dossier, cid, "clinician", joined.conn, {"type": "offer", "sdp": "v=0"})
    run(s, patient(world), lambda ctx: dossiers.close(ctx, world.dossier))
    later = s.clock() + dt.timedelta(days=366 * 11)
    original = s.clock
    s.clock = lambda: later
    try:
        assert world.dossier in run(s, Actor(ActorKind.OPERATOR, id="test-purge"), dossiers.purge_due)
    finally:
        s.clock = original
    with s.engine.connect() as conn:
        for table, column, value in ((teleconsultation, "dossier_key", world.dossier),
                                     (teleconsult_signal, "dossier_key", world.dossier),
                                     (teleconsult_by_clinician, "consultation_id", cid),
                                     (resource_locator, "resource_id", cid)):
            assert conn.execute(select(table).where(table.c[column] == value)).first() is None, table.name


def test_the_worker_closes_a_visit_nobody_ended_and_empties_its_relay(world: World) -> None:
    from carnet.access.actors import Actor, ActorKind

    s = world.services
    cid = book_now(world)
    joined = run(s, pro(world, "gp"), lambda ctx: teleconsult.join(ctx, world.dossier, cid, "clinician"))
    assert teleconsult.relay(s, world.dossier, cid, "clinician", joined.conn, {"type": "offer", "sdp": "v=0"})
    worker = Actor(ActorKind.OPERATOR, id="test-worker")
    assert run(s, worker, teleconsult.close_stale) == 0  # not yet: it is under way
    later = s.clock() + dt.timedelta(hours=13)
    original = s.clock
    s.clock = lambda: later
    try:
        assert run(s, worker, teleconsult.close_stale) >= 1
    finally:
        s.clock = original
    visit = run(s, patient(world), lambda ctx: teleconsult.get(ctx, world.dossier, cid))
    assert visit.status == "finished"
    seen = [m["type"] for _, m in teleconsult.poll(s, world.dossier, cid, "clinician", joined.conn, 0)]
    assert seen == ["ended"]
    assert audited(world, "teleconsult.expire") == ["0"]
    with pytest.raises(FhirError):
        run(s, pro(world, "gp"), teleconsult.close_stale)  # an operator's job only


def test_a_legal_representative_never_gets_a_document_hidden_from_representatives(world: World) -> None:
    from carnet.access.actors import Actor, ActorKind
    from carnet.documents import codes
    from carnet.dossier import service as dossiers

    s = world.services
    rep_id = run(s, patient(world), lambda ctx: dossiers.add_representative(
        ctx, world.dossier, "protected_adult", "Tuteur", "Un", "GUARD"))
    tutor = Actor(ActorKind.REPRESENTATIVE, id=str(rep_id), acting_for=world.ins)
    confidential = publish(world, "Soins confidentiels", "…", label=codes.INVISIBLE_REPRESENTANTS)
    cid = book_now(world)
    clinician = run(s, pro(world, "gp"), lambda ctx: teleconsult.join(ctx, world.dossier, cid, "clinician"))
    run(s, tutor, lambda ctx: teleconsult.join(ctx, world.dossier, cid, "patient"))
    with pytest.raises(FhirError) as err:
        run(s, pro(world, "gp"), lambda ctx: teleconsult.show(ctx, world.dossier, cid, clinician.conn, confidential))
    assert err.value.status == 403
    patient_side = run(s, patient(world), lambda ctx: teleconsult.join(ctx, world.dossier, cid, "patient"))
    assert patient_side.conn  # the patient themselves takes the side over: to them it may be shown
    assert run(s, pro(world, "gp"), lambda ctx: teleconsult.show(ctx, world.dossier, cid, clinician.conn,
                                                                   confidential))


def test_a_document_the_patient_hid_from_professionals_is_not_shown_to_one_who_may_not_see_it(world: World) -> None:
    from carnet.documents import service as documents

    s = world.services
    hidden = publish(world, "Compte rendu masqué", "…")
    run(s, patient(world), lambda ctx: documents.set_masked(ctx, hidden, True))
    cid = book_now(world, "doctor")  # authorized, neither its author nor the médecin traitant: MASQUE_PS is hidden
    run(s, pro(world, "doctor"), lambda ctx: teleconsult.join(ctx, world.dossier, cid, "clinician"))
    side = run(s, patient(world), lambda ctx: teleconsult.join(ctx, world.dossier, cid, "patient"))
    with pytest.raises(FhirError) as err:
        run(s, patient(world), lambda ctx: teleconsult.show(ctx, world.dossier, cid, side.conn, hidden))
    assert err.value.status == 403
