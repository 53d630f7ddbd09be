"""The patient portal's prescriptions page (issue 12 §2): the patient sees the prescription at once, shows its code,
sends it to a pharmacy of the directory, and sees what was dispensed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from carnet import prescribing
from carnet.context import run
from tests.conftest import World
from tests.portal.conftest import PORTAL_BASE, Patient, csrf_of
from tests.prescribing.helpers import outside_pharmacist, write


@pytest.fixture
def patient(world: World, app: Any) -> Iterator[Patient]:
    with TestClient(app, base_url=PORTAL_BASE, follow_redirects=False) as c:
        yield Patient(world, c).ready()


def test_the_patient_sees_shows_and_sends_a_prescription_then_sees_it_dispensed(patient: Patient,
                                                                                  world: World) -> None:
    written = write(world)
    chemist = outside_pharmacist(world)
    page = patient.browser.get("/portal/prescriptions")
    assert page.status_code == 200 and prescribing.format_number(written.number) in page.text
    assert f"/portal/documents/{written.document_id}" in page.text
    shown = patient.browser.get(f"/portal/prescriptions?code={written.prescription_id}")
    assert 'id="rx-code"' in shown.text and "<svg" in shown.text
    r = patient.browser.post("/portal/prescriptions/send", data={
        "csrf": csrf_of(page.text), "prescription": str(written.prescription_id),
        "pharmacy": chemist.organisation_id})
    assert r.status_code == 303, r.text
    assert written.number in [s.number for s in run(world.services, chemist, prescribing.pharmacy_inbox)]
    run(world.services, chemist, lambda ctx: prescribing.dispense(
        ctx, prescribing.Presentation(number=written.number), [(1, 1)]))
    after = patient.browser.get("/portal/prescriptions")
    assert "Officine" in after.text and f"Pharmacie {world.n}" in after.text
