"""The hash chain stays whole when many requests write to one dossier at once (the chain head is locked)."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from carnet.access.actors import Actor, ActorKind
from carnet.audit.log import verify_chain
from carnet.context import run
from carnet.db.tables import audit
from carnet.dossier import service as dossiers
from tests.conftest import World


def test_concurrent_reads_of_one_dossier_leave_a_whole_chain(world: World) -> None:
    gp = Actor(ActorKind.PROFESSIONAL, id=world.pros["gp"], profession="10")
    with world.services.engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(audit)
                              .where(audit.c.dossier_key == world.dossier)).scalar_one()
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(10):
                run(world.services, gp, lambda ctx: dossiers.read(ctx, world.dossier))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with world.services.engine.connect() as conn:
        after = conn.execute(select(func.count()).select_from(audit)
                             .where(audit.c.dossier_key == world.dossier)).scalar_one()
        assert after - before == 40
        assert verify_chain(conn, world.dossier) == []
