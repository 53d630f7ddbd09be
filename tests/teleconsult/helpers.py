"""What the teleconsultation tests share: signed-in sessions made through the real session services (the sign-in
pages are tested elsewhere), a document published through ITI-105, and the relay read as each side would."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select

from carnet.access.actors import Actor, ActorKind, Mode
from carnet.accounts import service as accounts
from carnet.accounts import sessions
from carnet.auth import pro_sessions
from carnet.context import Services, run
from carnet.db.tables import account_dossier
from carnet.documents import codes
from tests.conftest import World

PASSWORD = "a long and private sentence"


def activate(world: World, services: Services | None = None) -> uuid.UUID:
    """The World's patient activates their account (with an email address: the notifications' channel)."""
    services = services or world.services
    now = services.clock()
    with services.engine.begin() as conn:
        account_id: uuid.UUID = conn.execute(select(account_dossier.c.account_id).where(
            account_dossier.c.dossier_key == world.dossier, account_dossier.c.role == "owner")).scalar_one()
        code = accounts.new_code(conn, account_id, "activation", "post", now, dt.timedelta(minutes=5))
        accounts.activate(services, conn, now, login=world.ins, code=code, birth_date=dt.date(1980, 5, 17),
                          password=PASSWORD, email=f"tele{world.n}@example.test", phone=None, otp_channel="email")
    return account_id


def patient_cookie(world: World, account_id: uuid.UUID, services: Services | None = None) -> str:
    """A signed-in portal session acting on the World's dossier: the cookie's token."""
    services = services or world.services
    now = services.clock()
    with services.engine.begin() as conn:
        token = sessions.open_session(conn, account_id, "signed_in", now, services.settings)
        current = sessions.load(conn, token, now, services.settings)
        assert current is not None
        assert sessions.choose_dossier(conn, current, world.dossier, now)
    return token


def pro_cookie(services: Services, national_id: str) -> str:
    with services.engine.begin() as conn:
        return pro_sessions.open_session(conn, national_id, None, services.clock(), services.settings)


def pro(world: World, role: str, mode: Mode = Mode.NORMAL) -> Actor:
    return Actor(ActorKind.PROFESSIONAL, id=world.pros[role], profession="60" if role == "nurse" else "10",
                 organisation_id=f"ORG{world.n}", mode=mode, reason="test" if mode is not Mode.NORMAL else None)


def patient(world: World) -> Actor:
    return Actor(ActorKind.PATIENT, id=world.ins)


def publish(world: World, title: str, text: str, *, invisible: bool = False, label: str | None = None) -> str:
    """The GP publishes a text report through ITI-105 (``invisible``: not shown to the patient yet; ``label``: another
    confidentiality code of TRE_A07)."""
    body: dict[str, Any] = {
        "resourceType": "DocumentReference", "status": "current",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "type": {"coding": [{"system": "http://loinc.org", "code": "11488-4"}]},
        "subject": {"reference": f"Patient/{world.dossier}"},
        "content": [{"attachment": {"contentType": "text/plain", "title": title, "language": "fr-FR",
                                    "data": base64.b64encode(text.encode()).decode()}}]}
    if invisible:
        label = codes.INVISIBLE_PATIENT
    if label:
        body["securityLabel"] = [{"coding": [{"system": codes.TRE_A07, "code": label}]}]
    r = world.client.post("/fhir/DocumentReference", json=body,
                          headers={**world.headers("gp"), "Content-Type": "application/fhir+json"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def book_now(world: World, role: str = "gp") -> uuid.UUID:
    from carnet import teleconsult

    visit = run(world.services, pro(world, role), lambda ctx: teleconsult.schedule(ctx, world.dossier, None, 15))
    return visit.consultation_id
