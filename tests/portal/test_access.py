"""The Access screen (issue 4 §2): who has access and why, and the patient's means to change it — checked through
the pages, and their effect through the API as the professionals concerned."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from carnet.db.tables import access_grant, dossier, practitioner
from tests.conftest import World
from tests.portal.conftest import Patient, csrf_of


def english(patient: Patient) -> Patient:
    """Ready, signed in, reading the portal in English (the message ids), so that tests read plainly."""
    patient.ready()
    patient.browser.cookies.set("carnet_lang", "en")
    return patient


def name_of(world: World, role: str) -> str:
    with world.services.engine.connect() as conn:
        row = conn.execute(select(practitioner.c.given, practitioner.c.family).where(
            practitioner.c.national_id == world.pros[role])).one()
    return f"{row.given} {row.family}"


def post(patient: Patient, path: str, **data: str) -> Any:
    page = patient.browser.get("/portal/access")
    assert page.status_code == 200, page.text
    return patient.browser.post(path, data={"csrf": csrf_of(page.text), **data})


def search_status(world: World, role: str, **token: Any) -> int:
    return world.client.get("/fhir/DocumentReference", params={"patient": str(world.dossier)},
                            headers=world.headers(role, **token)).status_code


def live_grants(world: World) -> list[tuple[str, str]]:
    with world.services.engine.connect() as conn:
        return sorted((r.subject_id, r.relation) for r in conn.execute(select(access_grant).where(
            access_grant.c.dossier_key == world.dossier, access_grant.c.revoked_at.is_(None))))


def dossier_row(world: World) -> Any:
    with world.services.engine.connect() as conn:
        return conn.execute(select(dossier).where(dossier.c.dossier_key == world.dossier)).one()


def test_the_page_shows_the_treating_gp_the_authorized_and_the_blocked_professionals(patient: Patient) -> None:
    world = english(patient).world
    r = patient.browser.get("/portal/access")
    assert r.status_code == 200
    html = r.text
    gp, nurse, blocked = name_of(world, "gp"), name_of(world, "nurse"), name_of(world, "blocked")
    assert html.index("Your médecin traitant") < html.index(gp) < html.index("Professionals you have authorized")
    authorized = html[html.index("Professionals you have authorized"):html.index("Blocked professionals")]
    assert nurse in authorized and "Nurse" in authorized and "Authorized since" in authorized
    assert blocked not in authorized
    assert blocked in html[html.index("Blocked professionals"):]
    assert "I allow emergency access" in html and "Ask me each time" in html


def test_authorizing_a_stranger_through_the_page_lets_their_search_succeed(patient: Patient) -> None:
    world = english(patient).world
    assert search_status(world, "stranger") == 403
    rpps = world.pros["stranger"][1:]
    found = patient.browser.get("/portal/access", params={"q": rpps})
    assert name_of(world, "stranger") in found.text and "/portal/access/authorize" in found.text
    r = post(patient, "/portal/access/authorize", subject=world.pros["stranger"])
    assert r.status_code == 303 and r.headers["location"] == "/portal/access?done=authorized"
    assert search_status(world, "stranger") == 200
    shown = patient.browser.get(r.headers["location"]).text
    assert "The professional is authorized" in shown and 'role="status"' in shown


def test_the_directory_search_finds_a_professional_by_name(patient: Patient) -> None:
    world = english(patient).world
    family = name_of(world, "stranger").split()[1]
    r = patient.browser.get("/portal/access", params={"q": family.lower()})
    assert world.pros["stranger"] in r.text and "Professionals found: 1" in r.text


def test_blocking_asks_for_a_confirmation_then_the_nurse_is_refused_until_unblocked(patient: Patient) -> None:
    world = english(patient).world
    nurse = world.pros["nurse"]
    assert search_status(world, "nurse") == 200
    ask = post(patient, "/portal/access/block", subject=nurse)
    assert ask.status_code == 200 and "Yes, block" in ask.text and name_of(world, "nurse") in ask.text
    assert search_status(world, "nurse") == 200  # nothing changed before the confirmation
    r = post(patient, "/portal/access/block", subject=nurse, confirm="yes")
    assert r.status_code == 303 and r.headers["location"] == "/portal/access?done=blocked"
    assert search_status(world, "nurse") == 403
    assert (nurse, "blocked") in live_grants(world)
    r = post(patient, "/portal/access/unblock", subject=nurse)
    assert r.status_code == 303
    assert (nurse, "blocked") not in live_grants(world) and (nurse, "authorized") in live_grants(world)
    assert search_status(world, "nurse") == 200  # unblocking gives back the authorization the block replaced


def test_unblocking_a_professional_who_was_never_authorized_gives_no_access(patient: Patient) -> None:
    world = english(patient).world
    assert search_status(world, "blocked") == 403
    assert post(patient, "/portal/access/unblock", subject=world.pros["blocked"]).status_code == 303
    assert world.pros["blocked"] not in {s for s, _ in live_grants(world)}
    assert search_status(world, "blocked") == 403
    again = post(patient, "/portal/access/unblock", subject=world.pros["blocked"])
    assert again.status_code == 409 and 'role="alert"' in again.text


def test_the_treating_gp_cannot_be_blocked_an_error_is_shown_and_nothing_changes(patient: Patient) -> None:
    world = english(patient).world
    before = live_grants(world)
    r = post(patient, "/portal/access/block", subject=world.pros["gp"], confirm="yes")
    assert r.status_code == 409
    assert 'role="alert"' in r.text and "médecin traitant cannot be blocked" in r.text
    assert live_grants(world) == before
    assert search_status(world, "gp") == 200


def test_the_treating_gp_is_offered_neither_withdraw_nor_block(patient: Patient) -> None:
    """The page says the médecin traitant's access cannot be removed: it offers no button that would be refused."""
    world = english(patient).world
    html = patient.browser.get("/portal/access").text
    authorized = html[html.index('<h2 id="authorized">'):html.index('<h2 id="teams">')]
    gp = world.pros["gp"]
    assert f'name="subject" value="{gp}"' not in authorized
    assert "this access stays while they are your médecin traitant" in authorized
    assert f'name="subject" value="{world.pros["nurse"]}"' in authorized  # others keep their buttons


def test_the_treating_gp_cannot_be_withdrawn_either(patient: Patient) -> None:
    world = english(patient).world
    before = live_grants(world)
    r = post(patient, "/portal/access/withdraw", subject=world.pros["gp"], confirm="yes")
    assert r.status_code == 409 and live_grants(world) == before


def test_withdrawing_an_authorization_removes_the_access(patient: Patient) -> None:
    world = english(patient).world
    assert search_status(world, "doctor") == 200
    ask = post(patient, "/portal/access/withdraw", subject=world.pros["doctor"])
    assert ask.status_code == 200 and "Yes, withdraw" in ask.text
    r = post(patient, "/portal/access/withdraw", subject=world.pros["doctor"], confirm="yes")
    assert r.status_code == 303
    assert search_status(world, "doctor") == 403


def test_changing_the_treating_gp_through_the_page(patient: Patient) -> None:
    world = english(patient).world
    r = post(patient, "/portal/access/treating-gp", subject=world.pros["doctor"])
    assert r.status_code == 303 and r.headers["location"] == "/portal/access?done=gp"
    assert dossier_row(world).treating_gp == world.pros["doctor"]
    html = patient.browser.get("/portal/access").text
    assert html.index(name_of(world, "doctor")) < html.index("Professionals you have authorized")
    # the former médecin traitant may now be blocked
    assert post(patient, "/portal/access/block", subject=world.pros["gp"], confirm="yes").status_code == 303
    assert search_status(world, "gp") == 403


def test_no_longer_having_a_treating_gp_asks_for_a_confirmation(patient: Patient) -> None:
    world = english(patient).world
    ask = post(patient, "/portal/access/treating-gp/remove", subject=world.pros["gp"])
    assert ask.status_code == 200 and "Yes, stop" in ask.text
    assert dossier_row(world).treating_gp == world.pros["gp"]
    r = post(patient, "/portal/access/treating-gp/remove", subject=world.pros["gp"], confirm="yes")
    assert r.status_code == 303 and dossier_row(world).treating_gp is None


def test_the_two_objection_switches_are_separate_and_change_the_api_outcome(patient: Patient) -> None:
    world = english(patient).world
    emergency = {"mode": "emergency", "reason": "patient inconscient"}
    regulation = {"mode": "regulation", "reason": "appel au 15"}
    assert search_status(world, "stranger", **emergency) == 200
    assert search_status(world, "regulator", **regulation) == 200
    r = post(patient, "/portal/access/emergency", choice="object")
    assert r.status_code == 303 and dossier_row(world).objects_break_glass
    assert search_status(world, "stranger", **emergency) == 403
    assert search_status(world, "regulator", **regulation) == 200  # the other switch is untouched
    assert post(patient, "/portal/access/regulation", choice="object").status_code == 303
    assert search_status(world, "regulator", **regulation) == 403
    assert post(patient, "/portal/access/emergency", choice="allow").status_code == 303
    assert search_status(world, "stranger", **emergency) == 200
    html = patient.browser.get("/portal/access").text
    assert 'id="bg-allow" name="choice" value="allow" checked' in html
    assert 'id="rg-object" name="choice" value="object" checked' in html


def test_the_access_request_setting_is_saved(patient: Patient) -> None:
    world = english(patient).world
    assert dossier_row(world).access_requests == "ask"
    r = post(patient, "/portal/access/requests", policy="refuse")
    assert r.status_code == 303 and dossier_row(world).access_requests == "refuse"
    assert post(patient, "/portal/access/requests", policy="sometimes").status_code == 400
    assert dossier_row(world).access_requests == "refuse"


def test_a_change_without_the_csrf_token_is_refused_and_changes_nothing(patient: Patient) -> None:
    world = english(patient).world
    r = patient.browser.post("/portal/access/authorize", data={"subject": world.pros["stranger"]})
    assert r.status_code == 403
    assert search_status(world, "stranger") == 403


def test_reading_the_access_page_is_audited(patient: Patient) -> None:
    from carnet.db.tables import audit

    world = english(patient).world
    patient.browser.get("/portal/access")
    with world.services.engine.connect() as conn:
        events = list(conn.execute(select(audit.c.event).where(audit.c.dossier_key == world.dossier,
                                                               audit.c.actor_id == world.ins)).scalars())
    assert "access.read" in events


def test_the_access_history_and_requests_screens_are_in_french_by_default(patient: Patient) -> None:
    patient.ready()
    for path, text in (("/portal/access", "Professionnels que vous avez autorisés"),
                       ("/portal/history", "Chaque accès à votre dossier"),
                       ("/portal/requests", "Mes demandes de rectification")):
        r = patient.browser.get(path)
        assert r.status_code == 200 and text in r.text, path
