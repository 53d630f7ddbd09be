"""A teleconsultation in two real browsers (issue 12 §1): Debian's Chromium with a fake camera and microphone, one
context for the professional (a desktop) and one for the patient (a phone). The WebRTC connection reaches
``connected`` on loopback and the remote video has frames; a document the professional shows appears on the patient's
screen (fetched by the patient's browser with its own session); a third signed-in person cannot join; the end closes
both sides; the patient's history shows the visit in plain words. No CSP violation on either side.

Screenshots of both sides go to ``$CARNET_SCREENSHOTS`` when set (``docs/screenshots``: scripts/screenshots.py runs
this test so), else to the test's temporary directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from carnet.accounts import sessions
from carnet.auth import pro_sessions
from carnet.context import Services
from carnet.portal import i18n
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.browser.test_content_security_policy import Violations
from tests.conftest import World
from tests.teleconsult.helpers import activate, book_now, patient_cookie, pro_cookie, publish

FR = i18n.language("fr").gettext
MEDIA_ARGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
              "--allow-loopback-in-peer-connection"]
REPORT = ("Compte rendu de téléconsultation\nTension 12/8, auscultation normale.\n"
          "Poursuivre le traitement, revoir dans trois mois.")


@pytest.fixture(scope="module")
def media_chromium(chromium: Any) -> Iterator[Any]:
    """Chromium with a fake camera and microphone that it uses without asking (the session's browser has neither)."""
    browser = chromium.browser_type.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + MEDIA_ARGS, headless=True)
    yield browser
    browser.close()


def context(browser: Any, base: str, cookie: str, token: str, viewport: dict[str, int]) -> Any:
    ctx = browser.new_context(viewport=viewport, locale="fr-FR")
    ctx.add_cookies([{"name": cookie, "value": token, "url": base, "httpOnly": True, "sameSite": "Lax"}])
    page = ctx.new_page()
    page.set_default_timeout(20_000)
    return page


def shots() -> Path | None:
    where = os.environ.get("CARNET_SCREENSHOTS")
    return Path(where) if where else None


def test_a_video_visit_beside_the_dossier(media_chromium: Any, live: tuple[str, Services], world: World,
                                          tmp_path: Path) -> None:
    base, services = live
    doc = publish(world, "Compte rendu de téléconsultation", REPORT)
    cid = book_now(world)
    clinician = context(media_chromium, base, pro_sessions.COOKIE, pro_cookie(services, world.pros["gp"]),
                        {"width": 1280, "height": 900})
    patient = context(media_chromium, base, sessions.COOKIE, patient_cookie(world, activate(world, services), services),
                      {"width": 390, "height": 844})
    seen = [Violations(clinician), Violations(patient)]
    clinician.goto(f"{base}/pro/dossier/{world.dossier}/teleconsult/{cid}")
    patient.goto(f"{base}/portal/teleconsultations")
    patient.get_by_role("link", name=FR("Join")).click()
    patient.wait_for_url(f"**/portal/teleconsultations/{cid}")

    for page in (clinician, patient):  # peer to peer, on loopback, with frames from the other side's camera
        page.wait_for_selector('#teleconsult[data-connection="connected"]')
        page.wait_for_function("""() => { const v = document.getElementById('remote-video');
            return v.videoWidth > 0 && v.getVideoPlaybackQuality().totalVideoFrames > 0; }""")

    clinician.locator(f'.show-doc[data-document="{doc}"]').click()
    patient.wait_for_selector(f'#shared[data-document="{doc}"][data-loaded="1"]')
    assert "Tension 12/8" in patient.locator("#shared-text").inner_text()
    assert FR("Shown by the other person") in patient.locator("#shared-by").inner_text()
    clinician.wait_for_selector(f'#shared[data-document="{doc}"][data-loaded="1"]')

    out = shots() or tmp_path
    out.mkdir(parents=True, exist_ok=True)
    clinician.screenshot(path=str(out / "40-teleconsult-clinician-desktop.png"))
    patient.screenshot(path=str(out / "41-teleconsult-patient-phone.png"), full_page=True)

    # a third signed-in person: another professional the patient authorized, not this visit's, gets neither the
    # room nor its socket
    third = context(media_chromium, base, pro_sessions.COOKIE, pro_cookie(services, world.pros["doctor"]),
                    {"width": 1280, "height": 900})
    answer = third.goto(f"{base}/pro/dossier/{world.dossier}/teleconsult/{cid}")
    assert answer is not None and answer.status == 404
    code = third.evaluate("""url => new Promise(done => { const ws = new WebSocket(url);
        ws.onclose = e => done(e.code); })""", f"ws://{base.split('//')[1]}/pro/dossier/{world.dossier}/teleconsult/{cid}/ws")
    assert code in (1006, 4403)  # a handshake refused before it is accepted reaches the page as 1006
    third.context.close()
    assert clinician.locator("#teleconsult").get_attribute("data-connection") == "connected"

    clinician.get_by_role("button", name=FR("End the teleconsultation")).click()
    for page in (clinician, patient):
        page.wait_for_selector('#teleconsult[data-ended="1"]', state="attached")
        assert page.locator("#shared").is_hidden()  # nothing shown stays on the screen
    patient.goto(f"{base}/portal/history")
    text = patient.locator("main").inner_text()
    for label in ("joined the teleconsultation", "showed a document during the teleconsultation",
                  "ended the teleconsultation"):
        assert FR(label) in text, label
    assert not [v for s in seen for v in s.seen]
    clinician.context.close()
    patient.context.close()
