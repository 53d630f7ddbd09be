"""``carnet.clinical.hiding`` through the service, on both databases: a legal representative hides an item as the
patient would; the emergency summary leaves a hidden item out for an emergency doctor and marks it for the médecin
traitant; hiding and showing are versions of the item, audited in the dossier's chain."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from carnet.access.actors import Actor, ActorKind, Mode
from carnet.clinical import hiding
from carnet.clinical import service as clinical
from carnet.clinical.summary import build_bundle, summary_view
from carnet.context import run
from carnet.db.tables import audit
from carnet.dossier import service as dossiers
from carnet.errors import FhirError
from tests.clinical import samples
from tests.conftest import World


def patient(world: World) -> Actor:
    return Actor(ActorKind.PATIENT, id=world.ins)


def pro(world: World, role: str, mode: Mode = Mode.NORMAL) -> Actor:
    return Actor(ActorKind.PROFESSIONAL, id=world.pros[role], profession="60" if role == "nurse" else "10",
                 mode=mode, reason="Unconscious on arrival" if mode is not Mode.NORMAL else None,
                 is_regulator=role == "regulator")


def allergy(world: World) -> str:
    served = run(world.services, pro(world, "doctor"),
                 lambda ctx: clinical.create(ctx, world.dossier, samples.allergy(world.dossier)))
    return str(json.loads(served)["id"])


def test_a_legal_representative_hides_and_shows_an_item_and_still_sees_it(world: World) -> None:
    rep_id = run(world.services, patient(world), lambda ctx: dossiers.add_representative(
        ctx, world.dossier, "protected_adult", "Tuteur", "Paul", "tuteur"))
    rep = Actor(ActorKind.REPRESENTATIVE, id=str(rep_id), acting_for=world.ins)
    item = allergy(world)
    changed, served = run(world.services, rep,
                          lambda ctx: hiding.set_hidden(ctx, "AllergyIntolerance", item, True))
    assert changed and json.loads(served)["meta"]["security"][0]["code"] == "MASQUE_PS"
    assert [i.masked for i in run(world.services, rep, lambda ctx: summary_view(ctx, world.dossier)).allergies] \
        == [True]
    assert run(world.services, pro(world, "nurse"), lambda ctx: summary_view(ctx, world.dossier)).allergies == []
    changed, served = run(world.services, rep,
                          lambda ctx: hiding.set_hidden(ctx, "AllergyIntolerance", item, False))
    assert changed and "security" not in json.loads(served)["meta"]
    assert len(run(world.services, pro(world, "nurse"), lambda ctx: summary_view(ctx, world.dossier)).allergies) == 1


def test_the_bundle_marks_a_hidden_item_for_the_medecin_traitant_and_leaves_it_out_in_emergency(
        world: World) -> None:
    item = allergy(world)
    run(world.services, patient(world), lambda ctx: hiding.set_hidden(ctx, "AllergyIntolerance", item, True))
    gp = run(world.services, pro(world, "gp"), lambda ctx: build_bundle(ctx, world.dossier))
    text = json.dumps(gp)
    assert f"AllergyIntolerance/{item}" in text and "hidden by the patient from other professionals" in text
    for actor in (pro(world, "stranger", Mode.EMERGENCY), pro(world, "regulator", Mode.REGULATION)):
        bundle = run(world.services, actor, lambda ctx, a=actor: build_bundle(ctx, world.dossier))  # noqa: ARG005
        text = json.dumps(bundle)
        assert item not in text and "Penicillin" not in text and "MASQUE_PS" not in text


def test_hiding_twice_changes_nothing_and_each_change_is_one_audited_version(world: World) -> None:
    item = allergy(world)
    me = patient(world)
    for hidden, changed in ((True, True), (True, False), (False, True), (False, False)):
        got, served = run(world.services, me,
                          lambda ctx, h=hidden: hiding.set_hidden(ctx, "AllergyIntolerance", item, h))  # type: ignore[misc]
        assert got is changed
    assert json.loads(served)["meta"]["versionId"] == "3"
    with world.services.engine.connect() as conn:
        rows = [(r.event, r.outcome, r.entity_id) for r in conn.execute(
            select(audit.c.event, audit.c.outcome, audit.c.entity_id).where(
                audit.c.dossier_key == world.dossier, audit.c.event.like("clinical.%")).order_by(audit.c.seq))]
    assert rows == [("clinical.create", "0", item), ("clinical.hide", "0", item), ("clinical.show", "0", item)]


@pytest.mark.parametrize("role", ["gp", "doctor", "nurse"])
def test_a_professional_cannot_change_the_patients_choice(world: World, role: str) -> None:
    item = allergy(world)
    with pytest.raises(FhirError) as refused:
        run(world.services, pro(world, role), lambda ctx: hiding.set_hidden(ctx, "AllergyIntolerance", item, True))
    assert refused.value.status == 403
    assert run(world.services, pro(world, "nurse"),
               lambda ctx: clinical.read(ctx, "AllergyIntolerance", item))


def test_a_stranger_learns_nothing_from_trying_to_hide(world: World) -> None:
    item = allergy(world)
    stranger: Any = Actor(ActorKind.PATIENT, id="184012A12345678")
    with pytest.raises(FhirError) as refused:
        run(world.services, stranger, lambda ctx: hiding.set_hidden(ctx, "AllergyIntolerance", item, True))
    assert refused.value.status == 404
