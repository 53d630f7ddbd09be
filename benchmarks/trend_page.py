"""Benchmark of the trend chart page (issue 17 §2): a 90-day CGM series (one reading every 5 minutes: 25,920
readings) drawn on the clinician portal's chart page, ``/pro/dossier/{key}/measures/glucose?days=90``.

1. **Fill**: recreates the PostgreSQL database ``carnet_bench_trend`` (or uses ``--database-url``, migrated), creates
   one dossier (its médecin traitant the benchmark doctor) and uploads the series through the measurements service's
   bulk path as the patient (``carnet.measures.service.record``).
2. **Server**: ``--requests`` sequential requests of the page in process (a Starlette TestClient, a clinician
   session opened with ``carnet.auth.pro_sessions.open_session``; the OIDC sign-in is not measured): p50/p95/max of
   the whole page (policy, audit record, reading the 25,920 rows, statistics, per-day table, min/max downsampling,
   rendering), the page's size, and the share of the time spent reading the rows (the same read alone).
3. **Browser**: Debian's Chromium (Playwright) loads the page from a uvicorn server in a thread, ``--loads`` times at
   390 px and at 1280 px: the time uPlot takes to parse and draw (``trend-chart.js`` marks it on the chart) and the
   time from the navigation's start to the chart drawn.

    .venv/bin/python benchmarks/trend_page.py              # about a minute on 2 cores
    .venv/bin/python benchmarks/trend_page.py --output benchmarks/results/trend_page.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import load  # noqa: E402  (benchmarks/load.py: database, services, machine, percentiles)

BENCH_DB = "carnet_bench_trend"
DAYS = 90
PATH = "/pro/dossier/{key}/measures/glucose?days=90"


def fill(services: Any) -> tuple[Any, str]:
    from carnet.access.actors import Actor, ActorKind
    from carnet.context import run
    from carnet.dossier import service as dossiers
    from carnet.measures import service as measures
    from carnet.measures.catalogue import Measure

    gp_id = load.ensure_reference_data(services)
    gp = Actor(ActorKind.PROFESSIONAL, id=gp_id, profession="10")
    resource = load.patient_resource(1)
    key, _ = run(services, gp, lambda ctx: dossiers.create(ctx, resource))
    ins = resource["identifier"][0]["value"]
    patient = Actor(ActorKind.PATIENT, id=ins)
    run(services, patient, lambda ctx: dossiers.set_treating_gp(ctx, key, gp_id))
    now = services.clock()
    n = DAYS * 288
    rs = [measures.reading(Measure.GLUCOSE, now - dt.timedelta(minutes=5 * (n - i)),
                           round(140 + 70 * math.sin(i / 288 * 2 * math.pi) + 25 * math.sin(i / 37), 1), "mg/dL")
          for i in range(n)]
    began = time.perf_counter()
    up = run(services, patient, lambda ctx: measures.record(
        ctx, key, measures.SourceRef("app", "client:bench-cgm", "CGM"), rs))
    print(f"fill: {up.stored_total} readings in {time.perf_counter() - began:.2f} s", flush=True)
    return key, gp_id


def server(services: Any, key: Any, cookie: str, requests: int) -> dict[str, Any]:
    from starlette.testclient import TestClient

    from carnet.app import create_app
    from carnet.auth.pro_sessions import COOKIE
    from carnet.measures import store
    from carnet.measures.catalogue import Measure

    app = create_app(services)
    times: list[float] = []
    size = 0
    with TestClient(app, base_url=services.settings.base_url) as client:
        client.cookies.set(COOKIE, cookie)
        for i in range(requests + 2):
            began = time.perf_counter()
            r = client.get(PATH.format(key=key))
            took = time.perf_counter() - began
            assert r.status_code == 200 and 'id="trend-data"' in r.text, r.status_code
            size = len(r.content)
            if i >= 2:  # two warm-up requests (templates compiled, pool filled)
                times.append(took * 1000)
    now = services.clock()
    reads = []
    for _ in range(min(requests, 10)):
        began = time.perf_counter()
        with services.engine.connect() as conn:
            rows = store.read_range(conn, key, int(Measure.GLUCOSE), now - dt.timedelta(days=DAYS), now)
        reads.append((time.perf_counter() - began) * 1000)
    times.sort()
    return {"requests": len(times), "p50_ms": round(load.percentile(times, 50), 1),
            "p95_ms": round(load.percentile(times, 95), 1), "max_ms": round(times[-1], 1), "page_bytes": size,
            "rows": len(rows), "read_rows_p50_ms": round(statistics.median(reads), 1)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def browser(services: Any, key: Any, cookie: str, loads: int) -> dict[str, Any]:
    import uvicorn
    from playwright.sync_api import sync_playwright

    from carnet.app import create_app
    from carnet.auth.pro_sessions import COOKIE

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(services), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    out: dict[str, Any] = {}
    try:
        with sync_playwright() as pw:
            chromium = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                          args=["--no-sandbox", "--disable-gpu"])
            for label, size in (("phone_390", {"width": 390, "height": 844}),
                                ("desktop_1280", {"width": 1280, "height": 900})):
                draw, ready = [], []
                for i in range(loads + 1):
                    context = chromium.new_context(viewport=size, locale="fr-FR")
                    context.add_cookies([{"name": COOKIE, "value": cookie, "url": base}])
                    page = context.new_page()
                    page.goto(base + PATH.format(key=key))
                    page.wait_for_selector("html[data-charts-drawn='1']")
                    ms = float(page.evaluate("document.querySelector('#trend-chart').dataset.ms"))
                    at = float(page.evaluate("document.documentElement.dataset.chartsAt"))
                    points = int(page.evaluate("document.querySelector('#trend-chart').dataset.drawn"))
                    context.close()
                    if i:  # the first load warms the browser's caches
                        draw.append(ms)
                        ready.append(at)
                out[label] = {"loads": len(draw), "points_drawn": points,
                              "draw_p50_ms": round(statistics.median(draw), 1), "draw_max_ms": round(max(draw), 1),
                              "navigation_to_drawn_p50_ms": round(statistics.median(ready), 1),
                              "navigation_to_drawn_max_ms": round(max(ready), 1)}
            chromium.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="an existing database (migrated here); default: a fresh "
                        f"PostgreSQL database {BENCH_DB}")
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--output", type=Path)
    a = parser.parse_args(argv)

    from carnet.auth import pro_sessions
    from carnet.db.migrate import upgrade

    db_url = a.database_url or load.fresh_database(BENCH_DB)
    upgrade(db_url)
    with tempfile.TemporaryDirectory() as var:
        services = load.make_services(db_url, Path(var), "http://127.0.0.1", pool_size=4)
        key, gp_id = fill(services)
        with services.engine.begin() as conn:
            cookie = pro_sessions.open_session(conn, gp_id, "eidas1", services.clock(), services.settings)
        before = os.getloadavg()[0]
        report = {"machine": load.machine(), "database": db_url.split("@")[-1].split("/")[0].split(":")[0]
                  if "postgresql" in db_url else "sqlite", "readings": DAYS * 288,
                  "server": server(services, key, cookie, a.requests),
                  "browser": browser(services, key, cookie, a.loads),
                  "load_average_1min": [round(before, 1), round(os.getloadavg()[0], 1)]}
        services.engine.dispose()
    print(json.dumps(report, indent=2))
    if a.output:
        a.output.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
