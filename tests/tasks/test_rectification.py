"""Rectification requests (GDPR right of rectification, issue 4 §3), on SQLite and PostgreSQL: the patient asks the
author of a document they see; the author answers by replacing the document or by a reasoned refusal."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from carnet.access.actors import Actor, ActorKind
from carnet.context import run
from carnet.db.tables import document
from carnet.errors import FhirError
from carnet.tasks import service as tasks
from tests.conftest import World
from tests.tasks.helpers import (
    INSURER,
    add_representative,
    audit_events,
    patient,
    pro,
    provide_replacement,
    publish,
    tasks_of,
)


def refused(world: World, actor: Actor, work: Any) -> int:
    with pytest.raises(FhirError) as exc:
        run(world.services, actor, work)
    return exc.value.status


def ask(world: World, doc_id: str, actor: Actor | None = None, text: str = "La date de l'examen est fausse"
        ) -> tasks.TaskView:
    return run(world.services, actor or patient(world), lambda ctx: tasks.request_rectification(ctx, doc_id, text))


def documents_table(world: World) -> list[tuple[Any, ...]]:
    with world.services.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(document.c.document_id, document.c.status, document.c.version)
                                               .where(document.c.dossier_key == world.dossier)
                                               .order_by(document.c.document_id)).all()]


def test_the_patient_asks_the_author_for_a_rectification(world: World) -> None:
    doc_id = publish(world, "doctor")
    view = ask(world, doc_id)
    assert view.kind == "rectification" and view.status == "requested"
    assert view.owner_id == world.pros["doctor"] and view.owner_name
    assert view.focus == f"DocumentReference/{doc_id}"
    assert view.requester_kind == "patient" and view.reason == "La date de l'examen est fausse"
    assert view.expires_at is None
    assert audit_events(world, str(view.id)) == ["task.rectification.request"]


def test_the_author_sees_the_open_requests_on_their_documents(world: World) -> None:
    doc_id = publish(world, "doctor")
    view = ask(world, doc_id)
    mine = run(world.services, pro(world, "doctor"),
               lambda ctx: tasks.list_addressed_to_me(ctx, statuses=["requested"]))
    assert [t.id for t in mine] == [view.id]
    assert run(world.services, pro(world, "gp"), lambda ctx: tasks.list_addressed_to_me(ctx)) == []
    in_dossier = run(world.services, pro(world, "doctor"), lambda ctx: tasks.list_for_dossier(ctx, world.dossier))
    assert [t.id for t in in_dossier] == [view.id]


def test_a_representative_asks_for_a_rectification(world: World) -> None:
    rep = add_representative(world)
    view = ask(world, publish(world, "doctor"), rep)
    assert view.requester_kind == "representative" and view.requester_id == rep.id


@pytest.mark.parametrize("who, status", [("doctor", 403), ("gp", 403), ("stranger", 404), ("blocked", 404),
                                         ("insurer", 404)])
def test_only_the_patient_side_asks_for_a_rectification(world: World, who: str, status: int) -> None:
    doc_id = publish(world, "doctor")
    actor = INSURER if who == "insurer" else pro(world, who)
    assert refused(world, actor, lambda ctx: tasks.request_rectification(ctx, doc_id, "texte")) == status
    assert tasks_of(world) == []


def test_a_document_hidden_from_the_patient_cannot_be_the_object_of_a_request(world: World) -> None:
    doc_id = publish(world, "doctor", labels=["INVISIBLE_PATIENT"])
    assert refused(world, patient(world), lambda ctx: tasks.request_rectification(ctx, doc_id, "texte")) == 404
    assert tasks_of(world) == []


@pytest.mark.parametrize("text", ["", "   ", None, "x" * 5000])
def test_a_rectification_request_needs_a_text(world: World, text: str | None) -> None:
    doc_id = publish(world, "doctor")
    assert refused(world, patient(world), lambda ctx: tasks.request_rectification(ctx, doc_id, text)) == 422
    assert tasks_of(world) == []


def test_a_replaced_document_is_no_longer_rectified(world: World) -> None:
    doc_id = publish(world, "doctor")
    status, _ = provide_replacement(world, "doctor", doc_id)
    assert status == 200
    assert refused(world, patient(world), lambda ctx: tasks.request_rectification(ctx, doc_id, "texte")) == 409


def test_the_replacement_completes_every_open_request_with_the_new_document(world: World) -> None:
    doc_id = publish(world, "doctor")
    first, second = ask(world, doc_id), ask(world, doc_id, text="Et le nom du service")
    other = ask(world, publish(world, "doctor"))
    status, new_id = provide_replacement(world, "doctor", doc_id)
    assert status == 200 and new_id
    for t in (first, second):
        done = run(world.services, patient(world), lambda ctx, i=t.id: tasks.get(ctx, i))  # type: ignore[misc]
        assert done.status == "completed" and done.result == f"DocumentReference/{new_id}"
        assert done.answered_by == world.pros["doctor"]
        assert audit_events(world, str(t.id))[-2] == "task.rectification.answer"
    assert run(world.services, patient(world), lambda ctx: tasks.get(ctx, other.id)).status == "requested"


def test_a_reasoned_refusal_is_shown_to_the_patient(world: World) -> None:
    view = ask(world, publish(world, "doctor"))
    done = run(world.services, pro(world, "doctor"),
               lambda ctx: tasks.answer_rectification(ctx, view.id, "Le compte rendu est exact"))
    assert done.status == "rejected" and done.status_reason == "Le compte rendu est exact"
    seen = run(world.services, patient(world), lambda ctx: tasks.get(ctx, view.id))
    assert seen.status == "rejected" and seen.answer == "Le compte rendu est exact"
    assert audit_events(world, str(view.id))[-2:] == ["task.rectification.answer", "task.read"]


@pytest.mark.parametrize("reason", [None, "", "  "])
def test_a_refusal_without_a_reason_is_refused_and_changes_nothing(world: World, reason: str | None) -> None:
    view = ask(world, publish(world, "doctor"))
    before = (tasks_of(world), documents_table(world))
    assert refused(world, pro(world, "doctor"), lambda ctx: tasks.answer_rectification(ctx, view.id, reason)) == 422
    assert (tasks_of(world), documents_table(world)) == before


@pytest.mark.parametrize("who, status", [("patient", 403), ("gp", 404), ("nurse", 404), ("stranger", 404),
                                         ("insurer", 404)])
def test_nobody_but_the_author_answers_a_rectification(world: World, who: str, status: int) -> None:
    view = ask(world, publish(world, "doctor"))
    actor = {"patient": patient(world), "insurer": INSURER}.get(who) or pro(world, who)
    assert refused(world, actor, lambda ctx: tasks.answer_rectification(ctx, view.id, "non")) == status
    assert tasks_of(world)[0].status == "requested"


def test_a_blocked_author_neither_sees_nor_answers_the_request(world: World) -> None:
    view = ask(world, publish(world, "doctor"))
    from carnet.dossier import service as dossiers

    run(world.services, patient(world), lambda ctx: dossiers.change_access(
        ctx, world.dossier, "practitioner", world.pros["doctor"], "blocked"))
    assert refused(world, pro(world, "doctor"), lambda ctx: tasks.get(ctx, view.id)) == 404
    assert refused(world, pro(world, "doctor"), lambda ctx: tasks.answer_rectification(ctx, view.id, "non")) == 404
    assert run(world.services, pro(world, "doctor"), lambda ctx: tasks.list_addressed_to_me(ctx)) == []


def test_the_patients_own_document_has_no_author_to_ask(world: World) -> None:
    from tests.tasks.helpers import docref

    res = docref(world, loinc="DOCPAT01")
    res["type"] = {"coding": [{"system": "https://mos.esante.gouv.fr/NOS/TRE_A05-TypeDocComplementaire/FHIR/"
                                         "TRE-A05-TypeDocComplementaire", "code": "DOCPAT01"}]}
    r = world.client.post("/fhir/DocumentReference", json=res, headers=world.headers(None, kind="patient_portal"))
    assert r.status_code == 201, r.text
    doc_id = r.json()["id"]
    assert refused(world, patient(world), lambda ctx: tasks.request_rectification(ctx, doc_id, "texte")) == 422
    assert tasks_of(world) == []


def test_a_rectification_cannot_be_accepted_like_an_access_request(world: World) -> None:
    view = ask(world, publish(world, "doctor"))
    assert refused(world, pro(world, "doctor"), lambda ctx: tasks.accept(ctx, str(view.id))) == 422
    assert refused(world, patient(world), lambda ctx: tasks.answer_access(ctx, view.id, True)) == 422


def test_the_patient_sees_every_task_of_the_dossier_and_filters_by_kind(world: World) -> None:
    rect = ask(world, publish(world, "doctor"))
    access = run(world.services, pro(world, "stranger"), lambda ctx: tasks.request_access(ctx, world.dossier))
    p = patient(world)
    assert {t.id for t in run(world.services, p, lambda ctx: tasks.list_for_dossier(ctx, world.dossier))} == \
        {rect.id, access.id}
    only = run(world.services, p, lambda ctx: tasks.list_for_dossier(ctx, world.dossier, kinds=["rectification"]))
    assert [t.id for t in only] == [rect.id]
    assert ActorKind.PATIENT is p.kind
