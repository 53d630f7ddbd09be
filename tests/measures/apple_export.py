"""A synthetic Apple Health ``export.zip``, written as a stream (the test never holds it whole either): the shape of a
real export (the DOCTYPE, ``Me``, ``Record`` elements of many types, blood pressure as two Records and their
Correlation), with readings every 5 minutes like a continuous glucose monitor."""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE HealthData [
<!ELEMENT HealthData (ExportDate,Me,(Record|Correlation|Workout)*)>
<!ATTLIST HealthData locale CDATA #REQUIRED>
]>
<HealthData locale="fr_FR">
 <ExportDate value="2026-11-30 10:00:00 +0100"/>
 <Me HKCharacteristicTypeIdentifierDateOfBirth="1970-01-01"/>
"""
T0 = dt.datetime(2026, 1, 1, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))


def _t(i: int) -> str:
    return (T0 + dt.timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S %z")


def record(kind: str, unit: str, value: str, when: str, source: str = "Dexcom G7") -> str:
    return (f' <Record type="HKQuantityTypeIdentifier{kind}" sourceName="{source}" sourceVersion="1.0" '
            f'unit="{unit}" creationDate="{when}" startDate="{when}" endDate="{when}" value="{value}"/>\n')


def write_export(path: Path, glucose: int, extra: bool = True) -> dict[str, int]:
    """``glucose`` CGM readings (mg/dL and mmol/L alternately), and if ``extra`` one in 100 a weight, a blood
    pressure (two Records and their Correlation), a heart rate, an SpO2 fraction, an energy record (a type not
    kept), a bad value and a bad date. Returns what the export holds, by kind."""
    counts = {"glucose": 0, "weight": 0, "blood-pressure": 0, "heart-rate": 0, "spo2": 0, "skipped": 0, "bad": 0}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z, \
            z.open("apple_health_export/export.xml", "w") as out:
        out.write(HEAD.encode())
        for i in range(glucose):
            when = _t(i)
            unit, value = ("mg/dL", str(90 + i % 50)) if i % 2 else ("mmol&lt;180.1558800000541&gt;/L", "6.1")
            chunk = [record("BloodGlucose", unit, value, when)]
            counts["glucose"] += 1
            if extra and i % 100 == 0:
                bp = (record("BloodPressureSystolic", "mmHg", "128", when, "Withings")
                      + record("BloodPressureDiastolic", "mmHg", "82", when, "Withings"))
                chunk += [record("BodyMass", "kg", "81.4", when, "Withings"), bp,
                          f' <Correlation type="HKCorrelationTypeIdentifierBloodPressure" sourceName="Withings" '
                          f'startDate="{when}" endDate="{when}">\n{bp} </Correlation>\n',
                          record("HeartRate", "count/min", "64", when, "Apple Watch"),
                          record("OxygenSaturation", "%", "0.97", when, "Apple Watch"),
                          record("ActiveEnergyBurned", "kcal", "12", when, "Apple Watch"),
                          record("HeartRate", "count/min", "900", when, "Apple Watch"),
                          record("BodyMass", "kg", "80", "yesterday", "Withings")]
                for k in ("weight", "blood-pressure", "heart-rate", "spo2", "skipped"):
                    counts[k] += 1
                counts["bad"] += 2
            out.write("".join(chunk).encode())
        out.write(b"</HealthData>\n")
    return counts
