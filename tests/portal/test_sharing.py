"""The Share page (issue 13 §2): a patient makes a link, sees its QR code, revokes it; the emergency card; the
openings in the History."""

from __future__ import annotations

import html
import io
import re

from PIL import Image
from pypdf import PdfReader

from tests.portal.conftest import Patient, csrf_of
from tests.sharing.helpers import open_link
from tests.tasks.helpers import publish


def _shlinks(page: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(r'class="shlink" type="text" readonly value="([^"]+)"', page)]


def test_a_patient_creates_a_link_sees_its_qr_code_and_revokes_it(patient: Patient) -> None:
    p = patient.ready()
    doc = publish(p.world)
    page = p.browser.get("/portal/sharing")
    assert page.status_code == 200 and f'value="{doc}"' in page.text
    r = p.browser.post("/portal/sharing", data={"csrf": csrf_of(page.text), "label": "Pour le Dr Ruiz",
                                                "summary": "yes", "document": doc, "days": "7",
                                                "max_opens": "3", "passcode": ""})
    assert r.status_code == 303, r.text
    page = p.browser.get(r.headers["location"])
    assert "Pour le Dr Ruiz" in page.text and "<svg" in page.text and 'class="qr"' in page.text
    assert "style=" not in page.text.split('<div class="qr-box">', 1)[1].split("</div>", 1)[0]
    [link] = _shlinks(page.text)
    assert open_link(p.world.client, link).status_code == 200
    page = p.browser.get("/portal/sharing")
    assert "ouvert 1 fois sur 3" in page.text and "%(" not in page.text
    history = p.browser.get("/portal/history")
    assert "a ouvert un lien que vous avez partagé" in history.text and "Dr Ana Ruiz, Hospital del Mar" in history.text
    link_id = re.search(r'name="link" value="([^"]+)"', page.text)
    assert link_id
    r = p.browser.post("/portal/sharing/revoke", data={"csrf": csrf_of(page.text), "link": link_id.group(1)})
    assert r.status_code == 303
    page = p.browser.get("/portal/sharing")
    assert "lien révoqué" in page.text and not _shlinks(page.text)
    assert open_link(p.world.client, link).status_code == 404
    assert "a révoqué un lien partagé" in p.browser.get("/portal/history").text


def test_a_wrong_choice_is_refused_with_a_plain_message_and_nothing_is_made(patient: Patient) -> None:
    p = patient.ready()
    page = p.browser.get("/portal/sharing")
    r = p.browser.post("/portal/sharing", data={"csrf": csrf_of(page.text), "label": "x", "days": "7",
                                                "max_opens": "", "passcode": ""})
    assert r.status_code == 400
    assert "Choisissez ce que vous partagez" in r.text
    assert 'name="summary" value="yes" checked' not in r.text  # the form shows what was chosen, not the default
    r = p.browser.post("/portal/sharing", data={"csrf": csrf_of(page.text), "label": "x", "summary": "yes",
                                                "days": "7", "max_opens": "abc", "passcode": ""})
    assert r.status_code == 400 and "entre 1 et 1000" in r.text
    assert not _shlinks(p.browser.get("/portal/sharing").text)


def test_the_emergency_card_is_one_page_and_a_phone_image_with_the_same_live_link(patient: Patient) -> None:
    p = patient.ready()
    r = p.browser.get("/portal/sharing/card.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    pdf = PdfReader(io.BytesIO(r.content))
    assert len(pdf.pages) == 1
    text = pdf.pages[0].extract_text()
    assert "Emergency card" in text and "Alix" in text and "Allergies" in text
    png = p.browser.get("/portal/sharing/card.png")
    assert png.status_code == 200 and Image.open(io.BytesIO(png.content)).size == (1080, 1920)
    page = p.browser.get("/portal/sharing").text
    [link] = _shlinks(page)  # one card link, reused by both downloads
    assert "carte d'urgence" in html.unescape(page)
    r = open_link(p.world.client, link)
    assert r.status_code == 200 and len(r.json()["files"]) == 1


def test_the_history_shows_only_link_openings_when_asked(patient: Patient) -> None:
    p = patient.ready()
    page = p.browser.get("/portal/sharing")
    r = p.browser.post("/portal/sharing", data={"csrf": csrf_of(page.text), "label": "Lien", "summary": "yes",
                                                "days": "1", "max_opens": "", "passcode": ""})
    [link] = _shlinks(p.browser.get(r.headers["location"]).text)
    assert open_link(p.world.client, link).status_code == 200
    history = html.unescape(p.browser.get("/portal/history?who=link_recipients").text)
    assert "Personnes à qui vous avez partagé un lien" in history
    assert "a ouvert un lien que vous avez partagé" in history and "Dr Ana Ruiz, Hospital del Mar" in history
    assert "a partagé un lien" not in history  # the patient's own action is not a recipient's
