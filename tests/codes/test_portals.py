"""Access codes in both portals (issue 13 §1): the patient creates a code on the Access codes page, the professional
types it on the clinician portal's find-by-INS page and opens the dossier; a wrong code says so; the History tells
both in plain words."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from starlette.testclient import TestClient

from tests.conftest import World
from tests.portal.conftest import PORTAL_BASE, Patient, csrf_of
from tests.pro.conftest import BASE as PRO_BASE
from tests.pro.conftest import signed_in


@pytest.fixture
def patient(world: World, app: Any) -> Iterator[Patient]:
    with TestClient(app, base_url=PORTAL_BASE, follow_redirects=False) as c:
        yield Patient(world, c).ready()


@pytest.fixture
def pro_browser(world: World, app: Any) -> Iterator[TestClient]:
    with TestClient(app, base_url=PRO_BASE, follow_redirects=False) as c:
        yield signed_in(c, world.pros["stranger"])


def _create_code(p: Patient, hours: str = "24") -> str:
    page = p.browser.get("/portal/access-codes")
    assert page.status_code == 200 and "Codes d'accès" in text(page)
    r = p.browser.post("/portal/access-codes", data={"csrf": csrf_of(page.text), "hours": hours,
                                                    "label": "Dr du ski"})
    assert r.status_code == 200, r.text
    m = re.search(r'id="new-code">([^<]+)<', r.text)
    assert m, r.text
    return m.group(1)


def text(r: Any) -> str:
    return html.unescape(r.text)


def _find(pro: TestClient, world: World) -> str:
    page = pro.get("/pro/?" + urlencode({"ins": world.ins, "system": "test"}))
    assert page.status_code == 200
    return text(page)


def _use(pro: TestClient, world: World, code: str) -> Any:
    page = _find(pro, world)
    assert 'id="access-code"' in page
    dossier = re.search(r'id="access-code">.*?name="dossier" value="([^"]+)"', page, re.S)
    assert dossier
    return pro.post("/pro/access-code", data={"csrf": csrf_of(page), "dossier": dossier.group(1), "ins": world.ins,
                                              "system": "test", "code": code})


def test_a_patient_creates_a_code_and_a_professional_uses_it(patient: Patient, pro_browser: TestClient,
                                                              world: World) -> None:
    code = _create_code(patient)
    assert re.fullmatch(r"[2-9A-Z]{4}-[2-9A-Z]{4}", code)
    page = patient.browser.get("/portal/access-codes")
    assert code not in text(page)  # shown once
    assert "en attente d'utilisation" in text(page) and "Dr du ski" in text(page)
    r = _use(pro_browser, world, code.lower())
    assert r.status_code == 303 and r.headers["location"].startswith(f"/pro/dossier/{world.dossier}"), r.text
    assert pro_browser.get(f"/pro/dossier/{world.dossier}").status_code == 200
    page = patient.browser.get("/portal/access-codes")
    assert "utilisé le" in text(page)
    history = patient.browser.get("/portal/history")
    assert "a créé un code d'accès" in text(history)
    assert "a saisi un code d'accès et a été autorisé" in text(history)
    access = patient.browser.get("/portal/access")
    assert "avec un code d'accès que vous avez donné" in text(access)


def test_a_wrong_code_says_so_and_opens_nothing(patient: Patient, pro_browser: TestClient, world: World) -> None:
    _create_code(patient)
    r = _use(pro_browser, world, "ZZZZ-ZZZZ")
    assert r.status_code == 303 and "code=wrong" in r.headers["location"]
    page = pro_browser.get(r.headers["location"])
    assert "Ce code d'accès n'est pas valable pour ce patient" in text(page)
    assert pro_browser.get(f"/pro/dossier/{world.dossier}").status_code == 403
    history = patient.browser.get("/portal/history")
    assert "a saisi un code d'accès erroné" in text(history)


def test_a_patient_revokes_a_code_and_it_no_longer_works(patient: Patient, pro_browser: TestClient,
                                                          world: World) -> None:
    code = _create_code(patient, hours="1")
    page = patient.browser.get("/portal/access-codes")
    code_id = re.search(r'name="code" value="([^"]+)"', page.text)
    assert code_id
    r = patient.browser.post("/portal/access-codes/revoke", data={"csrf": csrf_of(page.text),
                                                                   "code": code_id.group(1)})
    assert r.status_code == 303
    assert "révoqué" in text(patient.browser.get(r.headers["location"]))
    r = _use(pro_browser, world, code)
    assert "code=wrong" in r.headers["location"]


def test_the_access_page_leads_to_the_codes(patient: Patient) -> None:
    page = patient.browser.get("/portal/access")
    assert 'href="/portal/access-codes"' in text(page)


def test_the_patient_requires_a_code_and_the_professional_can_no_longer_record_consent(
        patient: Patient, pro_browser: TestClient, world: World) -> None:
    page = patient.browser.get("/portal/access-codes")
    r = patient.browser.post("/portal/access-codes/require", data={"csrf": csrf_of(page.text), "required": "yes"})
    assert r.status_code == 303
    page = patient.browser.get(r.headers["location"])
    assert "Un code est exigé" in text(page) and "Ne plus exiger de code" in text(page)
    found = _find(pro_browser, world)
    assert 'action="/pro/consent"' not in found and "Ce patient exige un code d'accès" in found
    assert 'id="access-code"' in found
    # a consent posted anyway (an old page) is refused, saying why
    r = pro_browser.post("/pro/consent", data={"csrf": csrf_of(found), "dossier": str(world.dossier), "confirm": "1"})
    assert r.status_code == 403 and "exige un code d'accès" in text(r)
    assert "a changé l'obligation d'un code d'accès" in text(patient.browser.get("/portal/history"))
