"""Shared steps of the prescription tests: a GP writes, a pharmacist with no authorization presents."""

from __future__ import annotations

from carnet import admin, prescribing
from carnet.access.actors import Actor, ActorKind
from carnet.context import Services, run
from carnet.identity.professionals import fake_rpps
from tests.conftest import World, _counter

PARACETAMOL = prescribing.Line(kind="medicine", medication="Paracétamol", form="comprimé", strength="500 mg",
                               dosage_text="1 comprimé 3 fois par jour si douleur", dose_value=1,
                               dose_unit="comprimé", frequency=3, period_unit="d", duration_days=5, quantity=2,
                               unit="boîte", repeats=1)
STOCKINGS = prescribing.Line(kind="text", medication="Bas de contention classe 2, une paire", quantity=1,
                             unit="paire")


def gp(world: World) -> Actor:
    return Actor(ActorKind.PROFESSIONAL, id=world.pros["gp"], profession="10", organisation_id=f"ORG{world.n}")


def outside_pharmacist(world: World, org: str = "PHARMA", family: str = "Officine") -> Actor:
    """A pharmacist of another organisation, with no authorization on the dossier."""
    if "outside_pharmacist" not in world.pros:
        with world.services.engine.begin() as conn:
            world.pros["outside_pharmacist"] = admin.add_practitioner(
                conn, rpps=fake_rpps(next(_counter)), adeli=None, family=family, given="Test", profession="21",
                organisation_id=f"{org}{world.n}", organisation_name=f"Pharmacie {world.n}")
    return Actor(ActorKind.PROFESSIONAL, id=world.pros["outside_pharmacist"], profession="21",
                 organisation_id=f"{org}{world.n}")


def write(world: World, *lines: prescribing.Line, services: Services | None = None) -> prescribing.Written:
    return run(services or world.services, gp(world),
               lambda ctx: prescribing.write(ctx, world.dossier, list(lines or (PARACETAMOL, STOCKINGS))))
