"""Personas and helpers for the request tests: the World of ``tests/conftest.py`` plus Task scopes, a legal
representative, and direct access to the tables."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

from sqlalchemy import select, update

from carnet.access.actors import Actor, ActorKind, Mode
from carnet.auth.assertions import make_client_assertion
from carnet.context import run
from carnet.db.tables import access_grant, audit, client, task
from carnet.dossier import service as dossiers
from tests.conftest import BASE, World, provide_bundle

PROFESSIONS = {"gp": "10", "doctor": "10", "nurse": "60", "pharmacist": "21", "regulator": "10", "blocked": "10",
               "stranger": "10", "physio": "70"}
TASK_SCOPES = " system/Task.crus"


def grant_task_scopes(world: World) -> None:
    """The default client scopes predate Task: add them to this world's clients."""
    with world.services.engine.begin() as conn:
        for kind in ("professional", "patient_portal"):
            cid = world.client_ids[kind]
            scopes = conn.execute(select(client.c.scopes).where(client.c.client_id == cid)).scalar_one()
            if "Task" not in scopes:
                conn.execute(update(client).where(client.c.client_id == cid).values(scopes=scopes + TASK_SCOPES))


def pro(world: World, role: str, mode: Mode = Mode.NORMAL) -> Actor:
    return Actor(ActorKind.PROFESSIONAL, id=world.pros[role], display=f"Test {role}", profession=PROFESSIONS[role],
                 organisation_id=f"ORG{world.n}", is_regulator=role == "regulator", mode=mode)


def patient(world: World) -> Actor:
    return Actor(ActorKind.PATIENT, id=world.ins)


def add_representative(world: World, kind: str = "protected_adult") -> Actor:
    rep = run(world.services, patient(world) if kind == "minor" else Actor(ActorKind.OPERATOR, id="ops"),
              lambda ctx: dossiers.add_representative(ctx, world.dossier, kind, "Tuteur", "Paul",
                                                      "GUARD" if kind == "protected_adult" else "MTH"))
    return Actor(ActorKind.REPRESENTATIVE, id=str(rep), acting_for=world.ins)


INSURER = Actor(ActorKind.INSURER, client_id="insurer-1")
MUTUELLE = Actor(ActorKind.MUTUELLE, client_id="mutuelle-1")
CNAM = Actor(ActorKind.ASSURANCE_MALADIE, client_id="cnam-1")
OPERATOR = Actor(ActorKind.OPERATOR, id="ops")


def rep_headers(world: World, rep: Actor) -> dict[str, str]:
    assertion = make_client_assertion(world.key, world.client_ids["patient_portal"], f"{BASE}/oauth/token",
                                      int(time.time()), patient_ins=world.ins, representative_id=rep.id)
    r = world.client.post("/oauth/token", data={
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}", "Accept": "application/fhir+json"}


def tasks_of(world: World) -> list[Any]:
    with world.services.engine.connect() as conn:
        return list(conn.execute(select(task).where(task.c.dossier_key == world.dossier)
                                 .order_by(task.c.created_at)).all())


def grants_of(world: World) -> list[tuple[Any, ...]]:
    with world.services.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(access_grant).where(access_grant.c.dossier_key == world.dossier)
                                               .order_by(access_grant.c.grant_id)).all()]


def audit_events(world: World, entity_id: str | None = None, outcome: str | None = None) -> list[str]:
    q = select(audit.c.event).where(audit.c.dossier_key == world.dossier)
    if entity_id is not None:
        q = q.where(audit.c.entity_id == entity_id)
    if outcome is not None:
        q = q.where(audit.c.outcome == outcome)
    with world.services.engine.connect() as conn:
        return list(conn.execute(q.order_by(audit.c.seq)).scalars())


PDF = b"%PDF-1.4\n% test\n%%EOF\n"


def docref(world: World, loinc: str = "11488-4", labels: list[str] | None = None,
           replaces: str | None = None) -> dict[str, Any]:
    from carnet.documents.codes import TRE_A07, type_system

    res: dict[str, Any] = {
        "resourceType": "DocumentReference", "status": "current",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "type": {"coding": [{"system": type_system(loinc), "code": loinc}]},
        "subject": {"reference": f"Patient/{world.dossier}"},
        "content": [{"attachment": {"contentType": "application/pdf", "data": base64.b64encode(PDF).decode(),
                                    "title": "Compte rendu"}}]}
    if labels:
        res["securityLabel"] = [{"coding": [{"system": TRE_A07, "code": c}]} for c in labels]
    if replaces:
        res["relatesTo"] = [{"code": "replaces", "target": {"reference": f"DocumentReference/{replaces}"}}]
    return res


def publish(world: World, role: str = "gp", **kw: Any) -> str:
    r = world.client.post("/fhir/DocumentReference", json=docref(world, **kw), headers=world.headers(role))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def provide_replacement(world: World, role: str, replaced: str) -> tuple[int, str | None]:
    """ITI-65: a Provide Document Bundle whose one document replaces ``replaced``; (status, new document id)."""
    doc = docref(world, replaces=replaced)
    doc["content"][0]["attachment"] = {"contentType": "text/plain"}
    bundle = provide_bundle(doc, b"corrected report")
    r = world.client.post("/fhir", json=bundle, headers=world.headers(role))
    if r.status_code != 200:
        return r.status_code, None
    for e in r.json()["entry"]:
        loc = e["response"]["location"]
        if loc.startswith("DocumentReference/") or "/DocumentReference/" in loc:
            return 200, loc.split("DocumentReference/", 1)[1].split("/")[0]
    raise AssertionError(r.text)
