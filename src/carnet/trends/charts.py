"""What both portals draw of a measure (issue 17 §2): the readings of a window, read through the measurements
service (the policy decides, the read is audited), summarized, downsampled for the chart, and tabulated for screen
readers (each reading for a short series, one row per day for a long one).

The chart itself is drawn in the browser by uPlot (``portal/static/trend-chart.js``) from :func:`chart_data`, a JSON
block in the page; the text summary and the table are the page's HTML, so a reader without scripts, or with a screen
reader, has it all.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from carnet.context import Context
from carnet.errors import FhirError
from carnet.measures import service as measures
from carnet.measures.catalogue import Spec, by_name
from carnet.trends import rules as trend_rules
from carnet.trends.rules import Target
from carnet.trends.series import Day, Reading, Summary, daily, downsample, summarize

COLUMNS = 1000  # pixel columns the chart is downsampled to (two points each at most): wider than a desktop chart
EACH_READING_UP_TO = 100  # a window with more readings is tabulated per day
SYSTOLIC, DIASTOLIC = "#0b57a4", "#a4360b"  # the curves' colours (contrast ≥ 4.5:1 on white)


@dataclass(frozen=True)
class Chart:
    spec: Spec
    start: dt.datetime
    end: dt.datetime
    summary: Summary
    target: Target | None
    points: list[Reading]  # downsampled, in time order
    readings: list[Reading] | None  # the table of a short series, newest first; None: see days
    days: list[Day] | None  # the table of a long series, one row per day, newest first


def unknown_measure() -> FhirError:
    return FhirError(404, "not-found", "Measure not found")


def chart(ctx: Context, key: uuid.UUID, name: str, start: dt.datetime, end: dt.datetime,
          tz: dt.tzinfo = dt.UTC) -> Chart:
    """The chart of measure ``name`` over ``[start, end)``; 404 for an unknown measure or one the caller may not
    see (the measurements service decides and audits)."""
    spec = by_name(name)
    if spec is None:
        raise unknown_measure()
    rows = measures.readings(ctx, key, spec.measure, start, end)
    series = [Reading(r.taken_at, r.value, r.value2) for r in rows]
    target = trend_rules.targets(ctx.settings.trend_rules_file or None).get(spec.name)
    summary = summarize(series, target.range if target else None)
    points = downsample(series, start, end, COLUMNS)
    if len(series) <= EACH_READING_UP_TO:
        return Chart(spec, start, end, summary, target, points, list(reversed(series)), None)
    return Chart(spec, start, end, summary, target, points, None,
                 list(reversed(daily(series, target.range if target else None, tz))))


def chart_data(c: Chart, label: str, label2: str, tz: str, time_label: str, lang: str) -> dict[str, Any]:
    """The JSON block ``trend-chart.js`` draws (times in epoch seconds). A one-number measure's target is a shaded
    band; blood pressure's are two dashed lines, 135 for the systolic and 85 for the diastolic curve, in their
    colours (one band would put the diastolic curve "in range" at any value below 135)."""
    two = c.spec.components is not None
    values = [r.value for r in c.points]
    lows = [r.value2 for r in c.points if r.value2 is not None] if two else values
    t = c.target
    bounds = [v for v in (t.low, t.high, t.low2, t.high2) if v is not None] if t else []
    lines = [{"v": v, "color": color} for v, color in ((t.high, SYSTOLIC), (t.high2, DIASTOLIC))
             if v is not None] if t and two else []
    return {
        "t": [int(r.at.timestamp()) for r in c.points], "v": values,
        "v2": [r.value2 for r in c.points] if two else None,
        "label": label, "label2": label2 if two else None, "unit": c.spec.unit_label, "decimals": c.spec.decimals,
        "low": t.low if t and not two else None, "high": t.high if t and not two else None, "lines": lines,
        "ymin": min(lows + bounds, default=0), "ymax": max(values + bounds, default=1),
        "start": int(c.start.timestamp()), "end": int(c.end.timestamp()), "tz": tz, "time": time_label,
        "lang": lang, "colors": [SYSTOLIC, DIASTOLIC],
    }


@dataclass(frozen=True)
class Line:
    """A measure of the dossier's list: changed since the reader's last access first."""

    spec: Spec
    readings: int
    last_at: dt.datetime | None
    changed: bool  # new readings arrived since the reader's last access (all are new on a first access)


def overview(ctx: Context, key: uuid.UUID, since: dt.datetime | None) -> list[Line]:
    """The measures the reader may see, those with readings received since ``since`` first (then by name)."""
    out = [Line(s.spec, s.readings, s.last_at,
                s.last_received_at is not None and (since is None or s.last_received_at > since))
           for s in measures.visible_series(ctx, key) if s.readings]
    return sorted(out, key=lambda x: (not x.changed, x.spec.name))
