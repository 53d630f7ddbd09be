"""Issue 13 §3 in a real browser: the patient hides an allergy from professionals on her home screen; an authorized
doctor no longer finds it in the emergency summary, her médecin traitant still does, with a badge; she shows it
again and the authorized doctor sees it again. Her History says what she did in words."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from carnet.access.actors import Actor, ActorKind
from carnet.context import Services, run
from carnet.db.tables import practitioner
from carnet.dossier import service as dossiers
from carnet.portal import i18n
from tests.browser.conftest import Mailbox
from tests.browser.test_clinician_paths import grant
from tests.browser.test_clinician_paths import sign_in as pro_sign_in
from tests.browser.test_patient_paths import Person, person, sign_in  # noqa: F401 - fixture
from tests.clinical import samples
from tests.conftest import World

__all__ = ["person"]

FR = i18n.language("fr").gettext


def named_doctor(world: World, suffix: str) -> tuple[str, str]:
    """A doctor named to be found alone on the demo identity provider's page; (national id, button name)."""
    nid = world.add_pro("10")
    family = f"Aabert{world.n}{suffix}"
    with world.services.engine.begin() as conn:
        conn.execute(update(practitioner).where(practitioner.c.national_id == nid).values(family=family))
    return nid, f"Test {family}"


def summary_text(page: Any, base: str, world: World) -> str:
    page.goto(f"{base}/pro/dossier/{world.dossier}")
    return str(page.locator("#summary").inner_text())


def test_a_patient_hides_an_allergy_from_professionals_and_shows_it_again(
        page: Any, chromium: Any, live: tuple[str, Services], person: Person, mailbox: Mailbox) -> None:
    base, _ = live
    world = person.world
    samples.grant_clinical_scopes(world)
    for body in (samples.allergy(world.dossier), samples.condition(world.dossier)):
        r = world.client.post(f"/fhir/{body['resourceType']}", json=body, headers=world.headers("doctor"))
        assert r.status_code == 201, r.text
    other, other_button = named_doctor(world, "a")
    grant(world, other)
    gp, gp_button = named_doctor(world, "b")
    run(world.services, Actor(ActorKind.PATIENT, id=world.ins),
        lambda ctx: dossiers.set_treating_gp(ctx, world.dossier, gp))

    sign_in(page, base, person, mailbox)
    clinical = page.locator("section[aria-labelledby=clinical]")
    assert FR("You can hide an item from professionals. It stays in your dossier: your médecin traitant, the "
              "professionals you gave the same rights and the professional who recorded it still see it. Other "
              "professionals do not, even in an emergency (break the glass) or for SAMU regulation: it is left "
              "out of their emergency summary.") in clinical.inner_text()
    clinical.get_by_role("button", name=f"{FR('Hide from professionals')} : Penicillin").click()
    page.wait_for_url("**/portal/?done=hidden**")
    item = page.locator("section[aria-labelledby=clinical] li", has_text="Penicillin")
    assert item.get_by_text(FR("Hidden from professionals"), exact=True).is_visible()
    assert page.get_by_role("status").filter(has_text=FR("This item is now hidden from professionals, except your "
                                                          "médecin traitant and the professional who recorded it."))\
        .is_visible()

    pro = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR")
    try:
        doctor = pro.new_page()
        pro_sign_in(doctor, base, other_button)
        seen = summary_text(doctor, base, world)
        assert "Hypertension" in seen and "Penicillin" not in seen
        gp_context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR")
        try:
            gp_page = gp_context.new_page()
            pro_sign_in(gp_page, base, gp_button)
            seen = summary_text(gp_page, base, world)
            assert "Penicillin" in seen and FR("Hidden by the patient from other professionals") in seen
        finally:
            gp_context.close()

        page.goto(base + "/portal/history")
        assert FR("hid an item of health information from professionals") in page.locator("main").inner_text()
        page.goto(base + "/portal/")
        clinical.get_by_role("button", name=f"{FR('Stop hiding')} : Penicillin").click()
        page.wait_for_url("**/portal/?done=shown**")
        assert page.locator("section[aria-labelledby=clinical] li", has_text="Penicillin").get_by_text(
            FR("Hidden from professionals"), exact=True).count() == 0
        assert "Penicillin" in summary_text(doctor, base, world)
    finally:
        pro.close()
