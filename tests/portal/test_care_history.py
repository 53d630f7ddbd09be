"""Données de remboursement in the patient portal (issue 3 §5): the care history read through the claims service."""

from __future__ import annotations

from sqlalchemy import func, select

from carnet.claims.ingest import ingest
from carnet.db.tables import audit
from tests.claims.helpers import byte_lines, claims_file, sample
from tests.portal.conftest import Patient


def test_the_patient_reads_the_care_history_with_its_labels_and_amounts(patient: Patient) -> None:
    world = patient.world
    ingest(world.services, byte_lines(claims_file(sample(world.ins, world.services.clock().date()))))
    patient.ready()
    with world.services.engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(audit).where(
            audit.c.dossier_key == world.dossier, audit.c.event == "claims.read")).scalar_one()
    page = patient.browser.get("/portal/care-history")
    assert page.status_code == 200
    assert "Paracétamol 500 mg" in page.text and "QZFA001" in page.text and "26,50" in page.text
    assert "Données de remboursement" in page.text
    with world.services.engine.connect() as conn:
        after = conn.execute(select(func.count()).select_from(audit).where(
            audit.c.dossier_key == world.dossier, audit.c.event == "claims.read")).scalar_one()
    assert after == before + 1


def test_an_empty_care_history_says_so(patient: Patient) -> None:
    patient.ready()
    page = patient.browser.get("/portal/care-history")
    assert page.status_code == 200 and "Aucun soin remboursé" in page.text
