"""Helpers for the notification tests: recipients inserted directly (the accounts module is tested on its own), a
clock, documents published through the real service, the worker's channels pointed at the test SMTP server."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import uuid
from typing import Any

from sqlalchemy import insert, select

from carnet.access.actors import Actor, ActorKind, Mode
from carnet.context import Services, run
from carnet.db.tables import account, account_dossier, outbox
from carnet.documents import service as documents
from carnet.documents.codes import TRE_A07, type_system
from carnet.ids import new_id
from carnet.notify.channels import Channels, channels_for
from tests.conftest import SmtpInbox, World

TITLE = "Bilan psychiatrique de suivi"  # what must never leave in a message
TYPE_DISPLAY = "Psychiatry History and physical note"
PDF = b"%PDF-1.4\n% notify test\n%%EOF\n"


def add_account(world: World, *, email: str | None = None, phone: str | None = None, role: str = "owner",
                notify: dict[str, list[str]] | None = None, status: str = "active", lang: str = "fr",
                representative_id: uuid.UUID | None = None, ended: bool = False) -> uuid.UUID:
    account_id = new_id()
    now = dt.datetime.now(dt.UTC)
    with world.services.engine.begin() as conn:
        conn.execute(insert(account).values(
            account_id=account_id, kind="patient" if role == "owner" else "representative",
            login=f"login-{account_id.hex}", display_name="Alix Testé", email=email, phone=phone,
            otp_channel="email", status=status, lang=lang, created_at=now))
        conn.execute(insert(account_dossier).values(
            dossier_key=world.dossier, account_id=account_id, role=role, representative_id=representative_id,
            since=now, ended_at=now if ended else None, notify=notify or {}))
    return account_id


def messages(services: Services, dossier_key: uuid.UUID, *, event: str | None = None,
             account_id: uuid.UUID | None = None) -> list[Any]:
    q = select(outbox).where(outbox.c.dossier_key == dossier_key).order_by(outbox.c.message_id)
    if event is not None:
        q = q.where(outbox.c.event == event)
    if account_id is not None:
        q = q.where(outbox.c.account_id == account_id)
    with services.engine.connect() as conn:
        return list(conn.execute(q).all())


def at(services: Services, when: dt.datetime) -> Services:
    return dataclasses.replace(services, clock=lambda: when)


def pro(world: World, role: str = "gp", mode: Mode = Mode.NORMAL) -> Actor:
    regulator = role == "regulator"
    return Actor(ActorKind.PROFESSIONAL, id=world.pros[role], profession="10" if role != "nurse" else "60",
                 is_regulator=regulator, mode=mode, reason="Unconscious on arrival" if mode is not Mode.NORMAL
                 else None)


def patient(world: World) -> Actor:
    return Actor(ActorKind.PATIENT, id=world.ins)


def docref(labels: list[str] | None = None, loinc: str = "68599-0") -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "DocumentReference", "status": "current",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "type": {"coding": [{"system": type_system(loinc), "code": loinc, "display": TYPE_DISPLAY}]},
        "content": [{"attachment": {"contentType": "application/pdf", "title": TITLE, "language": "fr-FR"}}]}
    if labels:
        res["securityLabel"] = [{"coding": [{"system": TRE_A07, "code": c}]} for c in labels]
    return res


def publish(services: Services, world: World, actor: Actor | None = None, labels: list[str] | None = None,
            loinc: str = "68599-0") -> uuid.UUID:
    res = docref(labels, loinc)
    pub = run(services, actor or pro(world), lambda ctx: documents.publish(
        ctx, world.dossier, res, documents.Content(PDF, "application/pdf"), "ITI-105"))
    return pub.document_id


def publish_over_api(world: World, role: str = "gp") -> str:
    res = docref()
    res["subject"] = {"reference": f"Patient/{world.dossier}"}
    res["content"][0]["attachment"]["data"] = base64.b64encode(PDF).decode()
    r = world.client.post("/fhir/DocumentReference", json=res, headers=world.headers(role))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def smtp_channels(services: Services, inbox: SmtpInbox) -> Channels:
    return channels_for(dataclasses.replace(services.settings, smtp_host=inbox.host, smtp_port=inbox.port))
