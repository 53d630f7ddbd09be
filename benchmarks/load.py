"""Carnet load benchmark: fill PostgreSQL through Carnet's own services, then measure the MHD API over HTTP.

Fill phase (in-process, several processes): every dossier is created with ``dossiers.create`` and every document is
published with ``documents.publish`` inside ``carnet.context.run``, exactly as the API does: contents are sealed and
written to the blob store of the var dir, metadata rows and audit hash chains are real.

Measure phase: ``carnet serve`` (uvicorn, ``--workers``) runs as a subprocess on 127.0.0.1 against the same database
and var dir; ``--concurrency`` asyncio clients (httpx) drive each operation for ``--duration`` seconds:

* ITI-105 Simplified Publish (``POST /fhir/DocumentReference``, one 20 KiB PDF-like document inline),
* ITI-65 Provide Document Bundle (``POST /fhir``, a transaction with one SubmissionSet, one DocumentReference and
  one 20 KiB Binary),
* ITI-67 Find Document References by patient (``GET /fhir/DocumentReference?patient=<id>&_count=20``),
* ITI-68 Retrieve Document (``GET /fhir/Binary/<id>``).

Each operation is measured on every configuration of ``--blob-stores`` (``local`` files or ``s3``) and ``--nodes``
(N ``carnet serve`` nodes of ``--workers``/N processes each, the clients spread over them in turn), in one run against
the same database; the table gives each configuration's rate against the first one's. The nodes and the S3 server are
started by ``cluster.py``. The load generator runs on the same machine as the server (and PostgreSQL): its CPU use is
reported.

    python benchmarks/load.py --dossiers 10000 --documents 100000 --concurrency 16 --duration 20
    python benchmarks/load.py --dossiers 1000 --documents 10000 --duration 10 --blob-stores local,s3 --nodes 1,2
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from cluster import S3, Cluster, start_cluster
from limits import CpuMeter, per_request, ratio_table, raw_phase

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# The PostgreSQL server the benchmark databases are made on: the tests' CARNET_TEST_DATABASE_URL when it is set.
PG_ADMIN = os.environ.get("CARNET_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres").replace(
    "postgresql://", "postgresql+psycopg://", 1)
BENCH_DB = "carnet_bench"
DOC_BYTES = 20 * 1024
INS_OFFSET = 5_000_000  # synthetic NIR indexes used by the benchmark's patients
PRO_INDEX = 9_000_001  # synthetic RPPS index of the benchmark's professional
CLIENT_ID = "carnet-bench"


# --- data ------------------------------------------------------------------------------------------------------------

def in_processes(worker: Any, jobs: list[tuple[Any, ...]]) -> list[Any]:
    """``worker(*job)`` for each job, one spawned process per job (in this process when there is one job)."""
    if len(jobs) == 1:
        return [worker(*jobs[0])]
    with mp.get_context("spawn").Pool(len(jobs)) as pool:
        return pool.starmap(worker, jobs)

def pdf_bytes(tag: str, size: int = DOC_BYTES) -> bytes:
    """A PDF-like payload of ``size`` bytes: a PDF header, a unique tag, incompressible filler, a trailer."""
    head = f"%PDF-1.4\n% Carnet benchmark {tag}\n1 0 obj << /Type /Catalog >> endobj\nstream\n".encode()
    tail = b"\nendstream\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    return head + os.urandom(size - len(head) - len(tail)) + tail


def docref(master: str, *, subject: str | None = None, data: bytes | None = None,
           url: str | None = None) -> dict[str, Any]:
    att: dict[str, Any] = {"contentType": "application/pdf", "title": "Compte rendu de consultation",
                           "language": "fr-FR"}
    if data is not None:
        att["data"] = base64.b64encode(data).decode()
    if url is not None:
        att["url"] = url
    res: dict[str, Any] = {"resourceType": "DocumentReference", "status": "current",
                           "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": master},
                           "type": {"coding": [{"system": "http://loinc.org", "code": "11488-4"}]},
                           "content": [{"attachment": att}]}
    if subject:
        res["subject"] = {"reference": subject}
    return res


def patient_resource(index: int) -> dict[str, Any]:
    from carnet.dossier import service as dossiers
    from carnet.identity.ins import OID_DEMO, fake_nir_for

    rnd = random.Random(index)
    return {"resourceType": "Patient",
            "identifier": [{"system": f"urn:oid:{OID_DEMO}", "value": fake_nir_for(INS_OFFSET + index)}],
            "name": [{"use": "official", "family": f"Bench{index}", "given": [rnd.choice(["Alix", "Camille", "Noé"])]}],
            "birthDate": f"{rnd.randint(1930, 2005)}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}",
            "gender": rnd.choice(["female", "male"]),
            "extension": [
                {"url": dossiers.BIRTHPLACE_EXT, "valueAddress": {"extension": [
                    {"url": dossiers.INSEE_EXT, "valueCoding": {"code": "75056"}}]}},
                {"url": dossiers.EXT_CREATION_CONSENT, "valueBoolean": True}]}


def iti65_bundle(dossier_key: str, data: bytes) -> dict[str, Any]:
    list_url, doc_url, bin_url = (f"urn:uuid:{uuid.uuid4()}" for _ in range(3))
    subject = f"Patient/{dossier_key}"
    slist = {"resourceType": "List", "status": "current", "mode": "working",
             "code": {"coding": [{"system": "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes",
                                  "code": "submissionset"}]},
             "subject": {"reference": subject}, "date": "2026-01-01T10:00:00Z",
             "identifier": [{"use": "usual", "system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"}],
             "extension": [{"url": "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-sourceId",
                            "valueIdentifier": {"value": "urn:oid:1.2.250.1.999.1"}}],
             "entry": [{"item": {"reference": doc_url}}]}
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": list_url, "resource": slist, "request": {"method": "POST", "url": "List"}},
        {"fullUrl": doc_url, "resource": docref(f"urn:uuid:{uuid.uuid4()}", subject=subject, url=bin_url),
         "request": {"method": "POST", "url": "DocumentReference"}},
        {"fullUrl": bin_url, "resource": {"resourceType": "Binary", "contentType": "application/pdf",
                                          "data": base64.b64encode(data).decode()},
         "request": {"method": "POST", "url": "Binary"}}]}


# --- set-up ----------------------------------------------------------------------------------------------------------

def database_on_server(name: str) -> str:
    """The URL of the database ``name`` on :data:`PG_ADMIN`'s server."""
    from sqlalchemy.engine import make_url

    return make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)


def fresh_database(name: str = BENCH_DB) -> str:
    """Drop and create the database ``name`` on the local PostgreSQL; its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    eng = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    eng.dispose()
    return make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)


def make_services(db_url: str, var_dir: Path, base_url: str, pool_size: int = 2):  # type: ignore[no-untyped-def]
    from carnet.compose import build_services
    from carnet.config import Settings
    from carnet.db.engine import make_engine

    settings = Settings(var_dir=var_dir, database_url=db_url, base_url=base_url)
    return build_services(settings, make_engine(db_url, pool_size=pool_size))


def pro_actor():  # type: ignore[no-untyped-def]
    from carnet.access.actors import Actor, ActorKind
    from carnet.identity.professionals import fake_rpps

    return Actor(ActorKind.PROFESSIONAL, id="8" + fake_rpps(PRO_INDEX), display="Bench Doctor", profession="10")


def ensure_reference_data(services: Any) -> str:
    from carnet import admin
    from carnet.identity.professionals import fake_rpps

    with services.engine.begin() as conn:
        return admin.add_practitioner(conn, rpps=fake_rpps(PRO_INDEX), adeli=None, family="Bench", given="Doctor",
                                      profession="10", specialty="SM54")


# --- fill ------------------------------------------------------------------------------------------------------------

def _fill_worker(db_url: str, var_dir: str, base_url: str, first: int, last: int, start: int, docs_total: int,
                 dossiers_total: int) -> tuple[int, int, float]:
    """Create dossiers ``first``..``last`` (absolute indexes) and their documents; ``docs_total`` documents are spread
    evenly over the ``dossiers_total`` dossiers that begin at index ``start``."""
    from carnet.context import run
    from carnet.documents import service as documents
    from carnet.dossier import service as dossiers

    services = make_services(db_url, Path(var_dir), base_url)
    actor = pro_actor()
    made_d = made_p = 0
    t0 = time.perf_counter()
    for i in range(first, last):
        key, _ = run(services, actor, lambda ctx, i=i: dossiers.create(ctx, patient_resource(i)))  # type: ignore[misc]
        made_d += 1
        r = i - start
        n_docs = docs_total * (r + 1) // dossiers_total - docs_total * r // dossiers_total
        for j in range(n_docs):
            data = pdf_bytes(f"{i}-{j}")
            res = docref(f"urn:uuid:{uuid.uuid4()}")
            run(services, actor, lambda ctx, k=key, r=res, d=data:  # type: ignore[misc]
                documents.publish(ctx, k, r, documents.Content(d, "application/pdf"), "ITI-105"))
            made_p += 1
    services.engine.dispose()
    return made_d, made_p, time.perf_counter() - t0


def fill(db_url: str, var_dir: Path, base_url: str, n_dossiers: int, n_docs: int, procs: int) -> dict[str, Any]:
    from sqlalchemy import func, select

    from carnet.db.tables import dossier

    services = make_services(db_url, var_dir, base_url)  # creates the master key once, before the workers
    ensure_reference_data(services)
    with services.engine.connect() as conn:
        start = conn.execute(select(func.count()).select_from(dossier)).scalar() or 0
    services.engine.dispose()
    bounds = [start + n_dossiers * k // procs for k in range(procs + 1)]
    jobs = [(db_url, str(var_dir), base_url, bounds[k], bounds[k + 1], start, n_docs, n_dossiers)
            for k in range(procs)]
    print(f"fill: {n_dossiers} dossiers, {n_docs} documents of {DOC_BYTES // 1024} KiB, {procs} processes "
          f"(existing dossiers: {start})", flush=True)
    t0 = time.perf_counter()
    results = in_processes(_fill_worker, jobs)
    elapsed = time.perf_counter() - t0
    d = sum(r[0] for r in results)
    p = sum(r[1] for r in results)
    out = {"dossiers": d, "documents": p, "seconds": round(elapsed, 1), "processes": procs,
           "documents_per_s": round(p / elapsed, 1) if elapsed else None}
    print(f"fill: {d} dossiers and {p} documents in {elapsed:.1f} s ({out['documents_per_s']} documents/s)",
          flush=True)
    return out


# --- measure ---------------------------------------------------------------------------------------------------------

def register_client(services: Any) -> Any:
    from joserfc.jwk import ECKey

    from carnet import admin

    key = ECKey.generate_key("P-256", auto_kid=True)
    with services.engine.begin() as conn:
        admin.add_client(conn, client_id=CLIENT_ID, name="Carnet benchmark", kind="professional",
                         jwks={"keys": [key.as_dict(private=False)]})
    return key


async def get_token(http: Any, key: Any, public: str, professional_id: str, node: str | None = None) -> str:
    """An access token from ``node`` (default: ``public``); the assertion's audience is the public base URL."""
    from carnet.auth.assertions import make_client_assertion

    assertion = make_client_assertion(key, CLIENT_ID, f"{public}/oauth/token", int(time.time()),
                                      professional_id=professional_id)
    r = await http.post(f"{node or public}/oauth/token", data={
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion})
    r.raise_for_status()
    return str(r.json()["access_token"])


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    idx = min(len(sorted_values) - 1, max(0, int(round(q / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[idx]


async def run_phase(name: str, cluster: Cluster, key: Any, pro_id: str, concurrency: int, duration: float,
                    make_request: Any, expect: int, meter: CpuMeter) -> dict[str, Any]:
    """``concurrency`` clients for ``duration`` s; client i talks to node i mod N (a load balancer's round robin of
    connections) with a token that node issued."""
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    nodes = cluster.bases
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        tokens = [await get_token(http, key, cluster.public, pro_id, nodes[i % len(nodes)])
                  for i in range(concurrency)]
        latencies: list[float] = []
        errors: dict[str, int] = {}
        stop_at = 0.0

        async def client(i: int) -> None:
            base = nodes[i % len(nodes)]
            headers = {"Authorization": f"Bearer {tokens[i]}", "Accept": "application/fhir+json"}
            while time.perf_counter() < stop_at:
                method, url, kwargs = make_request()
                h = dict(headers, **kwargs.pop("headers", {}))
                t = time.perf_counter()
                try:
                    r = await http.request(method, f"{base}{url}", headers=h, **kwargs)
                    code = str(r.status_code)
                except httpx.HTTPError as exc:
                    code = type(exc).__name__
                dt = time.perf_counter() - t
                if code == str(expect):
                    latencies.append(dt)
                else:
                    errors[code] = errors.get(code, 0) + 1
                    if errors[code] <= 2:
                        print(f"  {name}: {code} {getattr(r, 'text', '')[:300] if code.isdigit() else ''}",
                              flush=True)

        # warm-up: a few requests per client, not recorded
        stop_at = time.perf_counter() + min(2.0, duration / 5)
        await asyncio.gather(*(client(i) for i in range(concurrency)))
        latencies.clear()
        errors.clear()
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        load0 = os.getloadavg()[0]
        meter.start()
        t0 = time.perf_counter()
        stop_at = t0 + duration
        await asyncio.gather(*(client(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - t0
        cpu = meter.stop()
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        load1 = os.getloadavg()[0]
    lat = sorted(latencies)
    gen_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    out = {"operation": name, "ok": len(lat), "errors": sum(errors.values()), "error_codes": errors,
           "seconds": round(elapsed, 2), "throughput_per_s": round(len(lat) / elapsed, 1),
           "p50_ms": round(percentile(lat, 50) * 1000, 1), "p95_ms": round(percentile(lat, 95) * 1000, 1),
           "p99_ms": round(percentile(lat, 99) * 1000, 1),
           "mean_ms": round(statistics.fmean(lat) * 1000, 1) if lat else None,
           "load_generator_cpu_cores": round(gen_cpu / elapsed, 2), "load_average_1m": [load0, load1],
           **per_request(cpu, len(lat))}
    print(f"{name}: {out['throughput_per_s']}/s ok, {out['errors']} errors, p50 {out['p50_ms']} ms, "
          f"p95 {out['p95_ms']} ms, p99 {out['p99_ms']} ms (generator used {out['load_generator_cpu_cores']} cores); "
          f"CPU per request: server {out['server_cpu_ms_per_request']} ms, PostgreSQL "
          f"{out['postgres_cpu_ms_per_request']} ms",
          flush=True)
    return out


def _wrk(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "WRK_SUMMARY": cmd[-1]})
    if proc.returncode != 0:
        raise SystemExit(f"wrk failed: {proc.stdout[-500:]} {proc.stderr[-500:]}")


def run_phase_wrk(name: str, base: str, token: str, concurrency: int, duration: float, method: str,
                  paths: list[str], body_template: str | None, path: str, meter: CpuMeter,
                  accept: str = "application/fhir+json") -> dict[str, Any]:
    """The same phase driven by wrk (Debian package ``wrk``) with ``wrk_phase.lua``: one client thread, ``concurrency``
    connections, the latency percentiles from wrk's own histogram."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        paths_file = Path(tmp) / "paths.txt"
        paths_file.write_text("\n".join(paths) + "\n")
        body_file = "-"
        if body_template is not None:
            body_file = str(Path(tmp) / "body.json")
            Path(body_file).write_text(body_template)
        out_file = Path(tmp) / "out.json"
        headers = ["-H", f"Authorization: Bearer {token}", "-H", f"Accept: {accept}"]
        if body_template is not None:
            headers += ["-H", "Content-Type: application/fhir+json"]
        script = str(Path(__file__).with_name("wrk_phase.lua"))
        warm = ["wrk", "-t1", f"-c{concurrency}", "-d2s", *headers, "-s", script, f"{base}{path}", "--",
                method, str(paths_file), body_file, str(Path(tmp) / "warm.json")]
        _wrk(warm)
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        load0 = os.getloadavg()[0]
        meter.start()
        cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{int(duration)}s", *headers, "-s", script, f"{base}{path}",
               "--", method, str(paths_file), body_file, str(out_file)]
        _wrk(cmd)
        cpu = meter.stop()
        load1 = os.getloadavg()[0]
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        res = json.loads(out_file.read_text())
    seconds = res["duration_us"] / 1e6
    errors = res["status_errors"] + res["connect"] + res["read"] + res["write"] + res["timeout"]
    ok = res["requests"] - res["status_errors"]
    gen_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    out = {"operation": name, "generator": "wrk", "ok": ok, "errors": errors, "error_codes": {
               k: res[k] for k in ("status_errors", "connect", "read", "write", "timeout") if res[k]},
           "seconds": round(seconds, 2), "throughput_per_s": round(ok / seconds, 1),
           "p50_ms": round(res["p50_us"] / 1000, 1), "p95_ms": round(res["p95_us"] / 1000, 1),
           "p99_ms": round(res["p99_us"] / 1000, 1), "mean_ms": round(res["mean_us"] / 1000, 1),
           "load_generator_cpu_cores": round(gen_cpu / seconds, 2), "load_average_1m": [load0, load1],
           **per_request(cpu, ok)}
    print(f"{name} (wrk): {out['throughput_per_s']}/s ok, {out['errors']} errors, p50 {out['p50_ms']} ms, "
          f"p95 {out['p95_ms']} ms, p99 {out['p99_ms']} ms (generator used {out['load_generator_cpu_cores']} cores); "
          f"CPU per request: server {out['server_cpu_ms_per_request']} ms, PostgreSQL "
          f"{out['postgres_cpu_ms_per_request']} ms",
          flush=True)
    return out


def measure(db_url: str, var_dir: Path, configs: list[tuple[str, int]], blob_urls: dict[str, str],
            s3_env: dict[str, str], workers: int, concurrency: int, duration: float, ops: list[str],
            generator: str = "httpx", repeat: int = 1, raw_processes: int = 2,
            compare: str | None = None) -> list[dict[str, Any]]:
    """The raw database limits first and again last (``raw-read``, ``raw-write``: :mod:`limits`; none if
    ``raw_processes`` is 0), and between them each operation on each configuration ``(blob store, nodes)`` in turn
    (a fresh cluster for each, so that every configuration of an operation sees the same data); one result per
    limit, and per operation and configuration.
    ``compare``: the ``src`` directory of another version of Carnet (one configuration only): each operation is
    measured on this checkout's code and on that one in turn, both servers running, the order alternating from one
    repeat to the next (ABBA…), so that both see the same data and, as far as can be, the same machine."""
    from sqlalchemy import select, text
    from sqlalchemy.engine import make_url

    from carnet.blobs import LocalBlobStore
    from carnet.db.tables import document, dossier

    services = make_services(db_url, var_dir, "http://127.0.0.1:8000")
    pro_id = ensure_reference_data(services)
    key = register_client(services)
    local = LocalBlobStore(var_dir / "blobs")
    with services.engine.connect() as conn:
        dossier_ids = [str(r[0]) for r in conn.execute(select(dossier.c.dossier_key))]
        # retrieves go to documents whose blob is in the local store, hence (migrated) in S3 too: not to one that an
        # earlier run published into an S3 server that is gone
        # 50,000 drawn at random: ordered by random() while the table is small; beyond, whole random pages
        # (TABLESAMPLE SYSTEM), since sorting 10^7 rows reads the whole table (minutes, and a warm cache after)
        rows = conn.execute(text("SELECT reltuples FROM pg_class WHERE relname = 'document'")).scalar() \
            if conn.dialect.name == "postgresql" else None
        if rows and rows > 500_000:
            sample = text(f"SELECT document_id, blob_key FROM document TABLESAMPLE SYSTEM "
                          f"({min(100.0, 50_000 * 150 / rows):.4f}) LIMIT 50000")
        else:
            sample = select(document.c.document_id, document.c.blob_key).order_by(text("random()")).limit(50_000)
        doc_ids = [str(r[0]) for r in conn.execute(sample) if local.exists(r[1])]
    services.engine.dispose()
    if not dossier_ids or not doc_ids:
        raise SystemExit("no data: run the fill phase first")
    print(f"measure: {len(dossier_ids)} dossiers, sampling {len(doc_ids)} documents; {workers} server processes "
          f"in all, {concurrency} clients, {duration:g} s per phase; configurations: "
          f"{', '.join(f'{s} × {n} node(s)' for s, n in configs)}", flush=True)
    payload = pdf_bytes("http")  # same bytes for every publish; each gets its own data key and blob

    def iti105() -> tuple[str, str, dict[str, Any]]:
        body = docref(f"urn:uuid:{uuid.uuid4()}", subject=f"Patient/{random.choice(dossier_ids)}", data=payload)
        return "POST", "/fhir/DocumentReference", {"content": json.dumps(body),
                                                   "headers": {"Content-Type": "application/fhir+json"}}

    def iti65() -> tuple[str, str, dict[str, Any]]:
        body = iti65_bundle(random.choice(dossier_ids), payload)
        return "POST", "/fhir", {"content": json.dumps(body), "headers": {"Content-Type": "application/fhir+json"}}

    def iti67() -> tuple[str, str, dict[str, Any]]:
        return "GET", f"/fhir/DocumentReference?patient={random.choice(dossier_ids)}&_count=20", {}

    def iti68() -> tuple[str, str, dict[str, Any]]:
        return "GET", f"/fhir/Binary/{random.choice(doc_ids)}", {"headers": {"Accept": "application/pdf"}}

    table = {"ITI-105": (iti105, 201), "ITI-65": (iti65, 200), "ITI-67": (iti67, 200), "ITI-68": (iti68, 200)}
    results: list[dict[str, Any]] = []
    dsn = db_url.replace("postgresql+psycopg://", "postgresql://", 1)
    database = make_url(db_url).database or ""
    raw_runs: dict[str, list[dict[str, Any]]] = {"raw-read": [], "raw-write": []}

    def limits() -> None:
        """The raw limits, ``repeat`` times each; measured before and after Carnet's phases (a shared machine's load
        moves), every run kept, the median reported."""
        if raw_processes:
            settle(dsn)
        for kind in raw_runs if raw_processes else ():
            print(f"{kind}: {concurrency} connections in {raw_processes} client processes", flush=True)
            raw_runs[kind].extend(raw_phase(kind, dsn, dossier_ids, concurrency, duration, DOC_BYTES, raw_processes,
                                            CpuMeter(dsn, database)) for _ in range(max(1, repeat)))

    def with_limits(measured: list[dict[str, Any]]) -> list[dict[str, Any]]:
        limits()
        out = []
        for runs in raw_runs.values():
            if not runs:
                continue
            ordered = sorted(runs, key=lambda r: r["throughput_per_s"])
            median = dict(ordered[len(ordered) // 2])
            median.update(blob_store="-", nodes=0, workers_per_node=0, ratio_to_first=None,
                          load_generator_cpu_cores=None, runs_throughput_per_s=[r["throughput_per_s"] for r in runs])
            out.append(median)
        return out + measured

    limits()
    if compare:
        return with_limits(compare_code(ops, configs[0], compare, db_url, var_dir, blob_urls, s3_env, workers,
                                        concurrency, duration, generator, repeat, key, pro_id, dossier_ids, doc_ids,
                                        payload, table, dsn, database))
    cluster: Cluster | None = None
    running: tuple[str, int] | None = None
    try:
        for op in ops:
            make, expect = table[op]
            settle(dsn)
            for store, nodes in configs:
                if running != (store, nodes):  # one configuration only: one cluster for every operation
                    if cluster is not None:
                        cluster.stop()
                    cluster = None
                    cluster = start_cluster(db_url, var_dir, nodes, workers // nodes, blob_urls[store],
                                            s3_env if store == "s3" else None)
                    running = (store, nodes)
                assert cluster is not None
                meter = CpuMeter(dsn, database, [p.pid for p in cluster.procs])
                print(f"{op} on {store}, {nodes} node(s) × {workers // nodes} processes:", flush=True)
                runs = []
                for _ in range(max(1, repeat)):
                    if generator == "wrk":
                        runs.append(wrk_phase(op, cluster, key, pro_id, concurrency, duration, dossier_ids,
                                              doc_ids, payload, meter))
                    else:
                        runs.append(asyncio.run(run_phase(op, cluster, key, pro_id, concurrency, duration, make,
                                                          expect, meter)))
                runs.sort(key=lambda r: r["throughput_per_s"])
                median = dict(runs[len(runs) // 2])
                median.update(blob_store=store, nodes=nodes, workers_per_node=workers // nodes,
                              runs_throughput_per_s=[r["throughput_per_s"] for r in runs])
                first = next((r for r in results if r["operation"] == op), median)
                median["ratio_to_first"] = round(median["throughput_per_s"] / first["throughput_per_s"], 2) \
                    if first["throughput_per_s"] else None
                results.append(median)
    finally:
        if cluster is not None:
            cluster.stop()
    return with_limits(results)


def settle(dsn: str) -> None:
    """``VACUUM ANALYZE`` and ``CHECKPOINT`` before an operation's runs: the publishes of earlier phases add thousands
    of documents, and a machine whose autovacuum is off (this one's is) would plan the next phase's statements on
    statistics that still count the fill alone (the search's page then read its dossier through the wrong index:
    224 µs instead of 59, docs/PERFORMANCE.md "Stage 5"). Production runs autovacuum, which keeps up."""
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")
    print(f"settled (VACUUM ANALYZE, CHECKPOINT) in {time.perf_counter() - started:.1f} s", flush=True)


def compare_code(ops: list[str], config: tuple[str, int], other_src: str, db_url: str, var_dir: Path,
                 blob_urls: dict[str, str], s3_env: dict[str, str], workers: int, concurrency: int, duration: float,
                 generator: str, repeat: int, key: Any, pro_id: str, dossier_ids: list[str], doc_ids: list[str],
                 payload: bytes, table: dict[str, Any], dsn: str, database: str) -> list[dict[str, Any]]:
    """See :func:`measure` (``compare``): one result per operation and code, the median of its runs."""
    store, nodes = config
    codes = {"this": str(ROOT / "src"), "other": str(Path(other_src).resolve())}
    clusters: dict[str, Cluster] = {}
    results: list[dict[str, Any]] = []
    try:
        for label, src in codes.items():
            clusters[label] = start_cluster(db_url, var_dir, nodes, workers // nodes, blob_urls[store],
                                            {**(s3_env if store == "s3" else {}), "PYTHONPATH": src}, name=label)
        for op in ops:
            make, expect = table[op]
            settle(dsn)
            runs: dict[str, list[dict[str, Any]]] = {label: [] for label in codes}
            for r in range(max(1, repeat)):
                for label in (list(codes) if r % 2 == 0 else list(reversed(codes))):
                    cluster = clusters[label]
                    meter = CpuMeter(dsn, database, [p.pid for p in cluster.procs])
                    print(f"{op} on the code of {codes[label]} ({label}), run {r + 1}:", flush=True)
                    if generator == "wrk":
                        out = wrk_phase(op, cluster, key, pro_id, concurrency, duration, dossier_ids, doc_ids,
                                        payload, meter)
                    else:
                        out = asyncio.run(run_phase(op, cluster, key, pro_id, concurrency, duration, make, expect,
                                                    meter))
                    runs[label].append(out)
            for label in codes:
                ordered = sorted(runs[label], key=lambda x: x["throughput_per_s"])
                median = dict(ordered[len(ordered) // 2])
                median.update(blob_store=store, nodes=nodes, workers_per_node=workers // nodes, code=label,
                              code_src=codes[label], runs_throughput_per_s=[x["throughput_per_s"] for x in runs[label]])
                first = next((x for x in results if x["operation"] == op), median)
                median["ratio_to_first"] = round(median["throughput_per_s"] / first["throughput_per_s"], 2) \
                    if first["throughput_per_s"] else None
                results.append(median)
    finally:
        for cluster in clusters.values():
            cluster.stop()
    return results


def wrk_phase(op: str, cluster: Cluster, key: Any, pro_id: str, concurrency: int, duration: float,
              dossier_ids: list[str], doc_ids: list[str], payload: bytes, meter: CpuMeter) -> dict[str, Any]:
    """One wrk process against one node (``main`` refuses wrk with several nodes)."""
    import httpx

    base = cluster.bases[0]

    async def token() -> str:
        async with httpx.AsyncClient(timeout=30) as http:
            return await get_token(http, key, cluster.public, pro_id, base)

    tok = asyncio.run(token())
    if op == "ITI-67":
        paths = [f"/fhir/DocumentReference?patient={d}&_count=20" for d in dossier_ids]
        return run_phase_wrk(op, base, tok, concurrency, duration, "GET", paths, None, "/fhir/DocumentReference",
                             meter)
    if op == "ITI-68":
        paths = [f"/fhir/Binary/{d}" for d in doc_ids]
        return run_phase_wrk(op, base, tok, concurrency, duration, "GET", paths, None, "/fhir/Binary", meter,
                             accept="application/pdf")  # ITI-68: the document's own bytes, as the httpx phase
    if op == "ITI-105":
        body = json.dumps(docref("__MI__", subject="Patient/__PATIENT__", data=payload))
        return run_phase_wrk(op, base, tok, concurrency, duration, "POST", dossier_ids, body,
                             "/fhir/DocumentReference", meter)
    bundle = json.dumps(iti65_bundle("__PATIENT__", payload))
    first_mi = json.loads(bundle)["entry"][1]["resource"]["masterIdentifier"]["value"]
    return run_phase_wrk(op, base, tok, concurrency, duration, "POST", dossier_ids,
                         bundle.replace(first_mi, "__MI__"), "/fhir", meter)


# --- report ----------------------------------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {"cpus": os.cpu_count(), "cpu_model": cpu, "memory": mem, "python": platform.python_version(),
            "platform": platform.platform()}


def pg_version(db_url: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    eng = create_engine(make_url(db_url).set(drivername="postgresql+psycopg"))
    with eng.connect() as conn:
        v = str(conn.execute(text("show server_version")).scalar())
    eng.dispose()
    return v


def markdown(results: list[dict[str, Any]]) -> str:
    lines = ["| operation | blob store | nodes × processes | ok/s | errors | p50 ms | p95 ms | p99 ms "
             "| ok/s ÷ first | generator CPU (cores) | server (raw: client) CPU ms/req | PostgreSQL CPU ms/req |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        name = f"{r['operation']} ({r['code']})" if r.get("code") else r["operation"]
        lines.append(f"| {name} | {r['blob_store']} | {r['nodes']} × {r['workers_per_node']} "
                     f"| {r['throughput_per_s']} | {r['errors']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} "
                     f"| {r['ratio_to_first']} | {r['load_generator_cpu_cores']} "
                     f"| {r.get('server_cpu_ms_per_request') or r.get('client_cpu_ms_per_request')} "
                     f"| {r.get('postgres_cpu_ms_per_request')} |")
    return "\n".join(lines)


def comma_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--database-url", help="PostgreSQL URL (default: recreate the database carnet_bench on "
                                          "CARNET_TEST_DATABASE_URL's server, else 127.0.0.1:5432, user postgres)")
    p.add_argument("--var-dir", default="/tmp/carnet-bench-var",
                   help="Carnet var dir (master key, token key, blobs); emptied when the database is recreated")
    p.add_argument("--dossiers", type=int, default=10_000)
    p.add_argument("--documents", type=int, default=100_000)
    p.add_argument("--fill-processes", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--duration", type=float, default=20, help="seconds per measured phase")
    p.add_argument("--workers", type=int, default=4,
                   help="server processes in all (carnet serve --workers; 2 per core measured best here), split "
                        "evenly over the nodes")
    p.add_argument("--blob-stores", default="local",
                   help="comma list of blob stores to measure: local (the var dir's files), s3")
    p.add_argument("--nodes", default="1",
                   help="comma list of node counts to measure; each node runs --workers/N processes, the clients "
                        "go to the nodes in turn (a load balancer's round robin)")
    p.add_argument("--s3-url", default="s3://carnet-bench/blobs", help="bucket and prefix of the s3 store")
    p.add_argument("--s3-endpoint",
                   help="S3 endpoint for the s3 store (credentials and region from AWS_*); default: start the "
                        "venv's moto_server on a free port")
    p.add_argument("--repeat", type=int, default=1,
                   help="measure each operation this many times and report the median run (by throughput)")
    p.add_argument("--ops", default="ITI-105,ITI-65,ITI-67,ITI-68", help="operations to measure, in order")
    p.add_argument("--generator", choices=("httpx", "wrk"), default="httpx",
                   help="load generator: Python httpx clients, or wrk (apt-get install wrk), which leaves more "
                        "of the machine to the server")
    p.add_argument("--raw-processes", type=int, default=2,
                   help="client processes of the raw database limits (raw-read, raw-write; benchmarks/limits.py), "
                        "measured before Carnet's operations with the same --concurrency; 0: no limits")
    p.add_argument("--compare", metavar="SRC",
                   help="also measure the Carnet whose src directory this is (e.g. a `git archive` of main), "
                        "alternating with this checkout's, on one configuration: before/after in one run")
    p.add_argument("--fill-only", action="store_true")
    p.add_argument("--skip-fill", action="store_true", help="measure the data already in the database")
    p.add_argument("--output", default=str(RESULTS / "latest.json"))
    a = p.parse_args(argv)
    stores, node_counts = comma_list(a.blob_stores), [int(n) for n in comma_list(a.nodes)]
    if not stores or set(stores) - {"local", "s3"}:
        p.error("--blob-stores takes local and/or s3")
    if not node_counts or any(n < 1 or a.workers % n for n in node_counts):
        p.error(f"--nodes: each count must divide --workers ({a.workers})")
    if a.generator == "wrk" and node_counts != [1]:
        p.error("--generator wrk drives one node (one URL): use --nodes 1, or the httpx generator")
    configs = [(s, n) for s in stores for n in node_counts]
    if a.compare and len(configs) != 1:
        p.error("--compare measures one configuration: one blob store, one node count")

    sys.path.insert(0, str(ROOT / "src"))
    from carnet.db.migrate import upgrade

    var_dir = Path(a.var_dir).resolve()
    db_url = a.database_url
    if db_url is None:
        db_url = fresh_database() if not a.skip_fill else \
            database_on_server(BENCH_DB)
    if not a.skip_fill and a.database_url is None and var_dir.exists():
        import shutil

        shutil.rmtree(var_dir)  # a new database: old blobs and master key are useless
    var_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    upgrade(db_url)
    report: dict[str, Any] = {"command": " ".join(["python", "benchmarks/load.py", *sys.argv[1:]]),
                              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(),
                              "postgresql": pg_version(db_url), "concurrency": a.concurrency,
                              "duration_s": a.duration, "uvicorn_workers": a.workers,
                              "document_bytes": DOC_BYTES, "load_average_start": os.getloadavg()}
    if not a.skip_fill:
        report["fill"] = fill(db_url, var_dir, "http://127.0.0.1:8000", a.dossiers, a.documents, a.fill_processes)
    from sqlalchemy import create_engine, func, select

    from carnet.db.tables import audit, document, dossier

    eng = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with eng.connect() as conn:
        report["data_before_measure"] = {
            "dossiers": conn.execute(select(func.count()).select_from(dossier)).scalar(),
            "documents": conn.execute(select(func.count()).select_from(document)).scalar(),
            "audit_records": conn.execute(select(func.count()).select_from(audit)).scalar()}
    eng.dispose()
    print(f"data: {report['data_before_measure']}", flush=True)
    if not a.fill_only:
        report["generator"] = a.generator
        report["configurations"] = [{"blob_store": s, "nodes": n, "workers_per_node": a.workers // n}
                                    for s, n in configs]
        blob_urls = {"local": str(var_dir / "blobs"), "s3": a.s3_url}
        s3 = S3(a.s3_url, a.s3_endpoint) if "s3" in stores else None
        try:
            if s3 is not None:  # the filled blobs, copied as an operator would (resumable: done ones are skipped)
                report["s3"] = s3.migrate_from(var_dir)
            report["results"] = measure(db_url, var_dir, configs, blob_urls, s3.env() if s3 else {}, a.workers,
                                        a.concurrency, a.duration, comma_list(a.ops), a.generator, a.repeat,
                                        a.raw_processes, a.compare)
        finally:
            if s3 is not None:
                s3.stop()
        report["load_average_end"] = os.getloadavg()
        print()
        print(markdown(report["results"]))
        limits = {r["operation"]: r for r in report["results"] if r["operation"].startswith("raw-")}
        if limits:
            print()
            print(ratio_table(report["results"], limits))
    out = Path(a.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwritten {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
