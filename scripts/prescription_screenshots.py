"""Screenshots of the e-prescription screens (issue 12 §2), desktop width, from the demo data.

    .venv/bin/python scripts/prescription_screenshots.py [--out docs/screenshots]

Builds a fresh embedded Carnet in a temporary folder, seeds the demo, serves it on a free port and drives Debian's
Chromium: Dr Claire Martin fills in a prescription for Jeanne Lefèvre (40: the form) and signs it (41: the dossier's
prescriptions); the signed PDF is shown by Chromium's PDF viewer (42); Louis Garnier, pharmacist at the Pharmacie du
Marché, with no authorization on Jeanne's dossier, finds it by number and INS and dispenses one box (43); Jeanne sees
it in her portal (44).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from playwright.sync_api import Page, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from screenshots import CHROMIUM_ARGS, free_port, pro_sign_in, sign_in  # noqa: E402

from carnet.app import create_app  # noqa: E402
from carnet.compose import build_services  # noqa: E402
from carnet.config import Settings  # noqa: E402
from carnet.db.migrate import upgrade  # noqa: E402
from carnet.demo import patient_ins, seed  # noqa: E402

VIEWPORT = {"width": 1280, "height": 900}


def fill_prescription(page: Page) -> None:
    page.fill("#medication-0", "Amoxicilline")
    page.fill("#strength-0", "1 g")
    page.fill("#form-0", "comprimé")
    page.fill("#dosage_text-0", "1 comprimé matin et soir pendant 7 jours")
    page.fill("#dose_value-0", "1")
    page.fill("#dose_unit-0", "comprimé")
    page.fill("#frequency-0", "2")
    page.fill("#duration_days-0", "7")
    page.fill("#quantity-0", "2")
    page.fill("#medication-1", "Paracétamol")
    page.fill("#strength-1", "500 mg")
    page.fill("#form-1", "gélule")
    page.fill("#dosage_text-1", "1 à 2 gélules jusqu'à 3 fois par jour si fièvre")
    page.fill("#quantity-1", "1")
    page.fill("#repeats-1", "2")
    page.select_option("#kind-2", "text")
    page.fill("#medication-2", "Thermomètre médical")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="docs/screenshots")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ins = patient_ins(1)
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        os.environ.pop("CARNET_DATABASE_URL", None)
        settings = Settings(var_dir=Path(tmp), base_url=base)
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
            gp = browser.new_context(viewport=VIEWPORT, locale="fr-FR")  # type: ignore[arg-type]
            page = gp.new_page()
            pro_sign_in(page, base, "Martin", "Claire Martin")
            page.goto(f"{base}/pro/?system=demo&ins={ins}")
            page.locator("#result a[href^='/pro/dossier/']").first.click()
            page.wait_for_load_state()
            dossier_url = page.url.split("?")[0]
            page.goto(dossier_url + "/prescribe")
            fill_prescription(page)
            page.screenshot(path=str(out / "50-pro-prescribe-desktop.png"), full_page=True)
            page.locator("#prescribe-form button[type=submit]").click()
            page.wait_for_url("**/prescriptions?done=written")
            page.screenshot(path=str(out / "51-pro-prescriptions-desktop.png"), full_page=True)
            number = page.locator(".rx-number").first.inner_text()
            pdf_href = page.locator("a[href*='/documents/']").first.get_attribute("href") or ""
            doc = page.goto(base + pdf_href)
            file_link = page.locator("main a[href$='/file']").first
            if doc is not None and file_link.count():
                pdf = page.request.get(base + (file_link.get_attribute("href") or ""))
                path = Path(tmp) / "ordonnance.pdf"
                path.write_bytes(pdf.body())
                viewer = gp.new_page()
                viewer.goto(path.as_uri())
                viewer.wait_for_timeout(1500)
                viewer.screenshot(path=str(out / "52-prescription-pdf-desktop.png"))
            gp.close()
            chemist = browser.new_context(viewport=VIEWPORT, locale="fr-FR")  # type: ignore[arg-type]
            page = chemist.new_page()
            pro_sign_in(page, base, "Garnier", "Louis Garnier")
            page.goto(base + "/pro/pharmacy")
            page.fill("#number", number)
            page.fill("#ins", ins)
            page.locator("#find-form button[type=submit]").click()
            page.wait_for_load_state()
            page.fill("#qty-1", "1")
            page.locator("#dispense-form button[type=submit]").click()
            page.wait_for_load_state()
            page.screenshot(path=str(out / "53-pro-pharmacy-desktop.png"), full_page=True)
            chemist.close()
            patient = browser.new_context(viewport=VIEWPORT, locale="fr-FR")  # type: ignore[arg-type]
            page = patient.new_page()
            sign_in(page, base, Path(tmp) / "mail")
            page.goto(base + "/portal/prescriptions")
            rx = page.locator("a[href*='/portal/prescriptions?code=']").first.get_attribute("href") or ""
            page.goto(base + rx)
            page.screenshot(path=str(out / "54-portal-prescriptions-desktop.png"), full_page=True)
            patient.close()
            browser.close()
        server.should_exit = True
        thread.join(timeout=10)
    print(f"prescription screenshots written to {out}/ ({re.sub(r'.', '*', number)} was the number)")


if __name__ == "__main__":
    main()
