"""The e-prescription's life (issue 12 §2): written, signed and filed, seen by the patient, found by a pharmacist by
number and INS, dispensed in part then in full, refused beyond what was prescribed and after expiry."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
from fhir.resources.R4B.medicationdispense import MedicationDispense
from fhir.resources.R4B.medicationrequest import MedicationRequest
from sqlalchemy import select

from carnet import prescribing
from carnet.access.actors import Actor, ActorKind
from carnet.context import run
from carnet.db.tables import document
from carnet.documents import service as documents
from carnet.errors import FhirError
from carnet.identity.ins import format_nir
from tests.conftest import World
from tests.notify.conftest import add_account, messages
from tests.prescribing.helpers import outside_pharmacist, write
from tests.tasks.helpers import audit_events, patient


def by_ins(world: World, number: str, ins: str | None = None) -> prescribing.Presentation:
    return prescribing.Presentation(number=number, ins=ins or world.ins)


def test_a_written_prescription_is_a_signed_pdf_filed_as_a_prescription_and_announced(world: World) -> None:
    account = add_account(world, email=f"rx-{world.n}@example.org")
    written = write(world)
    assert prescribing.normalise(written.number) == written.number and len(written.number) == 16
    with world.services.engine.connect() as conn:
        doc = conn.execute(select(document).where(document.c.dossier_key == world.dossier,
                                                  document.c.document_id == written.document_id)).one()
    assert (doc.class_code, doc.type_code, doc.content_type) == ("42", "57833-6", "application/pdf")
    data, ctype, _ = run(world.services, patient(world), lambda ctx: documents.retrieve(ctx, str(doc.document_id)))
    assert ctype == "application/pdf" and data.startswith(b"%PDF")
    verdict = prescribing.verify_pdf(world.services.settings, data)
    assert verdict.ok, verdict
    assert verdict.signer is not None and world.pros["gp"] in verdict.signer
    assert [m.event for m in messages(world.services, world.dossier, account_id=account)] == ["document.new"]
    assert "prescription.create" in audit_events(world, str(written.prescription_id))


def test_the_patient_sees_the_prescription_and_the_pharmacist_dispenses_in_part_then_the_rest(world: World) -> None:
    written = write(world)
    mine = run(world.services, patient(world), lambda ctx: prescribing.for_dossier(ctx, world.dossier))
    assert [p.number for p in mine] == [written.number]
    assert [(ln.display, ln.allowed, ln.remaining) for ln in mine[0].lines] == [
        ("Paracétamol 500 mg comprimé", 4, 4), ("Bas de contention classe 2, une paire", 1, 1)]
    chemist = outside_pharmacist(world)
    typed = prescribing.format_number(written.number).lower()  # as typed from the paper: dashes, lower case
    found = run(world.services, chemist, lambda ctx: prescribing.find(ctx, by_ins(world, typed, format_nir(
        world.ins))))
    assert found.number == written.number and found.patient_name.startswith("TESTÉ")
    after = run(world.services, chemist, lambda ctx: prescribing.dispense(ctx, by_ins(world, written.number),
                                                                          [(1, 1)]))
    assert [ln.remaining for ln in after.lines] == [3, 1]
    after = run(world.services, chemist, lambda ctx: prescribing.dispense(ctx, by_ins(world, written.number),
                                                                          [(1, 1), (2, 1)]))
    assert [ln.remaining for ln in after.lines] == [2, 0]
    # the renewal: one more fill of two boxes, then nothing
    after = run(world.services, chemist, lambda ctx: prescribing.dispense(ctx, by_ins(world, written.number),
                                                                          [(1, 2)]))
    assert [ln.remaining for ln in after.lines] == [0, 0] and after.state(dt.datetime.now(dt.UTC)) == "completed"
    with pytest.raises(FhirError) as refused:
        run(world.services, chemist, lambda ctx: prescribing.dispense(ctx, by_ins(world, written.number), [(1, 1)]))
    assert refused.value.status == 409 and "more than prescribed" in str(refused.value)
    # the prescriber and the patient see what was dispensed, by whom
    for who in (patient(world), Actor(ActorKind.PROFESSIONAL, id=world.pros["gp"], profession="10")):
        seen = run(world.services, who, lambda ctx: prescribing.for_dossier(ctx, world.dossier))[0]
        assert [(d.line_no, d.quantity) for d in seen.dispenses] == [(1, 1), (1, 1), (2, 1), (1, 2)]
    events = audit_events(world, str(written.prescription_id))
    assert events.count("prescription.dispense") == 4  # three recorded, one refused
    assert audit_events(world, str(written.prescription_id), outcome="4").count("prescription.dispense") == 1


def test_a_dispensing_gives_at_most_one_fill_and_a_refusal_changes_no_line(world: World) -> None:
    written = write(world)
    chemist = outside_pharmacist(world)
    with pytest.raises(FhirError) as refused:  # 3 boxes at once: the renewal is for later
        run(world.services, chemist, lambda ctx: prescribing.dispense(ctx, by_ins(world, written.number),
                                                                      [(2, 1), (1, 3)]))
    assert refused.value.status == 409 and "at once" in str(refused.value)
    seen = run(world.services, chemist, lambda ctx: prescribing.find(ctx, by_ins(world, written.number)))
    assert [ln.dispensed for ln in seen.lines] == [0, 0] and seen.dispenses == []


def test_no_first_dispensing_after_three_months_and_none_at_all_after_a_year(world: World) -> None:
    written = write(world)
    chemist = outside_pharmacist(world)
    now = dt.datetime.now(dt.UTC)
    late = dataclasses.replace(world.services, clock=lambda: now + dt.timedelta(days=91))
    with pytest.raises(FhirError) as refused:
        run(late, chemist, lambda ctx: prescribing.dispense(ctx, by_ins(world, written.number), [(1, 1)]))
    assert refused.value.status == 409 and "expired" in str(refused.value)
    # started in time, its renewal may follow after three months, but not after a year
    run(world.services, chemist, lambda ctx: prescribing.dispense(ctx, by_ins(world, written.number), [(1, 2)]))
    run(late, chemist, lambda ctx: prescribing.dispense(ctx, by_ins(world, written.number), [(1, 1)]))
    later = dataclasses.replace(world.services, clock=lambda: now + dt.timedelta(days=366))
    with pytest.raises(FhirError) as refused:
        run(later, chemist, lambda ctx: prescribing.dispense(ctx, by_ins(world, written.number), [(1, 1)]))
    assert refused.value.status == 409 and "expired" in str(refused.value)


def test_the_scanned_code_finds_the_prescription_without_the_ins(world: World) -> None:
    written = write(world)
    code = run(world.services, patient(world), lambda ctx: prescribing.scan_code(ctx, world.dossier,
                                                                               written.prescription_id))
    assert prescribing.read_scan(code) is not None and prescribing.read_scan(code)[0] == written.number  # type: ignore[index]
    found = run(world.services, outside_pharmacist(world),
                lambda ctx: prescribing.find(ctx, prescribing.Presentation(scan=code)))
    assert found.prescription_id == written.prescription_id
    with pytest.raises(FhirError) as refused:
        run(world.services, outside_pharmacist(world),
            lambda ctx: prescribing.find(ctx, prescribing.Presentation(scan=code[:-2] + "xx")))
    assert refused.value.status == 404


def test_the_patient_sends_it_to_a_pharmacy_whose_pharmacists_open_it_by_number_alone(world: World) -> None:
    written = write(world)
    chemist = outside_pharmacist(world)
    with pytest.raises(FhirError):  # not sent yet: the number alone finds nothing
        run(world.services, chemist, lambda ctx: prescribing.find(ctx, prescribing.Presentation(
            number=written.number)))
    pharmacy = chemist.organisation_id
    assert pharmacy in [p.organisation_id for p in run(world.services, patient(world), prescribing.pharmacies)]
    run(world.services, patient(world), lambda ctx: prescribing.send_to_pharmacy(
        ctx, world.dossier, written.prescription_id, pharmacy))
    inbox = run(world.services, chemist, prescribing.pharmacy_inbox)
    assert written.number in [s.number for s in inbox]
    found = run(world.services, chemist, lambda ctx: prescribing.find(ctx, prescribing.Presentation(
        number=written.number)))
    assert found.pharmacy_id == pharmacy
    with pytest.raises(FhirError) as refused:
        run(world.services, patient(world), lambda ctx: prescribing.send_to_pharmacy(
            ctx, world.dossier, written.prescription_id, "NO-SUCH-PHARMACY"))
    assert refused.value.status == 422


def test_the_stored_resources_are_valid_fhir_shaped_like_the_guides_examples(world: World) -> None:
    written = write(world)
    chemist = outside_pharmacist(world)
    run(world.services, chemist, lambda ctx: prescribing.dispense(ctx, by_ins(world, written.number), [(1, 1)]))
    resources = run(world.services, chemist, lambda ctx: prescribing.dispense_resources(ctx, by_ins(
        world, written.number)))
    requests = [r for r in resources if r["resourceType"] == "MedicationRequest"]
    dispenses = [r for r in resources if r["resourceType"] == "MedicationDispense"]
    assert len(requests) == 2 and len(dispenses) == 1
    for r in requests:
        MedicationRequest.model_validate(r)
        assert r["groupIdentifier"]["value"] == written.number and r["intent"] == "order"
    MedicationDispense.model_validate(dispenses[0])
    assert dispenses[0]["authorizingPrescription"][0]["reference"] == f"MedicationRequest/{requests[0]['id']}"
    json.dumps(resources)
