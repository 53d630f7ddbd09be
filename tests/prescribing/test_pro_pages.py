"""The clinician portal's prescription pages over HTTP (issue 12 §2): the prescriber writes from the dossier and sees
the prescription; a pharmacist with no authorization finds it by number and INS, dispenses in part, is refused
beyond what was prescribed; a wrong INS is "not found"."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from carnet import prescribing
from carnet.identity.ins import fake_nir_for, format_nir
from tests.conftest import World
from tests.prescribing.helpers import outside_pharmacist
from tests.pro.conftest import csrf_of, signed_in


def _write(browser: TestClient, world: World) -> str:
    signed_in(browser, world.pros["gp"])
    form = browser.get(f"/pro/dossier/{world.dossier}/prescribe")
    assert form.status_code == 200 and 'id="prescribe-form"' in form.text
    r = browser.post(f"/pro/dossier/{world.dossier}/prescribe", data={
        "csrf": csrf_of(form.text), "kind-0": "medicine", "medication-0": "Ibuprofène", "strength-0": "400 mg",
        "form-0": "comprimé", "dosage_text-0": "1 comprimé 3 fois par jour au repas", "dose_value-0": "1",
        "dose_unit-0": "comprimé", "frequency-0": "3", "period_unit-0": "d", "duration_days-0": "5",
        "quantity-0": "2", "unit-0": "boîte", "repeats-0": "0",
        "kind-1": "text", "medication-1": "Attelle de poignet, taille M", "quantity-1": "1", "unit-1": "unité"})
    assert r.status_code == 303 and r.headers["location"].endswith("?done=written"), r.text
    page = browser.get(r.headers["location"])
    assert page.status_code == 200 and "Ibuprofène 400 mg comprimé" in page.text
    found = re.search(r'class="rx-number">([0-9A-Z-]+)<', page.text)
    assert found
    browser.cookies.clear()
    return found.group(1)


def test_a_gp_writes_and_an_outside_pharmacist_dispenses_through_the_pages(world: World, browser: TestClient) -> None:
    number = _write(browser, world)
    assert prescribing.normalise(number) is not None
    signed_in(browser, world.pros.get("outside_pharmacist") or outside_pharmacist(world).id or "")
    home = browser.get("/pro/pharmacy")
    assert home.status_code == 200 and 'id="find-form"' in home.text
    csrf = csrf_of(home.text)
    other = fake_nir_for(world.n + 500_000)
    wrong = browser.post("/pro/pharmacy/find", data={"csrf": csrf, "number": number, "ins": other})
    assert wrong.status_code == 404 and 'id="found"' not in wrong.text
    found = browser.post("/pro/pharmacy/find", data={"csrf": csrf, "number": number, "ins": format_nir(world.ins)})
    assert found.status_code == 200 and "TESTÉ Alix" in found.text and 'id="dispense-form"' in found.text
    done = browser.post("/pro/pharmacy/dispense", data={"csrf": csrf, "number": number, "ins": world.ins,
                                                        "qty-1": "1"})
    assert done.status_code == 200 and 'class="flash"' in done.text
    assert re.search(r'id="rx-line-1">.*?<td class="left">1</td>', done.text, re.S)
    over = browser.post("/pro/pharmacy/dispense", data={"csrf": csrf, "number": number, "ins": world.ins,
                                                        "qty-1": "2"})
    assert over.status_code == 409 and ("at once" in over.text or "more than prescribed" in over.text)
    # the dossier itself stays closed to this pharmacist
    assert browser.get(f"/pro/dossier/{world.dossier}/prescriptions").status_code == 403


def test_during_a_teleconsultation_the_gp_writes_from_the_room_and_the_prescription_names_the_visit(
        world: World, browser: TestClient) -> None:
    from sqlalchemy import select

    from carnet.db.tables import prescription
    from tests.teleconsult.helpers import book_now

    cid = book_now(world)
    signed_in(browser, world.pros["gp"])
    room = browser.get(f"/pro/dossier/{world.dossier}/teleconsult/{cid}")
    assert room.status_code == 200
    link = re.search(r'id="consult-prescribe" href="([^"]+)"', room.text)
    assert link and link.group(1) == f"/pro/dossier/{world.dossier}/prescribe?encounter=Encounter/{cid}"
    form = browser.get(link.group(1))
    assert f'value="Encounter/{cid}"' in form.text
    r = browser.post(f"/pro/dossier/{world.dossier}/prescribe", data={
        "csrf": csrf_of(form.text), "encounter": f"Encounter/{cid}", "kind-0": "text",
        "medication-0": "Attelle de poignet, taille M", "quantity-0": "1", "unit-0": "unité"})
    assert r.status_code == 303, r.text
    with world.services.engine.connect() as conn:
        encounters = set(conn.execute(select(prescription.c.encounter_ref).where(
            prescription.c.dossier_key == world.dossier)).scalars())
    assert encounters == {f"Encounter/{cid}"}
