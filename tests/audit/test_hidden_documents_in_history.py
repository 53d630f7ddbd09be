"""The access history never reveals a document the reader may not see yet (DOMAIN.md, INVISIBLE_PATIENT and
INVISIBLE_REPRESENTANTS_LEGAUX): the API's AuditEvent search, the portal's history and the copy share one rule."""

from __future__ import annotations

import datetime as dt
import uuid

from carnet.access.actors import Actor, ActorKind
from carnet.context import run
from carnet.demo import docref
from carnet.documents import service as documents
from carnet.history import audit_events as audit_fhir
from tests.conftest import World


def publish_hidden(world: World, label: str) -> str:
    gp = Actor(ActorKind.PROFESSIONAL, id=world.pros["gp"], profession="10")
    res = docref(f"urn:uuid:{uuid.uuid4()}", "11488-4", "Annonce à faire", "text/plain", [label])
    published = run(world.services, gp, lambda ctx: documents.publish(
        ctx, world.dossier, res, documents.Content(b"synthetic", "text/plain"), "ITI-105"))
    return str(published.document_id)


def audit_entities(world: World) -> set[str]:
    r = world.client.get(f"/fhir/AuditEvent?patient={world.dossier}&_count=200",
                         headers=world.headers(kind="patient_portal"))
    assert r.status_code == 200, r.text
    return {str(e.get("what", {}).get("reference", "")) for entry in r.json().get("entry", [])
            for e in entry["resource"].get("entity", [])}


def test_the_patient_does_not_see_the_deposit_of_a_document_awaiting_its_announcement(world: World) -> None:
    doc = publish_hidden(world, "INVISIBLE_PATIENT")
    assert not any(doc in ref for ref in audit_entities(world))
    res = docref(f"urn:uuid:{uuid.uuid4()}", "11488-4", "Compte rendu", "text/plain")
    gp = Actor(ActorKind.PROFESSIONAL, id=world.pros["gp"], profession="10")
    normal = run(world.services, gp, lambda ctx: documents.publish(
        ctx, world.dossier, res, documents.Content(b"synthetic", "text/plain"), "ITI-105"))
    assert any(str(normal.document_id) in ref for ref in audit_entities(world))


def test_the_deposit_shows_once_the_document_becomes_visible_to_the_patient(world: World) -> None:
    doc = publish_hidden(world, "INVISIBLE_PATIENT")
    services = world.services
    real = services.clock
    services.clock = lambda: real() + dt.timedelta(days=services.settings.invisible_patient_days + 1)
    try:
        patient = Actor(ActorKind.PATIENT, id=world.ins)
        rows, _ = run(services, patient, lambda ctx: audit_fhir.history(
            ctx, world.dossier, audit_fhir.HistoryFilter(), limit=200))
    finally:
        services.clock = real
    assert any(r.entity_id == doc for r in rows)


def test_the_portal_history_hides_the_same_records(world: World) -> None:
    doc = publish_hidden(world, "INVISIBLE_PATIENT")
    patient = Actor(ActorKind.PATIENT, id=world.ins)
    rows, total = run(world.services, patient, lambda ctx: audit_fhir.history(
        ctx, world.dossier, audit_fhir.HistoryFilter(), limit=200))
    assert all(r.entity_id != doc for r in rows) and total == len(rows)
