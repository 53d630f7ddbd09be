"""The code for the hidden documents in both portals (issue 13 §1): the patient chooses the kind of code on the
Access codes page; a professional already authorized types it on the clinician portal's find page and then sees the
hidden document; one not authorized is told to be authorized first; the patient stops it; the History says it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from starlette.testclient import TestClient

from tests.codes.test_portals import text
from tests.conftest import World
from tests.portal.conftest import PORTAL_BASE, Patient, csrf_of
from tests.pro.conftest import BASE as PRO_BASE
from tests.pro.conftest import signed_in
from tests.tasks.helpers import publish


@pytest.fixture
def patient(world: World, app: Any) -> Iterator[Patient]:
    with TestClient(app, base_url=PORTAL_BASE, follow_redirects=False) as c:
        yield Patient(world, c).ready()


def _pro(app: Any, world: World, role: str) -> TestClient:
    return signed_in(TestClient(app, base_url=PRO_BASE, follow_redirects=False), world.pros[role])


def _hidden_code(p: Patient) -> str:
    page = p.browser.get("/portal/access-codes")
    assert "code pour les documents masqués" in text(page)
    r = p.browser.post("/portal/access-codes", data={"csrf": csrf_of(page.text), "hours": "24", "kind": "hidden"})
    assert r.status_code == 200, r.text
    assert "Votre nouveau code pour les documents masqués" in text(r)
    m = re.search(r'id="new-code">([^<]+)<', r.text)
    assert m, r.text
    return m.group(1)


def _use(pro: TestClient, world: World, code: str, form_id: str) -> Any:
    page = text(pro.get("/pro/?" + urlencode({"ins": world.ins, "system": "test"})))
    assert f'id="{form_id}"' in page
    dossier = re.search(rf'id="{form_id}">.*?name="dossier" value="([^"]+)"', page, re.S)
    assert dossier
    return pro.post("/pro/access-code", data={"csrf": csrf_of(page), "dossier": dossier.group(1), "ins": world.ins,
                                              "system": "test", "code": code})


def _sees(pro: TestClient, world: World, doc_id: str) -> bool:
    page = pro.get(f"/pro/dossier/{world.dossier}")
    assert page.status_code == 200
    return doc_id in page.text


def test_an_authorized_professional_uses_the_code_and_sees_the_hidden_document_until_the_patient_stops_it(
        patient: Patient, app: Any, world: World) -> None:
    hidden = publish(world, labels=["MASQUE_PS"])
    with _pro(app, world, "doctor") as doctor, _pro(app, world, "nurse") as nurse:
        assert not _sees(doctor, world, hidden)
        code = _hidden_code(patient)
        r = _use(doctor, world, code, "hidden-code")
        assert r.status_code == 303 and r.headers["location"] == f"/pro/dossier/{world.dossier}?granted=hidden"
        assert _sees(doctor, world, hidden)
        assert not _sees(nurse, world, hidden)
        page = patient.browser.get("/portal/access-codes")
        assert "documents masqués" in text(page) and "Ne plus montrer les documents masqués" in text(page)
        who = re.search(r'name="professional" value="([^"]+)"', page.text)
        assert who and who.group(1) == world.pros["doctor"]
        r = patient.browser.post("/portal/access-codes/stop-hidden", data={"csrf": csrf_of(page.text),
                                                                          "professional": who.group(1)})
        assert r.status_code == 303
        assert "ne voit plus les documents que vous avez masqués" in text(patient.browser.get(r.headers["location"]))
        assert not _sees(doctor, world, hidden)
    history = text(patient.browser.get("/portal/history"))
    assert "a créé un code pour les documents masqués" in history
    assert "a saisi le code pour les documents masqués et peut maintenant les voir" in history
    assert "ne montre plus les documents masqués à un professionnel" in history


def test_a_professional_not_authorized_is_told_to_be_authorized_first(patient: Patient, app: Any,
                                                                     world: World) -> None:
    code = _hidden_code(patient)
    with _pro(app, world, "stranger") as stranger:
        r = _use(stranger, world, code, "access-code")
        assert r.status_code == 303 and "code=needs-authorization" in r.headers["location"]
        page = text(stranger.get(r.headers["location"]))
        assert "faites-vous d'abord autoriser par le patient" in page
        assert stranger.get(f"/pro/dossier/{world.dossier}").status_code == 403
