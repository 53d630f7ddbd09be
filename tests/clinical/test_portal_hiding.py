"""Issue 13 §3 in both portals: the patient hides one item from professionals on the home screen and shows it again;
the History says so in words; the médecin traitant sees the item with a badge, an authorized nurse and a doctor
breaking the glass do not see it at all."""

from __future__ import annotations

from typing import Any

from markupsafe import escape
from starlette.testclient import TestClient

from carnet.portal import i18n
from tests.clinical import samples
from tests.clinical.test_portal_home import essentials
from tests.portal.conftest import Patient, browser, csrf_of, patient  # noqa: F401 - fixtures
from tests.pro.conftest import BASE, signed_in
from tests.pro.conftest import csrf_of as pro_csrf_of

__all__ = ["browser", "patient"]


def FR(message: str) -> str:  # noqa: N802 - the French text as the page escapes it
    return str(escape(i18n.language("fr").gettext(message)))


def add_allergy(patient: Patient) -> str:
    world = patient.world
    samples.grant_clinical_scopes(world)
    r = world.client.post("/fhir/AllergyIntolerance", json=samples.allergy(world.dossier),
                          headers=world.headers("doctor"))
    assert r.status_code == 201, r.text
    world.client.post("/fhir/Condition", json=samples.condition(world.dossier), headers=world.headers("doctor"))
    return str(r.json()["id"])


def pro_summary(app: Any, national_id: str, key: Any, emergency: bool = False) -> str:
    with TestClient(app, base_url=BASE, follow_redirects=False) as pro:
        signed_in(pro, national_id)
        if emergency:
            page = pro.get("/pro/emergency")
            r = pro.post("/pro/emergency", data={"csrf": pro_csrf_of(page.text), "reason": "Coma aux urgences",
                                                 "next": f"/pro/dossier/{key}"})
            assert r.status_code == 303
        html = pro.get(f"/pro/dossier/{key}").text
        return html[html.index('id="summary"'):html.index('id="new"')]


def test_the_patient_hides_an_item_and_shows_it_again_from_the_home_screen(patient: Patient) -> None:
    item = add_allergy(patient)
    b = patient.ready().browser
    html = essentials(b.get("/portal/").text)
    assert FR("Hide from professionals") in html
    assert FR("You can hide an item from professionals. It stays in your dossier: your médecin traitant, the "
              "professionals you gave the same rights and the professional who recorded it still see it. Other "
              "professionals do not, even in an emergency (break the glass) or for SAMU regulation: it is left "
              "out of their emergency summary.") in html
    assert FR("Hidden from professionals") not in html
    r = b.post(f"/portal/clinical/AllergyIntolerance/{item}/hide", data={"csrf": csrf_of(html)})
    assert r.status_code == 303 and r.headers["location"] == f"/portal/?done=hidden#item-{item}"
    after = essentials(b.get("/portal/?done=hidden").text)
    assert "Penicillin" in after  # still in the patient's own dossier
    assert FR("Hidden from professionals") in after and FR("Stop hiding") in after
    assert FR("This item is now hidden from professionals, except your médecin traitant and the professional who "
              "recorded it.") in after
    nurse = patient.world.headers("nurse")
    assert patient.world.client.get(f"/fhir/AllergyIntolerance/{item}", headers=nurse).status_code == 404
    history = b.get("/portal/history").text
    assert FR("hid an item of health information from professionals") in history
    assert "clinical.hide" not in history
    r = b.post(f"/portal/clinical/AllergyIntolerance/{item}/show", data={"csrf": csrf_of(after)})
    assert r.status_code == 303 and r.headers["location"] == f"/portal/?done=shown#item-{item}"
    shown = essentials(b.get("/portal/?done=shown").text)
    assert FR("Hidden from professionals") not in shown
    assert FR("This item is no longer hidden: the professionals you allow see it again.") in shown
    assert patient.world.client.get(f"/fhir/AllergyIntolerance/{item}", headers=nurse).status_code == 200
    history = b.get("/portal/history").text
    assert FR("showed an item of health information to professionals again") in history
    assert "clinical.show" not in history


def test_hiding_needs_the_csrf_token_and_an_unknown_item_changes_nothing(patient: Patient) -> None:
    item = add_allergy(patient)
    b = patient.ready().browser
    html = b.get("/portal/").text
    assert b.post(f"/portal/clinical/AllergyIntolerance/{item}/hide", data={}).status_code in (400, 403)
    r = b.post("/portal/clinical/AllergyIntolerance/01a24256-1b03-7123-bbeb-2af6a02fbc79/hide",
               data={"csrf": csrf_of(html)})
    assert r.status_code == 404
    nurse = patient.world.headers("nurse")
    assert patient.world.client.get(f"/fhir/AllergyIntolerance/{item}", headers=nurse).status_code == 200


def test_the_medecin_traitant_sees_a_hidden_item_with_a_badge_others_do_not_see_it(patient: Patient,
                                                                                    app: Any) -> None:
    world = patient.world
    item = add_allergy(patient)
    b = patient.ready().browser
    html = b.get("/portal/").text
    assert b.post(f"/portal/clinical/AllergyIntolerance/{item}/hide", data={"csrf": csrf_of(html)}).status_code == 303
    badge = FR("Hidden by the patient from other professionals")
    gp = pro_summary(app, world.pros["gp"], world.dossier)
    assert "Penicillin" in gp and badge in gp
    for national_id, emergency in ((world.pros["nurse"], False), (world.pros["stranger"], True)):
        seen = pro_summary(app, national_id, world.dossier, emergency)
        assert "Hypertension" in seen  # the item nobody hid
        assert "Penicillin" not in seen and badge not in seen
