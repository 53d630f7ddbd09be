"""Two pharmacies dispense the last boxes of one line at the same instant (issue 12 §2): one succeeds, the other is
refused, and the line never goes beyond what was prescribed; on PostgreSQL (real concurrent transactions) and on
SQLite."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import select

from carnet import prescribing
from carnet.access.actors import Actor
from carnet.context import Context, run
from carnet.db.tables import medication_dispense, prescription_line
from carnet.errors import FhirError
from tests.conftest import World
from tests.prescribing.helpers import outside_pharmacist, write

ROUNDS = 3
ONE_FILL = prescribing.Line(kind="medicine", medication="Amoxicilline", strength="1 g", form="comprimé",
                            dosage_text="1 comprimé matin et soir pendant 6 jours", quantity=1, unit="boîte")


def _race(world: World, shown: prescribing.Presentation, pharmacists: list[Actor]) -> list[str]:
    # PostgreSQL: both transactions are open before either dispenses. SQLite writes one transaction at a time (the
    # second waits at BEGIN), so there the two threads simply race.
    barrier = threading.Barrier(2) if world.services.engine.dialect.name == "postgresql" else None
    outcomes: list[str] = []

    def work(ctx: Context) -> Any:
        if barrier is not None:
            barrier.wait(timeout=10)
        return prescribing.dispense(ctx, shown, [(1, 1)])

    def attempt(actor: Actor) -> None:
        try:
            run(world.services, actor, work)
            outcomes.append("dispensed")
        except FhirError as exc:
            outcomes.append(f"refused {exc.status}")

    threads = [threading.Thread(target=attempt, args=(a,)) for a in pharmacists]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return outcomes


def test_two_pharmacies_at_once_cannot_both_dispense_the_last_fill(world: World) -> None:
    first = outside_pharmacist(world, "PHARMA-A")
    world.pros["second"] = world.pros.pop("outside_pharmacist")
    second = outside_pharmacist(world, "PHARMA-B")
    assert first.id != second.id
    for _ in range(ROUNDS):
        written = write(world, ONE_FILL)
        outcomes = _race(world, prescribing.Presentation(number=written.number, ins=world.ins), [first, second])
        assert sorted(outcomes) == ["dispensed", "refused 409"]
        with world.services.engine.connect() as conn:
            dispensed = conn.execute(select(prescription_line.c.dispensed).where(
                prescription_line.c.dossier_key == world.dossier,
                prescription_line.c.prescription_id == written.prescription_id)).scalar_one()
            rows = conn.execute(select(medication_dispense).where(
                medication_dispense.c.dossier_key == world.dossier,
                medication_dispense.c.prescription_id == written.prescription_id)).all()
        assert dispensed == 1 and len(rows) == 1
