"""Access codes in real browsers (issue 13 §1): a patient creates a code on the Access codes page; a professional, in
another browser, types it on the find-by-INS page of the clinician portal and opens the dossier; the patient sees
the code used and the History says who."""

from __future__ import annotations

import re
from typing import Any

import pytest

from carnet.context import Services
from carnet.portal import i18n
from tests.browser.conftest import Mailbox
from tests.browser.test_clinician_paths import find, new_professional
from tests.browser.test_clinician_paths import sign_in as pro_sign_in
from tests.browser.test_patient_paths import Person, sign_in
from tests.conftest import World

FR = i18n.language("fr").gettext


@pytest.fixture
def person(world: World, live: tuple[str, Services]) -> Person:
    return Person(world, live[1])


@pytest.fixture
def clinician(chromium: Any) -> Any:
    """Another browser: the professional's desktop."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR")
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    yield pg
    context.close()


def test_a_patient_creates_a_code_and_a_professional_uses_it(
        page: Any, clinician: Any, live: tuple[str, Services], person: Person, mailbox: Mailbox,
        tmp_path: Any) -> None:
    base, _ = live
    world = person.world
    sign_in(page, base, person, mailbox, target="/portal/access")
    page.get_by_role("link", name=FR("Access codes")).click()
    page.wait_for_url("**/portal/access-codes")
    page.get_by_label(FR("Valid for")).select_option("4")
    page.get_by_label(FR("Note for yourself (optional)")).fill("Dr de garde au ski")
    page.get_by_role("button", name=FR("Create an access code")).click()
    code = page.locator("#new-code").inner_text().strip()
    assert re.fullmatch(r"[2-9A-Z]{4}-[2-9A-Z]{4}", code), code
    page.screenshot(path=str(tmp_path / "access-code-phone.png"), full_page=True)

    _, button = new_professional(world)
    pro_sign_in(clinician, base, button)
    result = find(clinician, base, world.ins)
    assert FR("You may not read this dossier yet.") in result.inner_text()
    clinician.get_by_label(FR("I have an access code from the patient")).fill("zzzz-zzzz")
    clinician.get_by_role("button", name=FR("Use the access code")).click()
    clinician.get_by_text(FR("This access code is not valid for this patient: check it with the patient (it may "
                             "have expired, or been used).")).wait_for()
    clinician.screenshot(path=str(tmp_path / "access-code-desktop.png"), full_page=True)
    clinician.get_by_label(FR("I have an access code from the patient")).fill(code.lower().replace("-", " "))
    clinician.get_by_role("button", name=FR("Use the access code")).click()
    clinician.wait_for_url(f"**/pro/dossier/{world.dossier}**")
    assert "Testé" in clinician.locator("#patient").inner_text()

    page.goto(base + "/portal/access-codes")
    assert FR("used") in page.locator("#codes ~ ul").inner_text()
    page.goto(base + "/portal/history")
    text = page.locator("main").inner_text()
    assert FR("entered an access code and became authorized") in text
    assert FR("entered a wrong access code") in text
