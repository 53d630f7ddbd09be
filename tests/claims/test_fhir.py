"""ExplanationOfBenefit search: valid R4B, through the policy (class 60 of the habilitation matrix), audited."""

from __future__ import annotations

import datetime as dt

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.explanationofbenefit import ExplanationOfBenefit
from sqlalchemy import select

from carnet.access.actors import Actor, ActorKind
from carnet.claims.ingest import ingest
from carnet.context import run
from carnet.db.tables import audit
from carnet.dossier import service as dossiers
from tests.claims.helpers import PRESCRIBER, byte_lines, claims_file, sample
from tests.conftest import World


def _fill(world: World) -> None:
    ingest(world.services, byte_lines(claims_file(sample(world.ins, world.services.clock().date()))))


def _search(world: World, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    return world.client.get("/fhir/ExplanationOfBenefit", params={"patient": f"Patient/{world.dossier}"},
                            headers=headers)


def test_the_patient_reads_their_care_history_as_valid_explanations_of_benefit(world: World) -> None:
    _fill(world)
    r = _search(world, world.headers(kind="patient_portal"))
    assert r.status_code == 200, r.text
    body = r.json()
    Bundle.model_validate(body, strict=True)
    assert body["total"] == 4
    eobs = [e["resource"] for e in body["entry"]]
    for res in eobs:
        ExplanationOfBenefit.model_validate(res, strict=True)
        assert (res["status"], res["use"], res["outcome"]) == ("active", "claim", "complete")
        assert res["patient"]["reference"] == f"Patient/{world.dossier}"
    dates = [e["item"][0]["servicedDate"] for e in eobs]
    assert dates == sorted(dates, reverse=True)
    drug = next(e for e in eobs if e["type"]["coding"][0]["code"] == "pharmacy")
    assert drug["item"][0]["productOrService"]["coding"][0]["code"].startswith("3400")
    assert drug["total"][0]["amount"] == {"value": 2.18, "currency": "EUR"}
    ngap = next(e for e in eobs if e.get("careTeam"))
    assert ngap["type"]["coding"][0]["code"] == "professional"
    assert ngap["provider"]["identifier"]["value"] == "8" + PRESCRIBER
    assert ngap["item"][0]["productOrService"]["coding"][0]["code"] == "C"


def test_the_treating_gp_and_an_authorized_dentist_read_it(world: World) -> None:
    _fill(world)
    assert _search(world, world.headers("gp")).json()["total"] == 4
    dentist = world.add_pro("40")
    world.pros["dentist"] = dentist
    run(world.services, Actor(ActorKind.PATIENT, id=world.ins),
        lambda ctx: dossiers.change_access(ctx, world.dossier, "practitioner", dentist, "authorized"))
    r = _search(world, world.headers("dentist"))
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 4


def test_a_stranger_a_nurse_and_a_blocked_doctor_are_refused_and_the_refusal_is_audited(world: World) -> None:
    _fill(world)
    for role in ("stranger", "nurse", "blocked"):
        r = _search(world, world.headers(role))
        assert r.status_code == 403, (role, r.text)
        assert "entry" not in r.json()
    with world.services.engine.connect() as conn:
        refused = conn.execute(select(audit.c.actor_id).where(
            audit.c.dossier_key == world.dossier, audit.c.event == "claims.read", audit.c.outcome == "4")).scalars()
        assert set(refused) == {world.pros["stranger"], world.pros["nurse"], world.pros["blocked"]}


def test_each_read_is_audited_with_the_number_returned(world: World) -> None:
    _fill(world)
    r = world.client.get("/fhir/ExplanationOfBenefit", params={"patient": str(world.dossier), "_count": "3"},
                         headers=world.headers("gp"))
    assert r.status_code == 200
    assert len(r.json()["entry"]) == 3 and r.json()["total"] == 4
    assert any(link["relation"] == "next" for link in r.json()["link"])
    with world.services.engine.connect() as conn:
        details = conn.execute(select(audit.c.detail).where(
            audit.c.dossier_key == world.dossier, audit.c.event == "claims.read", audit.c.outcome == "0")).scalars()
        assert [d["returned"] for d in details] == [3]


def test_the_search_requires_a_patient_and_knows_only_its_parameters(world: World) -> None:
    h = world.headers("gp")
    assert world.client.get("/fhir/ExplanationOfBenefit", headers=h).status_code == 400
    r = world.client.get("/fhir/ExplanationOfBenefit", params={"patient": str(world.dossier), "status": "active"},
                         headers=h)
    assert r.status_code == 400


def test_lines_out_of_the_window_are_not_served(world: World) -> None:
    from carnet.claims.ingest import months_before
    from carnet.db.tables import claim_line

    _fill(world)
    old = months_before(world.services.clock().date(), 25)
    with world.services.engine.begin() as conn:  # a line left behind by a purge that has not run yet
        conn.execute(claim_line.insert().values(dossier_key=world.dossier, line_hash="f" * 64, care_date=old,
                                                kind="act", code_system="CCAM", code="QZFA001", label="old",
                                                ingested_at=dt.datetime.now(dt.UTC)))
    assert _search(world, world.headers("gp")).json()["total"] == 4


def test_the_capability_statement_lists_the_search(world: World) -> None:
    cap = world.client.get("/fhir/metadata").json()
    types = {r["type"] for r in cap["rest"][0]["resource"]}
    assert "ExplanationOfBenefit" in types
