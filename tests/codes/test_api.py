"""Access codes through the FHIR API (issue 13 §1): a patient app issues a code, a professional's software takes it
up; expiry, reuse, a wrong code (counted, audited), the per-dossier freeze, the per-address rate limit, and who may
do what."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient

from carnet import codes
from carnet.app import create_app
from carnet.context import run
from carnet.db.tables import access_code
from tests.conftest import World, fake_nir_for
from tests.notify.conftest import add_account, messages
from tests.tasks.helpers import audit_events, grants_of, patient


def _params(**values: Any) -> dict[str, Any]:
    out = []
    for name, value in values.items():
        kind = "valueInteger" if isinstance(value, int) else "valueString"
        out.append({"name": name, kind: value})
    return {"resourceType": "Parameters", "parameter": out}


def _out(r: Any) -> dict[str, Any]:
    return {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in r.json()["parameter"]}


def issue(world: World, client: TestClient | None = None, **values: Any) -> dict[str, Any]:
    r = (client or world.client).post(f"/fhir/Patient/{world.dossier}/$access-code", json=_params(**values),
                                      headers=world.headers(kind="patient_portal"))
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    return _out(r)


def redeem(world: World, code: str, role: str = "stranger", client: TestClient | None = None) -> Any:
    return (client or world.client).post(f"/fhir/Patient/{world.dossier}/$redeem-access-code",
                                         json=_params(code=code), headers=world.headers(role))


def _stranger_reads(world: World) -> int:
    return world.client.get(f"/fhir/Patient/{world.dossier}", headers=world.headers("stranger")).status_code


def test_a_professional_who_enters_the_code_becomes_authorized_and_the_code_dies(world: World) -> None:
    assert _stranger_reads(world) == 403
    acc = add_account(world, email=f"codes-{world.n}@example.org")
    issued = issue(world)
    code = issued["code"]
    assert len(code) == 9 and code[4] == "-" and all(c in codes.ALPHABET for c in code.replace("-", ""))
    r = redeem(world, code.lower().replace("-", " "))  # read out on the phone: case and separators do not matter
    assert r.status_code == 200, r.text
    consent = _out(r)["consent"]["reference"]
    assert _stranger_reads(world) == 200
    grant = [g for g in grants_of(world) if g[3] == world.pros["stranger"]]
    assert [g[4] for g in grant] == ["authorized"] and consent == f"Consent/{grant[0][1]}"
    assert "access.code.use" in audit_events(world, outcome="0")
    with world.services.engine.connect() as conn:
        row = conn.execute(select(access_code).where(access_code.c.dossier_key == world.dossier)).one()
    assert len(messages(world.services, world.dossier, event="access.code_used", account_id=acc)) == 1
    assert row.used_by == world.pros["stranger"] and code.replace("-", "") not in row.code_hash
    # the code is dead: another professional who tries it gets nothing
    other = world.add_pro("10")
    world.pros["other"] = other
    r = redeem(world, code, role="other")
    assert r.status_code == 403 and r.json()["issue"][0]["diagnostics"] == codes.WRONG


def test_an_expired_code_is_refused_like_a_wrong_one(world: World) -> None:
    issued = issue(world, hours=1)
    with world.services.engine.begin() as conn:
        conn.execute(update(access_code).where(access_code.c.dossier_key == world.dossier).values(
            expires_at=world.services.clock() - dt.timedelta(minutes=1)))
    r = redeem(world, issued["code"])
    assert r.status_code == 403
    assert _stranger_reads(world) == 403
    assert "access.code.wrong" in audit_events(world, outcome="4")


def test_a_revoked_code_is_refused(world: World) -> None:
    issued = issue(world)
    run(world.services, patient(world), lambda ctx: codes.revoke(ctx, world.dossier, uuid.UUID(issued["id"])))
    assert redeem(world, issued["code"]).status_code == 403
    [view] = run(world.services, patient(world), lambda ctx: codes.codes(ctx, world.dossier))
    assert view.state == "revoked"


def test_the_validity_is_the_patients_choice_within_bounds(world: World) -> None:
    issued = issue(world, hours=2)
    assert issued["expires"] > ""
    for hours in (0, 721):
        r = world.client.post(f"/fhir/Patient/{world.dossier}/$access-code", json=_params(hours=hours),
                              headers=world.headers(kind="patient_portal"))
        assert r.status_code == 422, r.text


def test_wrong_codes_are_audited_and_freeze_the_dossiers_codes_then_the_patient_is_told(world: World) -> None:
    acc = add_account(world, email=f"frozen-{world.n}@example.org")
    issued = issue(world)
    limit = world.services.settings.access_code_attempts
    statuses = [redeem(world, "ABCD-EFGH").status_code for _ in range(limit)]
    assert statuses == [403] * (limit - 1) + [429]
    assert audit_events(world, outcome="4").count("access.code.wrong") == limit
    assert "access.code.frozen" in audit_events(world, outcome="0")
    # frozen: even the right code is not looked at
    r = redeem(world, issued["code"])
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert _stranger_reads(world) == 403
    assert len(messages(world.services, world.dossier, event="access.code_frozen", account_id=acc)) == 1


def test_attempts_are_rate_limited_per_address(services: Any, world: World) -> None:
    settings = dataclasses.replace(services.settings, rate_access_code=(3, 300))
    with TestClient(create_app(dataclasses.replace(services, settings=settings))) as c:
        issued = issue(world, client=c)
        statuses = [redeem(world, "ABCD-EFG2", client=c).status_code for _ in range(3)]
        assert statuses == [403, 403, 403]
        r = redeem(world, issued["code"], client=c)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert _stranger_reads(world) == 403


def test_who_may_issue_and_redeem(world: World) -> None:
    # a professional cannot issue a code
    r = world.client.post(f"/fhir/Patient/{world.dossier}/$access-code", json=_params(),
                          headers=world.headers("doctor"))
    assert r.status_code == 403
    code = issue(world)["code"]
    # already authorized: 409, and the code stays alive for whom it was meant
    assert redeem(world, code, role="doctor").status_code == 409
    # blocked: nothing, not even whether the dossier exists (404); audited, no wrong code counted
    assert redeem(world, code, role="blocked").status_code == 404
    assert "access.code.use" in audit_events(world, outcome="4")
    assert "access.code.wrong" not in audit_events(world)
    assert redeem(world, code).status_code == 200


def test_a_code_is_checked_against_its_own_dossier_only(world: World) -> None:
    code = issue(world)["code"]
    other = world.create_dossier(fake_nir_for(world.n + 5000))
    r = world.client.post(f"/fhir/Patient/{other}/$redeem-access-code", json=_params(code=code),
                          headers=world.headers("stranger"))
    assert r.status_code == 403
    assert redeem(world, code).status_code == 200


@pytest.mark.parametrize("body", [{"resourceType": "Parameters"}, _params(code="  ")])
def test_a_request_without_a_code_is_refused_and_changes_nothing(world: World, body: dict[str, Any]) -> None:
    r = world.client.post(f"/fhir/Patient/{world.dossier}/$redeem-access-code", json=body,
                          headers=world.headers("stranger"))
    assert r.status_code == 400 and "code" in r.text
    assert "access.code.wrong" not in audit_events(world)


def test_the_operations_are_in_the_capability_statement(world: World) -> None:
    cs = world.client.get("/fhir/metadata").json()
    [patient_res] = [r for r in cs["rest"][0]["resource"] if r["type"] == "Patient"]
    names = {o["name"] for o in patient_res["operation"]}
    assert {"access-code", "redeem-access-code"} <= names


def test_two_professionals_sending_the_same_code_at_once_one_gets_in(world: World) -> None:
    """The dossier row is locked for an attempt: a code is used once, even at the same moment (PostgreSQL's row
    lock; SQLite serialises writers)."""
    from concurrent.futures import ThreadPoolExecutor

    from carnet.access.actors import Actor, ActorKind
    from carnet.errors import FhirError

    code = run(world.services, patient(world), lambda ctx: codes.issue(ctx, world.dossier)).code
    ids = [world.add_pro("10") for _ in range(2)]

    def attempt(nid: str) -> str:
        actor = Actor(ActorKind.PROFESSIONAL, id=nid, profession="10")
        try:
            done = run(world.services, actor, lambda ctx: codes.redeem(ctx, world.dossier, code))
        except FhirError as exc:  # SQLite's "database is locked" would surface otherwise
            return f"error {exc.status}"
        return "in" if isinstance(done, codes.Redeemed) else "wrong"

    with ThreadPoolExecutor(2) as pool:
        results = sorted(pool.map(attempt, ids))
    assert results == ["in", "wrong"]
    authorized = {g[3] for g in grants_of(world) if g[4] == "authorized" and g[7] is None}
    assert len(authorized & set(ids)) == 1
