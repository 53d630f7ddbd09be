"""Statistics over a series of readings, and what is drawn of it (issue 17 §2). Pure: no database, no clock.

A reading is a time and one number (two for blood pressure: systolic in ``value``, diastolic in ``value2``), in the
measure's canonical unit (:mod:`carnet.measures.catalogue`). Windows are half-open ``[start, end)``.

- :func:`summarize`: count, min/mean/max (of both numbers for blood pressure), and the time in, below and above a
  target range (for glucose: 70–180 mg/dL, the international consensus on CGM time in range, Battelino et al.,
  Diabetes Care 2019;42:1593). Time in range is the share of readings in the range, as the consensus computes it
  from CGM readings taken at a regular interval.
- :func:`downsample`: at most two points per pixel column, the lowest and the highest in time order (what a line
  chart of the raw series would draw in that column), so that a 90-day CGM series (26,000 readings) becomes at most
  ``2 × columns`` points and keeps every peak and trough.
- :func:`daily`: one row per day (count, min, mean, max, time in range) for the data table of a large series.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MAX_CUSTOM_DAYS = 366  # a custom range longer than a year is refused (a year of CGM is 105,000 readings)
WINDOWS = (7, 30, 90)  # the windows both portals offer, in days


@dataclass(frozen=True, slots=True)
class Reading:
    at: dt.datetime  # aware, UTC
    value: float
    value2: float | None = None


@dataclass(frozen=True)
class Range:
    """A target range (inclusive bounds), or a threshold when one side is ``None``."""

    low: float | None
    high: float | None

    def position(self, v: float) -> int:
        """-1 below, 0 in the range, 1 above."""
        if self.low is not None and v < self.low:
            return -1
        if self.high is not None and v > self.high:
            return 1
        return 0


@dataclass(frozen=True)
class Summary:
    count: int
    first: dt.datetime | None = None
    last: dt.datetime | None = None
    min: float | None = None
    mean: float | None = None
    max: float | None = None
    min2: float | None = None  # the second number (diastolic pressure)
    mean2: float | None = None
    max2: float | None = None
    below: float | None = None  # shares of readings (0..1) below, in and above the target range
    in_range: float | None = None
    above: float | None = None


def summarize(readings: Iterable[Reading], target: Range | None = None) -> Summary:
    """Count, min/mean/max and, with a target, the shares of readings below/in/above it (one pass; the comparisons
    are inlined: a 90-day CGM series is 26,000 readings, summarized once for the window and once per day)."""
    rs = readings if isinstance(readings, list) else list(readings)
    n = len(rs)
    if n == 0:
        return Summary(count=0)
    values = [r.value for r in rs]
    seconds = [r.value2 for r in rs if r.value2 is not None]
    shares: dict[str, float | None] = {"below": None, "in_range": None, "above": None}
    if target is not None:
        low = target.low if target.low is not None else -math.inf
        high = target.high if target.high is not None else math.inf
        below = sum(1 for v in values if v < low)
        above = sum(1 for v in values if v > high)
        shares = {"below": below / n, "in_range": (n - below - above) / n, "above": above / n}
    n2 = len(seconds)
    return Summary(count=n, first=rs[0].at, last=rs[-1].at, min=min(values), mean=math.fsum(values) / n,
                   max=max(values), min2=min(seconds) if n2 else None,
                   mean2=math.fsum(seconds) / n2 if n2 else None, max2=max(seconds) if n2 else None, **shares)


def window(end: dt.datetime, days: int) -> tuple[dt.datetime, dt.datetime]:
    """The ``days`` days that end at ``end``: ``[end - days, end)``."""
    return end - dt.timedelta(days=days), end


def custom_window(start: dt.date, end: dt.date, tz: dt.tzinfo = dt.UTC) -> tuple[dt.datetime, dt.datetime]:
    """The days from ``start`` to ``end`` included (midnights in ``tz``, as UTC instants); ``ValueError`` for a
    reversed or too long range."""
    if end < start:
        raise ValueError("the range ends before it starts")
    if (end - start).days + 1 > MAX_CUSTOM_DAYS:
        raise ValueError(f"the range is longer than {MAX_CUSTOM_DAYS} days")
    return (dt.datetime.combine(start, dt.time(), tz).astimezone(dt.UTC),
            dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tz).astimezone(dt.UTC))


def within(readings: Iterable[Reading], start: dt.datetime, end: dt.datetime) -> list[Reading]:
    return [r for r in readings if start <= r.at < end]


def downsample(readings: Sequence[Reading], start: dt.datetime, end: dt.datetime, columns: int) -> list[Reading]:
    """At most two readings per column of ``(end - start) / columns``: the lowest and the highest of the column, in
    time order (blood pressure: the readings with the lowest diastolic and the highest systolic). ``readings`` are in
    time order; a series with no more than ``2 × columns`` readings comes back whole."""
    if columns < 1:
        raise ValueError("columns must be at least 1")
    if len(readings) <= 2 * columns:
        return list(readings)
    span = (end - start) / columns  # a column's width; its end is computed once per column, not per reading
    out: list[Reading] = []
    col_end: dt.datetime | None = None
    lo: Reading | None = None
    hi: Reading | None = None

    def flush() -> None:
        if lo is None or hi is None:
            return
        if lo is hi:
            out.append(lo)
        else:
            out.extend((lo, hi) if lo.at <= hi.at else (hi, lo))

    two = readings[0].value2 is not None
    for r in readings:
        if col_end is None or r.at >= col_end:
            flush()
            c = min(columns - 1, max(0, int((r.at - start) / span)))
            col_end = start + span * (c + 1) if c < columns - 1 else r.at.max.replace(tzinfo=r.at.tzinfo)
            lo = hi = r
            continue
        assert lo is not None and hi is not None
        if two and r.value2 is not None and lo.value2 is not None:
            if r.value2 < lo.value2:
                lo = r
        elif r.value < lo.value:
            lo = r
        if r.value > hi.value:
            hi = r
    flush()
    return out


@dataclass(frozen=True)
class Day:
    day: dt.date
    summary: Summary


def daily(readings: Iterable[Reading], target: Range | None = None, tz: dt.tzinfo = dt.UTC) -> list[Day]:
    """One summary per calendar day (in ``tz``), in time order: the data table of a large series. Readings are in
    time order; each day's end is computed once (not one time-zone conversion per reading)."""
    days: list[Day] = []
    bucket: list[Reading] = []
    current: dt.date | None = None
    next_midnight: dt.datetime | None = None
    for r in readings:
        if next_midnight is None or r.at >= next_midnight:
            if bucket and current is not None:
                days.append(Day(current, summarize(bucket, target)))
                bucket = []
            current = r.at.astimezone(tz).date()
            next_midnight = dt.datetime.combine(current + dt.timedelta(days=1), dt.time(), tz).astimezone(r.at.tzinfo)
        bucket.append(r)
    if bucket and current is not None:
        days.append(Day(current, summarize(bucket, target)))
    return days
