"""The statistics and the downsampling of a series (carnet.trends.series): pure, no database."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from carnet.trends.series import Range, Reading, custom_window, daily, downsample, summarize, window

T0 = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
GLUCOSE = Range(70, 180)


def cgm(days: int, every_min: int = 5, start: dt.datetime = T0) -> list[Reading]:
    """A synthetic CGM trace: a daily wave between about 60 and 220 mg/dL, one reading every 5 minutes."""
    n = days * 24 * 60 // every_min
    return [Reading(start + dt.timedelta(minutes=every_min * i),
                    round(140 + 80 * math.sin(2 * math.pi * i * every_min / 1440), 1)) for i in range(n)]


def test_summary_gives_min_mean_max_and_time_in_range() -> None:
    rs = [Reading(T0 + dt.timedelta(hours=i), v) for i, v in enumerate([69.9, 70, 120, 180, 180.1])]
    s = summarize(rs, GLUCOSE)
    assert (s.count, s.min, s.max) == (5, 69.9, 180.1)
    assert s.mean == pytest.approx(124.0)
    # the bounds are in the range; just outside is not
    assert (s.below, s.in_range, s.above) == (0.2, 0.6, 0.2)
    assert (s.first, s.last) == (rs[0].at, rs[-1].at)


def test_blood_pressure_is_summarized_with_both_numbers() -> None:
    rs = [Reading(T0, 130, 80), Reading(T0 + dt.timedelta(hours=1), 150, 90)]
    s = summarize(rs)
    assert (s.min, s.mean, s.max, s.min2, s.mean2, s.max2) == (130, 140, 150, 80, 85, 90)
    assert s.in_range is None


def test_an_empty_series_has_a_count_and_nothing_else() -> None:
    s = summarize([], GLUCOSE)
    assert s.count == 0 and s.mean is None and s.in_range is None


def test_windows_end_at_the_given_time_and_custom_ranges_include_their_last_day() -> None:
    assert window(T0, 7) == (T0 - dt.timedelta(days=7), T0)
    start, end = custom_window(dt.date(2026, 9, 1), dt.date(2026, 9, 3))
    assert (start, end) == (T0, T0 + dt.timedelta(days=3))
    with pytest.raises(ValueError, match="ends before"):
        custom_window(dt.date(2026, 9, 3), dt.date(2026, 9, 1))
    with pytest.raises(ValueError, match="longer than 366"):
        custom_window(dt.date(2025, 1, 1), dt.date(2026, 1, 2))


def test_ninety_days_of_cgm_become_two_points_per_column_and_keep_the_peaks() -> None:
    rs = cgm(90)
    assert len(rs) == 25920
    start, end = T0, T0 + dt.timedelta(days=90)
    drawn = downsample(rs, start, end, 800)
    assert len(drawn) <= 1600
    assert min(r.value for r in drawn) == min(r.value for r in rs)
    assert max(r.value for r in drawn) == max(r.value for r in rs)
    assert [r.at for r in drawn] == sorted(r.at for r in drawn)
    # every column keeps its own extremes: a single spike survives
    spiked = list(rs)
    spiked[12345] = Reading(rs[12345].at, 400.0)
    assert 400.0 in {r.value for r in downsample(spiked, start, end, 800)}


def test_a_short_series_is_drawn_whole() -> None:
    rs = cgm(1)
    assert downsample(rs, T0, T0 + dt.timedelta(days=1), 200) == rs


def test_downsampling_blood_pressure_keeps_the_lowest_diastolic_and_highest_systolic() -> None:
    rs = [Reading(T0 + dt.timedelta(minutes=i), 120 + (i == 7) * 60, 80 - (i == 3) * 30) for i in range(20)]
    drawn = downsample(rs, T0, T0 + dt.timedelta(minutes=20), 2)
    assert 180 in {r.value for r in drawn} and 50 in {r.value2 for r in drawn}


def test_daily_rows_summarize_each_day() -> None:
    days = daily(cgm(3), GLUCOSE)
    assert [d.day for d in days] == [dt.date(2026, 9, 1), dt.date(2026, 9, 2), dt.date(2026, 9, 3)]
    assert all(d.summary.count == 288 for d in days)
    assert days[0].summary.in_range is not None and 0 < days[0].summary.in_range < 1
