"""Trend charts in a real browser (issue 17 §2–3): the patient's glucose and blood-pressure charts and the médecin
traitant's alert with the chart behind it, drawn by uPlot under the portals' CSP, checked by the same axe-core audit
as every portal screen (WCAG 2.1 AA at 360 and 1280 px, no horizontal scrolling on a phone), and the chart fits a
390-px phone, with no CSP violation. ``CARNET_SCREENSHOTS=docs/screenshots`` also writes the screenshots of
docs/MEASUREMENTS.md."""

from __future__ import annotations

import datetime as dt
import math
import os
from pathlib import Path
from typing import Any

from playwright.sync_api import TimeoutError as PlaywrightTimeout
from sqlalchemy import select

from carnet.context import Services, run
from carnet.db.tables import practitioner
from carnet.measures import service as measures
from carnet.measures.catalogue import Measure
from carnet.trends import service as trends
from tests.browser import test_clinician_paths as clinician
from tests.browser import test_patient_paths as patient
from tests.browser.conftest import Mailbox
from tests.browser.test_accessibility import Audit
from tests.browser.test_content_security_policy import Violations
from tests.conftest import World
from tests.trends.test_worker import patient as patient_actor

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
CGM = measures.SourceRef("app", "client:browser-cgm", "CGM app")
CUFF = measures.SourceRef("device", "urn:oid:1.2.3|cuff-1", "Tensiomètre")


def feed(world: World, services: Services) -> None:
    """Seven days of CGM (2,016 readings, a daily wave with a spike), home blood pressure twice a day, and a low
    oxygen saturation the worker turns into an alert for the médecin traitant."""
    now = services.clock()
    glucose = [measures.reading(Measure.GLUCOSE, now - dt.timedelta(minutes=5 * (2016 - i)),
                                300 if i == 1500 else round(140 + 75 * math.sin(i / 288 * 2 * math.pi), 1), "mg/dL")
               for i in range(2016)]
    pressure = [measures.reading(Measure.BLOOD_PRESSURE, now - dt.timedelta(hours=12 * (14 - i)), 128 + i, "mm[Hg]",
                                 80 + i % 5) for i in range(14)]
    oxygen = [measures.reading(Measure.SPO2, now - dt.timedelta(minutes=3), 90, "%")]
    for source, rs in ((CGM, glucose), (CUFF, pressure), (CUFF, oxygen)):
        run(services, patient_actor(world), lambda ctx, s=source, r=rs: measures.record(ctx, world.dossier, s, r))
    run(services, trends.EVALUATOR, lambda ctx: trends.evaluate(ctx, world.dossier))


FITS = ("() => { const c = document.querySelector('#trend-chart canvas');"
        " return c !== null && c.getBoundingClientRect().width > 0"
        " && c.getBoundingClientRect().width <= window.innerWidth; }")


def drawn(page: Any) -> None:
    """The chart is drawn (the script marks it) and fits the viewport. The script redraws it at the animation frame
    after a resize (the accessibility check has just gone through every width): it must fit within a few seconds, not
    at the very instant the viewport changed back."""
    page.wait_for_selector("html[data-charts-drawn='1']")
    try:
        page.wait_for_function(FITS, timeout=5000)
    except PlaywrightTimeout:
        pass  # the assertion below says how wide it stayed
    width = page.evaluate("document.querySelector('#trend-chart canvas').getBoundingClientRect().width")
    assert 0 < width <= page.viewport_size["width"], width


def shoot(page: Any, name: str, chart: bool = True) -> None:
    out = os.environ.get("CARNET_SCREENSHOTS")
    if not out:
        return
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        page.reload()
        if chart:
            page.wait_for_selector("html[data-charts-drawn='1']")
        page.screenshot(path=str(Path(out) / f"{name}-{label}.png"), full_page=True)


def test_the_charts_draw_on_a_phone_and_a_desktop_and_pass_the_accessibility_audit(
        page: Any, live: tuple[str, Services], world: World, mailbox: Mailbox) -> None:
    base, services = live
    person = patient.Person(world, services)
    feed(world, services)
    audit = Audit(page)
    violations = Violations(page)  # uPlot and trend-chart.js under the portals' CSP: nothing refused
    page.set_viewport_size(PHONE)
    patient.sign_in(page, base, person, mailbox, target="/portal/trends")
    audit.check("trends")
    shoot(page, "39-trends", chart=False)
    audit.visit(base + "/portal/trends/glucose?days=7", "glucose chart", shows="Temps dans la cible")
    page.set_viewport_size(PHONE)
    drawn(page)
    assert page.locator("#trend-table tbody tr").count() == 8  # one row per day (7 days and a part)
    shoot(page, "40-trend-glucose")
    audit.visit(base + "/portal/trends/blood-pressure?days=30", "blood pressure chart", shows="Diastolique")
    drawn(page)
    assert page.evaluate("JSON.parse(document.getElementById('trend-data').textContent).v2.length") == 14
    shoot(page, "41-trend-blood-pressure")

    page.context.clear_cookies()
    with services.engine.connect() as conn:
        family = conn.execute(select(practitioner.c.family).where(
            practitioner.c.national_id == world.pros["gp"])).scalar_one()
    clinician.sign_in(page, base, f"Test {family}")
    audit.visit(base + "/pro/alerts", "the médecin traitant's alerts", shows="Saturation en oxygène sous 92 %")
    shoot(page, "42-pro-alerts", chart=False)
    page.locator("#alerts a[href*='/measures/spo2']").first.click()
    page.wait_for_url("**/measures/spo2**")
    audit.check("the chart behind an alert")
    drawn(page)
    audit.visit(base + f"/pro/dossier/{world.dossier}/measures/glucose?days=90", "clinician glucose chart",
                shows="Temps dans la cible")
    drawn(page)
    shoot(page, "43-pro-trend-glucose")
    audit.assert_clean(6)
    assert violations.seen == []
