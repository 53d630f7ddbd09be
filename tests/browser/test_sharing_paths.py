"""SMART Health Links in real browsers (issue 13 §4): a patient creates a link, another browser (a doctor abroad,
with no account) opens it in Carnet's viewer, the patient revokes it and the link dies. The viewer decrypts in the
browser (WebCrypto) under the strict CSP, with no inline script or style."""

from __future__ import annotations

from typing import Any

import pytest

from carnet.access.actors import Actor, ActorKind
from carnet.clinical.service import create as create_item
from carnet.context import Services, run
from tests.browser.conftest import Mailbox
from tests.browser.test_patient_paths import Person, sign_in
from tests.clinical import samples
from tests.conftest import World
from tests.tasks.helpers import publish

PASSCODE = "4711-bleu"


@pytest.fixture
def person(world: World, live: tuple[str, Services]) -> Person:
    return Person(world, live[1])


@pytest.fixture
def doctor(chromium: Any) -> Any:
    """Another browser: a desktop in English, no cookie of Carnet's."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    yield pg
    context.close()


def _csp_errors(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def test_a_link_opens_in_another_browser_until_the_patient_revokes_it(
        page: Any, doctor: Any, live: tuple[str, Services], person: Person, mailbox: Mailbox,
        tmp_path: Any) -> None:
    base, services = live
    world = person.world
    gp = Actor(ActorKind.PROFESSIONAL, id=world.pros["gp"], profession="10")
    run(services, gp, lambda ctx: create_item(ctx, world.dossier, samples.allergy(world.dossier)))
    doc = publish(world)
    sign_in(page, base, person, mailbox, target="/portal/sharing")
    page.locator(f"input[name=document][value='{doc}']").check()
    page.get_by_label("Intitulé").fill("Pour le médecin à Barcelone")
    page.get_by_label("Code secret (facultatif)").fill(PASSCODE)
    page.get_by_role("button", name="Créer le lien").click()
    page.wait_for_url("**/portal/sharing?done=created**")
    link = page.locator("input.shlink").first.input_value()
    assert link.startswith(f"{base}/shl/view#shlink:/")
    assert page.locator(".qr-box svg").first.is_visible()
    page.screenshot(path=str(tmp_path / "share-phone.png"), full_page=True)

    errors = _csp_errors(doctor)
    doctor.goto(link)
    assert doctor.locator("#label").inner_text() == "Pour le médecin à Barcelone"
    assert doctor.locator("#source").inner_text() == "Shared from " + base.split("://", 1)[1]
    doctor.get_by_label("Your name and organisation").fill("Dr Ana Ruiz, Hospital del Mar")
    doctor.get_by_label("Passcode").fill("wrong")
    doctor.get_by_role("button", name="Open").click()
    doctor.get_by_text("Wrong passcode. Attempts left: 4").wait_for()
    doctor.get_by_label("Passcode").fill(PASSCODE)
    doctor.get_by_role("button", name="Open").click()
    doctor.get_by_text("Penicillin").first.wait_for()
    assert doctor.get_by_text("Alix Testé").first.is_visible()
    with doctor.expect_download() as download:
        doctor.get_by_text("Download the document").first.click()
    assert download.value.path().read_bytes().startswith(b"%PDF")
    doctor.screenshot(path=str(tmp_path / "viewer-desktop.png"), full_page=True)
    assert not [e for e in errors if "Content Security Policy" in e or "Refused" in e], errors

    page.goto(base + "/portal/history")
    assert page.get_by_text("Dr Ana Ruiz, Hospital del Mar").first.is_visible()
    assert page.get_by_text("a ouvert un lien que vous avez partagé").first.is_visible()

    page.goto(base + "/portal/sharing")
    page.locator("form[action='/portal/sharing/revoke'] button").first.click()
    page.wait_for_url("**/portal/sharing?done=revoked")
    assert page.get_by_text("lien révoqué").first.is_visible()

    doctor.reload()
    doctor.get_by_label("Your name and organisation").fill("Dr Ana Ruiz, Hospital del Mar")
    doctor.get_by_label("Passcode").fill(PASSCODE)
    doctor.get_by_role("button", name="Open").click()
    doctor.get_by_text("This link is no longer active").wait_for()
    assert doctor.get_by_text("Penicillin").count() == 0
