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
    """Count, min/mean/max and, with a target, the shares of readings below/in/above it (one pass)."""
    n = 0
    lo = hi = total = 0.0
    lo2 = hi2 = total2 = 0.0
    n2 = 0
    below = inside = above = 0
    first = last = None
    for r in readings:
        v = r.value
        if n == 0:
            lo = hi = v
            first = r.at
        else:
            lo = min(lo, v)
            hi = max(hi, v)
        last = r.at
        total += v
        n += 1
        if r.value2 is not None:
            w = r.value2
            if n2 == 0:
                lo2 = hi2 = w
            else:
                lo2 = min(lo2, w)
                hi2 = max(hi2, w)
            total2 += w
            n2 += 1
        if target is not None:
            p = target.position(v)
            if p < 0:
                below += 1
            elif p > 0:
                above += 1
            else:
                inside += 1
    if n == 0:
        return Summary(count=0)
    shares: dict[str, float | None] = {"below": None, "in_range": None, "above": None}
    if target is not None:
        shares = {"below": below / n, "in_range": inside / n, "above": above / n}
    return Summary(count=n, first=first, last=last, min=lo, mean=total / n, max=hi,
                   min2=lo2 if n2 else None, mean2=total2 / n2 if n2 else None, max2=hi2 if n2 else None, **shares)


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
    span = (end - start).total_seconds() or 1.0
    out: list[Reading] = []
    col = -1
    lo: Reading | None = None
    hi: Reading | None = None

    def flush() -> None:
        if lo is None or hi is None:
            return
        if lo is hi:
            out.append(lo)
        else:
            out.extend((lo, hi) if lo.at <= hi.at else (hi, lo))

    for r in readings:
        c = min(columns - 1, max(0, int((r.at - start).total_seconds() / span * columns)))
        if c != col:
            flush()
            col, lo, hi = c, r, r
            continue
        assert lo is not None and hi is not None
        if (r.value2 if r.value2 is not None and lo.value2 is not None else r.value) < (
                lo.value2 if r.value2 is not None and lo.value2 is not None else lo.value):
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
    """One summary per calendar day (in ``tz``), in time order: the data table of a large series."""
    days: list[Day] = []
    bucket: list[Reading] = []
    current: dt.date | None = None
    for r in readings:
        d = r.at.astimezone(tz).date()
        if d != current and bucket:
            assert current is not None
            days.append(Day(current, summarize(bucket, target)))
            bucket = []
        current = d
        bucket.append(r)
    if bucket and current is not None:
        days.append(Day(current, summarize(bucket, target)))
    return days
