"""Apple Health exports (``export.zip`` with ``apple_health_export/export.xml``): streamed into a dossier's
measurements, never whole in memory (issue 17 §1).

The zip member is read as a stream (:meth:`zipfile.ZipFile.open`) by :func:`xml.etree.ElementTree.iterparse`; each
element is handled at its end and then cleared, and the root is emptied of every finished top-level element, so
memory stays bounded by one batch of readings whatever the export's size (hundreds of MB for a few years). Python's
expat refuses external entities and bounds entity amplification.

What is imported (``HKQuantityTypeIdentifier…`` ``Record`` elements), into :mod:`carnet.measures.catalogue`:
BodyMass, BloodPressureSystolic + BloodPressureDiastolic (paired by their start time and source: a pair is one blood
pressure), BloodGlucose, HeartRate, OxygenSaturation (Apple stores a fraction: 0.97 → 97 %), BodyTemperature and
StepCount (at the interval's start), and the watch's irregular heart rhythm notifications
(``HKCategoryTypeIdentifierIrregularHeartRhythmEvent``: one reading of value 1 at its start). Other record types
(workouts, energy, sleep…) are not measures Carnet keeps: counted as skipped, by type. A record of an imported type
that is malformed or out of bounds is counted as bad, with the first few reasons (the type and the rule, never the
value). All readings go to one source, "Apple Health", so a newer export of the same phone stores only what is new
(the rest are duplicates). The whole import is one transaction: all of it or nothing, one audit record with its
counts.
"""

from __future__ import annotations

import datetime as dt
import uuid
import xml.etree.ElementTree as ET  # noqa: N817, S405 - expat: no external entities, amplification bounded
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from sqlalchemy import Connection, select

from carnet.access.actors import Actor, ActorKind
from carnet.context import Context, Services, run
from carnet.db.tables import dossier
from carnet.dossier import service as dossiers
from carnet.errors import FhirError
from carnet.measures import service
from carnet.measures.catalogue import Measure
from carnet.measures.store import Reading

MEMBER = "apple_health_export/export.xml"
SOURCE = service.SourceRef(service.APPLE_HEALTH, "apple_health", "Apple Health")
MAX_REASONS = 10
MAX_PENDING = 10_000  # blood pressure halves waiting for their pair

_HK = "HKQuantityTypeIdentifier"
_TYPES: dict[str, Measure] = {
    "BodyMass": Measure.WEIGHT, "BloodGlucose": Measure.GLUCOSE, "HeartRate": Measure.HEART_RATE,
    "OxygenSaturation": Measure.SPO2, "BodyTemperature": Measure.TEMPERATURE, "StepCount": Measure.STEPS,
}
_BP = {"BloodPressureSystolic": 0, "BloodPressureDiastolic": 1}
IRREGULAR_RHYTHM_EVENT = "HKCategoryTypeIdentifierIrregularHeartRhythmEvent"  # the trend rule "irregular-rhythm"
_UNITS = {"kg": "kg", "g": "g", "lb": "[lb_av]", "mmHg": "mm[Hg]", "mg/dL": "mg/dL", "count/min": "/min",
          "%": "%", "degC": "Cel", "degF": "[degF]", "count": "{steps}"}


@dataclass
class Report:
    """What an import did; ``reasons``: the first few bad records' reasons (no value, no date)."""

    records: int = 0
    readings: int = 0
    stored: int = 0
    duplicates: int = 0
    bad: int = 0
    reasons: list[str] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # record types Carnet does not keep, by type

    def text(self) -> str:
        """The summary the command prints and the page shows: counts, then the reasons."""
        return (f"{self.records} records, {self.readings} readings: {self.stored} stored, {self.duplicates} "
                f"duplicates, {self.bad} bad, {sum(self.skipped.values())} of types not kept"
                + "".join(f"\n  {x}" for x in self.reasons))

    def audit_detail(self) -> dict[str, Any]:
        return {"records": self.records, "bad": self.bad, "reasons": list(self.reasons),
                "skipped": sum(self.skipped.values())}


class NotAnExport(ValueError):  # noqa: N818 - shown to the person
    """The file is not an Apple Health export (no zip, or no ``apple_health_export/export.xml`` in it)."""


def _unit(raw: str) -> str | None:
    if raw.startswith("mmol<") and raw.endswith(">/L"):  # Apple writes glucose's molar mass into the unit
        return "mmol/L"
    return _UNITS.get(raw)


def _time(raw: str | None) -> dt.datetime:
    if not raw:
        raise ValueError("no start date")
    return dt.datetime.strptime(raw, "%Y-%m-%d %H:%M:%S %z")


def readings(stream: IO[bytes], report: Report, progress: Callable[[], None] | None = None) -> Iterator[Reading]:
    """The readings of an ``export.xml`` stream, checked; bad records counted in ``report``."""
    def bad(kind: str, reason: str) -> None:
        report.bad += 1
        if len(report.reasons) < MAX_REASONS:
            report.reasons.append(f"{kind}: {reason}")

    pending: dict[tuple[str, str], list[float | None]] = {}  # (start, source) -> [systolic, diastolic]
    depth = 0
    root: Any = None
    for event, elem in ET.iterparse(stream, events=("start", "end")):  # noqa: S314 - see the module docstring
        if event == "start":
            if root is None:
                root = elem
            depth += 1
            continue
        depth -= 1
        if elem.tag == "Record":
            report.records += 1
            if progress is not None and report.records % 10_000 == 0:
                progress()
            kind = str(elem.get("type") or "")[len(_HK):] if str(elem.get("type") or "").startswith(_HK) else ""
            if elem.get("type") == IRREGULAR_RHYTHM_EVENT:  # a watch's notification: one reading, value 1
                try:
                    yield service.reading(Measure.IRREGULAR_RHYTHM, _time(elem.get("startDate")), 1.0, "1")
                except (service.BadReading, ValueError):
                    bad("IrregularHeartRhythmEvent", "malformed record (date)")
            elif kind in _TYPES or kind in _BP:
                try:
                    when = _time(elem.get("startDate"))
                    value = float(elem.get("value") or "")
                    unit = _unit(str(elem.get("unit") or ""))
                    if unit is None:
                        raise service.BadReading("unit not accepted")
                    if kind in _BP:
                        slot = (str(elem.get("startDate")), str(elem.get("sourceName") or ""))
                        pair = pending.setdefault(slot, [None, None])
                        pair[_BP[kind]] = value
                        if pair[0] is not None and pair[1] is not None:
                            del pending[slot]
                            yield service.reading(Measure.BLOOD_PRESSURE, when, pair[0], unit, pair[1])
                        elif len(pending) > MAX_PENDING:
                            pending.pop(next(iter(pending)))
                            bad("BloodPressure", "systolic or diastolic without its pair")
                    else:
                        m = _TYPES[kind]
                        if m is Measure.SPO2 and unit == "%" and value <= 1.0:
                            value *= 100  # Apple Health keeps oxygen saturation as a fraction
                        yield service.reading(m, when, value, unit)
                except service.BadReading as exc:
                    bad(kind, str(exc).split(": ", 1)[-1])
                except ValueError:
                    bad(kind, "malformed record (date or value)")
            elif kind:
                report.skipped[kind] += 1
            else:
                report.skipped[str(elem.get("type") or "unknown")[:60]] += 1
        if depth <= 1:
            elem.clear()
            if root is not None and depth == 1:
                root.clear()
    for _ in pending:
        bad("BloodPressure", "systolic or diastolic without its pair")


def open_export(file: IO[bytes] | str) -> tuple[zipfile.ZipFile, IO[bytes]]:
    """The zip and its ``export.xml`` member, as a stream; :class:`NotAnExport` otherwise."""
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError):
        raise NotAnExport("This file is not a zip archive: choose the export.zip file from Apple Health") from None
    names = [n for n in archive.namelist() if n == MEMBER or n.endswith("/export.xml") or n == "export.xml"]
    if not names:
        archive.close()
        raise NotAnExport("This zip holds no apple_health_export/export.xml: choose the export.zip file from "
                          "Apple Health") from None
    return archive, archive.open(names[0])


def import_export(ctx: Context, key: uuid.UUID, file: IO[bytes] | str,
                  progress: Callable[[int, Report], None] | None = None) -> Report:
    """Import an export into dossier ``key`` in the caller's transaction (see the module docstring). ``progress(
    compressed bytes read, report)`` is called every 10,000 records."""
    report = Report()
    archive, member = open_export(file)
    raw: Any = getattr(archive, "fp", None)

    def tick() -> None:
        if progress is not None:
            progress(raw.tell() if raw is not None and hasattr(raw, "tell") else 0, report)

    detail: dict[str, Any] = {}
    try:
        with member:
            def feed() -> Iterator[Reading]:
                yield from readings(member, report, tick)
                detail.update(report.audit_detail())

            up = service.record(ctx, key, SOURCE, feed(), event="measures.import", detail=detail)
    except ET.ParseError:
        raise FhirError(422, "invalid", "The export.xml in this zip is not well-formed XML (is the export complete?)",
                        "export.xml") from None
    finally:
        archive.close()
    report.readings, report.stored, report.duplicates = up.received, up.stored_total, up.duplicates
    return report


def import_as_patient(services: Services, dossier_or_ins: str, path: str,
                      progress: Callable[[int, Report], None] | None = None) -> Report:
    """``carnet ingest measurements``: the operator imports a patient's export for them; the import acts as the
    patient (the policy's patient-side rule), its audit record names the command as the client."""
    def actor(conn: Connection) -> Actor:
        try:
            q = select(dossier.c.ins).where(dossier.c.dossier_key == uuid.UUID(dossier_or_ins))
        except ValueError:
            q = select(dossier.c.ins).where(dossier.c.ins == dossier_or_ins)
        ins = conn.execute(q).scalar()
        if ins is None:
            raise FhirError(404, "not-found", "No dossier for this INS or dossier key")
        return Actor(ActorKind.PATIENT, id=str(ins), client_id="carnet-cli:ingest-measurements")

    def work(ctx: Context) -> Report:
        key = dossiers.lookup(ctx, str(ctx.actor.id))
        if key is None:
            raise FhirError(404, "not-found", "No dossier for this INS or dossier key")
        return import_export(ctx, key, path, progress)

    return run(services, actor, work)
