"""The limits ``load.py`` measures Carnet's hot requests against (issue 11), and the CPU each side spends.

**The raw database limits.** What a plain client does that needs the least work for the same durable effect, on the
same database, with the same concurrency and row sizes as Carnet's phases (psycopg 3 in asyncio, the statements
prepared on the server, one connection per client, the clients spread over ``processes`` processes):

* ``raw-read``: in one transaction, the 10 rows of a random dossier's documents selected by the indexed dossier key,
  and one audit row inserted (the same columns as ``audit``, its own table ``bench_raw_audit`` so that the dossiers'
  hash chains are left alone); then COMMIT. What a search or a retrieve must do at the least: read, leave a trace,
  commit (fsync'd: ``synchronous_commit`` is the server's, on by default).
* ``raw-write``: in one transaction, one row of 20 KiB of JSONB (``bench_raw_document``, incompressible content, as a
  20 KiB document) and one audit row; then COMMIT. What a publish must do at the least.

No request's commit is grouped with another's by the client: each transaction commits on its own (PostgreSQL itself
may flush several commits' WAL in one fsync, as it does for Carnet's).

**CPU per request.** :class:`CpuMeter` reads ``utime + stime`` from ``/proc/<pid>/stat`` before and after a measured
window for Carnet's server processes (each ``carnet serve`` and its workers) and for PostgreSQL: the backends
connected to the benchmark's database (``pg_stat_activity``); and the WAL writer, checkpointer and background writer,
which serve every database of the server, counted apart (``postgres_aux_cpu_s``: other jobs on a shared
machine add to those three).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import multiprocessing as mp
import os
import random
import resource
import time
import uuid
from pathlib import Path
from typing import Any

TICKS = os.sysconf("SC_CLK_TCK")
PG_AUX = ("walwriter", "checkpointer", "background writer")

SETUP = [
    "CREATE TABLE IF NOT EXISTS bench_raw_audit (LIKE audit INCLUDING DEFAULTS INCLUDING INDEXES)",
    "CREATE TABLE IF NOT EXISTS bench_raw_document (dossier_key uuid NOT NULL, document_id uuid NOT NULL, "
    "resource jsonb NOT NULL, PRIMARY KEY (dossier_key, document_id))",
    "TRUNCATE bench_raw_audit, bench_raw_document",
]
SELECT_DOCS = "SELECT document_id, resource FROM document WHERE dossier_key = %s LIMIT 20"
INSERT_AUDIT = ("INSERT INTO bench_raw_audit (dossier_key, seq, event_id, recorded, action, event, outcome, actor_kind,"
                " actor_id, actor_name, organisation_id, client_id, mode, reason, entity_type, entity_id, detail, "
                "prev_hash, hash) VALUES (%s, %s, %s, now(), %s, %s, '0', 'professional', %s, 'Bench Doctor', NULL, "
                "'carnet-bench', 'normal', NULL, 'DocumentReference', %s, %s, %s, %s)")
INSERT_DOC = "INSERT INTO bench_raw_document (dossier_key, document_id, resource) VALUES (%s, %s, %s)"


def raw_document(size: int) -> str:
    """A JSONB document of about ``size`` bytes, incompressible (random base64), like a 20 KiB document."""
    head = {"resourceType": "DocumentReference", "status": "current", "data": ""}
    filler = base64.b64encode(os.urandom(size * 3 // 4)).decode()[: size - len(json.dumps(head))]
    return json.dumps({**head, "data": filler})


def prepare(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        for stmt in SETUP:
            conn.execute(stmt)


async def _clients(dsn: str, kind: str, dossier_ids: list[str], connections: int, duration: float, warmup: float,
                   doc_bytes: int, seq0: int) -> dict[str, Any]:
    import psycopg

    conns = [await psycopg.AsyncConnection.connect(dsn, prepare_threshold=0) for _ in range(connections)]
    keys = [uuid.UUID(d) for d in dossier_ids]
    seq = itertools.count(seq0)
    body = raw_document(doc_bytes) if kind == "raw-write" else ""
    latencies: list[float] = []
    stop_at = 0.0
    record = False

    async def client(conn: Any) -> None:
        prev = "0" * 64
        while time.perf_counter() < stop_at:
            key = random.choice(keys)
            entity = uuid.uuid4()
            h = hashlib.sha256(f"{prev}:{entity}".encode()).hexdigest()
            t = time.perf_counter()
            if kind == "raw-read":
                cur = await conn.execute(SELECT_DOCS, (key,))
                await cur.fetchall()
            else:
                await conn.execute(INSERT_DOC, (key, entity, body))
            await conn.execute(INSERT_AUDIT, (key, next(seq), uuid.uuid4(), "R" if kind == "raw-read" else "C",
                                              "ITI-67" if kind == "raw-read" else "ITI-105", "8bench",
                                              str(entity), json.dumps({"returned": 10}), prev, h))
            await conn.commit()
            prev = h
            if record:
                latencies.append(time.perf_counter() - t)

    try:
        stop_at = time.perf_counter() + warmup
        await asyncio.gather(*(client(c) for c in conns))
        record = True
        backends = [c.info.backend_pid for c in conns]
        pg0 = [cpu_seconds(p) or 0.0 for p in backends]
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        stop_at = t0 + duration
        await asyncio.gather(*(client(c) for c in conns))
        elapsed = time.perf_counter() - t0
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        pg1 = [cpu_seconds(p) or 0.0 for p in backends]
    finally:
        for c in conns:
            await c.close()
    return {"latencies": latencies, "seconds": elapsed, "backend_cpu_s": sum(pg1) - sum(pg0),
            "client_cpu_s": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)}


def _client_process(dsn: str, kind: str, dossier_ids: list[str], connections: int, duration: float, warmup: float,
                    doc_bytes: int, seq0: int, start_at: float) -> dict[str, Any]:
    time.sleep(max(0.0, start_at - time.time()))  # every process begins its warm-up together
    return asyncio.run(_clients(dsn, kind, dossier_ids, connections, duration, warmup, doc_bytes, seq0))


def raw_phase(kind: str, dsn: str, dossier_ids: list[str], concurrency: int, duration: float, doc_bytes: int,
              processes: int, meter: CpuMeter) -> dict[str, Any]:
    """``concurrency`` connections doing ``kind`` (``raw-read`` or ``raw-write``) for ``duration`` s after a 2 s
    warm-up, spread over ``processes`` processes; the result as ``load.py``'s phases give theirs."""
    processes = max(1, min(processes, concurrency))
    per = [concurrency * (k + 1) // processes - concurrency * k // processes for k in range(processes)]
    warmup = min(2.0, duration / 5)
    start_at = time.time() + 1.5
    prepare(dsn)  # empty tables for each phase
    jobs = [(dsn, kind, dossier_ids, n, duration, warmup, doc_bytes, k * 10**8 + 1, start_at)
            for k, n in enumerate(per)]
    load0 = os.getloadavg()[0]
    with mp.get_context("spawn").Pool(processes) as pool:
        pending = pool.starmap_async(_client_process, jobs)
        time.sleep(max(0.0, start_at + warmup - time.time()))
        meter.start()
        results = pending.get()
        cpu = meter.stop()
    load1 = os.getloadavg()[0]
    lat = sorted(x for r in results for x in r["latencies"])
    seconds = max(r["seconds"] for r in results)
    client_cpu = sum(r["client_cpu_s"] for r in results)
    # the clients' backends are gone by now: each client read its own backends' CPU; the meter adds the WAL writer,
    # checkpointer and background writer
    cpu["postgres"] = round(cpu["postgres"] + sum(r["backend_cpu_s"] for r in results), 3)
    ok = len(lat)
    out = {"operation": kind, "ok": ok, "errors": 0, "seconds": round(seconds, 2),
           "throughput_per_s": round(ok / seconds, 1), **latency_summary(lat), "client_processes": processes,
           "client_cpu_ms_per_request": round(client_cpu * 1000 / ok, 3) if ok else None,
           "load_average_1m": [load0, load1], **per_request(cpu, ok)}
    print(f"{kind}: {out['throughput_per_s']}/s, p50 {out['p50_ms']} ms, p99 {out['p99_ms']} ms; CPU per request: "
          f"client {out['client_cpu_ms_per_request']} ms, PostgreSQL {out['postgres_cpu_ms_per_request']} ms",
          flush=True)
    return out


def latency_summary(lat: list[float]) -> dict[str, float | None]:
    def pct(q: float) -> float | None:
        if not lat:
            return None
        return round(lat[min(len(lat) - 1, max(0, int(round(q / 100 * len(lat) + 0.5)) - 1))] * 1000, 1)

    return {"p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99)}


# --- CPU ----------------------------------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process, in seconds (None once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS  # fields 14 and 15 of stat(5), counted after "(comm)"


def descendants(roots: list[int]) -> list[int]:
    """``roots`` and every process below them."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


class CpuMeter:
    """CPU seconds spent between :meth:`start` and :meth:`stop` by the server processes (``server_roots`` and their
    descendants; none for a raw phase) and by PostgreSQL (see the module docstring)."""

    def __init__(self, dsn: str, database: str, server_roots: list[int] | None = None) -> None:
        self.dsn, self.database, self.server_roots = dsn, database, server_roots or []
        self._t0: dict[str, dict[int, float]] = {}

    def _pg_pids(self) -> tuple[list[int], list[int]]:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            me = conn.info.backend_pid
            rows = conn.execute("SELECT pid, backend_type = ANY(%s) FROM pg_stat_activity WHERE (datname = %s "
                                "AND pid <> %s) OR backend_type = ANY(%s)",
                                (list(PG_AUX), self.database, me, list(PG_AUX))).fetchall()
        return [int(r[0]) for r in rows if not r[1]], [int(r[0]) for r in rows if r[1]]

    def _snapshot(self) -> dict[str, dict[int, float]]:
        backends, aux = self._pg_pids()
        groups = {"server": descendants(self.server_roots) if self.server_roots else [], "postgres": backends,
                  "postgres_aux": aux}
        return {g: {p: c for p in pids if (c := cpu_seconds(p)) is not None} for g, pids in groups.items()}

    def start(self) -> None:
        self._t0 = self._snapshot()

    def stop(self) -> dict[str, float]:
        t1 = self._snapshot()
        # a process that started during the window counts from zero; one that ended is lost (the pools keep theirs)
        return {g: round(sum(c - self._t0.get(g, {}).get(p, 0.0) for p, c in t1[g].items()), 3) for g in t1}


def per_request(cpu: dict[str, float], ok: int) -> dict[str, Any]:
    return {"server_cpu_s": cpu.get("server"), "postgres_cpu_s": cpu.get("postgres"),
            "postgres_aux_cpu_s": cpu.get("postgres_aux"),
            "server_cpu_ms_per_request": round(cpu["server"] * 1000 / ok, 3) if ok and cpu.get("server") else None,
            "postgres_cpu_ms_per_request": round(cpu["postgres"] * 1000 / ok, 3) if ok else None}


LIMIT_OF = {"ITI-67": "raw-read", "ITI-68": "raw-read", "ITI-105": "raw-write", "ITI-65": "raw-write"}
GOAL = {"raw-read": 0.40, "raw-write": 0.25}


def ratio_table(results: list[dict[str, Any]], limits: dict[str, dict[str, Any]]) -> str:
    """Markdown: each Carnet operation beside its limit, the ratio, and the CPU per request of each side."""
    lines = ["| operation | ok/s | p50 ms | p99 ms | limit | limit ok/s | ÷ limit (goal) | Carnet CPU ms/req "
             "| PostgreSQL CPU ms/req (Carnet / limit) | limit client CPU ms/req |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in results:
        lim = limits.get(LIMIT_OF.get(r["operation"], ""))
        if lim is None:
            continue
        ratio = round(r["throughput_per_s"] / lim["throughput_per_s"], 3) if lim["throughput_per_s"] else None
        r["limit"], r["ratio_to_limit"] = lim["operation"], ratio
        name = f"{r['operation']} ({r['code']})" if r.get("code") else r["operation"]
        lines.append(f"| {name} | {r['throughput_per_s']} | {r['p50_ms']} | {r['p99_ms']} "
                     f"| {lim['operation']} | {lim['throughput_per_s']} | **{ratio}** ({GOAL[lim['operation']]}) "
                     f"| {r.get('server_cpu_ms_per_request')} | {r.get('postgres_cpu_ms_per_request')} / "
                     f"{lim['postgres_cpu_ms_per_request']} | {lim['client_cpu_ms_per_request']} |")
    return "\n".join(lines)
