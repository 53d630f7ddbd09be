"""The Home screen (issue 4 §2): the emergency essentials first, then what is new since the last visit."""

from __future__ import annotations

from typing import Any

from markupsafe import escape

from carnet.access.actors import Actor, ActorKind
from carnet.context import run
from carnet.dossier import contacts
from carnet.portal import i18n
from carnet.tasks import service as tasks
from tests.portal.conftest import Patient, csrf_of
from tests.portal.test_documents import publish


def FR(message: str) -> str:  # noqa: N802 - the French text as the page escapes it
    return str(escape(i18n.language("fr").gettext(message)))


def sign_in_again(patient: Patient) -> Any:
    """A later visit: a new session, whose previous visit is the one before."""
    patient.browser.cookies.clear()
    assert patient.sign_in().status_code == 303
    home = patient.browser.get("/portal/")
    assert home.status_code == 200
    return home


def new_section(html: str) -> str:
    return html[html.index('<h2 id="new">'):]


def essentials(html: str) -> str:
    return html[html.index('<h2 id="essentials">'):html.index('<h2 id="new">')]


def test_home_shows_the_documents_added_since_the_previous_visit_and_not_older_ones(patient: Patient) -> None:
    world = patient.world
    publish(world, title="Ancien compte rendu")
    first = patient.ready().browser.get("/portal/")
    assert "Ancien compte rendu" in new_section(first.text)  # first visit: the latest documents
    publish(world, title="Nouveau compte rendu", role="doctor")
    later = new_section(sign_in_again(patient).text)
    assert "Nouveau compte rendu" in later and "Ancien compte rendu" not in later
    assert FR("New since your last visit on {date}").split("{")[0] in later


def test_the_patients_own_additions_are_not_new_to_them(patient: Patient) -> None:
    world = patient.world
    b = patient.ready().browser
    csrf = csrf_of(b.get("/portal/documents/new").text)
    r = b.post("/portal/documents/new", data={"csrf": csrf, "kind": "note", "title": "Ma propre note",
                                              "type": "DOCPAT01", "note": "texte"})
    assert r.status_code == 303
    publish(world, title="Note du médecin")
    later = new_section(sign_in_again(patient).text)
    assert "Note du médecin" in later and "Ma propre note" not in later


def test_an_emergency_access_since_the_last_visit_stands_out_with_its_reason(patient: Patient) -> None:
    world = patient.world
    patient.ready()
    r = world.client.get("/fhir/DocumentReference", params={"patient": str(world.dossier)},
                         headers=world.headers("stranger", mode="emergency", reason="Inconscient aux urgences"))
    assert r.status_code == 200
    r = world.client.get("/fhir/DocumentReference", params={"patient": str(world.dossier)},
                         headers=world.headers("nurse"))
    assert r.status_code == 200
    html = new_section(sign_in_again(patient).text)
    cards = html.split('<li class="card')
    emergency = [c for c in cards if c.startswith(' emergency"')]
    assert len(emergency) == 1
    stranger = emergency[0]
    assert "Inconscient aux urgences" in stranger and FR("emergency access (break the glass)") in stranger
    assert 'class="badge warn"' in stranger  # the words say it, the colour repeats it
    assert FR("Your dossier was opened in an emergency mode: check below who did and why.") in html
    normal = [c for c in cards if FR("normal access") in c]
    assert len(normal) == 1 and "emergency" not in normal[0][:20]
    assert html.index("Inconscient aux urgences") < html.index(FR("normal access"))


def test_nothing_recorded_yet_shows_where_the_dossier_is_empty(patient: Patient) -> None:
    html = essentials(patient.ready().browser.get("/portal/").text)
    assert html.count(FR("Nothing recorded yet.")) == 3
    assert FR("These lists will come from the software of the professionals who care for you. Until then, your "
              "medical summaries hold them.") in html
    assert 'href="/portal/settings"' in html


def test_summaries_advance_directives_and_emergency_contacts_come_first(patient: Patient) -> None:
    world = patient.world
    vsm = publish(world, loinc="60591-5", title="VSM du médecin traitant")
    directives = publish(world, loinc="EXPPAT_3", title="Mes directives anticipées",
                         system="https://mos.esante.gouv.fr/NOS/TRE_A05-TypeDocComplementaire/FHIR/"
                                "TRE-A05-TypeDocComplementaire")
    publish(world, loinc="11488-4", title="Consultation ordinaire")
    me = Actor(ActorKind.PATIENT, id=world.ins)
    run(world.services, me, lambda ctx: contacts.add_contact(ctx, world.dossier, name="Camille Martin",
                                                               relationship="sœur", phone="+33 6 12 34 56 78"))
    html = essentials(patient.ready().browser.get("/portal/").text)
    assert f'href="/portal/documents/{vsm}"' in html and f'href="/portal/documents/{directives}"' in html
    assert html.index(f'/portal/documents/{vsm}') < html.index(f'/portal/documents/{directives}')
    assert "Camille Martin" in html and 'href="tel:+33612345678"' in html
    assert "Consultation ordinaire" not in html
    assert FR("Nothing recorded yet.") not in html


def test_pending_access_requests_are_counted_with_a_link(patient: Patient) -> None:
    world = patient.world
    stranger = Actor(ActorKind.PROFESSIONAL, id=world.pros["stranger"], profession="10")
    run(world.services, stranger, lambda ctx: tasks.open_access_request(ctx, world.dossier, "Suivi cardiologique"))
    html = patient.ready().browser.get("/portal/").text
    assert 'href="/portal/requests"' in html
    assert FR("Requests for access waiting for your answer: {n}").format(n=1) in html


def test_an_access_that_was_refused_is_said_refused_not_counted_as_an_access(patient: Patient) -> None:
    world = patient.world
    patient.ready()
    r = world.client.get("/fhir/DocumentReference", params={"patient": str(world.dossier)},
                         headers=world.headers("blocked"))
    assert r.status_code == 403
    html = new_section(sign_in_again(patient).text)
    (card,) = [c for c in html.split('<li class="card') if FR("Access refused") in c]
    assert FR("refused attempts: {n}").format(n=1) in card
    assert FR("normal access") not in card and FR("times: {n}").format(n=1) not in card
    assert f'({FR("{city} time").format(city="Paris")})' in card  # the time says which clock it is


def test_the_blood_group_is_shown_as_its_value_under_its_heading(patient: Patient) -> None:
    from tests.clinical import samples

    world = patient.world
    samples.grant_clinical_scopes(world)
    body = samples.blood_group(world.dossier)
    assert world.client.post("/fhir/Observation", json=body, headers=world.headers("doctor")).status_code == 201
    patient.ready()
    html = essentials(patient.browser.get("/portal/").text)
    assert "<strong>O Rh+</strong>" in html and "ABO" not in html
