"""Benchmark of the clinician portal (``/pro/``): how fast a clinician finds a patient and opens a dossier.

1. **Fill** (in-process, ``--fill-processes`` processes, through Carnet's own services in ``carnet.context.run`` as
   ``load.py`` does): recreates the PostgreSQL database ``carnet_bench_pro`` (or migrates ``--database-url``) and
   creates ``--dossiers`` dossiers plus ``--heavy`` "heavy" ones. The benchmark GP creates each dossier (the patient's
   consent recorded) and declares themselves médecin traitant; 3 to 5 of six other doctors (hospital, specialists,
   radiology, laboratory) each declare their own consent and publish their share of the documents (small real PDFs
   of 6-60 KiB, some plain-text notes; several types and classes of DOMAIN.md, dated over the last eight years); the
   GP then records 12 structured items (allergies, problems, treatments, blood group, vaccinations) and their own
   documents (prescriptions, VSM, certificates), and finally one specialist adds the last few documents, so that
   "new since your last access" has something to show. ``--documents`` documents per dossier, ``--heavy-documents``
   for the heavy ones. Then ``carnet.claims.ingest.ingest`` loads ``--claims`` reimbursement lines per dossier
   (``benchmarks/claims.py``'s synthetic file). With ``--skip-fill``, each dossier first gets two new documents
   (unless ``--no-news``): an earlier run's visits would otherwise leave "new since your last access" empty.
2. **Measure** against ``carnet serve --workers N`` (a subprocess started by ``load.py``'s helper, on ``--port``,
   fixed so that the fill and the server share one base URL). Clinicians' sessions are created directly with
   ``carnet.auth.pro_sessions.open_session`` in the benchmark database and their cookie sent with each request:
   **the OIDC sign-in (Pro Santé Connect) is not measured.** Pages: find by INS (``GET /pro/?system=demo&ins=…``),
   the dossier (``GET /pro/dossier/{key}``: emergency summary, new since your last
   access, documents by class), a document's page, the care history, the one-page summary PDF and the FHIR
   ``$summary`` Bundle (API, bearer token of a registered client acting for the GP).

   * one clinician: ``--requests`` sequential requests per page over random dossiers, then over the heavy ones
     (p50, p95, max: the latency a clinician feels);
   * ``--concurrency`` clinicians (each their own session; the ``$summary`` phase shares one client token; asyncio +
     httpx) for ``--duration`` s per page over random dossiers: requests/s, p50, p95, errors.

   Every response is checked (status 200 and the page's own content: the dossier page must hold its summary section,
   the PDF must be a PDF, ...), so a failing page is counted as an error, not measured as fast.
3. **Report**: a markdown table, and JSON in ``--output``. Unless ``--no-profile``, the dossier page is then
   profiled in process (a Starlette TestClient on the same database), for normal and heavy dossiers: the audit
   records one view writes, SQL statements per view by table, the page's transaction and Jinja render times,
   cProfile's top functions (inside the transaction's thread), and an experiment that changes nothing in Carnet:
   the same pages with ``Context.dossier`` memoised per transaction.

    .venv/bin/python benchmarks/pro_portal.py                 # 2,000 + 20 heavy dossiers; about 15 minutes on 2 cores
    .venv/bin/python benchmarks/pro_portal.py --skip-fill     # measure again
    .venv/bin/python benchmarks/pro_portal.py --quick         # smoke run in its own database, about 30 s
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import random
import shutil
import statistics
import sys
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import load  # noqa: E402  (benchmarks/load.py: server start-up, client token, machine, percentiles)
from pro_portal_data import (  # noqa: E402  (the data builders)
    BENCH_DB,
    VAR_DIR,
    add_news,
    data_counts,
    fill,
    practitioners,
)

# --- measure ---------------------------------------------------------------------------------------------------------

def heavy_min(a: argparse.Namespace) -> int:
    """A dossier with at least this many documents is a heavy one."""
    return max(a.documents * 2 + 10, a.heavy_documents * 3 // 4)


class Targets:
    """The dossiers to visit (normal and heavy), with their INS and some of their documents."""

    def __init__(self, db_url: str, heavy_min: int) -> None:
        from sqlalchemy import create_engine, func, select

        from carnet.db.tables import document, dossier

        eng = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
        with eng.connect() as conn:
            counts: dict[uuid.UUID, int] = dict(conn.execute(select(document.c.dossier_key, func.count()).group_by(
                document.c.dossier_key)).all())
            rows = conn.execute(select(dossier.c.dossier_key, dossier.c.ins)).all()
            self.docs: dict[str, list[str]] = {}
            for key, doc_id in conn.execute(select(document.c.dossier_key, document.c.document_id).where(
                    document.c.status == "current")):
                self.docs.setdefault(str(key), []).append(str(doc_id))
        eng.dispose()
        self.ins = {str(r.dossier_key): r.ins for r in rows}
        self.heavy = sorted(k for k in self.ins if counts.get(uuid.UUID(k), 0) >= heavy_min)
        self.normal = sorted(k for k in self.ins if k not in set(self.heavy))
        if not self.normal:
            raise SystemExit("no data: run the fill first")


def pages(t: Targets) -> dict[str, Callable[[str], tuple[str, Callable[[Any], bool]]]]:
    """Each page: from a dossier key, the path and a check of the response."""
    def find(k: str) -> tuple[str, Callable[[Any], bool]]:
        return f"/pro/?system=demo&ins={t.ins[k]}", lambda r: f'href="/pro/dossier/{k}"' in r.text

    def dossier(k: str) -> tuple[str, Callable[[Any], bool]]:
        return f"/pro/dossier/{k}", lambda r: 'id="summary"' in r.text and 'id="documents"' in r.text

    def doc(k: str) -> tuple[str, Callable[[Any], bool]]:
        d = random.choice(t.docs[k])
        return f"/pro/dossier/{k}/documents/{d}", lambda r: f"/documents/{d}/file" in r.text

    def history(k: str) -> tuple[str, Callable[[Any], bool]]:
        return f"/pro/dossier/{k}/care-history", lambda r: 'id="care-caption"' in r.text

    def pdf(k: str) -> tuple[str, Callable[[Any], bool]]:
        return f"/pro/dossier/{k}/summary.pdf", lambda r: r.content.startswith(b"%PDF")

    def ips(k: str) -> tuple[str, Callable[[Any], bool]]:
        return f"/fhir/Patient/{k}/$summary", lambda r: r.json().get("resourceType") == "Bundle"

    return {"find by INS": find, "dossier": dossier, "document page": doc, "care history": history,
            "summary PDF": pdf, "FHIR $summary": ips}


def _headers(page: str, cookie: str, token: str) -> dict[str, str]:
    if page == "FHIR $summary":
        return {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    return {"Cookie": f"carnet_pro={cookie}", "Accept-Language": "fr"}


def _ok(r: Any, check: Callable[[Any], bool]) -> bool:
    try:
        return r.status_code == 200 and check(r)
    except ValueError:
        return False


def _stats(lat: list[float]) -> dict[str, Any]:
    lat = sorted(lat)
    return {"ok": len(lat), "p50_ms": round(load.percentile(lat, 50) * 1000, 1),
            "p95_ms": round(load.percentile(lat, 95) * 1000, 1),
            "max_ms": round(lat[-1] * 1000, 1) if lat else None,
            "mean_ms": round(statistics.fmean(lat) * 1000, 1) if lat else None}


def sequential(base: str, name: str, make: Any, keys: list[str], n: int, cookie: str, token: str) -> dict[str, Any]:
    import httpx

    lat: list[float] = []
    errors: dict[str, int] = {}
    with httpx.Client(base_url=base, timeout=60) as http:
        for j in range(n + 3):
            path, check = make(random.choice(keys))
            t = time.perf_counter()
            r = http.get(path, headers=_headers(name, cookie, token))
            elapsed = time.perf_counter() - t
            if j < 3:
                continue  # warm-up: connection, the workers' first requests
            if _ok(r, check):
                lat.append(elapsed)
            else:
                errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
                if sum(errors.values()) <= 2:
                    print(f"  {name}: {r.status_code} {path} {r.text[:300]!r}", flush=True)
    return {"page": name, **_stats(lat), "errors": sum(errors.values()), "error_codes": errors}


async def concurrent(base: str, name: str, make: Any, keys: list[str], duration: float, cookies: list[str],
                     token: str) -> dict[str, Any]:
    import httpx

    lat: list[float] = []
    errors: dict[str, int] = {}
    limits = httpx.Limits(max_connections=len(cookies), max_keepalive_connections=len(cookies))
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
        stop_at = 0.0

        async def clinician(cookie: str) -> None:
            while time.perf_counter() < stop_at:
                path, check = make(random.choice(keys))
                t = time.perf_counter()
                try:
                    r = await http.get(path, headers=_headers(name, cookie, token))
                    good, code = _ok(r, check), str(r.status_code)
                except httpx.HTTPError as exc:
                    good, code = False, type(exc).__name__
                if good:
                    lat.append(time.perf_counter() - t)
                else:
                    errors[code] = errors.get(code, 0) + 1

        stop_at = time.perf_counter() + min(2.0, duration / 5)  # warm-up, not recorded
        await asyncio.gather(*(clinician(c) for c in cookies))
        lat.clear()
        errors.clear()
        t0 = time.perf_counter()
        stop_at = t0 + duration
        await asyncio.gather(*(clinician(c) for c in cookies))
        elapsed = time.perf_counter() - t0
    return {"page": name, "clinicians": len(cookies), "per_s": round(len(lat) / elapsed, 1), **_stats(lat),
            "errors": sum(errors.values()), "error_codes": errors}


def open_sessions(services: Any, gp_id: str, n: int) -> list[str]:
    from carnet.auth import pro_sessions as session

    with services.engine.begin() as conn:
        return [session.open_session(conn, gp_id, "eidas1", services.clock(), services.settings) for _ in range(n)]


def measure(db_url: str, var_dir: Path, a: argparse.Namespace) -> dict[str, Any]:
    import httpx

    t = Targets(db_url, heavy_min(a))
    port = a.port
    base = f"http://127.0.0.1:{port}"
    services = load.make_services(db_url, var_dir, base)
    gp_id, _ = practitioners(services)
    key = load.register_client(services)
    cookies = open_sessions(services, gp_id, 1 + a.concurrency)
    services.engine.dispose()
    table = pages(t)
    print(f"measure: {len(t.normal)} dossiers, {len(t.heavy)} heavy; carnet serve --workers {a.workers}; "
          f"{a.requests} sequential requests per page, then {a.concurrency} clinicians for {a.duration:g} s",
          flush=True)
    server = load.start_server(db_url, var_dir, port, a.workers)
    out: dict[str, Any] = {"one_clinician": [], "one_clinician_heavy": [], "concurrent": []}
    try:
        token = asyncio.run(_token(key, base, gp_id))
        for name, make in table.items():
            load_before = os.getloadavg()[0]
            r = sequential(base, name, make, t.normal, a.requests, cookies[0], token)
            r["load_average"] = (round(load_before, 2), round(os.getloadavg()[0], 2))
            out["one_clinician"].append(r)
            print(f"one clinician  {name:>14}: p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, max {r['max_ms']} ms, "
                  f"{r['errors']} errors (load {r['load_average'][0]} → {r['load_average'][1]})", flush=True)
        if t.heavy:
            for name, make in table.items():
                r = sequential(base, name, make, t.heavy, a.requests, cookies[0], token)
                out["one_clinician_heavy"].append(r)
                print(f"heavy dossiers {name:>14}: p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, max {r['max_ms']} ms, "
                      f"{r['errors']} errors", flush=True)
        for name, make in table.items():
            load_before = os.getloadavg()[0]
            r = asyncio.run(concurrent(base, name, make, t.normal, a.duration, cookies[1:], token))
            r["load_average"] = (round(load_before, 2), round(os.getloadavg()[0], 2))
            out["concurrent"].append(r)
            print(f"{a.concurrency} clinicians  {name:>14}: {r['per_s']}/s, p50 {r['p50_ms']} ms, "
                  f"p95 {r['p95_ms']} ms, "
                  f"{r['errors']} errors (load {r['load_average'][0]} → {r['load_average'][1]})", flush=True)
    except httpx.HTTPError as exc:
        raise SystemExit(f"the server failed: {exc!r} (see {var_dir / 'server.log'})") from exc
    finally:
        server.terminate()
        try:
            server.wait(15)
        except Exception:  # noqa: BLE001
            server.kill()
    out["dossiers_measured"] = {"normal": len(t.normal), "heavy": len(t.heavy)}
    return out


async def _token(key: Any, base: str, gp_id: str) -> str:
    import httpx

    async with httpx.AsyncClient(timeout=30) as http:
        return await load.get_token(http, key, base, gp_id)


# --- profile ---------------------------------------------------------------------------------------------------------

def profile(db_url: str, var_dir: Path, base_url: str, heavy: bool, heavy_min: int) -> dict[str, Any]:
    """The dossier page in process (a TestClient on the same database), after one warm-up request: the audit records
    one request writes; then over twenty requests (twenty dossiers), the median time, the SQL statements per request
    (by table), the Jinja render time and cProfile's top functions (cumulative, all twenty requests)."""
    import jinja2
    from sqlalchemy import event, func, select
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's notice about httpx2
        from starlette.testclient import TestClient

    from carnet.app import create_app
    from carnet.db.tables import audit

    t = Targets(db_url, heavy_min)
    keys = t.heavy if heavy and t.heavy else t.normal
    services = load.make_services(db_url, var_dir, base_url, pool_size=4)
    gp_id, _ = practitioners(services)
    cookie = open_sessions(services, gp_id, 1)[0]
    app = create_app(services)
    statements: list[tuple[float, str]] = []
    renders: list[float] = []
    started: dict[int, float] = {}

    @event.listens_for(services.engine, "before_cursor_execute")
    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        started[id(cursor)] = time.perf_counter()

    @event.listens_for(services.engine, "after_cursor_execute")
    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append((time.perf_counter() - started.pop(id(cursor), time.perf_counter()), statement))

    original = jinja2.Template.render

    def timed_render(self: Any, *args: Any, **kwargs: Any) -> str:
        t0 = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            renders.append(time.perf_counter() - t0)

    # cProfile sees only its own thread: profile the page's transaction (carnet.context.run, which the page runs in
    # a worker thread) from inside that thread; the template renders on the event loop and is timed above
    from carnet.pro import web as pro_web

    prof = cProfile.Profile()
    work: list[float] = []
    original_run = pro_web.run

    def profiled_run(*args: Any) -> Any:
        t0 = time.perf_counter()
        prof.enable()
        try:
            return original_run(*args)
        finally:
            prof.disable()
            work.append(time.perf_counter() - t0)

    jinja2.Template.render = timed_render  # type: ignore[method-assign]
    pro_web.run = profiled_run
    try:
        with TestClient(app, base_url=base_url) as client:
            client.cookies.set("carnet_pro", cookie)
            client.get(f"/pro/dossier/{keys[-1]}")  # warm-up (templates compiled, connections open)
            # 1. one request, its audit records
            key = keys[0]
            with services.engine.connect() as conn:
                before_n = conn.execute(select(func.count()).select_from(audit).where(
                    audit.c.dossier_key == uuid.UUID(key))).scalar_one()
            r = client.get(f"/pro/dossier/{key}")
            assert r.status_code == 200 and 'id="summary"' in r.text, r.status_code
            with services.engine.connect() as conn:
                events = [f"{e}" + (f" ({d['query']})" if isinstance(d, dict) and d.get("query") else "")
                          for e, d in conn.execute(select(audit.c.event, audit.c.detail).where(
                              audit.c.dossier_key == uuid.UUID(key)).order_by(audit.c.seq).offset(before_n))]
            # 2. twenty requests (twenty dossiers) under cProfile: time, SQL and Jinja per request
            prof.disable()
            prof = cProfile.Profile()  # a fresh profile: the twenty requests only
            totals, sql_ms, jinja_ms, sizes, work_ms = [], [], [], [], []
            sql: list[tuple[float, str]] = []
            for k in keys[1:21]:
                statements.clear()
                renders.clear()
                work.clear()
                t0 = time.perf_counter()
                r = client.get(f"/pro/dossier/{k}")
                totals.append(time.perf_counter() - t0)
                work_ms.append(sum(work))
                assert r.status_code == 200 and 'id="summary"' in r.text, r.status_code
                sql_ms.append(sum(x for x, _ in statements))
                jinja_ms.append(sum(renders))
                sizes.append(len(r.content))
                sql.extend(statements)
            n = len(totals)
            pro_web.run = original_run
            cached = _memo_experiment(client, keys[: min(len(keys), 40)])
    finally:
        jinja2.Template.render = original  # type: ignore[method-assign]
        pro_web.run = original_run
        services.engine.dispose()
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats("carnet|sqlalchemy/engine/base|json", 40)
    by_kind: dict[str, list[float]] = {}
    for seconds, stmt in sql:
        words = stmt.split()
        table = next((words[k + 1] for k, w in enumerate(words[:-1]) if w in ("FROM", "INTO", "UPDATE")), "?")
        by_kind.setdefault(f"{words[0]} {table}", []).append(seconds)
    return {"dossier": "heavy" if heavy else "normal", "requests": n,
            "documents_median": statistics.median(len(t.docs.get(k, [])) for k in keys[1:21]),
            "median_ms": round(statistics.median(totals) * 1000, 1), "html_bytes_median": statistics.median(sizes),
            "transaction_ms_median": round(statistics.median(work_ms) * 1000, 1),
            "sql_statements_per_request": round(len(sql) / n, 1),
            "sql_ms_median": round(statistics.median(sql_ms) * 1000, 1),
            "sql_by_table_per_request": {k: {"n": round(len(v) / n, 1), "ms": round(sum(v) * 1000 / n, 2)}
                                         for k, v in sorted(by_kind.items(), key=lambda kv: -sum(kv[1]))},
            "audit_records_written": len(events), "audit_events": events,
            "jinja_render_ms_median": round(statistics.median(jinja_ms) * 1000, 1),
            "memoised_dossier_experiment": cached,
            "cprofile_top": s.getvalue().splitlines()[:60]}


def _memo_experiment(client: Any, keys: list[str], rounds: int = 3) -> dict[str, Any]:
    """An experiment, not a change to Carnet: the same dossier pages in process, alternately as they are and with
    ``Context.dossier`` memoised per transaction for non-locking reads (the page's work asks for the same dossier and
    decision about ten times). Median in-process time of each."""
    from carnet.context import Context

    original = Context.dossier

    def memoised(self: Any, dossier_key: uuid.UUID, *, lock: bool = False) -> Any:
        if lock:
            return original(self, dossier_key, lock=True)
        memo = self.__dict__.setdefault("_bench_memo", {})
        if dossier_key not in memo:
            memo[dossier_key] = original(self, dossier_key)
        return memo[dossier_key]

    times: dict[str, list[float]] = {"as is": [], "memoised": []}
    try:
        for _ in range(rounds):
            for k in keys:
                for variant in ("as is", "memoised"):
                    Context.dossier = memoised if variant == "memoised" else original
                    t0 = time.perf_counter()
                    r = client.get(f"/pro/dossier/{k}")
                    times[variant].append(time.perf_counter() - t0)
                    assert r.status_code == 200
    finally:
        Context.dossier = original
    return {v: {"requests": len(x), "median_ms": round(statistics.median(x) * 1000, 1)} for v, x in times.items()}


# --- report ----------------------------------------------------------------------------------------------------------

def markdown(res: dict[str, Any], concurrency: int) -> str:
    lines = ["| page | 1 clinician p50 ms | p95 ms | max ms | heavy dossiers p50 ms | p95 ms | "
             f"{concurrency} clinicians req/s | p50 ms | p95 ms | errors |", "|---|" + "---:|" * 9]
    heavy = {r["page"]: r for r in res.get("one_clinician_heavy", [])}
    conc = {r["page"]: r for r in res.get("concurrent", [])}
    for r in res["one_clinician"]:
        h, c = heavy.get(r["page"], {}), conc.get(r["page"], {})
        errs = r["errors"] + h.get("errors", 0) + c.get("errors", 0)
        lines.append(f"| {r['page']} | {r['p50_ms']} | {r['p95_ms']} | {r['max_ms']} | {h.get('p50_ms', '–')} | "
                     f"{h.get('p95_ms', '–')} | {c.get('per_s', '–')} | {c.get('p50_ms', '–')} | "
                     f"{c.get('p95_ms', '–')} | {errs} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--database-url", help=f"PostgreSQL URL (default: recreate {BENCH_DB} on "
                                          "CARNET_TEST_DATABASE_URL's server, else 127.0.0.1:5432)")
    p.add_argument("--var-dir", default=VAR_DIR,
                   help="Carnet var dir (master key, blobs, server log); emptied when the database is recreated")
    p.add_argument("--dossiers", type=int, default=2000)
    p.add_argument("--documents", type=int, default=40, help="documents per dossier")
    p.add_argument("--heavy", type=int, default=20, help="heavy dossiers (a busy patient), besides --dossiers")
    p.add_argument("--heavy-documents", type=int, default=300, help="documents per heavy dossier")
    p.add_argument("--claims", type=int, default=100, help="reimbursement lines per dossier")
    p.add_argument("--fill-processes", type=int, default=2)
    p.add_argument("--workers", type=int, default=2, help="carnet serve --workers")
    p.add_argument("--port", type=int, default=18471,
                   help="the server's port; fixed, so that the fill and the server share one base URL (items entered "
                        "in Carnet carry it as their source)")
    p.add_argument("--requests", type=int, default=300, help="sequential requests per page (one clinician)")
    p.add_argument("--concurrency", type=int, default=8, help="concurrent clinicians, each their own session")
    p.add_argument("--duration", type=float, default=15, help="seconds per page with concurrent clinicians")
    p.add_argument("--skip-fill", action="store_true", help="measure the data already in the database")
    p.add_argument("--fill-only", action="store_true", help="fill, do not measure")
    p.add_argument("--no-news", action="store_true",
                   help="with --skip-fill: do not add two new documents per dossier before measuring")
    p.add_argument("--no-profile", dest="profile", action="store_false", help="skip the in-process profile")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 20 dossiers of 5 documents, 2 heavy of 30, 20 requests, 2 s, in the database "
                        f"{BENCH_DB}_quick")
    p.add_argument("--output", default=str(load.RESULTS / "pro_portal.json"))
    a = p.parse_args(argv)
    if a.quick:
        a.dossiers, a.documents, a.heavy, a.heavy_documents, a.claims = 20, 5, 2, 30, 20
        a.requests, a.duration = 20, 2.0
        if a.var_dir == VAR_DIR:
            a.var_dir += "-quick"

    from carnet.db.migrate import upgrade

    var_dir = Path(a.var_dir).resolve()
    base_url = f"http://127.0.0.1:{a.port}"
    name = BENCH_DB + ("_quick" if a.quick else "")  # a smoke run leaves the full data alone
    db_url = a.database_url or (load.database_on_server(name) if a.skip_fill else
                                load.fresh_database(name))
    if not a.skip_fill and a.database_url is None and var_dir.exists():
        shutil.rmtree(var_dir)  # a new database: the old blobs and master key are useless
    var_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.environ.pop("CARNET_MASTER_KEY", None)
    upgrade(db_url)
    report: dict[str, Any] = {"command": " ".join(["python", "benchmarks/pro_portal.py", *sys.argv[1:]]),
                              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": load.machine(),
                              "postgresql": load.pg_version(db_url), "uvicorn_workers": a.workers,
                              "requests_per_page": a.requests, "concurrency": a.concurrency, "duration_s": a.duration,
                              "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    if not a.skip_fill:
        report["fill"] = fill(db_url, var_dir, base_url, a.dossiers, a.heavy, a.documents, a.heavy_documents, a.claims,
                              a.fill_processes)
    elif not a.no_news:
        report["news"] = add_news(db_url, var_dir, base_url, a.fill_processes)
    report["data_before_measure"] = data_counts(db_url)
    print(f"data: {report['data_before_measure']}", flush=True)
    if not a.fill_only:
        report["results"] = measure(db_url, var_dir, a)
        print()
        print(markdown(report["results"], a.concurrency))
    if a.profile and not a.fill_only:
        report["profile"] = [profile(db_url, var_dir, base_url, heavy, heavy_min(a)) for heavy in (False, True)]
        for pr in report["profile"]:
            print(f"\nprofile, {pr['dossier']} dossiers ({pr['documents_median']} documents), median of "
                  f"{pr['requests']} in process: {pr['median_ms']} ms, of which the page's transaction "
                  f"{pr['transaction_ms_median']} ms; {pr['sql_statements_per_request']} SQL statements "
                  f"({pr['sql_ms_median']} ms), Jinja {pr['jinja_render_ms_median']} ms, "
                  f"{pr['audit_records_written']} audit records written {pr['audit_events']}")
            for k, v in list(pr["sql_by_table_per_request"].items())[:8]:
                print(f"  {k}: {v['n']} statements, {v['ms']} ms")
            print(f"  experiment, Context.dossier memoised per transaction: {pr['memoised_dossier_experiment']}")
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out = Path(a.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwritten {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
