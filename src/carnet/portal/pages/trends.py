"""Trends (issue 17 §2): the patient's charts of their measurements (``/portal/trends``, one chart per measure at
``/portal/trends/{measure}``) and their choices about alerts (issue 17 §3). The clinician portal draws the same
chart (:mod:`carnet.pro.pages.measures`) with :func:`window` and :func:`chart_values`.

A chart shows 7, 30 or 90 days (``?days=``) or the days the reader picks (``?from=&to=``, at most a year), with the
target range, min/mean/max, time in range for glucose, systolic and diastolic together: drawn by uPlot from a JSON
block, summarized in words and tabulated for screen readers (:mod:`carnet.trends.charts`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.responses import Response

from carnet.context import Context
from carnet.errors import FhirError
from carnet.portal.i18n import N_
from carnet.portal.web import Page, page
from carnet.trends import alerts, charts
from carnet.trends import rules as trend_rules
from carnet.trends.series import WINDOWS, custom_window, window

DEFAULT_DAYS = 30
RULE_TEXT = {"home-bp-high": N_("Home blood pressure: 7-day mean at or above 135/85 mmHg"),
             "weight-gain": N_("Weight gain of more than 2 kg in 3 days"),
             "glucose-tir-low": N_("Glucose time in range (70–180 mg/dL) below 70 % over 14 days"),
             "spo2-low": N_("Oxygen saturation below 92 %"),
             "irregular-rhythm": N_("Irregular heart rhythm notified by a device")}
DONE = {"saved": N_("Your choices about alerts are saved.")}


def window_of(p: Page) -> tuple[dt.datetime, dt.datetime, dict[str, Any]]:
    """The chart's window from the query: ``days`` (7, 30, 90) or ``from``/``to`` (dates in the display zone).
    Returns the window and what the period form shows; a bad range is a 400 page naming it."""
    q = p.request.query_params
    start_s, end_s = str(q.get("from") or ""), str(q.get("to") or "")
    if start_s or end_s:
        try:
            start, end = custom_window(dt.date.fromisoformat(start_s), dt.date.fromisoformat(end_s), p.zone)
        except ValueError:
            raise FhirError(400, "invalid", "The period is not valid: give two dates, the first one first, at "
                            "most a year apart.") from None
        return start, end, {"days": None, "from": start_s, "to": end_s}
    days = int(q["days"]) if str(q.get("days") or "") in {str(d) for d in WINDOWS} else DEFAULT_DAYS
    end = p.services.clock().astimezone(dt.UTC)
    start, end = window(end, days)
    local_end = (end - dt.timedelta(seconds=1)).astimezone(p.zone).date()
    return start, end, {"days": days, "from": start.astimezone(p.zone).date().isoformat(),
                        "to": local_end.isoformat()}


def chart_values(p: Page, c: charts.Chart, period: dict[str, Any], base: str) -> dict[str, Any]:
    """What ``portal/_trend.html`` needs, for both portals."""
    spec = c.spec
    label = spec.label_fr if p.lang.code == "fr" else spec.label_en
    two = spec.components is not None
    tz = str(getattr(p.zone, "key", "UTC"))
    return {"c": c, "label": label, "two": two, "base": base, "period": period, "windows": WINDOWS,
            "data": charts.chart_data(c, p._("Systolic") if two else label, p._("Diastolic"), tz, p._("Time"),
                                      p.lang.code),
            "number": lambda v: "–" if v is None else f"{v:.{spec.decimals}f}",
            "percent": lambda v: "–" if v is None else f"{round(v * 100)} %"}


@page("GET", "/portal/trends")
async def index(p: Page) -> Response:
    key = p.dossier_key

    def work(ctx: Context) -> tuple[list[charts.Line], alerts.Choices, list[alerts.Alert]]:
        return charts.overview(ctx, key, None), alerts.choices(ctx, key), alerts.patient_alerts(ctx, key)

    lines, choices, recent = await p.run(work)
    done = str(p.request.query_params.get("done") or "")
    return p.render("portal/trends/index.html", title=p._("Trends"), lines=lines, choices=choices, alerts=recent,
                    rule_text=RULE_TEXT, rules=trend_rules.load(p.settings.trend_rules_file or None),
                    flash=p._(DONE[done]) if done in DONE else "",
                    lead=p._("Your measurements drawn over time, and the alerts Carnet sends your médecin traitant "
                             "when a trend crosses a threshold."))


@page("POST", "/portal/trends/alerts")
async def save_choices(p: Page) -> Response:
    form = await p.form()
    key = p.dossier_key
    gp, me = form.get("gp_alerts") == "on", form.get("patient_alerts") == "on"
    await p.run(lambda ctx: alerts.set_choices(ctx, key, gp, me))
    return p.redirect("/portal/trends?done=saved")


@page("GET", "/portal/trends/{measure}")
async def measure_chart(p: Page) -> Response:
    key = p.dossier_key
    name = str(p.request.path_params["measure"])
    start, end, period = window_of(p)
    c = await p.run(lambda ctx: charts.chart(ctx, key, name, start, end, p.zone))
    values = chart_values(p, c, period, f"/portal/trends/{name}")
    return p.render("portal/trends/chart.html", title=values["label"], **values)
