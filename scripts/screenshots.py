"""Screenshots of every patient-portal and clinician-portal screen, at phone (360 px) and desktop (1280 px) widths,
from the demo data.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Builds a fresh embedded Carnet (SQLite, files) in a temporary folder, seeds the demo, serves it on a free port and
drives Debian's Chromium: signs in as Jeanne Lefèvre (the one-time code is read from the mail file Carnet writes)
for the patient screens (01-12; 12: her allergy hidden from professionals, then shown again), sharing (12-14: a SMART
Health Link, its viewer, the emergency card), then through the demo
identity provider as her médecin traitant, Dr Claire Martin, and as a cardiologist with no rights who breaks the
glass, for the clinician screens (20-31). Saves one PNG per screen and width. The README and
docs/CLINICIAN_PORTAL.md show some of them.
"""

from __future__ import annotations

import argparse
import email
import os
import re
import socket
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright

from carnet.app import create_app
from carnet.compose import build_services
from carnet.config import Settings
from carnet.db.migrate import upgrade
from carnet.demo import DEMO_PASSWORD, patient_ins, pro_id, seed

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
WIDTHS = {"phone": (360, 780), "desktop": (1280, 900)}
# (file name, path, what to wait for): every screen a patient sees.
SCREENS = [
    ("01-sign-in", "/portal/sign-in", None),
    ("02-home", "/portal/", None),
    ("03-documents", "/portal/documents", None),
    ("04-document", None, None),  # the first document of the list
    ("05-add-document", "/portal/documents/new", None),
    ("06-access", "/portal/access", None),
    ("07-history", "/portal/history", None),
    ("08-requests", "/portal/requests", None),
    ("09-settings", "/portal/settings", None),
    ("10-my-dossier", "/portal/dossier", None),
    ("11-activate", "/portal/activate", None),
]
HIDDEN_ITEM_SCREEN = "12-home-item-hidden"  # issue 13 §3: taken by hidden_item_screen, after SCREENS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def newest_code(mail: Path, address: str, after: float) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for path in sorted(mail.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True):
            if path.stat().st_mtime < after:
                break
            msg = email.message_from_bytes(path.read_bytes())
            body = msg.get_payload(decode=True)
            if msg["To"] == address and isinstance(body, bytes):
                m = re.search(r"\b(\d{6})\b", body.decode())
                if m:
                    return m.group(1)
        time.sleep(0.1)
    raise SystemExit("no sign-in code arrived")


def sign_in(page: Page, base: str, mail: Path) -> None:
    page.goto(base + "/portal/sign-in")
    page.fill("#login", patient_ins(1))
    page.fill("#password", DEMO_PASSWORD)
    started = time.time() - 1
    page.click("main form[action='/portal/sign-in'] button[type=submit]")
    page.wait_for_url("**/portal/code**")
    page.fill("#code", newest_code(mail, "jeanne.lefevre@example.test", started))
    page.locator("form[action='/portal/code'] button[type=submit]").first.click()
    page.wait_for_url("**/portal/")


def pro_sign_in(page: Page, base: str, family: str, button: str) -> None:
    """Through the clinician portal's sign-in and the demo identity provider's page (no password: a demo)."""
    page.goto(base + "/pro/sign-in")
    page.locator("main a[href^='/pro/login']").first.click()
    page.wait_for_url("**/demo-idp/authorize**")
    page.locator("input[type=search], input[name=q]").first.fill(family)
    page.locator("main form[method=get] button[type=submit], main form:not([method=post]) button[type=submit]"
                 ).first.click()
    page.wait_for_load_state()
    page.locator("main button", has_text=button).first.click()
    page.wait_for_url(base + "/pro/")


def hidden_item_screen(page: Page, base: str, out: Path, width_name: str) -> None:
    """12: the home screen's health information with the first allergy hidden from professionals (the badge, the
    "stop hiding" button, the explanation); then it is shown again, so that the clinician screens are unchanged."""
    page.goto(base + "/portal/#clinical")
    section = page.locator("section[aria-labelledby=clinical]")
    section.locator("form[action$='/hide'] button").first.click()
    page.wait_for_url("**/portal/?done=hidden**")
    section.screenshot(path=str(out / f"{HIDDEN_ITEM_SCREEN}-{width_name}.png"))
    section.locator("form[action$='/show'] button").first.click()
    page.wait_for_url("**/portal/?done=shown**")


def shoot(page: Page, out: Path, name: str, width_name: str) -> None:
    page.screenshot(path=str(out / f"{name}-{width_name}.png"), full_page=True)


def sharing_screens(browser: Browser, page: Page, base: str, out: Path, width_name: str,
                    viewport: dict[str, int]) -> None:
    """The patient makes a SMART Health Link (12-share); a doctor abroad opens it in another browser (13-shl-viewer)."""
    page.goto(base + "/portal/sharing")
    page.fill("#label", "Pour le médecin de garde")
    page.locator("main form[action='/portal/sharing'] button[type=submit]").click()
    page.wait_for_url("**/portal/sharing?done=created**")
    link = page.locator("input.shlink").first.input_value()
    shoot(page, out, "12-share", width_name)
    context = browser.new_context(viewport=viewport, locale="en-GB")
    doctor = context.new_page()
    doctor.goto(link)
    doctor.fill("#recipient", "Dr Ana Ruiz, Hospital del Mar, Barcelona")
    doctor.click("#open-button")
    doctor.locator("#content section").first.wait_for()
    shoot(doctor, out, "13-shl-viewer", width_name)
    context.close()


def clinician_screens(browser: Browser, base: str, out: Path, width_name: str, viewport: dict[str, int]) -> None:
    """20-31: the médecin traitant's day, a cardiologist's access request and emergency access, the review queue
    and the GP's notice."""
    ins = patient_ins(1)
    context = browser.new_context(viewport=viewport, locale="fr-FR")  # type: ignore[arg-type]
    page = context.new_page()
    page.goto(base + "/pro/sign-in")
    shoot(page, out, "20-pro-sign-in", width_name)
    page.locator("main a[href^='/pro/login']").first.click()
    page.wait_for_url("**/demo-idp/authorize**")
    shoot(page, out, "21-pro-demo-idp", width_name)
    pro_sign_in(page, base, "Martin", "Claire Martin")
    page.goto(f"{base}/pro/?system=demo&ins={ins}")
    shoot(page, out, "22-pro-find", width_name)
    page.locator("#result a[href^='/pro/dossier/']").first.click()
    page.wait_for_load_state()
    dossier_url = page.url
    shoot(page, out, "23-pro-dossier", width_name)
    page.locator("main a[href*='/documents/']").filter(has_not_text="file").first.click()
    page.wait_for_load_state()
    shoot(page, out, "24-pro-document", width_name)
    page.goto(dossier_url + "/add")
    shoot(page, out, "25-pro-add-document", width_name)
    page.goto(dossier_url + "/care-history")
    shoot(page, out, "26-pro-care-history", width_name)
    context.close()
    context = browser.new_context(viewport=viewport, locale="fr-FR")  # type: ignore[arg-type]
    page = context.new_page()
    pro_sign_in(page, base, "Bernard", "Hugo Bernard")
    page.goto(f"{base}/pro/?system=demo&ins={ins}")
    page.locator("#request-reason").fill("Avis cardiologique demandé par son médecin traitant")
    page.locator("#request-access button[type=submit]").click()  # the patient answers in her portal
    page.wait_for_url("**/pro/requests**")
    shoot(page, out, "31-pro-requests", width_name)
    page.goto(f"{base}/pro/?system=demo&ins={ins}")
    page.locator("#result a[href^='/pro/emergency']").first.click()
    page.wait_for_load_state()
    shoot(page, out, "27-pro-break-the-glass", width_name)
    page.locator("main textarea").first.fill("Patiente inconsciente aux urgences, antécédents inconnus")
    page.locator("main form[method=post] button[type=submit]").last.click()
    page.wait_for_load_state()
    shoot(page, out, "28-pro-emergency-dossier", width_name)
    context.close()
    context = browser.new_context(viewport=viewport, locale="fr-FR")  # type: ignore[arg-type]
    page = context.new_page()
    pro_sign_in(page, base, "Martin", "Claire Martin")  # a reviewer in this script's settings
    page.goto(base + "/pro/review")
    shoot(page, out, "29-pro-review", width_name)
    page.goto(base + "/pro/inbox")  # her notice of the cardiologist's emergency access to her patient
    shoot(page, out, "30-pro-inbox", width_name)
    context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="docs/screenshots")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        os.environ.pop("CARNET_DATABASE_URL", None)
        settings = Settings(var_dir=Path(tmp), base_url=base, reviewers=frozenset({pro_id(1)}))
        upgrade(settings.effective_database_url)
        services = build_services(settings)
        seed(services)
        server = uvicorn.Server(uvicorn.Config(create_app(services), host="127.0.0.1", port=port,
                                               log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS, headless=True)
            for width_name, (w, h) in WIDTHS.items():
                context = browser.new_context(viewport={"width": w, "height": h}, locale="fr-FR")
                page = context.new_page()
                page.goto(base + "/portal/sign-in")
                page.screenshot(path=str(out / f"01-sign-in-{width_name}.png"), full_page=True)
                page.goto(base + "/portal/activate")
                page.screenshot(path=str(out / f"11-activate-{width_name}.png"), full_page=True)
                sign_in(page, base, Path(tmp) / "mail")
                for name, path, _ in SCREENS:
                    if name in ("01-sign-in", "11-activate"):
                        continue
                    if path is None:
                        page.goto(base + "/portal/documents")
                        link = page.locator("main a[href^='/portal/documents/']").filter(
                            has_not_text="new").first
                        if link.count() == 0:
                            continue
                        link.click()
                        page.wait_for_load_state()
                    else:
                        response = page.goto(base + path)
                        if response is None or response.status >= 400:
                            print(f"skipped {name}: {response.status if response else 'no response'}")
                            continue
                    page.screenshot(path=str(out / f"{name}-{width_name}.png"), full_page=True)
                hidden_item_screen(page, base, out, width_name)
                sharing_screens(browser, page, base, out, width_name, {"width": w, "height": h})
                context.close()
                clinician_screens(browser, base, out, width_name, {"width": w, "height": h})
            browser.close()
        server.should_exit = True
        thread.join(timeout=10)
    print(f"screenshots written to {out}/")


if __name__ == "__main__":
    main()
