"""CPU per request inside one Carnet process, without HTTP or a load generator (issue 11).

``load.py`` measures requests/s and CPU per request of whole servers under load, which moves with whatever else the
machine does. This script answers a narrower question repeatably: how much of one process's CPU a request costs, and
where it goes. It builds Carnet's ASGI application in this process on a database filled by ``load.py --fill-only``,
and calls it directly with the ASGI messages a server would pass (no socket, no uvicorn), one request at a time. For
each operation it prints the process CPU per request (``time.process_time``: every thread of the process, the
request's transaction thread included, user and system), the wall time, and the statements sent to PostgreSQL per
request (counted by a ``before_cursor_execute`` listener, BEGIN and COMMIT not included: psycopg sends them itself).

Operations: ``search`` (ITI-67, ``patient`` and ``_count=20``), ``retrieve`` (ITI-68, the document's bytes),
``publish`` (ITI-105, a 20 KiB document; each adds a document to the database), ``provide`` (ITI-65, the same
document in a transaction Bundle with its SubmissionSet, as ``load.py`` sends it), and ``live`` (``/health/live``: the
ASGI stack with no database, a floor). ``--inline`` runs the request's transaction on the event loop's thread
instead of a worker thread (an experiment measuring the thread hop: a served Carnet never does this, since a
transaction waiting on the database would stall every other request of its process).

    python benchmarks/request_cpu.py --database-url postgresql://postgres@127.0.0.1:5432/carnet_bench_hot \\
        --var-dir /tmp/carnet-bench-hot --requests 2000 --rounds 3

Modes alternate within each round (threaded, inline, threaded, ...), and the table gives each mode's median round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

OPS = ("live", "search", "retrieve", "publish", "provide")


def _prepare(db_url: str, var_dir: Path) -> dict[str, Any]:
    """The application over the filled database, a token for the benchmark's professional, and sample ids."""
    from cluster import shared_keys

    os.environ.update(shared_keys(var_dir))
    node_dir = var_dir / "request-cpu"
    node_dir.mkdir(exist_ok=True, mode=0o700)
    os.environ.update(CARNET_DATABASE_URL=db_url, CARNET_BLOB_URL=str(var_dir / "blobs"),
                      CARNET_BASE_URL="http://bench.invalid", CARNET_VAR_DIR=str(node_dir))
    import load
    from joserfc.jwk import ECKey
    from sqlalchemy import text
    from starlette.testclient import TestClient

    from carnet import admin
    from carnet.app import create_app
    from carnet.asgi import quiet
    from carnet.auth.assertions import make_client_assertion
    from carnet.compose import build_services
    from carnet.config import Settings
    from carnet.identity.professionals import fake_rpps

    services = build_services(Settings())
    client_id = f"request-cpu-{uuid.uuid4().hex[:8]}"
    key = ECKey.generate_key("P-256", auto_kid=True)
    with services.engine.begin() as conn:
        admin.add_client(conn, client_id=client_id, name="request_cpu.py", kind="professional",
                         jwks={"keys": [key.as_dict(private=False)]})
        dossiers = [str(r[0]) for r in conn.execute(text("SELECT dossier_key FROM dossier ORDER BY dossier_key "
                                                         "LIMIT 200"))]
        docs = [str(r[0]) for r in conn.execute(text("SELECT document_id FROM document ORDER BY document_id "
                                                     "LIMIT 200"))]
    if not dossiers or not docs:
        raise SystemExit("no data: fill the database first (load.py --fill-only)")
    app = create_app(services)
    with TestClient(app, base_url="http://bench.invalid") as tc:
        assertion = make_client_assertion(key, client_id, "http://bench.invalid/oauth/token", int(time.time()),
                                          professional_id="8" + fake_rpps(load.PRO_INDEX))
        r = tc.post("/oauth/token", data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion})
        r.raise_for_status()
        token = r.json()["access_token"]
    body = json.dumps(load.docref("__MI__", subject="Patient/__PATIENT__", data=load.pdf_bytes("request-cpu")))
    return {"services": services, "app": quiet(app), "token": token, "dossiers": dossiers, "docs": docs,
            "body": body, "pdf": load.pdf_bytes("request-cpu")}


def _request(op: str, i: int, ctx: dict[str, Any]) -> tuple[dict[str, Any], bytes, int]:
    """The ASGI scope, body and expected status of request ``i`` of ``op``."""
    method, query, body, status, accept = "GET", "", b"", 200, "application/fhir+json"
    if op == "live":
        path = "/health/live"
    elif op == "search":
        path, query = "/fhir/DocumentReference", f"patient={ctx['dossiers'][i % len(ctx['dossiers'])]}&_count=20"
    elif op == "retrieve":
        path, accept = f"/fhir/Binary/{ctx['docs'][i % len(ctx['docs'])]}", "application/pdf"
    elif op == "provide":
        import load

        method, path = "POST", "/fhir"
        body = json.dumps(load.iti65_bundle(ctx["dossiers"][i % len(ctx["dossiers"])], ctx["pdf"])).encode()
    else:
        method, path, status = "POST", "/fhir/DocumentReference", 201
        mi = f"urn:oid:1.2.250.1.999.{int(time.time())}.{os.getpid()}.{uuid.uuid4().int % 10**12}"
        body = (ctx["body"].replace("__MI__", mi, 1)
                .replace("__PATIENT__", ctx["dossiers"][i % len(ctx["dossiers"])]).encode())
    headers = [(b"host", b"bench.invalid"), (b"authorization", f"Bearer {ctx['token']}".encode()),
               (b"accept", accept.encode())]
    if body:
        headers += [(b"content-type", b"application/fhir+json"), (b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
             "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80)}
    return scope, body, status


async def _run(op: str, n: int, ctx: dict[str, Any], start: int) -> None:
    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    for i in range(start, start + n):
        scope, body, expected = _request(op, i, ctx)
        sent = False

        async def receive(body: bytes = body) -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)  # a client that keeps the connection open
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await ctx["app"](scope, receive, send)
        if statuses[-1] != expected:
            raise SystemExit(f"{op}: status {statuses[-1]} (expected {expected})")


def _set_inline(inline: bool) -> None:
    """Run :meth:`carnet.fhir.routes.base.Call.run`'s work on the event loop's thread (True) or a worker thread."""
    from starlette.concurrency import run_in_threadpool

    import carnet.fhir.routes.base as base

    async def on_loop(fn: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    base.run_in_threadpool = on_loop if inline else run_in_threadpool  # type: ignore[assignment]


def measure(ctx: dict[str, Any], op: str, n: int, inline: bool, counter: list[int], offset: int) -> dict[str, float]:
    _set_inline(inline)
    asyncio.run(_run(op, 20, ctx, offset))  # warm: each statement prepared on the pool's connections
    counter[0] = 0
    cpu, wall = time.process_time(), time.perf_counter()
    asyncio.run(_run(op, n, ctx, offset + 20))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu_ms": 1000 * cpu / n, "wall_ms": 1000 * wall / n, "statements": counter[0] / n}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database-url", required=True)
    p.add_argument("--var-dir", type=Path, required=True, help="the var dir of the fill (keys, blobs)")
    p.add_argument("--ops", default=",".join(OPS))
    p.add_argument("--requests", type=int, default=2000, help="requests per operation, mode and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--modes", default="thread,inline", help="thread (as served), inline (experiment), or both")
    p.add_argument("--output", type=Path, help="write every round as JSON here")
    p.add_argument("--show-statements", action="store_true",
                   help="print the statements of one request of each operation (their text, not their values), "
                        "then measure")
    a = p.parse_args(argv)
    import logging

    from sqlalchemy import event

    ctx = _prepare(a.database_url, a.var_dir)
    logging.disable(logging.CRITICAL)  # the request log line stays (structlog), as when served; nothing else
    counter = [0]

    @event.listens_for(ctx["services"].engine, "before_cursor_execute", retval=True)
    def count(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> Any:
        counter[0] += 1
        if shown is not None:
            # prepared (carnet.db.prepared, which passes no execution context) or through SQLAlchemy Core
            shown.append(("prepared: " if context is None else "Core: ") + " ".join(statement.split()))
        return statement, params

    shown: list[str] | None = None
    if a.show_statements:
        for op in [o.strip() for o in a.ops.split(",") if o.strip()]:
            shown = []
            asyncio.run(_run(op, 1, ctx, 10**6))
            print(f"{op}: {len(shown)} statements")
            for i, text in enumerate(shown, 1):
                print(f"  {i}. {text[:400]}")
        shown = None

    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    real_stdout, real_stderr = os.dup(1), os.dup(2)
    ops = [o.strip() for o in a.ops.split(",") if o.strip()]
    modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    runs: list[dict[str, Any]] = []
    offset = 0
    for r in range(a.rounds):
        for op in ops:
            for mode in (modes if r % 2 == 0 else modes[::-1]):
                os.dup2(devnull, 1)  # the request log lines (one per request) go nowhere, as in load.py's runs
                os.dup2(devnull, 2)
                try:
                    figures = measure(ctx, op, a.requests, mode == "inline", counter, offset)
                finally:
                    sys.stdout.flush()
                    os.dup2(real_stdout, 1)
                    os.dup2(real_stderr, 2)
                offset += a.requests + 20
                runs.append({"round": r + 1, "op": op, "mode": mode, **figures})
                print(f"round {r + 1} {op:8} {mode:6} CPU {figures['cpu_ms']:.3f} ms/req, wall "
                      f"{figures['wall_ms']:.3f} ms/req, {figures['statements']:.2f} statements/req", flush=True)
    print("\n| operation | mode | CPU ms/req (median round) | rounds | wall ms/req | statements/req |")
    print("|---|---|---:|---|---:|---:|")
    for op in ops:
        for mode in modes:
            mine = [x for x in runs if x["op"] == op and x["mode"] == mode]
            cpu = [x["cpu_ms"] for x in mine]
            print(f"| {op} | {mode} | {statistics.median(cpu):.3f} | {', '.join(f'{c:.3f}' for c in cpu)} | "
                  f"{statistics.median(x['wall_ms'] for x in mine):.3f} | {mine[0]['statements']:.2f} |")
    if a.output:
        a.output.write_text(json.dumps({"argv": sys.argv[1:], "runs": runs}, indent=1) + "\n")
    ctx["services"].engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
