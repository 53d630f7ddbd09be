"""WCAG 2.1 AA and phone width, proven in a real browser: every screen of both portals, with realistic content, is
checked by axe-core (bundled by axe-playwright-python) at 360 px and 1280 px wide, and must fit 360 px without
horizontal scrolling."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from sqlalchemy import select

from carnet.access.actors import Actor, ActorKind
from carnet.accounts import service as accounts
from carnet.claims.ingest import ingest
from carnet.context import Services, run
from carnet.db.tables import account_dossier
from carnet.documents import codes
from carnet.dossier import service as dossiers
from carnet.identity.ins import FAKE_NIR_CAPACITY, fake_nir_for
from carnet.tasks import service as tasks
from tests.browser import test_clinician_paths as clinician
from tests.browser import test_patient_paths as patient
from tests.browser.conftest import Mailbox
from tests.browser.test_content_security_policy import VIEWER_LINK
from tests.claims.helpers import byte_lines, claims_file, sample
from tests.clinical import samples
from tests.conftest import World
from tests.dossier.test_contacts import add as add_contact
from tests.portal.test_documents import CDA, PDF
from tests.portal.test_documents import publish as publish_document
from tests.portal.test_requests import ask_access
from tests.tasks.helpers import add_representative, grant_task_scopes
from tests.tasks.helpers import publish as publish_task_document

WIDTHS = ({"width": 360, "height": 780}, {"width": 1280, "height": 900})
AXE_OPTIONS = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
               "resultTypes": ["violations"]}
# The innermost elements that stick out to the right of the viewport: where an overflow comes from.
WIDEST = """(() => {
  const out = [...document.body.querySelectorAll("*")].filter(e => e.getBoundingClientRect().right > innerWidth + 1);
  const leaves = out.filter(e => !out.some(o => o !== e && e.contains(o)));
  return leaves.slice(0, 5).map(e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") +
    (e.className && typeof e.className === "string" ? "." + e.className.trim().split(/\\s+/).join(".") : ""));
})()"""
NOWHERE = "00000000-0000-0000-0000-000000000000"
FR = patient.FR


class Audit:
    """Runs axe on the page at both widths and the phone-width overflow check; keeps every problem found so one test
    reports all the screens that fail, not only the first."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.axe = Axe()
        self.problems: list[str] = []
        self.screens: list[str] = []

    def check(self, screen: str) -> None:
        page = self.page
        page.wait_for_load_state()
        self.screens.append(screen)
        page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")  # folded forms too
        for size in WIDTHS:
            page.set_viewport_size(size)
            where = f"{screen} at {size['width']} px ({page.url})"
            results = self.axe.run(page, options=AXE_OPTIONS).response
            for v in results["violations"]:
                targets = "; ".join(f"{' '.join(map(str, n['target']))} {n['html'][:80]!r}" for n in v["nodes"])
                self.problems.append(f"{where}: {v['id']} ({v['impact']}) {v['help']} -> {targets}")
            if size["width"] == 360:
                widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
                if widths[0] > widths[1]:
                    self.problems.append(f"{where}: horizontal overflow, {widths[0]} px wide for {widths[1]} px; "
                                         f"too wide: {', '.join(page.evaluate(WIDEST))}")
        page.set_viewport_size(WIDTHS[0])

    def visit(self, url: str, screen: str, shows: str = "") -> None:
        """Open the screen and check it; ``shows`` is text it must hold (a filled screen, not an empty one)."""
        self.page.goto(url)
        if shows:
            assert shows in self.page.locator("main").inner_text(), (screen, shows)
        self.check(screen)

    def assert_clean(self, expected_screens: int) -> None:
        assert not self.problems, f"{len(self.problems)} accessibility problem(s):\n" + "\n".join(self.problems)
        assert len(self.screens) == expected_screens, self.screens


def test_the_audit_reports_what_breaks_wcag_and_what_overflows_a_phone(page: Any) -> None:
    """The check itself can fail: an image without a text alternative, a page without a language, light grey text
    and a block wider than a phone are all reported, with the rule and the element."""
    page.set_content('<!doctype html><html><head><title>t</title></head><body><main><h1>Titre</h1>'
                     '<img src="data:," id="no-alt"><p style="color:#bbb">pâle</p>'
                     '<div id="wide" style="width:900px">large</div></main></body></html>')
    audit = Audit(page)
    audit.check("a broken page")
    found = "\n".join(audit.problems)
    for rule in ("image-alt", "html-has-lang", "color-contrast"):
        assert f": {rule} (" in found, found
    assert "#no-alt" in found and "horizontal overflow" in found and "div#wide" in found
    with pytest.raises(AssertionError, match="accessibility problem"):
        audit.assert_clean(1)


def fill_dossier(world: World, services: Services) -> dict[str, str]:
    """Documents of several classes (one of them a CDA), structured data for the emergency summary, claims lines for
    the care history, history entries, a pending access request and an emergency contact."""
    docs = {"cda": publish_document(world, title="Lettre de liaison CDA", ctype="text/xml", data=CDA),
            "prescription": publish_document(world, role="doctor", loinc="57833-6", title="Ordonnance"),
            "summary": publish_document(world, loinc="60591-5", title="Synthèse du médecin traitant"),
            "pdf": publish_document(world, loinc="11488-4", title="Consultation de cardiologie", data=PDF),
            "text": patient.publish(world, "Note de suivi", "Tension 12/8, à revoir dans trois mois")}
    samples.grant_clinical_scopes(world)
    for make in samples.ALL:
        body = make(world.dossier)
        r = world.client.post(f"/fhir/{body['resourceType']}", json=body, headers=world.headers("doctor"))
        assert r.status_code == 201, r.text
    hidden = {"resourceType": "Parameters", "parameter": [{"name": "meta", "valueMeta": {"security": [
        {"system": codes.TRE_A07, "code": codes.MASQUE_PS}]}}]}  # the last item hidden: its badge and buttons
    r = world.client.post(f"/fhir/{r.json()['resourceType']}/{r.json()['id']}/$meta-add", json=hidden,
                          headers=world.headers(None, kind="patient_portal"))
    assert r.status_code == 200, r.text
    ingest(services, byte_lines(claims_file(sample(world.ins, services.clock().date()))))
    assert patient.nurse_search(world).status_code == 200  # a history entry
    emergency = world.client.get(f"/fhir/DocumentReference?patient={world.dossier}",
                                 headers=world.headers("stranger", mode="emergency", reason="Patient inconscient"))
    assert emergency.status_code == 200  # an emergency access, in the history and the review queue
    grant_task_scopes(world)
    world.pros["asker"] = world.add_pro("10")
    ask_access(world, role="asker")
    add_contact(world)
    return docs


def test_every_patient_screen_meets_wcag_21_aa_at_phone_and_desktop_widths(
        page: Any, live: tuple[str, Services], world: World, mailbox: Mailbox) -> None:
    base, services = live
    person = patient.Person(world, services)
    docs = fill_dossier(world, services)
    audit = Audit(page)

    audit.visit(base + "/portal/sign-in", "sign-in")
    page.get_by_label("Identifiant").fill(world.ins)
    page.get_by_label("Mot de passe").fill("not the password at all")
    page.get_by_role("button", name="Continuer").click()
    page.locator("main [role=alert]").first.wait_for()  # the refusal, said to screen readers
    audit.check("sign-in refused")
    page.get_by_label("Identifiant").fill(world.ins)
    page.get_by_label("Mot de passe").fill(patient.PASSWORD)
    page.get_by_role("button", name="Continuer").click()
    page.wait_for_url("**/portal/code**")
    audit.check("code entry")
    audit.visit(base + "/portal/activate", "activation")
    audit.visit(base + "/portal/reset", "password reset")

    page.context.clear_cookies()  # a fresh start: the helper signs in from the beginning
    patient.sign_in(page, base, person, mailbox)
    audit.check("home")
    for path, screen, shows in (
            ("/portal/documents", "documents", "Ordonnance"),
            (f"/portal/documents/{docs['cda']}", "a CDA document", "Urticaire"),
            (f"/portal/documents/{docs['text']}", "a text document", "Tension 12/8"),
            (f"/portal/documents/{docs['pdf']}", "a PDF document", "Consultation de cardiologie"),
            ("/portal/documents/new", "add a document", ""),
            ("/portal/access", "access", "Doc"),
            ("/portal/history", "history", "Patient inconscient"),
            ("/portal/requests", "requests", "suivi après une chute"),
            (f"/portal/requests/correction?document={docs['summary']}", "ask for a correction",
             "Synthèse du médecin traitant"),
            ("/portal/settings", "contacts and settings", "Camille Martin"),
            ("/portal/dossier", "my dossier", ""),
            ("/portal/dossier/close", "close my dossier", ""),
            ("/portal/dossier/object", "object to my dossier", ""),
            ("/portal/care-history", "care history", "Paracétamol 500 mg"),
            ("/portal/apps", "connected apps", ""),
            ("/portal/sharing", "share (SMART Health Links, emergency card)", ""),
            ("/portal/access-codes", "access codes", ""),
            ("/portal/measures", "measurements (typed, devices, Apple Health import)", "Tension artérielle"),
            ("/shl/view#shlink:/" + VIEWER_LINK, "a SMART Health Link's viewer (a doctor abroad)", ""),
            (f"/portal/documents/{NOWHERE}", "error page", "")):
        audit.visit(base + path, screen, shows)
    page.goto(base + "/portal/access")
    page.locator("main form[action='/portal/access/block'] button").first.click()
    page.wait_for_url("**/portal/access/block")
    audit.check("confirm blocking a professional")
    page.goto(base + "/portal/settings")
    page.locator("a[href^='/portal/settings/contacts/']").first.click()
    page.wait_for_url("**/portal/settings/contacts/**")
    audit.check("change a contact")

    other = World(world.services, world.client)  # the patient also represents someone: the chooser shows
    rep = add_representative(other)
    with services.engine.begin() as conn:
        account_id = conn.execute(select(account_dossier.c.account_id).where(
            account_dossier.c.dossier_key == world.dossier, account_dossier.c.role == "owner")).scalar_one()
        accounts.link(conn, account_id, other.dossier, "representative", services.clock(), uuid.UUID(str(rep.id)))
    audit.visit(base + "/portal/choose", "account chooser")
    assert page.locator("main form[action='/portal/choose']").count() == 2
    audit.assert_clean(29)


def test_every_clinician_screen_meets_wcag_21_aa_at_phone_and_desktop_widths(
        page: Any, live: tuple[str, Services], world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    base, services = live
    nid, button = clinician.new_professional(world)
    clinician.grant(world, nid)
    me = Actor(ActorKind.PATIENT, id=world.ins)  # the médecin traitant gets a notice of the emergency access
    run(services, me, lambda ctx: dossiers.set_treating_gp(ctx, world.dossier, nid))
    docs = fill_dossier(world, services)
    monkeypatch.setattr(services.settings, "reviewers", frozenset({nid}))
    other = World(world.services, world.client)  # no rights there: break the glass
    world.pros["me"] = nid  # requests: a correction asked of this doctor's document, an access request of theirs
    corrected = publish_task_document(world, "me")
    run(services, me, lambda ctx: tasks.request_rectification(ctx, corrected, "La date de l'examen est fausse"))
    run(services, Actor(ActorKind.PROFESSIONAL, id=nid, profession="10"),
        lambda ctx: tasks.request_access(ctx, other.dossier, "Suivi après une chute"))
    audit = Audit(page)

    audit.visit(base + "/pro/sign-in", "sign-in")
    page.get_by_role("link", name=FR("Sign in with the demo identity provider")).click()
    page.wait_for_url("**/demo-idp/authorize**")
    audit.check("demo identity provider")
    page.get_by_label(FR("Find a professional")).fill(button.split()[-1])
    page.get_by_role("button", name=FR("Search"), exact=True).click()
    page.get_by_role("button", name=button, exact=True).wait_for()
    audit.check("demo identity provider, found")

    clinician.sign_in(page, base, button)
    audit.check("find")
    clinician.find(page, base, world.ins)
    audit.check("find, a readable dossier")
    clinician.find(page, base, other.ins)
    audit.check("find, a dossier not yet readable")
    nobody = clinician.find(page, base, fake_nir_for(FAKE_NIR_CAPACITY - 1 - world.n))
    assert FR("No dossier for this INS") in nobody.inner_text()
    audit.check("find, no dossier yet")
    key = world.dossier
    for path, screen, shows in (
            (f"/pro/dossier/{key}", "dossier, the emergency summary first", "Penicillin"),
            (f"/pro/dossier/{key}/documents/{docs['cda']}", "a CDA document", "Urticaire"),
            (f"/pro/dossier/{key}/documents/{docs['text']}", "a text document", "Tension 12/8"),
            (f"/pro/dossier/{key}/documents/{docs['pdf']}", "a PDF document", "Consultation de cardiologie"),
            (f"/pro/dossier/{key}/add", "add a document", ""),
            (f"/pro/dossier/{key}/care-history", "care history", "Paracétamol 500 mg"),
            ("/pro/new?system=test", "create a dossier", ""),
            ("/pro/review", "review queue", "Patient inconscient"),
            ("/pro/inbox", "notices to the médecin traitant", "Patient inconscient"),
            ("/pro/requests", "requests: corrections and access requests", "La date de l'examen est fausse"),
            (f"/pro/dossier/{NOWHERE}", "error page", ""),
            (f"/pro/emergency?next=/pro/dossier/{other.dossier}", "break the glass", "")):
        audit.visit(base + path, screen, shows)
    page.get_by_label(FR("Reason (required)")).fill("Patient inconscient aux urgences")
    page.get_by_role("button", name=FR("Break the glass")).click()
    page.wait_for_url(f"**/pro/dossier/{other.dossier}")
    assert page.locator("#mode-banner").count() == 1
    audit.check("dossier in emergency mode")
    audit.visit(base + "/pro/", "find in emergency mode")
    audit.assert_clean(21)

