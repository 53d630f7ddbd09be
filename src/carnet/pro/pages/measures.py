"""The clinician's charts of a patient's measurements (issue 17 §2) and the médecin traitant's alerts (§3).

- ``/pro/dossier/{key}/measures/{measure}``: the same chart as the patient's (:mod:`carnet.portal.pages.trends`),
  read through the measurements service as this professional (the habilitation matrix's ``measures`` right, a
  hidden measure as a hidden document: the policy decides, the read is audited).
- ``/pro/alerts``: the alerts sent to this médecin traitant, newest first, each with the patient, what crossed which
  threshold, and the chart behind it (the measure over the rule's window); "acknowledge" is audited. Normal mode
  only, like the inbox.
"""

from __future__ import annotations

import uuid

from starlette.responses import Response

from carnet.errors import FhirError
from carnet.portal.pages.trends import RULE_TEXT, chart_values, window_of
from carnet.portal.web import offset_param
from carnet.pro.web import ProPage, pro_page
from carnet.trends import alerts, charts

PAGE = 25


def _key(p: ProPage) -> uuid.UUID:
    try:
        return uuid.UUID(str(p.request.path_params["key"]))
    except ValueError:
        raise FhirError(404, "not-found", "Patient not found") from None


@pro_page("GET", "/pro/dossier/{key}/measures/{measure}")
async def measure_chart(p: ProPage) -> Response:
    key = _key(p)
    name = str(p.request.path_params["measure"])
    start, end, period = window_of(p)
    c = await p.run(lambda ctx: charts.chart(ctx, key, name, start, end, p.zone))
    values = chart_values(p, c, period, f"/pro/dossier/{key}/measures/{name}")
    return p.render("pro/measure.html", title=values["label"], key=key, **values)


def _normal(p: ProPage) -> None:
    if p.pro is None or p.pro.mode != "normal":
        raise FhirError(403, "forbidden", "Alerts are read in normal mode only: sign out of emergency mode first.")


@pro_page("GET", "/pro/alerts")
async def alert_list(p: ProPage) -> Response:
    _normal(p)
    offset = offset_param(p.request.query_params.get("offset"))
    found, total = await p.run(lambda ctx: alerts.inbox(ctx, PAGE, offset))
    return p.render("pro/alerts.html", title=p._("Alerts"), alerts=found, total=total, offset=offset, page=PAGE,
                    rule_text=RULE_TEXT,
                    flash=p._("The alert is acknowledged.") if p.request.query_params.get("done") else "",
                    lead=p._("Trends in your patients' measurements that crossed a threshold: one alert per "
                             "episode, with the chart behind it."))


@pro_page("POST", "/pro/alerts/ack")
async def acknowledge(p: ProPage) -> Response:
    _normal(p)
    form = await p.form()
    try:
        key, episode = uuid.UUID(str(form.get("dossier") or "")), uuid.UUID(str(form.get("alert") or ""))
    except ValueError:
        raise FhirError(404, "not-found", "This alert does not exist, or is not yours.") from None
    await p.run(lambda ctx: alerts.acknowledge(ctx, key, episode))
    offset = offset_param(form.get("offset"))
    return p.redirect(f"/pro/alerts?done=1{f'&offset={offset}' if offset else ''}")
