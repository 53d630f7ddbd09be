"""The floor under a served search (issue 11): Carnet's own statements, replayed by the thinnest Python server.

``load.py`` puts Carnet's ITI-67 search beside the raw-read limit (a plain client selecting 10 rows and inserting one
audit row). Between the two lies everything a served search does besides: HTTP, the framework, the hop to a thread,
SQLAlchemy, the policy, the audit record built in Python, and statements that do more than the limit's. This script
measures the point in between that says which of these the design could shed: **a server doing nothing but Carnet's
own statements**, with the same HTTP server (uvicorn, httptools, uvloop, one process per ``--workers``, the port
shared with ``SO_REUSEPORT`` as ``carnet serve`` shares it) and async psycopg on the event loop (no thread), each
request one transaction.

1. **Capture.** In this process, Carnet's ASGI application (as ``request_cpu.py`` builds it) answers ``--captures``
   searches of different dossiers; a ``before_cursor_execute`` listener keeps each search's statements with their
   parameters (every one, the prepared ones included) and the response's body.
2. **Replay.** The floor server answers ``GET /carnet/<i>`` by running capture ``i``'s statements in one transaction
   (prepared on the server, each result read) and sending capture ``i``'s body: the same round trips, the same rows,
   the same audit append (the hash chain's head moves in SQL as in Carnet; the records repeat the captured ones'
   content) and the same bytes on the wire. What it leaves out is exactly what Carnet's Python adds: checking the
   token, the framework, the thread, the policy's decision, the audit record's canonical JSON and hash, building the
   searchset. Two more answers of the same server split the rest: ``/limit/<i>`` runs the raw-read limit's own
   transaction (``limits.py``: 20 rows selected, one audit row inserted, on capture ``i``'s dossier) and ``/http/<i>``
   none, each sending the same body: HTTP in Python alone, and the limit served over HTTP; ``/carnet-thread/<i>``
   replays capture ``i`` as Carnet runs its transactions, with synchronous psycopg on a worker thread
   (Starlette's ``run_in_threadpool``) instead of asynchronous psycopg on the loop. Four more, asked for with
   ``--variants``, replay the same statements on the worker thread in **fewer round trips** than Carnet's five
   (``BEGIN``, the caller with the dossier, the page, the audit append, ``COMMIT``): ``/pipelined-4/<i>`` sends
   ``BEGIN`` with the first read and ``/pipelined-3/<i>`` also the audit append with ``COMMIT``, every statement
   prepared as Carnet prepares them (psycopg's pipeline mode); ``/merged-3/<i>`` and ``/merged-2/<i>`` bind on the
   client (psycopg's ``ClientCursor``) and send multi-statement simple queries, where nothing is prepared, in three
   round trips (as ``pipelined-3``) or in two (the page, the audit append and ``COMMIT`` together).
3. **Measure**, in one run: the raw-read limit before and after, and between them Carnet's ITI-67 and the floor's
   three answers, in turn (ABBA over ``--repeat``), wrk with the same connections, the CPU per request of each
   server's processes and of PostgreSQL.

    python benchmarks/floor.py --database-url postgresql://postgres@127.0.0.1:5432/carnet_bench_hot \\
        --var-dir /tmp/carnet-bench-hot --duration 8 --repeat 2

The database is one ``load.py --fill-only`` filled. The replayed audit records go into the dossiers' real chains (a
benchmark database only).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import multiprocessing as mp
import pickle
import queue
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

GENESIS = "0" * 64
VARIANTS = ("ITI-67", "carnet", "carnet-thread", "limit", "http")  # Carnet itself, then the floor server's answers
# Carnet's statements in fewer round trips (--variants; pipelined(), merged())
MERGED = ("merged-3", "merged-2", "pipelined-3", "pipelined-4")

sys.path.insert(0, str(Path(__file__).parent))


def capture(db_url: str, var_dir: Path, n: int) -> tuple[list[tuple[list[tuple[str, Any]], bytes]], list[str]]:
    """``n`` searches answered by Carnet in this process: each one's statements (text, parameters) and body; and the
    dossiers searched, in order (``request_cpu.py``'s, search ``i`` of dossier ``i`` modulo their number)."""
    import request_cpu
    from sqlalchemy import event

    ctx = request_cpu._prepare(db_url, var_dir)  # noqa: SLF001 - the same application request_cpu measures
    engine = ctx["services"].engine
    statements: list[tuple[str, Any]] = []

    def grab(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> tuple[str, Any]:
        statements.append((statement, parameters))
        return statement, parameters

    event.listen(engine, "before_cursor_execute", grab, retval=True)
    out: list[tuple[list[tuple[str, Any]], bytes]] = []

    async def one(i: int) -> None:
        scope, body, expected = request_cpu._request("search", i, ctx)  # noqa: SLF001
        chunks: list[bytes] = []
        status: list[int] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        statements.clear()
        await ctx["app"](scope, receive, send)
        if status != [expected]:
            raise SystemExit(f"capture {i}: status {status}")
        out.append((list(statements), b"".join(chunks)))

    async def all_of() -> None:
        for i in range(n):
            await one(i)

    asyncio.run(all_of())
    event.remove(engine, "before_cursor_execute", grab)
    ctx["services"].engine.dispose()
    return out, [ctx["dossiers"][i % len(ctx["dossiers"])] for i in range(n)]


def _serve(port: int, dsn: str, captures_file: str, connections: int, first_seq: int) -> None:
    """One floor process: uvicorn on the shared port, ``connections`` async psycopg connections. ``GET
    /carnet/<i>`` replays capture ``i``'s statements, ``/limit/<i>`` runs the raw-read limit's transaction on capture
    ``i``'s dossier, ``/http/<i>`` none; each answers capture ``i``'s body."""
    import psycopg
    import uvicorn
    from limits import INSERT_AUDIT, SELECT_DOCS
    from starlette.concurrency import run_in_threadpool

    from carnet.server import _bind

    with open(captures_file, "rb") as f:
        captures, searched = pickle.load(f)  # noqa: S301 - written by this script's parent, a moment ago
    dossiers = [uuid.UUID(d) for d in searched]
    sync_pool: queue.SimpleQueue[Any] = queue.SimpleQueue()
    for _ in range(connections):
        sync_pool.put(psycopg.connect(dsn))

    def replay(conn: Any, statements: list[tuple[str, Any]]) -> None:
        try:
            for sql, params in statements:
                cur = conn.execute(sql, params, prepare=True)
                if cur.description is not None:
                    cur.fetchall()
            conn.commit()
        except BaseException:
            conn.rollback()
            raise

    def pooled(idle: queue.SimpleQueue[Any], work: Any, *args: Any) -> None:
        """``work`` on a connection of the pool ``idle``, taken and given back on the worker thread: a thread waiting
        for one blocks nothing else (taken on the event loop, as Carnet never does, the wait would stop the loop
        that the connection's return needs, and the process would hang)."""
        conn = idle.get()
        try:
            work(conn, *args)
        finally:
            idle.put(conn)

    auto_pool: queue.SimpleQueue[Any] = queue.SimpleQueue()  # the MERGED variants': they send BEGIN and COMMIT
    for _ in range(connections):
        auto_pool.put(psycopg.connect(dsn, autocommit=True))

    def pipelined(conn: Any, statements: list[tuple[str, Any]], with_commit: bool) -> None:
        """The search's three statements (the caller and dossier, the page, the audit append) prepared, in psycopg's
        pipeline mode: ``BEGIN`` sent with the first read, and with ``with_commit`` the audit append with ``COMMIT``
        (three round trips; else four); each result read."""
        (dossier_sql, dossier_params), (page_sql, page_params), (audit_sql, audit_params) = statements
        try:
            with conn.pipeline() as pipeline:
                conn.execute("BEGIN")
                first = conn.execute(dossier_sql, dossier_params, prepare=True)
                pipeline.sync()
                first.fetchall()
                if with_commit:
                    conn.execute(page_sql, page_params, prepare=True).fetchall()
                    conn.execute(audit_sql, audit_params, prepare=True)
                    conn.execute("COMMIT")
            if not with_commit:
                conn.execute(page_sql, page_params, prepare=True).fetchall()
                conn.execute(audit_sql, audit_params, prepare=True).fetchall()
                conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def merged(conn: Any, statements: list[tuple[str, Any]], round_trips: int) -> None:
        """The same three statements bound on the client and sent as multi-statement simple queries (nothing
        prepared but the page in three round trips), in ``round_trips`` (3 or 2); each result read."""
        (dossier_sql, dossier_params), (page_sql, page_params), (audit_sql, audit_params) = statements
        cur = psycopg.ClientCursor(conn)
        try:
            cur.execute("BEGIN; " + cur.mogrify(dossier_sql, dossier_params))
            cur.nextset()
            cur.fetchall()
            if round_trips == 3:
                conn.execute(page_sql, page_params, prepare=True).fetchall()
                cur.execute(cur.mogrify(audit_sql, audit_params) + "; COMMIT")
                cur.fetchall()
            else:
                cur.execute(cur.mogrify(page_sql, page_params) + "; " + cur.mogrify(audit_sql, audit_params)
                            + "; COMMIT")
                cur.fetchall()
                cur.nextset()
                cur.fetchall()
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    seq = itertools.count(first_seq)
    pool: asyncio.Queue[Any] = asyncio.Queue()
    opened = False

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal opened
        if scope["type"] != "http":
            return
        if not opened:  # on the server's own loop, at the first request (no lifespan)
            opened = True
            for _ in range(connections):
                pool.put_nowait(await psycopg.AsyncConnection.connect(dsn))
        _, variant, index = scope["path"].split("/")
        i = int(index) % len(captures)
        statements, body = captures[i]
        if variant == "limit":  # the raw-read limit's own transaction, as benchmarks/limits.py runs it
            entity = uuid.uuid4()
            statements = [(SELECT_DOCS, (dossiers[i],)), (INSERT_AUDIT, (
                dossiers[i], next(seq), uuid.uuid4(), "R", "ITI-67", "8bench", str(entity),
                json.dumps({"returned": 10}), GENESIS, hashlib.sha256(f"{GENESIS}:{entity}".encode()).hexdigest()))]
        if variant.startswith("pipelined-"):
            await run_in_threadpool(pooled, auto_pool, pipelined, statements, variant == "pipelined-3")
        elif variant.startswith("merged-"):
            await run_in_threadpool(pooled, auto_pool, merged, statements, int(variant[-1]))
        elif variant == "carnet-thread":  # the same, as Carnet runs it: sync psycopg on a worker thread
            await run_in_threadpool(pooled, sync_pool, replay, statements)
        elif variant != "http":
            conn = await pool.get()
            try:
                for sql, params in statements:
                    cur = await conn.execute(sql, params, prepare=True)
                    if cur.description is not None:
                        await cur.fetchall()
                await conn.commit()
            except BaseException:
                await conn.rollback()
                raise
            finally:
                pool.put_nowait(conn)
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/fhir+json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[_bind("127.0.0.1", port)])  # a socket of its own on the port, as carnet serve


def start_floor(dsn: str, captures_file: str, workers: int, connections: int) -> tuple[str, list[Any]]:
    import httpx
    from cluster import free_port

    port = free_port()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_serve, args=(port, dsn, captures_file, connections, k * 10**8 + 1), daemon=True)
             for k in range(workers)]
    for p in procs:
        p.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/carnet/0", timeout=2).status_code == 200:
                return base, procs
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the floor server did not answer")


def in_flight(runs: list[dict[str, Any]]) -> str:
    """Requests in flight in each run (Little's law: ok/s × mean latency): each should be near the connections'
    number; a run far below it had connections standing idle, and its CPU per request is not comparable."""
    return ", ".join(f"{x['throughput_per_s'] * x['mean_ms'] / 1000:.1f}" if x.get("mean_ms") else "-" for x in runs)


def main(argv: list[str] | None = None) -> int:
    import load
    from limits import CpuMeter, raw_phase
    from sqlalchemy.engine import make_url

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--database-url", required=True)
    p.add_argument("--var-dir", required=True, type=Path)
    p.add_argument("--captures", type=int, default=200, help="searches captured (different dossiers)")
    p.add_argument("--workers", type=int, default=4, help="server processes of Carnet and of the floor")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--duration", type=float, default=8)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--raw-processes", type=int, default=2)
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help=f"what to measure, in order: {', '.join(VARIANTS + MERGED)}")
    p.add_argument("--output", type=Path)
    a = p.parse_args(argv)
    variants = tuple(v for v in a.variants.split(",") if v)
    if not variants or set(variants) - set(VARIANTS + MERGED):
        p.error(f"--variants: choose among {', '.join(VARIANTS + MERGED)}")
    db_url, var_dir = a.database_url, a.var_dir.resolve()
    dsn = db_url.replace("postgresql+psycopg://", "postgresql://", 1)
    database = make_url(db_url).database or ""
    captures, searched = capture(db_url, var_dir, a.captures)
    per_search = {len(s) for s, _ in captures}
    print(f"captured {len(captures)} searches, {sorted(per_search)} statements each", flush=True)
    if set(variants) & set(MERGED) and per_search != {3}:
        raise SystemExit("the merged variants replay searches of three statements (the caller and dossier, the page, "
                         "the audit append)")
    with tempfile.TemporaryDirectory() as tmp:
        captures_file = str(Path(tmp) / "captures.pickle")
        with open(captures_file, "wb") as f:
            pickle.dump((captures, searched), f)
        floor_base, floor_procs = start_floor(dsn, captures_file, a.workers, max(2, a.concurrency // a.workers + 2))
        cluster = load.start_cluster(db_url, var_dir, 1, a.workers, str(var_dir / "blobs"))
        results: dict[str, list[dict[str, Any]]] = {"raw-read": [], **{v: [] for v in variants}}
        try:
            services = load.make_services(db_url, var_dir, "http://127.0.0.1:8000")
            pro_id, key = load.ensure_reference_data(services), load.register_client(services)
            services.engine.dispose()
            load.settle(dsn)
            results["raw-read"].append(raw_phase("raw-read", dsn, searched, a.concurrency, a.duration,
                                                 load.DOC_BYTES, a.raw_processes, CpuMeter(dsn, database)))
            for r in range(max(1, a.repeat)):
                for which in (variants if r % 2 == 0 else tuple(reversed(variants))):
                    if which == "ITI-67":
                        meter = CpuMeter(dsn, database, [q.pid for q in cluster.procs])
                        results[which].append(load.wrk_phase("ITI-67", cluster, key, pro_id, a.concurrency,
                                                             a.duration, searched, [], b"", meter))
                    else:
                        meter = CpuMeter(dsn, database, [q.pid for q in floor_procs])
                        results[which].append(load.run_phase_wrk(
                            f"floor {which}", floor_base, "-", a.concurrency, a.duration, "GET",
                            [f"/{which}/{i}" for i in range(len(captures))], None, f"/{which}", meter))
        finally:  # both servers stopped before the last limit: their connections would leave it too few
            cluster.stop()
            for q in floor_procs:
                q.terminate()
                q.join(10)
                if q.is_alive():
                    q.kill()
        results["raw-read"].append(raw_phase("raw-read", dsn, searched, a.concurrency, a.duration,
                                             load.DOC_BYTES, a.raw_processes, CpuMeter(dsn, database)))
    limit = sorted(x["throughput_per_s"] for x in results["raw-read"])[len(results["raw-read"]) // 2]
    print()
    print("| | ok/s of each run | ÷ raw-read limit (median run) | server CPU ms/req | PostgreSQL CPU ms/req | p99 ms "
          "| in flight |")
    print("|---|---|---:|---:|---:|---:|---:|")
    summary = {}
    for name, runs in results.items():
        ordered = sorted(runs, key=lambda x: x["throughput_per_s"])
        med = ordered[len(ordered) // 2]
        server = med.get("server_cpu_ms_per_request") or med.get("client_cpu_ms_per_request")
        summary[name] = {"runs": runs, "median_ok_per_s": med["throughput_per_s"],
                         "ratio": round(med["throughput_per_s"] / limit, 3)}
        print(f"| {name} | {', '.join(str(x['throughput_per_s']) for x in runs)} | {summary[name]['ratio']} | "
              f"{server} | {med['postgres_cpu_ms_per_request']} | {med['p99_ms']} | {in_flight(runs)} |")
    if a.output:
        a.output.write_text(json.dumps({"command": sys.argv, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                        "machine": load.machine(), "concurrency": a.concurrency,
                                        "duration_s": a.duration, "workers": a.workers, "variants": variants,
                                        "statements_per_search": sorted(per_search), "results": summary}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
