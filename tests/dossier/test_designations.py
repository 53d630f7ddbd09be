"""Who may be designated (issue 15 §6): only a doctor may be médecin traitant. The access side of the rule (a
non-doctor recorded as médecin traitant holds no designation) is the oracle's, checked by tests/access."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from carnet.context import run
from carnet.db.tables import dossier
from carnet.dossier import service as dossiers
from carnet.errors import FhirError
from tests.conftest import World
from tests.dossier.test_lifecycle import as_patient


def treating_gp(world: World) -> str | None:
    with world.services.engine.connect() as conn:
        return conn.execute(select(dossier.c.treating_gp).where(dossier.c.dossier_key == world.dossier)).scalar()


@pytest.mark.parametrize("role", ["nurse", "physio", "pharmacist"])
def test_a_professional_who_is_not_a_doctor_cannot_be_designated_medecin_traitant(world: World, role: str) -> None:
    before = treating_gp(world)
    with pytest.raises(FhirError) as err:
        run(world.services, as_patient(world),
            lambda ctx: dossiers.set_treating_gp(ctx, world.dossier, world.pros[role]))
    assert err.value.status == 422
    assert "doctor" in err.value.issues[0].diagnostics
    assert treating_gp(world) == before == world.pros["gp"]


def test_a_doctor_may_be_designated_medecin_traitant(world: World) -> None:
    run(world.services, as_patient(world), lambda ctx: dossiers.set_treating_gp(ctx, world.dossier,
                                                                                  world.pros["doctor"]))
    assert treating_gp(world) == world.pros["doctor"]


def test_a_nurse_declaring_herself_medecin_traitant_through_a_consent_is_refused_with_422(world: World) -> None:
    from tests.api.test_matrix import authorization  # the Consent the API test bench posts

    body = authorization(world.dossier, world.pros["nurse"])
    body["provision"]["actor"][0]["role"] = {"coding": [{"code": "treating_gp"}]}
    r = world.client.post("/fhir/Consent", json=body, headers=world.headers("nurse"))
    assert r.status_code == 422, r.text
    assert "doctor" in r.text
    assert treating_gp(world) == world.pros["gp"]
