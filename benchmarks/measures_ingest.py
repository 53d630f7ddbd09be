"""Benchmark of the measurements' bulk path (issue 17 §1): readings per second into PostgreSQL.

1. Recreates the database ``carnet_bench_measures`` on the local PostgreSQL (or uses ``--database-url``, migrated,
   not dropped) and creates ``--dossiers`` dossiers with plain INSERTs (only the ingest is measured).
2. For each dossier, ``--readings`` continuous glucose monitor readings (one every 5 minutes: 105,000 is a year) are
   made in memory as checked readings (:func:`carnet.measures.service.reading`, mmol/L and mg/dL alternately).
3. Times :func:`carnet.measures.service.record` — the path the FHIR upload and the Apple Health import use: one
   transaction per dossier as the patient, the policy's decision, batches of 20,000 by binary COPY into a temporary
   table then one INSERT … SELECT … ON CONFLICT DO NOTHING, the series and source rows, one audit record — twice:
   first every reading is new, then every one is a duplicate. Then the Apple Health import of a synthetic export
   (``--apple`` records; parse + check + insert) into a fresh dossier.
   The machine's 1-minute load average is printed before and after each run: other work on the cores shows there.

    .venv/bin/python benchmarks/measures_ingest.py --dossiers 4 --readings 105000 --apple 200000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.measures.apple_export import write_export  # noqa: E402

from carnet.access.actors import Actor, ActorKind  # noqa: E402
from carnet.compose import build_services  # noqa: E402
from carnet.config import Settings  # noqa: E402
from carnet.context import Services, run  # noqa: E402
from carnet.db.engine import make_engine  # noqa: E402
from carnet.db.migrate import upgrade  # noqa: E402
from carnet.db.tables import dossier, ins_lookup  # noqa: E402
from carnet.identity.ins import INS_SYSTEM_TEST, fake_nir_for  # noqa: E402
from carnet.ids import new_id  # noqa: E402
from carnet.measures import apple  # noqa: E402
from carnet.measures import service as measures  # noqa: E402
from carnet.measures.catalogue import Measure  # noqa: E402

ADMIN_URL = os.environ.get("CARNET_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres").replace(
    "postgresql://", "postgresql+psycopg://", 1)
T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
CGM = measures.SourceRef("device", "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680|BENCH-CGM", "Bench CGM")


def fresh_database() -> str:
    eng = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text('DROP DATABASE IF EXISTS "carnet_bench_measures" WITH (FORCE)'))
        conn.execute(text('CREATE DATABASE "carnet_bench_measures"'))
    eng.dispose()
    return make_url(ADMIN_URL).set(database="carnet_bench_measures").render_as_string(hide_password=False)


def create_dossiers(services: Services, n: int, first: int = 0) -> list[tuple[str, object]]:
    now = dt.datetime.now(dt.UTC)
    out = []
    with services.engine.begin() as conn:
        for i in range(first, first + n):
            nir, key = fake_nir_for(900_000 + i), new_id()
            conn.execute(insert(dossier).values(
                dossier_key=key, status="active", ins_system=INS_SYSTEM_TEST, ins=nir, family="Bench",
                given="Measures", birth_date=dt.date(1970, 1, 1), gender="female", birthplace="75056",
                is_protected_adult=False, objects_break_glass=False, objects_regulation=False, created_at=now,
                created_by="bench", creation_channel="counter", version=1, last_updated=now, resource="{}"))
            conn.execute(insert(ins_lookup).values(ins=nir, dossier_key=key))
            out.append((nir, key))
    return out


def cgm(n: int) -> list[measures.Reading]:
    return [measures.reading(Measure.GLUCOSE, T0 + dt.timedelta(minutes=5 * i),
                             (5.0 + (i % 40) / 10) if i % 2 else 90 + i % 60, "mmol/L" if i % 2 else "mg/dL")
            for i in range(n)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dossiers", type=int, default=4)
    p.add_argument("--readings", type=int, default=105_000)
    p.add_argument("--apple", type=int, default=200_000)
    p.add_argument("--database-url", default=None)
    p.add_argument("--output", default=None, help="write the figures as JSON here")
    a = p.parse_args()
    url = a.database_url or fresh_database()
    upgrade(url)
    var = Path(tempfile.mkdtemp(prefix="carnet-bench-measures-"))
    os.environ.pop("CARNET_MASTER_KEY", None)
    services = build_services(Settings(var_dir=var, database_url=url), make_engine(url))
    people = create_dossiers(services, a.dossiers)
    readings = cgm(a.readings)
    figures: dict[str, object] = {"readings_per_dossier": a.readings, "dossiers": a.dossiers}
    for name in ("first", "again"):
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        stored = dupes = 0
        for nir, key in people:
            up = run(services, Actor(ActorKind.PATIENT, id=nir),
                     lambda ctx, k=key: measures.record(ctx, k, CGM, readings))  # type: ignore[misc]
            stored, dupes = stored + up.stored_total, dupes + up.duplicates
        seconds = time.perf_counter() - started
        total = a.readings * a.dossiers
        figures[name] = {"readings": total, "stored": stored, "duplicates": dupes, "seconds": round(seconds, 2),
                         "readings_per_s": round(total / seconds),
                         "load_average": (round(load_before, 2), round(os.getloadavg()[0], 2))}
        print(f"{name:>5}: {total} readings ({stored} stored, {dupes} duplicates) in {seconds:.2f} s = "
              f"{total / seconds:,.0f} readings/s; load {figures[name]['load_average']}")  # type: ignore[index]
    if a.apple:
        path = var / "export.zip"
        write_export(path, a.apple)
        nir, key = create_dossiers(services, 1, first=a.dossiers)[0]
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        report = run(services, Actor(ActorKind.PATIENT, id=nir),
                     lambda ctx: apple.import_export(ctx, key, str(path)))  # type: ignore[arg-type]
        seconds = time.perf_counter() - started
        figures["apple"] = {"records": report.records, "stored": report.stored, "bad": report.bad,
                            "seconds": round(seconds, 2), "records_per_s": round(report.records / seconds),
                            "zip_mb": round(path.stat().st_size / 1e6, 1),
                            "load_average": (round(load_before, 2), round(os.getloadavg()[0], 2))}
        print(f"apple: {report.records} records ({report.stored} stored, {report.bad} bad) in {seconds:.2f} s = "
              f"{report.records / seconds:,.0f} records/s")
    if a.output:
        Path(a.output).write_text(json.dumps(figures, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
