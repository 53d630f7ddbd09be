"""The trend rules (carnet.trends.rules): each just inside and just outside its threshold, one alert per episode,
and the rules file refused when it is wrong. Pure: no database."""

from __future__ import annotations

import datetime as dt

import pytest

from carnet.trends import rules as trend_rules
from carnet.trends.rules import Finding, decide, evaluate, parse
from carnet.trends.series import Reading

NOW = dt.datetime(2026, 9, 15, 8, tzinfo=dt.UTC)
RULES = {r.rule_id: r for r in trend_rules.load()}


def every(hours: float, values: list[float], seconds: list[float] | None = None) -> list[Reading]:
    """Readings ending just before NOW, ``hours`` apart, oldest first."""
    n = len(values)
    return [Reading(NOW - dt.timedelta(hours=hours * (n - 1 - i)), v, None if seconds is None else seconds[i])
            for i, v in enumerate(values)]


def says(rule_id: str, readings: list[Reading]) -> bool:
    return evaluate(RULES[rule_id], readings, NOW).true


def test_the_default_rules_each_name_their_source() -> None:
    assert set(RULES) == {"home-bp-high", "weight-gain", "glucose-tir-low", "spo2-low", "irregular-rhythm"}
    assert all(r.source and r.label_fr and r.label_en for r in RULES.values())


@pytest.mark.parametrize(("systolic", "diastolic", "alert"), [
    (134.9, 84, False),  # just inside
    (135, 84, True),  # at 135: the threshold is ≥135 (ESH)
    (134, 84.9, False),
    (134, 85, True),  # diastolic alone
])
def test_home_blood_pressure_mean_over_seven_days(systolic: float, diastolic: float, alert: bool) -> None:
    assert says("home-bp-high", every(12, [systolic] * 14, [diastolic] * 14)) is alert


def test_home_blood_pressure_needs_enough_readings_and_only_the_last_seven_days() -> None:
    assert not says("home-bp-high", every(12, [150] * 11, [95] * 11))  # 11 readings: too few
    old = [Reading(NOW - dt.timedelta(days=8, hours=i), 180, 110) for i in range(20)]
    assert not says("home-bp-high", old + every(12, [120] * 12, [75] * 12))


@pytest.mark.parametrize(("gain", "alert"), [(2.0, False), (2.1, True)])
def test_weight_gain_of_more_than_two_kilograms_in_three_days(gain: float, alert: bool) -> None:
    assert says("weight-gain", every(24, [80.0, 80.5, 80.0 + gain])) is alert


def test_a_weight_loss_or_a_gain_over_more_than_three_days_is_no_alert() -> None:
    assert not says("weight-gain", every(24, [84.0, 82.0, 81.0]))
    # +3 kg, but the first reading is 73 hours old: outside the 3 days
    assert not says("weight-gain", [Reading(NOW - dt.timedelta(hours=73), 80.0), Reading(NOW, 83.0)])
    assert says("weight-gain", [Reading(NOW - dt.timedelta(hours=71), 80.0), Reading(NOW, 83.0)])


def tir(in_range: int, total: int) -> list[Reading]:
    return every(14 * 24 / total - 1e-6, [120.0] * in_range + [250.0] * (total - in_range))


@pytest.mark.parametrize(("in_range", "alert"), [(2823 * 70 // 100 + 1, False), (2823 * 70 // 100 - 1, True)])
def test_glucose_time_in_range_below_seventy_percent_over_fourteen_days(in_range: int, alert: bool) -> None:
    # 1,977 of 2,823 readings in range is 70.03 %; 1,975 is 69.96 %
    assert says("glucose-tir-low", tir(in_range, 2823)) is alert


def test_glucose_range_bounds_count_as_in_range_and_a_thin_series_never_alerts() -> None:
    assert not says("glucose-tir-low", every(0.1, [70.0, 180.0] * 1412))
    assert says("glucose-tir-low", every(0.1, [69.9, 180.1] * 1412))
    assert not says("glucose-tir-low", every(1, [250.0] * 300))  # finger sticks: TIR is a CGM measure


@pytest.mark.parametrize(("latest", "alert"), [(92.0, False), (91.9, True)])
def test_oxygen_saturation_below_ninety_two(latest: float, alert: bool) -> None:
    assert says("spo2-low", every(1, [97, 96, latest])) is alert


def test_oxygen_saturation_that_recovered_or_is_older_than_a_day_is_no_alert() -> None:
    assert not says("spo2-low", every(1, [88, 95]))
    assert not says("spo2-low", [Reading(NOW - dt.timedelta(hours=25), 85)])


def test_an_irregular_rhythm_notification_lasts_seven_days() -> None:
    assert says("irregular-rhythm", [Reading(NOW - dt.timedelta(days=6, hours=23), 1)])
    assert not says("irregular-rhythm", [Reading(NOW - dt.timedelta(days=7, hours=1), 1)])
    assert not says("irregular-rhythm", [])


def f(rule_id: str, true: bool) -> Finding:
    return Finding(rule_id, true, NOW - dt.timedelta(days=1), NOW)


def test_one_alert_per_episode() -> None:
    # the rule becomes true: an episode opens
    d = decide([f("spo2-low", True)], [])
    assert [x.rule_id for x in d.open] == ["spo2-low"] and d.close == ()
    # still true while open: nothing new
    assert decide([f("spo2-low", True)], ["spo2-low"]) == trend_rules.Decision((), ())
    # false again: the episode closes, and the next time it is true a new one opens
    assert decide([f("spo2-low", False)], ["spo2-low"]).close == ("spo2-low",)
    assert decide([f("spo2-low", False)], []) == trend_rules.Decision((), ())


def test_a_rules_file_with_an_unknown_kind_key_or_missing_threshold_is_refused() -> None:
    base = {"label_en": "x", "label_fr": "x", "measure": "weight", "days": 3, "source": "s"}
    with pytest.raises(ValueError, match="r1: unknown kind"):
        parse({"rules": {"r1": {**base, "kind": "rising"}}})
    with pytest.raises(ValueError, match=r"r1: unknown keys \['treshold'\]"):
        parse({"rules": {"r1": {**base, "kind": "gain_above", "value": 2, "treshold": 1}}})
    with pytest.raises(ValueError, match=r"r1: missing \['value'\]"):
        parse({"rules": {"r1": {**base, "kind": "gain_above"}}})
    with pytest.raises(ValueError, match="days must be positive"):
        parse({"rules": {"r1": {**base, "kind": "present", "days": 0}}})
