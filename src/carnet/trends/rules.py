"""Trend rules as data, and their pure evaluator (issue 17 §3, docs/MEASUREMENTS.md "Alerts").

The rules live in ``rules.json`` beside this module (each with its source); ``CARNET_TREND_RULES_FILE`` replaces it.
A rule watches one measure (by its catalogue name) and is *true* or *false* at a time ``now``, from the readings of
the ``days`` before ``now``. :func:`decide` turns what the rules say now and the dossier's open episodes into the
episodes to open (one alert each) and to close: an episode opens when its rule becomes true and closes when it is
false again; while it is open, no new alert, however many readings confirm it.

Fail closed: an unknown kind, key or a missing threshold makes the file refused at load, naming the rule.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from carnet.trends.series import Range, Reading

DEFAULT_FILE = Path(__file__).with_name("rules.json")
KINDS = ("mean_at_least", "gain_above", "share_in_range_below", "latest_below", "present")
_KEYS = {"label_en", "label_fr", "measure", "kind", "days", "value", "value2", "low", "high", "min_readings",
         "source"}
_NEEDS = {"mean_at_least": {"value"}, "gain_above": {"value"}, "share_in_range_below": {"value", "low", "high"},
          "latest_below": {"value"}, "present": set()}


@dataclass(frozen=True)
class Rule:
    rule_id: str
    label_en: str
    label_fr: str
    measure: str  # carnet.measures.catalogue name (weight, blood-pressure, glucose, spo2, ...)
    kind: str
    days: float
    source: str
    value: float | None = None
    value2: float | None = None
    low: float | None = None
    high: float | None = None
    min_readings: int = 1

    def label(self, lang: str) -> str:
        return self.label_fr if lang == "fr" else self.label_en

    @property
    def target(self) -> Range | None:
        """The range a chart draws for this rule's measure (the share rule's range), if any."""
        return Range(self.low, self.high) if self.kind == "share_in_range_below" else None


@dataclass(frozen=True)
class Finding:
    """What one rule says at ``now``: true or false, the figure it looked at (for the alert's text), and the window
    it looked at (the chart behind the alert)."""

    rule_id: str
    true: bool
    start: dt.datetime
    end: dt.datetime
    figure: float | None = None  # the mean, the gain, the share, the latest value
    figure2: float | None = None  # the second mean (diastolic)
    count: int = 0


def _rule(rule_id: str, entry: Mapping[str, object]) -> Rule:
    unknown = set(entry) - _KEYS
    if unknown:
        raise ValueError(f"trend rules: {rule_id}: unknown keys {sorted(unknown)}")
    kind = entry.get("kind")
    if kind not in KINDS:
        raise ValueError(f"trend rules: {rule_id}: unknown kind {kind!r}")
    missing = {"label_en", "label_fr", "measure", "days", "source"} | _NEEDS[str(kind)]
    missing -= set(entry)
    if missing:
        raise ValueError(f"trend rules: {rule_id}: missing {sorted(missing)}")

    def num(key: str) -> float | None:
        v = entry.get(key)
        if v is None:
            return None
        if not isinstance(v, int | float) or isinstance(v, bool):
            raise ValueError(f"trend rules: {rule_id}: {key} must be a number")
        return float(v)

    days = num("days")
    if days is None or days <= 0:
        raise ValueError(f"trend rules: {rule_id}: days must be positive")
    return Rule(rule_id, str(entry["label_en"]), str(entry["label_fr"]), str(entry["measure"]), str(kind), days,
                str(entry["source"]), num("value"), num("value2"), num("low"), num("high"),
                int(num("min_readings") or 1))


@dataclass(frozen=True)
class Target:
    """The range a chart draws for a measure (both numbers for blood pressure), and its source."""

    low: float | None
    high: float | None
    source: str
    low2: float | None = None
    high2: float | None = None

    @property
    def range(self) -> Range:
        return Range(self.low, self.high)


def _target(name: str, entry: Mapping[str, object]) -> Target:
    unknown = set(entry) - {"low", "high", "low2", "high2", "source"}
    if unknown or "source" not in entry:
        raise ValueError(f"trend targets: {name}: unknown keys {sorted(unknown)} or no source")

    def num(key: str) -> float | None:
        v = entry.get(key)
        if v is not None and (not isinstance(v, int | float) or isinstance(v, bool)):
            raise ValueError(f"trend targets: {name}: {key} must be a number")
        return None if v is None else float(v)

    return Target(num("low"), num("high"), str(entry["source"]), num("low2"), num("high2"))


@lru_cache(maxsize=4)
def targets(path: str | None = None) -> dict[str, Target]:
    """The target range of each measure (by catalogue name) that has one, from the same file as the rules."""
    data = json.loads(Path(path or DEFAULT_FILE).read_text(encoding="utf-8"))
    raw = data.get("targets", {})
    if not isinstance(raw, dict):
        raise ValueError("trend targets: 'targets' must be an object")
    return {name: _target(name, entry) for name, entry in raw.items()}


def parse(data: Mapping[str, object]) -> tuple[Rule, ...]:
    rules = data.get("rules")
    if not isinstance(rules, dict):
        raise ValueError("trend rules: no 'rules' object")
    return tuple(_rule(k, v) for k, v in rules.items())


@lru_cache(maxsize=4)
def load(path: str | None = None) -> tuple[Rule, ...]:
    """The rules of ``path`` (default: ``rules.json`` beside this module), checked."""
    return parse(json.loads(Path(path or DEFAULT_FILE).read_text(encoding="utf-8")))


def _window(rule: Rule, readings: Sequence[Reading], now: dt.datetime) -> tuple[dt.datetime, list[Reading]]:
    start = now - dt.timedelta(days=rule.days)
    return start, [r for r in readings if start < r.at <= now]


def evaluate(rule: Rule, readings: Sequence[Reading], now: dt.datetime) -> Finding:
    """What ``rule`` says at ``now`` from ``readings`` (of its measure, in time order; only those within ``days``
    before ``now`` count). Too few readings (``min_readings``) make it false: no alert on a thin series."""
    start, rs = _window(rule, readings, now)
    n = len(rs)
    if n < rule.min_readings or n == 0:
        return Finding(rule.rule_id, False, start, now, count=n)
    if rule.kind == "mean_at_least":
        assert rule.value is not None
        mean = sum(r.value for r in rs) / n
        seconds = [r.value2 for r in rs if r.value2 is not None]
        mean2 = sum(seconds) / len(seconds) if seconds else None
        true = mean >= rule.value or (rule.value2 is not None and mean2 is not None and mean2 >= rule.value2)
        return Finding(rule.rule_id, true, start, now, round(mean, 1),
                       None if mean2 is None else round(mean2, 1), n)
    if rule.kind == "gain_above":
        # the largest rise from an earlier reading to a later one, both within the window (O(n))
        assert rule.value is not None
        gain = 0.0
        lowest = rs[0].value
        for r in rs[1:]:
            gain = max(gain, r.value - lowest)
            lowest = min(lowest, r.value)
        gain = round(gain, 3)
        return Finding(rule.rule_id, gain > rule.value, start, now, gain, count=n)
    if rule.kind == "share_in_range_below":
        assert rule.value is not None
        target = Range(rule.low, rule.high)
        share = sum(1 for r in rs if target.position(r.value) == 0) / n
        return Finding(rule.rule_id, share < rule.value, start, now, round(share, 4), count=n)
    if rule.kind == "latest_below":
        assert rule.value is not None
        latest = rs[-1].value
        return Finding(rule.rule_id, latest < rule.value, start, now, latest, count=n)
    return Finding(rule.rule_id, True, start, now, count=n)  # present


@dataclass(frozen=True)
class Decision:
    open: tuple[Finding, ...]  # rules that became true: an episode opens, one alert each
    close: tuple[str, ...]  # rule ids whose open episode ends (the rule is false again)


def decide(findings: Iterable[Finding], open_episodes: Iterable[str]) -> Decision:
    """Episodes to open and to close, from what the rules say now and the rules that have an open episode."""
    opened = set(open_episodes)
    to_open: list[Finding] = []
    to_close: list[str] = []
    for f in findings:
        if f.true and f.rule_id not in opened:
            to_open.append(f)
        elif not f.true and f.rule_id in opened:
            to_close.append(f.rule_id)
    return Decision(tuple(to_open), tuple(to_close))
