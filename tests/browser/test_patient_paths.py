"""The patient's main paths in a real browser (issue 4 §6)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import uuid
import zipfile
from typing import Any

import pytest
from sqlalchemy import select

from carnet.accounts import service as accounts
from carnet.context import Services
from carnet.db.tables import account_dossier, practitioner
from carnet.portal import i18n
from tests.browser.conftest import Mailbox
from tests.conftest import World

PASSWORD = "a long and private sentence"


class Person:
    def __init__(self, world: World, services: Services) -> None:
        self.world = world
        self.email = f"browser{world.n}@example.test"
        now = services.clock()
        with services.engine.begin() as conn:
            account_id = conn.execute(select(account_dossier.c.account_id).where(
                account_dossier.c.dossier_key == world.dossier, account_dossier.c.role == "owner")).scalar_one()
            code = accounts.new_code(conn, account_id, "activation", "post", now, dt.timedelta(minutes=5))
            accounts.activate(services, conn, now, login=world.ins, code=code, birth_date=dt.date(1980, 5, 17),
                              password=PASSWORD, email=self.email, phone=None, otp_channel="email")


@pytest.fixture
def person(world: World, live: tuple[str, Services]) -> Person:
    return Person(world, live[1])


def sign_in(page: Any, base: str, person: Person, mailbox: Mailbox, target: str = "/portal/") -> None:
    before = mailbox.count()
    page.goto(base + target)
    assert "/portal/sign-in" in page.url
    page.get_by_label("Identifiant").fill(person.world.ins)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Continuer").click()
    page.wait_for_url("**/portal/code**")
    page.get_by_label("Code à usage unique").fill(mailbox.code_for(person.email, after=before))
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(f"**{target}")


def test_a_patient_signs_in_with_the_one_time_code_read_from_the_smtp_exchange(
        page: Any, live: tuple[str, Services], person: Person, mailbox: Mailbox) -> None:
    base, _ = live
    sign_in(page, base, person, mailbox)
    assert page.get_by_role("link", name="Documents", exact=True).is_visible()
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["carnet_session"]
    assert session["httpOnly"] and session["secure"] and session["sameSite"] == "Lax"


FR = i18n.language("fr").gettext


def publish(world: World, title: str, text: str) -> str:
    """A GP publishes a text report through ITI-105; returns the DocumentReference id."""
    body = {"resourceType": "DocumentReference", "status": "current",
            "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
            "type": {"coding": [{"system": "http://loinc.org", "code": "11488-4"}]},
            "subject": {"reference": f"Patient/{world.dossier}"},
            "content": [{"attachment": {"contentType": "text/plain", "title": title, "language": "fr-FR",
                                        "data": base64.b64encode(text.encode()).decode()}}]}
    r = world.client.post("/fhir/DocumentReference", json=body,
                          headers={**world.headers("gp"), "Content-Type": "application/fhir+json"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def nurse_search(world: World) -> Any:
    return world.client.get(f"/fhir/DocumentReference?patient={world.dossier}", headers=world.headers("nurse"))


def ids_of(bundle: Any) -> set[str]:
    return {e["resource"]["id"] for e in bundle.json().get("entry", []) if e["resource"]["resourceType"]
            == "DocumentReference"}


def confirm_if_asked(page: Any) -> None:
    """Actions that remove access or data ask for a confirmation on a second screen."""
    page.wait_for_load_state()
    danger = page.locator("main form button.danger")
    if "/confirm" in page.url or ("/portal/access" in page.url and danger.count() == 1):
        danger.first.click()
        page.wait_for_load_state()


def test_hiding_a_document_makes_a_professionals_search_lose_it(
        page: Any, live: tuple[str, Services], person: Person, mailbox: Mailbox) -> None:
    base, _ = live
    world = person.world
    doc = publish(world, "Compte rendu à masquer", "Texte synthétique")
    assert doc in ids_of(nurse_search(world))
    sign_in(page, base, person, mailbox, target=f"/portal/documents/{doc}")
    page.get_by_role("button", name=re.compile(re.escape(FR("Hide it from professionals")))).click()
    page.wait_for_load_state()
    assert doc not in ids_of(nurse_search(world))
    gp = world.client.get(f"/fhir/DocumentReference?patient={world.dossier}", headers=world.headers("gp"))
    assert doc in ids_of(gp)  # the médecin traitant still sees it (DOMAIN.md, MASQUE_PS)


def test_blocking_a_professional_makes_their_next_request_refused(
        page: Any, live: tuple[str, Services], person: Person, mailbox: Mailbox) -> None:
    base, _ = live
    world = person.world
    assert nurse_search(world).status_code == 200
    sign_in(page, base, person, mailbox, target="/portal/access")
    nurse = world.pros["nurse"]
    with live[1].engine.connect() as conn:
        family = conn.execute(select(practitioner.c.family).where(practitioner.c.national_id == nurse)).scalar_one()
    page.get_by_role("button", name=re.compile(re.escape(FR("Block")) + r".*" + re.escape(family))).first.click()
    confirm_if_asked(page)
    refused = nurse_search(world)
    assert refused.status_code == 403, refused.text


def test_the_history_shows_a_professionals_access_and_an_emergency_stands_out(
        page: Any, live: tuple[str, Services], person: Person, mailbox: Mailbox) -> None:
    base, _ = live
    world = person.world
    assert nurse_search(world).status_code == 200
    emergency = world.client.get(f"/fhir/DocumentReference?patient={world.dossier}",
                                 headers=world.headers("stranger", mode="emergency", reason="Patient inconscient"))
    assert emergency.status_code == 200
    sign_in(page, base, person, mailbox, target="/portal/history")
    with live[1].engine.connect() as conn:
        names = dict(conn.execute(select(practitioner.c.national_id, practitioner.c.family)).all())
    main = page.locator("main")
    assert names[world.pros["nurse"]] in main.inner_text()
    flagged = page.locator("main .emergency")
    assert flagged.count() >= 1
    assert names[world.pros["stranger"]] in flagged.first.inner_text()
    assert "Patient inconscient" in main.inner_text()


def test_the_complete_copy_holds_every_document_with_matching_hashes(
        page: Any, live: tuple[str, Services], person: Person, mailbox: Mailbox, tmp_path: Any) -> None:
    base, _ = live
    world = person.world
    published = {publish(world, f"Document {i}", f"Contenu synthétique {i}") for i in range(3)}
    sign_in(page, base, person, mailbox, target="/portal/dossier")
    with page.expect_download() as info:
        page.get_by_role("link", name=FR("Download a complete copy")).click()
    path = tmp_path / "copy.zip"
    info.value.save_as(path)
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        sums = next(n for n in names if n.endswith("SHA256SUMS"))
        listed = {}
        for line in z.read(sums).decode().splitlines():
            digest, name = line.split(maxsplit=1)
            listed[name.lstrip("*")] = digest
        prefix = sums[: -len("SHA256SUMS")]
        for name, digest in listed.items():
            assert hashlib.sha256(z.read(prefix + name)).hexdigest() == digest, name
        in_zip = " ".join(names)
    for doc in published:
        assert doc in in_zip
        ref = world.client.get(f"/fhir/DocumentReference/{doc}", headers=world.headers("gp")).json()
        url = ref["content"][0]["attachment"]["url"]
        served = world.client.get(url[url.index("/fhir/"):] if "/fhir/" in url else f"/fhir/{url}",
                                  headers={"Authorization": world.headers("gp")["Authorization"]})
        assert served.status_code == 200
        assert hashlib.sha256(served.content).hexdigest() in listed.values()
