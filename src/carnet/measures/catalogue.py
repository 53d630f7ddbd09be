"""The measures Carnet stores: their small codes, the codes that name them (LOINC, ISO/IEEE 11073 MDC), their one
canonical UCUM unit, the units accepted and converted, and their sane bounds (docs/MEASUREMENTS.md).

Fail closed: a code or a unit not listed here is refused, never guessed. Bounds are physiological limits wide enough
for any living patient's real reading and narrow enough to catch a unit mistake (a weight in grams sent as kg, a
glucose in mg/dL sent as mmol/L): a reading outside them is refused with the bounds in the message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

LOINC = "http://loinc.org"
MDC = "urn:iso:std:iso:11073:10101"
UCUM = "http://unitsofmeasure.org"
GLUCOSE_MG_PER_MMOL = 18.0156  # mg/dL in 1 mmol/L of glucose (molar mass 180.156 g/mol)


class Measure(IntEnum):
    """The stored code of a measure (``measurement.measure``): never renumber, only add."""

    WEIGHT = 1
    BLOOD_PRESSURE = 2
    GLUCOSE = 3
    HEART_RATE = 4
    SPO2 = 5
    TEMPERATURE = 6
    STEPS = 7
    IRREGULAR_RHYTHM = 8  # a device's irregular-rhythm notification (one reading per notification, value 1)


def _same(v: float) -> float:
    return v


@dataclass(frozen=True)
class Spec:
    measure: Measure
    name: str  # stable English slug, used in URLs and the CLI: weight, blood-pressure, glucose...
    label_en: str
    label_fr: str
    loinc: str  # the code Carnet serves (FHIR Observation.code)
    display: str
    unit: str  # canonical UCUM code
    unit_label: str  # how people write it
    low: float  # sane bounds, in the canonical unit (inclusive)
    high: float
    codes: frozenset[tuple[str, str]]  # (system, code) pairs that name this measure on the way in
    units: dict[str, Callable[[float], float]] = field(default_factory=dict)  # accepted UCUM code -> to canonical
    decimals: int = 1
    # blood pressure: the components (LOINC, MDC) of the systolic and diastolic values, and the second value's bounds
    components: tuple[frozenset[tuple[str, str]], frozenset[tuple[str, str]]] | None = None
    low2: float = 0.0
    high2: float = 0.0

    def to_canonical(self, value: float, unit: str) -> float:
        """``value`` in ``unit`` -> the canonical unit; ``KeyError`` for a unit this measure does not accept."""
        return self.units[unit](value)

    def in_bounds(self, value: float, value2: float | None = None) -> bool:
        if not (self.low <= value <= self.high):
            return False
        if self.components is not None:
            return value2 is not None and self.low2 <= value2 <= self.high2 and value2 < value
        return value2 is None


_SYS = frozenset({(LOINC, "8480-6"), (MDC, "150021")})
_DIA = frozenset({(LOINC, "8462-4"), (MDC, "150022")})

SPECS: dict[Measure, Spec] = {s.measure: s for s in (
    Spec(Measure.WEIGHT, "weight", "Body weight", "Poids", "29463-7", "Body weight", "kg", "kg", 0.5, 500.0,
         frozenset({(LOINC, "29463-7"), (LOINC, "3141-9"), (MDC, "188736")}),
         {"kg": _same, "g": lambda v: v / 1000, "[lb_av]": lambda v: v * 0.45359237}, decimals=1),
    Spec(Measure.BLOOD_PRESSURE, "blood-pressure", "Blood pressure", "Tension artérielle", "85354-9",
         "Blood pressure panel with all children optional", "mm[Hg]", "mmHg", 40.0, 300.0,
         frozenset({(LOINC, "85354-9"), (LOINC, "55284-4"), (MDC, "150020")}),
         {"mm[Hg]": _same}, decimals=0, components=(_SYS, _DIA), low2=20.0, high2=200.0),
    Spec(Measure.GLUCOSE, "glucose", "Blood glucose", "Glycémie", "2339-0", "Glucose [Mass/volume] in Blood",
         "mg/dL", "mg/dL", 10.0, 1000.0,
         frozenset({(LOINC, "2339-0"), (LOINC, "15074-8"), (LOINC, "41653-7"), (LOINC, "14743-9"),
                    (LOINC, "2345-7"), (LOINC, "14749-6"), (MDC, "160368"), (MDC, "160196"), (MDC, "160184")}),
         {"mg/dL": _same, "mmol/L": lambda v: v * GLUCOSE_MG_PER_MMOL}, decimals=0),
    Spec(Measure.HEART_RATE, "heart-rate", "Heart rate", "Fréquence cardiaque", "8867-4", "Heart rate", "/min",
         "bpm", 20.0, 300.0, frozenset({(LOINC, "8867-4"), (MDC, "149530"), (MDC, "147842"), (MDC, "149546")}),
         {"/min": _same, "{beats}/min": _same, "{beat}/min": _same}, decimals=0),
    Spec(Measure.SPO2, "spo2", "Oxygen saturation (SpO2)", "Saturation en oxygène (SpO2)", "59408-5",
         "Oxygen saturation in Arterial blood by Pulse oximetry", "%", "%", 50.0, 100.0,
         frozenset({(LOINC, "59408-5"), (LOINC, "2708-6"), (MDC, "150456")}),
         {"%": _same}, decimals=0),
    Spec(Measure.TEMPERATURE, "temperature", "Body temperature", "Température", "8310-5", "Body temperature",
         "Cel", "°C", 30.0, 45.0, frozenset({(LOINC, "8310-5"), (MDC, "150364"), (MDC, "188496")}),
         {"Cel": _same, "[degF]": lambda v: (v - 32) * 5 / 9}, decimals=1),
    Spec(Measure.STEPS, "steps", "Steps", "Pas", "55423-8", "Number of steps in unspecified time Pedometer",
         "{steps}", "steps", 0.0, 100000.0, frozenset({(LOINC, "55423-8"), (LOINC, "41950-7")}),
         {"{steps}": _same, "{step}": _same, "{count}": _same, "1": _same}, decimals=0),
    # No FHIR code is accepted on the way in yet (fail closed): LOINC 8884-9 is a coded rhythm, not a quantity; the
    # notification arrives from Apple Health's irregular heart rhythm events (carnet.measures.apple). The trend rule
    # "irregular-rhythm" (carnet.trends) alerts on it.
    Spec(Measure.IRREGULAR_RHYTHM, "irregular-rhythm", "Irregular rhythm notification",
         "Notification de rythme irrégulier", "8884-9", "Heart rate rhythm", "{notification}", "notification",
         1.0, 1.0, frozenset(), {"{notification}": _same, "1": _same}, decimals=0),
)}

BY_NAME: dict[str, Spec] = {s.name: s for s in SPECS.values()}
_BY_CODE: dict[tuple[str, str], Spec] = {c: s for s in SPECS.values() for c in s.codes}


def spec(measure: int | Measure) -> Spec:
    """The spec of a stored code; ``ValueError`` for an unknown one."""
    return SPECS[Measure(measure)]


def by_name(name: str) -> Spec | None:
    return BY_NAME.get(name)


def by_code(system: str | None, code: str | None) -> Spec | None:
    """The measure a (system, code) pair names, or ``None`` (unknown: refused by the caller)."""
    if not system or not code:
        return None
    return _BY_CODE.get((system, code))


def by_loinc_code(code: str) -> Spec | None:
    """A FHIR search's ``code`` token without system: LOINC (``8867-4``)."""
    return _BY_CODE.get((LOINC, code))
