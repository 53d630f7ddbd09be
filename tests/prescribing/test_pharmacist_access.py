"""The pharmacist's narrow access (issue 12 §2; docs/ACCESS.md): a pharmacist with no authorization presents a
prescription and gets that prescription, nothing else of the dossier; a wrong INS or code is "not found", audited;
a blocked pharmacist gets nothing; only prescribing professions write."""

from __future__ import annotations

import pytest

from carnet import prescribing
from carnet.access.actors import Actor, ActorKind
from carnet.context import run
from carnet.documents import service as documents
from carnet.dossier import service as dossiers
from carnet.errors import FhirError
from carnet.identity.ins import fake_nir_for
from tests.conftest import World
from tests.prescribing.helpers import PARACETAMOL, outside_pharmacist, write
from tests.tasks.helpers import audit_events, patient


def _refused(world: World, actor: Actor, work) -> FhirError:  # type: ignore[no-untyped-def]
    with pytest.raises(FhirError) as caught:
        run(world.services, actor, work)
    return caught.value


def test_a_pharmacist_who_found_a_prescription_still_cannot_read_or_list_the_dossier(world: World) -> None:
    written = write(world)
    chemist = outside_pharmacist(world)
    run(world.services, chemist, lambda ctx: prescribing.find(ctx, prescribing.Presentation(
        number=written.number, ins=world.ins)))
    assert _refused(world, chemist, lambda ctx: prescribing.for_dossier(ctx, world.dossier)).status == 403
    assert _refused(world, chemist, lambda ctx: documents.retrieve(ctx, str(written.document_id))).status in (403,
                                                                                                              404)
    assert _refused(world, chemist, lambda ctx: dossiers.read(ctx, world.dossier)).status == 403


def test_a_wrong_ins_or_an_unknown_number_is_not_found_and_the_wrong_ins_is_audited(world: World) -> None:
    written = write(world)
    chemist = outside_pharmacist(world)
    other = fake_nir_for(world.n + 500_000)
    wrong = _refused(world, chemist, lambda ctx: prescribing.find(ctx, prescribing.Presentation(
        number=written.number, ins=other)))
    body = written.number[:-1]
    typo = body + ("0" if written.number[-1] != "0" else "1")  # a wrong check character
    unknown = _refused(world, chemist, lambda ctx: prescribing.find(ctx, prescribing.Presentation(
        number=typo, ins=world.ins)))
    assert (wrong.status, str(wrong)) == (unknown.status, str(unknown)) == (404, prescribing.NOT_FOUND)
    assert audit_events(world, str(written.prescription_id), outcome="4") == ["prescription.find"]


def test_a_pharmacist_the_patient_blocked_gets_nothing_even_with_number_and_ins(world: World) -> None:
    written = write(world)
    chemist = outside_pharmacist(world)
    run(world.services, patient(world), lambda ctx: dossiers.change_access(
        ctx, world.dossier, "practitioner", world.pros["outside_pharmacist"], "blocked"))
    refused = _refused(world, chemist, lambda ctx: prescribing.dispense(ctx, prescribing.Presentation(
        number=written.number, ins=world.ins), [(1, 1)]))
    assert refused.status == 404


def test_only_pharmacists_present_prescriptions_and_only_prescribers_write_them(world: World) -> None:
    written = write(world)
    nurse = Actor(ActorKind.PROFESSIONAL, id=world.pros["nurse"], profession="60")
    assert _refused(world, nurse, lambda ctx: prescribing.find(ctx, prescribing.Presentation(
        number=written.number, ins=world.ins))).status == 403
    assert _refused(world, nurse, lambda ctx: prescribing.write(ctx, world.dossier, [PARACETAMOL])).status == 403
    stranger = Actor(ActorKind.PROFESSIONAL, id=world.pros["stranger"], profession="10")
    assert _refused(world, stranger, lambda ctx: prescribing.write(ctx, world.dossier, [PARACETAMOL])).status == 403
    assert "prescription.create" in audit_events(world, outcome="4")


def test_a_line_without_dosage_is_refused_naming_the_field(world: World) -> None:
    bare = prescribing.Line(kind="medicine", medication="Amoxicilline", quantity=1)
    refused = _refused(world, Actor(ActorKind.PROFESSIONAL, id=world.pros["gp"], profession="10"),
                       lambda ctx: prescribing.write(ctx, world.dossier, [bare]))
    assert refused.status == 422 and "dosage" in str(refused)


def test_a_pharmacists_look_ups_are_counted_and_then_slowed(world: World) -> None:
    import dataclasses

    tight = dataclasses.replace(world.services, settings=dataclasses.replace(world.services.settings,
                                                                             rate_prescription=(2, 300)))
    me = f"rate-{world.n}-{world.pros['gp']}"
    prescribing.check_rate(tight, me)
    prescribing.check_rate(tight, me)
    with pytest.raises(FhirError) as slowed:
        prescribing.check_rate(tight, me)
    assert slowed.value.status == 429 and int(slowed.value.headers["Retry-After"]) > 0
    prescribing.check_rate(tight, me + "-other")  # another pharmacist is not slowed
