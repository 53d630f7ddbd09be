"""Plain words on every screen (issue 16 §1): every page of both portals, in French and in English, with a filled
dossier, is fetched and its visible text (attributes, scripts and styles left out) must hold no audit event code
(``clinical.create``, ``ITI-67``), no LOINC-like code (``28655-9``), no professional's national id in a list to
choose from, and, in French, no English message left untranslated. The checker is shown to fail on planted codes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from carnet.access.actors import Actor, ActorKind
from carnet.context import Services, run
from carnet.documents import codes
from carnet.portal import i18n
from carnet.portal.pages import history as history_page
from carnet.tasks import service as tasks
from tests.browser.test_accessibility import fill_dossier
from tests.conftest import World
from tests.portal.conftest import PORTAL_BASE, Patient
from tests.portal.test_documents import docref
from tests.portal.test_i18n import message_ids
from tests.pro.conftest import signed_in
from tests.tasks.helpers import publish as publish_task_document

SRC = Path(i18n.__file__).parents[1]
# The families of Carnet's audit event names, and the IHE transactions they also use.
EVENT_CODE = re.compile(r"\b(?:(?:access|account|claims|clinical|contact|document|dossier|history|patient|pro|"
                        r"representative|share|summary|task|teleconsult)(?:\.[a-z_]+)+|ITI-\d+)\b")
LOINC_LIKE = re.compile(r"(?<![\w-])\d{3,5}-\d(?![\w-])")  # not inside an id (a dossier key)
NATIONAL_ID = re.compile(r"\d{9,}")
ENGLISH_WORDS = 3  # an English message of this many words or more, found inside a French text, is untranslated


class Visible(HTMLParser):
    """The text a reader sees (no attribute, script, style or template), and the options of every select."""

    HIDDEN = ("script", "style", "template", "title")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self.options: list[str] = []
        self._hidden = 0
        self._option: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.HIDDEN:
            self._hidden += 1
        elif tag == "option":
            self._option = []

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag == "option" and self._option is not None:
            self.options.append(" ".join("".join(self._option).split()))
            self._option = None

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        text = " ".join(data.split())
        if text:
            self.texts.append(text)
            if self._option is not None:
                self._option.append(data)


def audit_event_names() -> set[str]:
    """Every audit event name Carnet records in a dossier's chain (what its History may show), read from its source:
    ``ctx.audit``/``ctx.refuse`` calls (not those on the system chain), ``event=`` arguments and the tables of event
    names."""
    found: set[str] = set()
    call = re.compile(r"\.(?:audit|refuse)\(\s*(?!SYSTEM_CHAIN)[^,()]+,\s*\"[CRUDE]\",\s*\"([^\"]+)\"")
    named = re.compile(r"\bevent(?::\s*str)?\s*=\s*\"([^\"]+)\"|\bEVENT\s*=\s*\"([^\"]+)\"|"
                       r":\s*\"((?:access|task)\.[a-z_.]+)\"")
    for path in SRC.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        found.update(call.findall(text))
        found.update(g for m in named.findall(text) for g in m if g)
    return found


def french_untranslated() -> dict[str, str]:
    """The portals' English message ids whose French translation differs (the ones a French page must not show)."""
    french = i18n.language("fr")
    out = {}
    for key in message_ids():
        if "\x04" in key:
            continue
        if french.gettext(key) != key:
            out[key] = french.gettext(key)
    return out


def problems_in(html: str, lang: str, where: str, english: dict[str, str]) -> list[str]:
    """What a reader should not see on this page."""
    page = Visible()
    page.feed(html)
    text = "\n".join(page.texts)
    out = [f"{where}: event code {m!r}" for m in sorted(set(EVENT_CODE.findall(text)))]
    out += [f"{where}: code {m!r}" for m in sorted(set(LOINC_LIKE.findall(text)))]
    out += [f"{where}: national id in a list: {o!r}" for o in page.options if NATIONAL_ID.search(o)]
    if lang == "fr":
        flat = " ".join(page.texts)
        for message in english:
            plain = "{" not in message and "%(" not in message
            if message in page.texts or (plain and len(message.split()) >= ENGLISH_WORDS and message in flat):
                out.append(f"{where}: untranslated {message!r}")
    return out


def test_every_audit_event_name_is_caught_by_the_pattern_and_has_a_label() -> None:
    names = audit_event_names()
    assert {"clinical.create", "claims.ingest", "access.consent", "ITI-67", "task.access.request"} <= names, names
    assert not {n for n in names if not EVENT_CODE.fullmatch(n)}
    assert not {n for n in names if n not in history_page.EVENTS}, "events with no label of their own"


def test_the_checker_finds_planted_codes_ids_and_english() -> None:
    english = french_untranslated()
    html = ('<html><head><title>clinical.create</title><style>p{x:1}</style></head><body>'
            '<p data-x="28655-9">Le 04/12/2026 · INS 2 55 08 14 168 025 38 · +33 6 12 34 56 78</p>'
            '<select><option value="810001045367">Test Doc</option></select></body></html>')
    assert problems_in(html, "fr", "clean", english) == []  # codes in attributes, the title, the INS: fine
    planted = ('<p>Vous · claims.ingest · ITI-67</p><p>Type : 28655-9</p><select><option>810001045367</option>'
               '</select><button>Sign out</button><p>Unless you reopen it, its content will be erased.</p>')
    found = "\n".join(problems_in(planted, "fr", "planted", english))
    for expected in ("'claims.ingest'", "'ITI-67'", "'28655-9'", "'810001045367'", "untranslated 'Sign out'"):
        assert expected in found, found
    assert "untranslated" not in "\n".join(problems_in(planted, "en", "planted", english))


@pytest.fixture
def filled(world: World, services: Services, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The accessibility test's filled dossier, a document with neither title nor known type (the IHE minimal
    example's shape), a correction asked of the médecin traitant and an access request by them on another dossier."""
    docs = fill_dossier(world, services)
    bare = docref(world, "28655-9", "")
    del bare["content"][0]["attachment"]["title"]
    r = world.client.post("/fhir/DocumentReference", json=bare, headers=world.headers("gp"))
    assert r.status_code == 201, r.text
    docs["bare"] = str(r.json()["id"])
    me = Actor(ActorKind.PATIENT, id=world.ins)
    corrected = publish_task_document(world, "gp")
    run(services, me, lambda ctx: tasks.request_rectification(ctx, corrected, "La date de l'examen est fausse"))
    other = World(world.services, world.client)
    run(services, Actor(ActorKind.PROFESSIONAL, id=world.pros["gp"], profession="10"),
        lambda ctx: tasks.request_access(ctx, other.dossier, "Suivi après une chute"))
    monkeypatch.setattr(services.settings, "reviewers", frozenset({world.pros["gp"]}))
    return docs


def patient_pages(docs: dict[str, str]) -> list[str]:
    return ["/portal/", "/portal/documents", *(f"/portal/documents/{d}" for d in docs.values()),
            "/portal/documents/new", "/portal/access", "/portal/history", "/portal/history?own=1",
            "/portal/requests", f"/portal/requests/correction?document={docs['summary']}",
            f"/portal/requests/correction?document={docs['bare']}", "/portal/requests/correction", "/portal/settings",
            "/portal/dossier", "/portal/dossier/close", "/portal/dossier/object", "/portal/care-history",
            "/portal/apps", "/portal/access-codes", "/portal/documents/00000000-0000-0000-0000-000000000000"]


def pro_pages(world: World, docs: dict[str, str]) -> list[str]:
    key = world.dossier
    return ["/pro/", f"/pro/?ins={world.ins}&system=test", f"/pro/dossier/{key}",
            *(f"/pro/dossier/{key}/documents/{d}" for d in docs.values()), f"/pro/dossier/{key}/add",
            f"/pro/dossier/{key}/care-history", "/pro/new?system=test", "/pro/review", "/pro/inbox",
            "/pro/requests", "/pro/dossier/00000000-0000-0000-0000-000000000000"]


@pytest.fixture
def pro_browser(app: Any) -> Iterator[TestClient]:
    with TestClient(app, base_url=PORTAL_BASE, follow_redirects=False) as c:
        yield c


def walk(client: TestClient, paths: list[str], lang: str, english: dict[str, str]) -> tuple[list[str], int]:
    client.cookies.set("carnet_lang", lang)
    problems: list[str] = []
    for path in paths:
        r = client.get(path)
        assert r.status_code in (200, 404), (path, r.status_code)
        assert f'<html lang="{lang}">' in r.text, path
        problems += problems_in(r.text, lang, f"{lang} {path}", english)
    return problems, len(paths)


def test_no_screen_of_either_portal_shows_a_code_an_id_or_english_in_french(
        world: World, filled: dict[str, str], patient: Patient, pro_browser: TestClient) -> None:
    patient.ready()
    signed_in(pro_browser, world.pros["gp"])
    english = french_untranslated()
    problems: list[str] = []
    walked = 0
    for lang in ("fr", "en"):
        for client, paths in ((patient.browser, patient_pages(filled)), (pro_browser, pro_pages(world, filled))):
            found, n = walk(client, paths, lang, english)
            problems += found
            walked += n
    idp = pro_browser.get("/demo-idp/authorize", params={"response_type": "code", "client_id": "x"})
    problems += problems_in(idp.text, "en", "demo identity provider", english)
    assert not problems, f"{len(problems)} problem(s) on {walked} pages:\n" + "\n".join(problems)
    assert walked == 2 * (len(patient_pages(filled)) + len(pro_pages(world, filled)))


def test_the_walk_catches_an_event_code_planted_in_the_history(
        world: World, filled: dict[str, str], patient: Patient, monkeypatch: pytest.MonkeyPatch) -> None:
    patient.ready()
    monkeypatch.setattr(history_page, "event_label", lambda event: event)  # the old fallback: the raw code
    problems, _ = walk(patient.browser, ["/portal/history"], "fr", french_untranslated())
    assert any("event code 'claims.ingest'" in p for p in problems), problems


def test_a_document_without_title_is_named_by_its_type_and_opens(
        filled: dict[str, str], patient: Patient) -> None:
    patient.ready()
    listing = patient.browser.get("/portal/documents").text
    link = re.search(rf'<a href="/portal/documents/{filled["bare"]}">([^<]+)</a>', listing)
    assert link and link.group(1).strip() == codes.TYPE_LABELS["28655-9"], listing  # "Compte rendu de sortie"
    assert patient.browser.get(f"/portal/documents/{filled['bare']}").status_code == 200
