"""The patient portal's first screen shows the emergency summary's lists, and the patient disputes an item there."""

from __future__ import annotations

from markupsafe import escape

from carnet.portal import i18n
from tests.clinical import samples
from tests.portal.conftest import Patient, browser, csrf_of, patient  # noqa: F401 - fixtures

__all__ = ["browser", "patient"]


def FR(message: str) -> str:  # noqa: N802 - the French text as the page escapes it
    return str(escape(i18n.language("fr").gettext(message)))


def essentials(html: str) -> str:
    return html[html.index('<h2 id="essentials">'):html.index('<h2 id="new">')]


def test_home_lists_the_structured_items_and_the_patient_disputes_one(patient: Patient) -> None:
    world = patient.world
    samples.grant_clinical_scopes(world)
    r = world.client.post("/fhir/AllergyIntolerance", json=samples.allergy(world.dossier),
                          headers=world.headers("doctor"))
    assert r.status_code == 201
    item = r.json()["id"]
    world.client.post("/fhir/Observation", json=samples.blood_group(world.dossier), headers=world.headers("doctor"))
    b = patient.ready().browser
    html = essentials(b.get("/portal/").text)
    assert "Penicillin" in html and "O Rh+" in html
    assert world.client_ids["professional"] in html  # the sending software's name (here its client id), no URL
    assert "/fhir#client=" not in html
    assert FR("Dispute this item") in html
    assert FR("No information recorded.") in html  # no treatment, problem or vaccination yet
    r = b.post(f"/portal/clinical/AllergyIntolerance/{item}/dispute",
               data={"csrf": csrf_of(html), "text": "Je ne suis pas allergique."})
    assert r.status_code == 303 and r.headers["location"].endswith("done=disputed#clinical")
    after = essentials(b.get("/portal/?done=disputed").text)
    assert FR("You disputed this item") in after and "Je ne suis pas allergique." in after
    seen = world.client.get(f"/fhir/AllergyIntolerance/{item}", headers=world.headers("doctor")).json()
    assert seen["note"][-1]["text"] == "Je ne suis pas allergique."
