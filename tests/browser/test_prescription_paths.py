"""A pharmacist's day in a real browser (issue 12 §2): a pharmacist with no authorization on the dossier finds a
prescription by its number and the patient's INS, records a partial dispensing, is refused beyond one fill, and still
cannot open the dossier."""

from __future__ import annotations

from typing import Any

import pytest

from carnet import prescribing
from carnet.context import Services
from carnet.portal import i18n
from tests.browser.test_clinician_paths import sign_in as pro_sign_in
from tests.conftest import World
from tests.prescribing.helpers import outside_pharmacist, write

FR = i18n.language("fr").gettext


@pytest.fixture
def desktop(chromium: Any) -> Any:
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR")
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    yield pg
    context.close()


def test_a_pharmacist_finds_dispenses_and_sees_nothing_else(desktop: Any, live: tuple[str, Services], world: World,
                                                             tmp_path: Any) -> None:
    base, _ = live
    written = write(world)
    outside_pharmacist(world, family=f"Aapharma{world.n}")
    pro_sign_in(desktop, base, f"Test Aapharma{world.n}")
    desktop.get_by_role("link", name=FR("Pharmacy")).click()
    desktop.wait_for_url("**/pro/pharmacy")
    desktop.get_by_label(FR("Prescription number")).fill(prescribing.format_number(written.number))
    desktop.get_by_label(FR("Patient's INS")).fill(world.ins)
    desktop.get_by_role("button", name=FR("Find"), exact=True).click()
    desktop.wait_for_load_state()
    found = desktop.locator("#found")
    assert "TESTÉ Alix" in found.inner_text()
    desktop.locator("#qty-1").fill("1")
    desktop.get_by_role("button", name=FR("Record what was dispensed")).click()
    desktop.wait_for_load_state()
    assert desktop.locator(".flash").is_visible()
    assert desktop.locator("#rx-line-1 td.left").inner_text().strip() == "3"
    desktop.screenshot(path=str(tmp_path / "pharmacy.png"), full_page=True)
    desktop.locator("#qty-1").fill("5")
    desktop.get_by_role("button", name=FR("Record what was dispensed")).click()
    desktop.wait_for_load_state()
    assert desktop.get_by_role("alert").first.is_visible()
    assert desktop.locator("#rx-line-1 td.left").inner_text().strip() == "3"  # nothing moved
    response = desktop.goto(f"{base}/pro/dossier/{world.dossier}")
    assert response is not None and response.status == 403
