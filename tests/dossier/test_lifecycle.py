"""The dossier's life through the services: objection, close, reopen, purge, representatives, médecin traitant."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from carnet.access.actors import Actor, ActorKind
from carnet.audit.log import verify_chain
from carnet.context import run
from carnet.db.tables import audit, document, dossier, ins_lookup, metadata
from carnet.dossier import service as dossiers
from carnet.errors import FhirError
from carnet.identity.ins import fake_nir_for
from carnet.ids import SYSTEM_CHAINS
from tests.conftest import INS_SYSTEM, World


def as_patient(world: World) -> Actor:
    return Actor(ActorKind.PATIENT, id=world.ins)


def test_an_objection_to_creation_is_honoured(world: World) -> None:
    ins = fake_nir_for(8_000_000 + world.n)
    run(world.services, Actor(ActorKind.PATIENT, id=ins),
        lambda ctx: dossiers.record_objection(ctx, INS_SYSTEM, ins))
    r = world.client.post("/fhir/Patient", json=world.patient_resource(ins), headers=world.headers("gp"))
    assert r.status_code == 409
    with world.services.engine.connect() as conn:
        assert conn.execute(select(ins_lookup).where(ins_lookup.c.ins == ins)).first() is None


def test_closing_the_dossier_shuts_professionals_out_and_reopening_restores_access(world: World) -> None:
    run(world.services, as_patient(world), lambda ctx: dossiers.close(ctx, world.dossier))
    r = world.client.get(f"/fhir/Patient/{world.dossier}", headers=world.headers("gp"))
    assert r.status_code in (403, 404)
    r = world.client.get("/fhir/Patient", params={"identifier": f"{INS_SYSTEM}|{world.ins}"},
                         headers=world.headers("gp"))
    assert r.json()["total"] == 0
    run(world.services, as_patient(world), lambda ctx: dossiers.reopen(ctx, world.dossier))
    assert world.client.get(f"/fhir/Patient/{world.dossier}", headers=world.headers("gp")).status_code == 200


def test_a_professional_cannot_close_a_dossier(world: World) -> None:
    gp = Actor(ActorKind.PROFESSIONAL, id=world.pros["gp"], profession="10")
    with pytest.raises(FhirError) as err:
        run(world.services, gp, lambda ctx: dossiers.close(ctx, world.dossier))
    assert err.value.status == 403
    with world.services.engine.connect() as conn:
        status = conn.execute(select(dossier.c.status).where(dossier.c.dossier_key == world.dossier)).scalar()
        refused = conn.execute(select(audit.c.outcome).where(audit.c.dossier_key == world.dossier,
                                                             audit.c.event == "dossier.close")).scalars().all()
    assert status == "active"
    assert refused == ["4"]  # the refused attempt is traced, the dossier unchanged


def test_the_treating_gp_cannot_be_blocked_while_designated(world: World) -> None:
    with pytest.raises(FhirError) as err:
        run(world.services, as_patient(world), lambda ctx: dossiers.change_access(
            ctx, world.dossier, "practitioner", world.pros["gp"], "blocked"))
    assert err.value.status == 409


def test_a_purge_erases_only_dossiers_past_retention_and_keeps_the_chains_verifiable(world: World) -> None:
    from carnet.measures import service as measures
    from carnet.measures.catalogue import Measure
    from tests.fhir.routes.test_documents import publish

    publish(world)
    now = world.services.clock()
    reading = measures.reading(Measure.WEIGHT, now, 72.5, "kg")
    run(world.services, as_patient(world), lambda ctx: measures.record(
        ctx, world.dossier, measures.SourceRef("manual", "manual", "By hand"), [reading]))
    from carnet.measures import imports
    run(world.services, as_patient(world), lambda ctx: imports.start(ctx, world.dossier, 1000))  # measure_import
    run(world.services, as_patient(world), lambda ctx: dossiers.close(ctx, world.dossier))
    operator = Actor(ActorKind.OPERATOR, id="test-purge")
    assert world.dossier not in run(world.services, operator, dossiers.purge_due)
    later = world.services.clock() + dt.timedelta(days=366 * 11)
    original = world.services.clock
    world.services.clock = lambda: later
    try:
        purged = run(world.services, operator, dossiers.purge_due)
    finally:
        world.services.clock = original
    assert world.dossier in purged
    with world.services.engine.connect() as conn:
        assert conn.execute(select(document).where(document.c.dossier_key == world.dossier)).first() is None
        assert conn.execute(select(ins_lookup).where(ins_lookup.c.ins == world.ins)).first() is None
        assert conn.execute(select(audit).where(audit.c.dossier_key == world.dossier)).first() is None
        left = [t.name for t in metadata.sorted_tables if "dossier_key" in t.c
                and conn.execute(select(t).where(t.c.dossier_key == world.dossier)).first() is not None]
        assert left == [], f"tables still holding the purged dossier: {left}"
        # other tests tamper with their own chains on purpose: check the chains this purge touched
        assert all(verify_chain(conn, key) == [] for key in SYSTEM_CHAINS)
        assert verify_chain(conn, world.dossier) == []


def test_an_operator_never_reads_a_dossier(world: World) -> None:
    operator = Actor(ActorKind.OPERATOR, id="ops")
    with pytest.raises(FhirError) as err:
        run(world.services, operator, lambda ctx: dossiers.read(ctx, world.dossier))
    assert err.value.status in (403, 404)


def test_a_minors_parent_loses_access_at_majority(world: World) -> None:
    ins = fake_nir_for(9_000_000 + world.n)
    res = world.patient_resource(ins)
    res["birthDate"] = (dt.date.today() - dt.timedelta(days=365 * 17 + 100)).isoformat()
    gp = Actor(ActorKind.PROFESSIONAL, id=world.pros["gp"], profession="10")
    key, _ = run(world.services, gp, lambda ctx: dossiers.create(ctx, res))
    rep = run(world.services, Actor(ActorKind.OPERATOR, id="ops"),
              lambda ctx: dossiers.add_representative(ctx, key, "minor", "Parent", "Un", "MTH"))
    parent = Actor(ActorKind.REPRESENTATIVE, id=str(rep))
    assert run(world.services, parent, lambda ctx: dossiers.read(ctx, key))
    later = world.services.clock() + dt.timedelta(days=365 * 2)
    original = world.services.clock
    world.services.clock = lambda: later
    try:
        with pytest.raises(FhirError):
            run(world.services, parent, lambda ctx: dossiers.read(ctx, key))
    finally:
        world.services.clock = original
