"""The History screen (issue 4 §2): every access and change, who, when, what, in which mode, with filters; emergency
accesses stand out; the person's own page views are hidden unless asked for."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import select
from starlette.testclient import TestClient

from carnet.access.actors import Actor, ActorKind
from carnet.accounts import service as accounts
from carnet.context import run
from carnet.db.tables import account_dossier
from carnet.dossier import service as dossiers
from carnet.identity.ins import fake_nir_for
from tests import conftest as base
from tests.conftest import World
from tests.portal.conftest import Patient, csrf_of, last_code_sent_to
from tests.portal.test_access import english, name_of


def api_search(world: World, role: str, key: Any = None, **token: Any) -> int:
    return world.client.get("/fhir/DocumentReference", params={"patient": str(key or world.dossier)},
                            headers=world.headers(role, **token)).status_code


def rows(html: str) -> list[str]:
    """The history table's rows, as HTML fragments."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in html else ""
    return re.findall(r"<tr.*?</tr>", body, flags=re.S)


def test_the_history_lists_a_professionals_search_with_their_name_and_profession(patient: Patient) -> None:
    world = english(patient).world
    assert api_search(world, "nurse") == 200
    html = patient.browser.get("/portal/history").text
    found = [r for r in rows(html) if name_of(world, "nurse") in r]
    assert found and "searched the documents" in found[0] and "Nurse" in found[0]
    assert 'class="emergency"' not in found[0]


def test_an_emergency_access_stands_out_with_its_reason(patient: Patient) -> None:
    world = english(patient).world
    assert api_search(world, "stranger", mode="emergency", reason="patiente inconsciente aux urgences") == 200
    html = patient.browser.get("/portal/history").text
    found = [r for r in rows(html) if name_of(world, "stranger") in r]
    assert found
    row = found[0]
    assert row.startswith('<tr class="emergency">')
    assert "Emergency access (break the glass)" in row and "patiente inconsciente aux urgences" in row


def test_a_refused_attempt_is_shown_as_refused(patient: Patient) -> None:
    world = english(patient).world
    assert api_search(world, "blocked") == 403
    found = [r for r in rows(patient.browser.get("/portal/history").text) if name_of(world, "blocked") in r]
    assert found and "Refused attempt" in found[0]


def test_the_patients_own_reads_are_hidden_unless_asked_for(patient: Patient) -> None:
    english(patient)
    patient.browser.get("/portal/access")  # audited as the patient's own read
    default = patient.browser.get("/portal/history").text
    assert "looked at who has access" not in default
    shown = patient.browser.get("/portal/history", params={"own": "1"}).text
    assert "looked at who has access" in shown and "<strong>You</strong>" in shown


def test_the_patients_own_changes_are_shown_by_default(patient: Patient) -> None:
    world = english(patient).world
    page = patient.browser.get("/portal/access")
    patient.browser.post("/portal/access/authorize", data={"csrf": csrf_of(page.text),
                                                           "subject": world.pros["stranger"]})
    found = [r for r in rows(patient.browser.get("/portal/history").text) if "authorized a professional" in r]
    assert any("<strong>You</strong>" in r and name_of(world, "stranger") in r for r in found)


def test_filters_by_kind_of_actor_mode_kind_of_event_and_period(patient: Patient) -> None:
    world = english(patient).world
    api_search(world, "nurse")
    api_search(world, "stranger", mode="emergency", reason="détresse respiratoire")
    b = patient.browser
    pros = rows(b.get("/portal/history", params={"who": "professionals"}).text)
    assert pros and all("legal representative" not in r and "<strong>You</strong>" not in r for r in pros)
    urgent = rows(b.get("/portal/history", params={"emergency": "1"}).text)
    assert len(urgent) == 1 and name_of(world, "stranger") in urgent[0]
    access = rows(b.get("/portal/history", params={"kind": "access", "own": "1"}).text)
    assert access and all(name_of(world, "nurse") not in r or "authorized" in r for r in access)
    assert not any("searched the documents" in r for r in access)
    # the page's days are days of the display time zone (after 23:00 UTC, Paris is already tomorrow)
    from zoneinfo import ZoneInfo

    local = world.services.clock().astimezone(ZoneInfo(world.services.settings.display_timezone)).date()
    tomorrow, today = (local + dt.timedelta(days=1)).isoformat(), local.isoformat()
    later = b.get("/portal/history", params={"from": tomorrow})
    assert rows(later.text) == [] and "Nothing matches these filters." in later.text
    assert rows(b.get("/portal/history", params={"from": today, "to": today, "who": "professionals"}).text)


def test_the_history_is_paged(patient: Patient) -> None:
    world = english(patient).world
    headers = world.headers("nurse")
    for _ in range(27):
        world.client.get("/fhir/DocumentReference", params={"patient": str(world.dossier)}, headers=headers)
    first = patient.browser.get("/portal/history", params={"who": "professionals", "kind": "read"}).text
    assert len(rows(first)) == 25 and "27 events found." in first and "Page 1 of 2." in first
    link = re.search(r'href="([^"]+)" rel="next"', first)
    assert link and "who=professionals" in link.group(1)
    second = patient.browser.get(link.group(1).replace("&amp;", "&")).text
    assert len(rows(second)) == 2 and 'rel="prev"' in second


def test_an_unknown_filter_value_is_ignored(patient: Patient) -> None:
    english(patient)
    r = patient.browser.get("/portal/history", params={"who": "martians", "kind": "x", "from": "yesterday",
                                                       "page": "-3"})
    assert r.status_code == 200


class Representative:
    """A parent with an account for a child's dossier (the child's dossier created by the World's GP)."""

    def __init__(self, world: World, browser: TestClient) -> None:
        self.world = world
        self.browser = browser
        services = world.services
        child = world.patient_resource(fake_nir_for(next(base._counter)))
        child["birthDate"] = (services.clock().date() - dt.timedelta(days=365 * 6)).isoformat()
        gp = Actor(ActorKind.PROFESSIONAL, id=world.pros["gp"], profession="10")
        self.dossier, _ = run(services, gp, lambda ctx: dossiers.create(ctx, child))
        self.email = f"parent{world.n}@example.test"
        run(services, Actor(ActorKind.OPERATOR, id="ops"), lambda ctx: dossiers.add_representative(
            ctx, self.dossier, "minor", "Parent", "Camille", "MTH",
            {"resourceType": "RelatedPerson", "telecom": [{"system": "email", "value": self.email}]}))
        with services.engine.begin() as conn:
            account_id = conn.execute(select(account_dossier.c.account_id).where(
                account_dossier.c.dossier_key == self.dossier, account_dossier.c.role == "representative")).scalar()
            code = accounts.new_code(conn, account_id, "activation", "post", services.clock(), dt.timedelta(days=1))
        password = "a mother's long passphrase"
        r = browser.post("/portal/activate", data={
            "login": self.email, "code": code, "birth_date": "", "password": password, "password2": password,
            "email": self.email, "phone": "", "otp_channel": "email"})
        assert r.status_code == 303, r.text
        r = browser.post("/portal/sign-in", data={"login": self.email, "password": password, "next": "/portal/"})
        assert r.status_code == 303
        page = browser.get("/portal/code")
        r = browser.post("/portal/code", data={"csrf": csrf_of(page.text), "next": "/portal/",
                                               "code": last_code_sent_to(services, self.email)})
        assert r.status_code == 303, r.text
        browser.cookies.set("carnet_lang", "en")


def test_a_representative_sees_the_history_of_the_childs_dossier(world: World, browser: TestClient) -> None:
    rep = Representative(world, browser)
    assert api_search(world, "gp", key=rep.dossier) == 200
    r = browser.get("/portal/history")
    assert r.status_code == 200
    found = [row for row in rows(r.text) if name_of(world, "gp") in row and "searched the documents" in row]
    assert found
    # the representative's own reads are theirs: hidden by default, shown on request as "You"
    browser.get("/portal/access")
    assert "looked at who has access" not in browser.get("/portal/history").text
    assert "<strong>You</strong>" in browser.get("/portal/history", params={"own": "1"}).text


def test_the_history_dates_are_days_of_the_display_time_zone(world: World) -> None:
    """A change at 23:30 UTC on 4 December is on the 5th in Paris: the filter "from 5 December" finds it when its
    days are Paris days (what the page shows), and not when they are UTC days."""
    import dataclasses
    from zoneinfo import ZoneInfo

    from carnet.history import audit_events

    late = dt.datetime(2026, 12, 4, 23, 30, tzinfo=dt.UTC)
    me = Actor(ActorKind.PATIENT, id=world.ins)
    at_night = dataclasses.replace(world.services, clock=lambda: late)
    run(at_night, me, lambda ctx: ctx.audit(world.dossier, "U", "access.requests"))

    def found(zone: dt.tzinfo) -> int:
        f = audit_events.HistoryFilter(since=dt.date(2026, 12, 5), until=dt.date(2026, 12, 5), kind="access",
                                       zone=zone)
        entries, _ = run(world.services, me, lambda ctx: audit_events.history(ctx, world.dossier, f))
        return sum(1 for e in entries if e.recorded == late)

    assert found(ZoneInfo("Europe/Paris")) == 1
    assert found(dt.UTC) == 0
