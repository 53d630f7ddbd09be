"""How long a backup and a restore take, and how large a backup is, for N documents (docs/OPERATIONS.md).

Fills a fresh PostgreSQL database through Carnet's own services (``load.fill``: real dossiers, sealed documents of
20 KiB, audit chains), then runs ``carnet.backup.create`` (what ``carnet backup create`` runs) into a new directory,
and ``carnet.backup.restore`` into a second fresh database and an empty var directory.

    python benchmarks/backup.py --dossiers 200 --documents 5000
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from load import fill, fresh_database, make_services

from carnet.backup import create, restore, summary
from carnet.config import Settings
from carnet.db.engine import make_engine
from carnet.db.migrate import upgrade


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dossiers", type=int, default=200)
    p.add_argument("--documents", type=int, default=5000)
    p.add_argument("--processes", type=int, default=2)
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="carnet-backup-bench-"))
    try:
        url = fresh_database("carnet_bench_backup")
        upgrade(url)
        var = root / "old"
        filled = fill(url, var, "http://127.0.0.1:8000", args.dossiers, args.documents, args.processes)
        services = make_services(url, var, "http://127.0.0.1:8000")
        t0 = time.perf_counter()
        made = create(services.settings, services.engine, services.keyring, services.blobs, root / "backup")
        backup_s = time.perf_counter() - t0
        services.engine.dispose()
        url2 = fresh_database("carnet_bench_restore")
        settings = Settings(var_dir=root / "new", database_url=url2)
        settings.ensure_var()
        engine = make_engine(url2, pool_size=1)
        t0 = time.perf_counter()
        restored = restore(settings, engine, root / "backup")
        restore_s = time.perf_counter() - t0
        engine.dispose()
        out = {"filled": filled, "backup": {**summary(made), "seconds": round(backup_s, 1)},
               "restore": {**summary(restored), "seconds": round(restore_s, 1),
                           "audit_problems": restored.audit_problems}}
        print(json.dumps(out, indent=1))
        print(f"| {made.documents} | {made.total_bytes / 1e6:.1f} MB | {backup_s:.1f} s | {restore_s:.1f} s |")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
