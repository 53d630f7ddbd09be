"""Benchmark of ``carnet ingest claims``: lines per second into PostgreSQL, first ingest and re-ingest.

1. Recreates the database ``carnet_bench_claims`` on the local PostgreSQL (or uses ``--database-url``, migrated, not
   dropped) and creates ``--dossiers`` dossiers with synthetic NIRs (``fake_nir_for``). The dossiers are written
   with plain INSERTs (dossier + ins_lookup rows), not through the services: only the ingest is measured.
2. Writes a synthetic claims file of ``--lines`` lines spread over the dossiers (grouped by patient; CCAM acts, NGAP
   consultations and CIP13 drugs out of 4,000 codes, dates within the last 23 months, a prescriber on half the lines).
3. Times ``carnet.claims.ingest.ingest`` on the file (the same function as the command, without the progress bar),
   twice: the first ingest inserts every line, the second finds them all present. Then checks the audit chains.
   The machine's 1-minute load average is printed before and after each run: other work on the cores shows there.

    .venv/bin/python benchmarks/claims.py --lines 1000000 --dossiers 50000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from carnet.audit.log import verify_chain  # noqa: E402
from carnet.claims.ingest import HEADER, ingest  # noqa: E402
from carnet.compose import build_services  # noqa: E402
from carnet.config import Settings  # noqa: E402
from carnet.context import Services  # noqa: E402
from carnet.db.engine import make_engine  # noqa: E402
from carnet.db.migrate import upgrade  # noqa: E402
from carnet.db.tables import audit_chain, claim_line, dossier, ins_lookup  # noqa: E402
from carnet.identity.ins import INS_SYSTEM_TEST, fake_nir_for  # noqa: E402
from carnet.identity.professionals import fake_rpps  # noqa: E402
from carnet.ids import new_id  # noqa: E402

# The tests' PostgreSQL server (CARNET_TEST_DATABASE_URL) when it is set.
ADMIN_URL = os.environ.get("CARNET_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres").replace(
    "postgresql://", "postgresql+psycopg://", 1)
CCAM = ["QZFA001", "YYYY010", "HBJD001", "DEQP003", "ZBQK002", "LAQK012"]
NGAP = ["C", "G", "AMI 1.5", "AMI 4", "APC", "CS"]


def cip13(i: int) -> str:
    base = f"34009{i % 10_000_000:07d}"
    total = sum(int(c) * (3 if k % 2 else 1) for k, c in enumerate(base))
    return base + str((10 - total % 10) % 10)


def fresh_database() -> str:
    eng = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text('DROP DATABASE IF EXISTS "carnet_bench_claims" WITH (FORCE)'))
        conn.execute(text('CREATE DATABASE "carnet_bench_claims"'))
    eng.dispose()
    return make_url(ADMIN_URL).set(database="carnet_bench_claims").render_as_string(hide_password=False)


def create_dossiers(services: Services, n: int) -> list[str]:
    now = dt.datetime.now(dt.UTC)
    nirs = [fake_nir_for(i) for i in range(n)]
    with services.engine.begin() as conn:
        for start in range(0, n, 5000):
            rows, lookups = [], []
            for nir in nirs[start:start + 5000]:
                key = new_id()
                rows.append({"dossier_key": key, "status": "active", "ins_system": INS_SYSTEM_TEST, "ins": nir,
                             "family": "Bench", "given": "Claims", "birth_date": dt.date(1970, 1, 1),
                             "gender": "female", "birthplace": "75056", "is_protected_adult": False,
                             "objects_break_glass": False, "objects_regulation": False, "created_at": now,
                             "created_by": "bench", "creation_channel": "counter", "version": 1,
                             "last_updated": now, "resource": "{}"})
                lookups.append({"ins": nir, "dossier_key": key})
            conn.execute(insert(dossier), rows)
            conn.execute(insert(ins_lookup), lookups)
    return nirs


def write_file(path: Path, nirs: list[str], lines: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    today = dt.date.today()
    prescribers = [fake_rpps(i) for i in range(1, 200)]
    with path.open("w", encoding="utf-8") as f:
        f.write(";".join(HEADER) + "\n")
        for i in range(lines):
            nir = nirs[i * len(nirs) // lines]  # grouped by patient, as an extract by beneficiary is
            day = (today - dt.timedelta(days=rng.randrange(0, 690))).isoformat()
            r = i % 3
            if r == 0:
                row = (nir, day, "act", "CCAM", CCAM[i % len(CCAM)], "Acte technique", "",
                       f"{rng.randrange(500, 20000) / 100:.2f}")
            elif r == 1:
                row = (nir, day, "consultation", "NGAP", NGAP[i % len(NGAP)], "Consultation",
                       prescribers[i % len(prescribers)], "26,50")
            else:
                row = (nir, day, "drug", "CIP13", cip13(i % 4000), "Médicament remboursé",
                       prescribers[i % len(prescribers)],
                       f"{rng.randrange(100, 5000) / 100:.2f}")
            f.write(";".join(row) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lines", type=int, default=1_000_000)
    p.add_argument("--dossiers", type=int, default=50_000)
    p.add_argument("--batch", type=int, default=20_000)
    p.add_argument("--database-url", default=None)
    p.add_argument("--output", default=None, help="write the figures as JSON here")
    a = p.parse_args()
    url = a.database_url or fresh_database()
    upgrade(url)
    var = Path(tempfile.mkdtemp(prefix="carnet-bench-claims-"))
    os.environ.pop("CARNET_MASTER_KEY", None)
    services = build_services(Settings(var_dir=var, database_url=url), make_engine(url))
    t = time.perf_counter()
    nirs = create_dossiers(services, a.dossiers)
    print(f"{a.dossiers} dossiers created in {time.perf_counter() - t:.1f} s")
    path = var / "claims.csv"
    write_file(path, nirs, a.lines)
    size = path.stat().st_size
    print(f"claims file: {a.lines} lines, {size / 1e6:.1f} MB")
    figures = {}
    for run_name in ("first", "again"):
        load_before = os.getloadavg()[0]
        with path.open("rb") as f:
            s = ingest(services, f, batch=a.batch)
        load = (round(load_before, 2), round(os.getloadavg()[0], 2))  # 1-minute load average before and after
        figures[run_name] = {"read": s.read, "inserted": s.inserted, "duplicates": s.duplicates, "bad": s.bad,
                             "unknown": s.unknown, "too_old": s.too_old, "seconds": round(s.seconds, 2),
                             "lines_per_s": round(s.rate), "load_average": load}
        print(f"{run_name:>5}: {s.read} read, {s.inserted} inserted, {s.duplicates} duplicates, {s.bad} bad, "
              f"{s.too_old} too old, {s.unknown} unknown in {s.seconds:.2f} s = {s.rate:,.0f} lines/s "
              f"(load average {load[0]:.2f} before, {load[1]:.2f} after)")
    with services.engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(claim_line)).scalar_one()
        keys = list(conn.execute(select(audit_chain.c.dossier_key).limit(200)).scalars())
        problems = sum(len(verify_chain(conn, k)) for k in keys)
    print(f"claim_line rows: {rows}; audit chains checked: {len(keys)}, problems: {problems}")
    if a.output:
        Path(a.output).write_text(json.dumps({"lines": a.lines, "dossiers": a.dossiers, "batch": a.batch,
                                              "bytes": size, **figures}, indent=2))
    services.engine.dispose()


if __name__ == "__main__":
    main()
