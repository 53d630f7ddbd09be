"""The structured data's service beyond the API: the purge erases it, the demo items are valid (the API itself:
tests/fhir/routes/test_clinical.py)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from tests.clinical import samples
from tests.conftest import World
from tests.fhir.routes.test_clinical import create_item


@pytest.fixture
def w(world: World) -> World:
    samples.grant_clinical_scopes(world)
    return world


def test_a_purge_erases_the_structured_items_and_their_locators(w: World) -> None:
    import datetime as dt

    from carnet.access.actors import Actor, ActorKind
    from carnet.context import run
    from carnet.db.tables import clinical_item, resource_locator
    from carnet.dossier import service as dossiers

    created = create_item(w, samples.allergy(w.dossier))
    run(w.services, Actor(ActorKind.PATIENT, id=w.ins), lambda ctx: dossiers.close(ctx, w.dossier))
    later = w.services.clock() + dt.timedelta(days=366 * 11)
    original = w.services.clock
    w.services.clock = lambda: later
    try:
        purged = run(w.services, Actor(ActorKind.OPERATOR, id="test-purge"), dossiers.purge_due)
    finally:
        w.services.clock = original
    assert w.dossier in purged
    with w.services.engine.connect() as conn:
        assert conn.execute(select(clinical_item).where(clinical_item.c.dossier_key == w.dossier)).first() is None
        assert conn.execute(select(resource_locator).where(
            resource_locator.c.resource_id == uuid.UUID(created["id"]))).first() is None



def test_the_demo_items_are_valid_and_fill_the_summary(w: World) -> None:
    from carnet.access.actors import Actor, ActorKind
    from carnet.clinical.demo import seed
    from carnet.clinical.summary import summary_view
    from carnet.context import run

    gp = Actor(ActorKind.PROFESSIONAL, id=w.pros["gp"], profession="10")
    seed(w.services, gp, w.dossier)
    view = run(w.services, gp, lambda ctx: summary_view(ctx, w.dossier))
    assert [i.display for i in view.allergies] == ["Pénicilline"]
    assert [i.display for i in view.blood_group] == ["ABO and Rh group: O Rh+"]
    assert len(view.problems) == len(view.medications) == len(view.immunizations) == 1

