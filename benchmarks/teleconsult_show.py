"""Benchmark of "show to the patient" in a teleconsultation (issue 12 §1): the time from the professional's click to
the document readable on the patient's screen, on loopback.

Builds a fresh embedded Carnet (SQLite and files in a temporary folder, or ``--database-url`` PostgreSQL, migrated),
seeds the demo (Dr Claire Martin, médecin traitant of Jeanne Lefèvre), publishes ``--documents`` text reports in
Jeanne's dossier, starts a teleconsultation and serves Carnet on a free port (uvicorn in a thread, one process: both
sockets on one node; the relay still goes through the database). Debian's Chromium, with a fake camera and
microphone, opens the room in two contexts (the professional's and the patient's sessions are made directly with the
session services: sign-in is not measured), waits for the WebRTC connection, then shows the documents one after the
other, ``--rounds`` times. Each show is timed in the browsers: from the click (``performance.timeOrigin + now()``
in the professional's page) to the moment the patient's page has fetched the document (with its own session, an
audited read) and put its text on screen (the same clock: one machine). What it includes: the socket message, the
visit service's policy checks and audit record in one transaction, the relay's write, the patient's socket polling
it (every ``CARNET_SIGNAL_POLL_MS``), the patient's browser fetching the document (decrypted, SHA-256 checked,
audited) and drawing it.

    .venv/bin/python benchmarks/teleconsult_show.py                      # SQLite, 150 ms polling, ~40 s
    .venv/bin/python benchmarks/teleconsult_show.py --poll-ms 50
    .venv/bin/python benchmarks/teleconsult_show.py --database-url postgresql+psycopg://postgres@127.0.0.1/carnet_bench_tele
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from playwright.sync_api import sync_playwright
from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers import free_port  # noqa: E402

from carnet import teleconsult  # noqa: E402
from carnet.access.actors import Actor, ActorKind  # noqa: E402
from carnet.accounts import sessions  # noqa: E402
from carnet.app import create_app  # noqa: E402
from carnet.auth import pro_sessions  # noqa: E402
from carnet.compose import build_services  # noqa: E402
from carnet.config import Settings  # noqa: E402
from carnet.context import Services, run  # noqa: E402
from carnet.db.migrate import upgrade  # noqa: E402
from carnet.db.tables import account_dossier, ins_lookup  # noqa: E402
from carnet.demo import patient_ins, pro_id, seed  # noqa: E402
from carnet.documents import service as documents  # noqa: E402
from carnet.pro.pages.dossier import docref  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 "--allow-loopback-in-peer-connection"]


def prepare(services: Services, count: int) -> tuple[Any, list[str], Any, str, str]:
    gp = Actor(ActorKind.PROFESSIONAL, id=pro_id(1), display="Claire Martin", profession="10")
    with services.engine.connect() as conn:
        key = conn.execute(select(ins_lookup.c.dossier_key).where(ins_lookup.c.ins == patient_ins(1))).scalar_one()
        account_id = conn.execute(select(account_dossier.c.account_id).where(
            account_dossier.c.dossier_key == key, account_dossier.c.role == "owner")).scalar_one()
    docs = []
    for i in range(count):
        text = f"Compte rendu {i + 1}\n" + "\n".join(f"Ligne {n} du compte rendu de consultation." for n in range(60))

        def work(ctx: Any, i: int = i, text: str = text) -> str:
            res = docref(key, "11488-4", f"Compte rendu {i + 1}", "text/plain", ctx.now,
                         {"reference": f"Practitioner/{pro_id(1)}"}, False, None)
            return str(documents.publish(ctx, key, res, documents.Content(text.encode(), "text/plain"),
                                         "ITI-65").document_id)
        docs.append(run(services, gp, work))
    visit = run(services, gp, lambda ctx: teleconsult.schedule(ctx, key, None, 15))
    now = services.clock()
    with services.engine.begin() as conn:
        pro_token = pro_sessions.open_session(conn, pro_id(1), None, now, services.settings)
        patient_token = sessions.open_session(conn, account_id, "signed_in", now, services.settings)
        current = sessions.load(conn, patient_token, now, services.settings)
        assert current is not None
        sessions.choose_dossier(conn, current, key, now)
    return key, docs, visit.consultation_id, pro_token, patient_token


def measure(base: str, key: Any, docs: list[str], cid: Any, pro_token: str, patient_token: str, rounds: int,
            chromium: str) -> list[float]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        pages = []
        for name, token, url in ((pro_sessions.COOKIE, pro_token, f"/pro/dossier/{key}/teleconsult/{cid}"),
                                 (sessions.COOKIE, patient_token, f"/portal/teleconsultations/{cid}")):
            ctx = browser.new_context(locale="fr-FR")
            ctx.add_cookies([{"name": name, "value": token, "url": base, "httpOnly": True, "sameSite": "Lax"}])
            page = ctx.new_page()
            page.set_default_timeout(30_000)
            page.goto(base + url)
            pages.append(page)
        clinician, patient = pages
        for page in pages:
            page.wait_for_selector('#teleconsult[data-connection="connected"]')
        times = []
        for r in range(rounds):
            for doc in docs:
                started = clinician.evaluate("""doc => { const t = performance.timeOrigin + performance.now();
                    document.querySelector(`.show-doc[data-document="${doc}"]`).click(); return t; }""", doc)
                patient.wait_for_selector(f'#shared[data-document="{doc}"][data-loaded="1"]')
                shown = float(patient.locator("#shared").get_attribute("data-loaded-at") or "nan")
                if r > 0 or doc != docs[0]:  # the first show warms the caches and the connection pool
                    times.append(shown - started)
        browser.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None, help="PostgreSQL (migrated); default: SQLite in a temp dir")
    parser.add_argument("--documents", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--poll-ms", type=int, default=150)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--output", default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        os.environ.pop("CARNET_DATABASE_URL", None)
        settings = Settings(var_dir=Path(tmp), base_url=base, database_url=args.database_url,
                            signal_poll_ms=args.poll_ms, cookie_secure=False)
        upgrade(settings.effective_database_url)
        services = build_services(settings)
        seed(services)
        key, docs, cid, pro_token, patient_token = prepare(services, args.documents)
        server = uvicorn.Server(uvicorn.Config(create_app(services), host="127.0.0.1", port=port,
                                               log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        for _ in range(100):
            try:
                if httpx.get(f"{base}/health/live").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        try:
            times = measure(base, key, docs, cid, pro_token, patient_token, args.rounds, args.chromium)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    times.sort()
    figures = {"database": "postgresql" if args.database_url else "sqlite", "poll_ms": args.poll_ms,
               "shows": len(times), "p50_ms": round(statistics.median(times), 1),
               "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)], 1), "min_ms": round(times[0], 1),
               "max_ms": round(times[-1], 1)}
    print("| database | polling | shows | p50 | p95 | min | max |\n|---|---|---|---|---|---|---|")
    print(f"| {figures['database']} | {args.poll_ms} ms | {figures['shows']} | {figures['p50_ms']} ms | "
          f"{figures['p95_ms']} ms | {figures['min_ms']} ms | {figures['max_ms']} ms |")
    if args.output:
        Path(args.output).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
