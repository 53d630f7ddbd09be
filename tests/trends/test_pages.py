"""Trends in both portals (issue 17 §2–3): the patient's chart with its summary, target and table; the period
choices and a refused period; the alert choices; the clinician's dossier lists measures changed since their last
access first, the chart read through the policy (a professional without the matrix's right gets 404), the alert list
with the chart behind it, and acknowledging."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from carnet.context import run
from carnet.db.tables import audit
from carnet.measures import service as measures
from carnet.measures.catalogue import Measure
from carnet.trends import service as trends
from tests.conftest import World
from tests.portal.conftest import PORTAL_BASE, Patient, csrf_of
from tests.pro.conftest import BASE as PRO_BASE
from tests.pro.conftest import signed_in
from tests.trends.test_worker import patient as patient_actor

CGM = measures.SourceRef("app", "client:test-cgm", "CGM app")


def text(r: Any) -> str:
    return html.unescape(r.text)


@pytest.fixture
def patient(world: World, app: Any) -> Iterator[Patient]:
    with TestClient(app, base_url=PORTAL_BASE, follow_redirects=False) as c:
        yield Patient(world, c).ready()


def pro(app: Any, world: World, role: str) -> TestClient:
    return signed_in(TestClient(app, base_url=PRO_BASE, follow_redirects=False), world.pros[role])


def feed(world: World, n: int = 600, every: int = 5) -> None:
    """``n`` glucose readings ``every`` minutes, ending a minute ago: a third of them above 180 mg/dL."""
    now = world.services.clock()
    rs = [measures.reading(Measure.GLUCOSE, now - dt.timedelta(minutes=1 + every * (n - 1 - i)),
                           250 if i % 3 == 0 else 120, "mg/dL") for i in range(n)]
    run(world.services, patient_actor(world), lambda ctx: measures.record(ctx, world.dossier, CGM, rs))


def test_the_patient_sees_the_chart_with_its_summary_target_and_daily_table(world: World, patient: Patient) -> None:
    feed(world)
    page = patient.browser.get("/portal/trends")
    assert page.status_code == 200 and 'href="/portal/trends/glucose"' in page.text
    chart = patient.browser.get("/portal/trends/glucose?days=7")
    body = text(chart)
    assert chart.status_code == 200
    assert "600 mesures" in body and "67 %" in body  # time in range: two readings in three
    assert 'aria-current="page">7 jours' in body
    data = json.loads(re.search(r'<script type="application/json" id="trend-data">(.*?)</script>', chart.text,
                                re.S).group(1))  # type: ignore[union-attr]
    assert (data["low"], data["high"], len(data["t"])) == (70, 180, 600) and data["v2"] is None
    assert "Une ligne par jour" in body  # 600 readings: tabulated per day
    assert '<script src="/portal/static/uPlot.iife.min.js" defer></script>' in chart.text
    assert "script-src 'self'" in chart.headers["content-security-policy"]


def test_a_period_that_is_not_valid_is_refused_by_name(world: World, patient: Patient) -> None:
    feed(world, 10)
    r = patient.browser.get("/portal/trends/glucose?from=2026-12-04&to=2026-11-01")
    assert r.status_code == 400 and "période" in text(r)
    assert patient.browser.get("/portal/trends/no-such-measure").status_code == 404
    few = patient.browser.get("/portal/trends/glucose?from=2020-01-01&to=2020-01-02")
    assert few.status_code == 200 and "Aucune mesure sur cette période" in text(few)


def test_the_patient_turns_alerts_off_and_asks_for_a_copy(world: World, patient: Patient) -> None:
    page = patient.browser.get("/portal/trends")
    assert 'id="gp-alerts" name="gp_alerts" checked' in page.text  # on by default
    assert 'id="patient-alerts" name="patient_alerts">' in page.text  # a copy: off by default
    r = patient.browser.post("/portal/trends/alerts", data={"csrf": csrf_of(page.text), "patient_alerts": "on"})
    assert r.status_code == 303
    again = patient.browser.get("/portal/trends")
    assert 'name="gp_alerts">' in again.text and 'name="patient_alerts" checked' in again.text


def test_the_clinician_sees_changed_measures_first_and_the_chart(world: World, app: Any) -> None:
    gp = pro(app, world, "gp")
    feed(world, 20)
    page = gp.get(f"/pro/dossier/{world.dossier}")
    assert page.status_code == 200 and 'id="measure-list"' in page.text
    assert f'href="/pro/dossier/{world.dossier}/measures/glucose"' in page.text
    chart = gp.get(f"/pro/dossier/{world.dossier}/measures/glucose?days=90")
    assert chart.status_code == 200 and "Chaque mesure" in text(chart)  # 20 readings: each one listed
    with world.services.engine.connect() as conn:
        reads = conn.execute(select(audit.c.event).where(audit.c.dossier_key == world.dossier,
                                                         audit.c.actor_id == world.pros["gp"],
                                                         audit.c.event == "measures.read")).all()
    assert reads
    # the physiotherapist's profession has no right to measurements: the chart looks absent
    assert pro(app, world, "physio").get(f"/pro/dossier/{world.dossier}/measures/glucose").status_code == 404


def test_the_gp_opens_the_alert_chart_and_acknowledges_it(world: World, app: Any) -> None:
    now = world.services.clock()
    rs = [measures.reading(Measure.SPO2, now - dt.timedelta(minutes=2), 90, "%")]
    run(world.services, patient_actor(world), lambda ctx: measures.record(ctx, world.dossier, CGM, rs))
    run(world.services, trends.EVALUATOR, lambda ctx: trends.evaluate(ctx, world.dossier))
    gp = pro(app, world, "gp")
    page = gp.get("/pro/alerts")
    body = text(page)
    assert page.status_code == 200 and "Saturation en oxygène sous 92 %" in body
    assert 'id="alerts-count"' in page.text
    link = re.search(rf'href="(/pro/dossier/{world.dossier}/measures/spo2\?from=[^"]+)"', page.text)
    assert link
    assert gp.get(html.unescape(link.group(1))).status_code == 200
    alert_id = re.search(r'name="alert" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = gp.post("/pro/alerts/ack", data={"csrf": csrf_of(page.text), "dossier": str(world.dossier),
                                         "alert": alert_id})
    assert r.status_code == 303
    assert "Pris en compte" in text(gp.get("/pro/alerts"))


def test_measures_changed_since_the_clinicians_last_access_come_first(world: World, app: Any) -> None:
    now = world.services.clock()
    cuff = measures.SourceRef("device", "urn:oid:1.2.3|cuff-9", "Cuff")
    bp = [measures.reading(Measure.BLOOD_PRESSURE, now - dt.timedelta(days=2), 130, "mm[Hg]", 80)]
    run(world.services, patient_actor(world), lambda ctx: measures.record(ctx, world.dossier, cuff, bp))
    first = pro(app, world, "gp")
    assert first.get(f"/pro/dossier/{world.dossier}").status_code == 200  # the GP's visit: both are new
    feed(world, 5)  # glucose arrives after that visit
    later = pro(app, world, "gp")  # a new session: "since your last access" is the first visit
    page = later.get(f"/pro/dossier/{world.dossier}").text
    listing = page[page.index('id="measure-list"'):page.index("</ul>", page.index('id="measure-list"'))]
    items = listing.split("<li>")[1:]
    assert "measures/glucose" in items[0] and "nouveau depuis votre dernier accès" in items[0]
    assert "measures/blood-pressure" in items[1] and "nouveau" not in items[1]
