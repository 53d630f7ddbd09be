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
import datetime as dt
import io
import json
import multiprocessing as mp
import os
import pstats
import random
import shutil
import statistics
import sys
import tempfile
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

BENCH_DB = "carnet_bench_pro"
VAR_DIR = "/tmp/carnet-bench-pro-var"
GP_INDEX = 9_100_001  # synthetic RPPS indexes: the benchmark GP, then the other doctors
OTHERS = (("Hôpital", "Claire", "Lettre de sortie"), ("Cardio", "Marc", "Cardiologie"),
          ("Radio", "Inès", "Imagerie"), ("Labo", "Paul", "Biologie"), ("Chir", "Léa", "Chirurgie"),
          ("Pneumo", "Hugo", "Pneumologie"))
# (type code, class code, title, share of PDFs): what a hospital or a specialist sends
SPECIALIST_TYPES = (("11488-4", "10", "Compte rendu de consultation", 0.7), ("11490-0", "10", "Lettre de sortie", 1.0),
                    ("34874-8", "10", "Compte rendu opératoire", 1.0), ("11502-2", "10", "Compte rendu de biologie",
                                                                               0.6),
                    ("18748-4", "31", "Compte rendu d'imagerie", 1.0), ("34133-9", "11", "Synthèse d'épisode de soins",
                                                                        1.0),
                    ("18776-5", "44", "Plan de soins", 0.8))
GP_TYPES = (("57833-6", "42", "Ordonnance", 1.0), ("60591-5", "11", "Volet de synthèse médicale", 1.0),
            ("11369-6", "52", "Certificat de vaccination", 1.0), ("11488-4", "10", "Consultation de suivi", 0.3))
WORDS = ("patient", "examen", "clinique", "tension", "artérielle", "traitement", "poursuivre", "bilan", "normal",
         "contrôle", "dans", "trois", "mois", "antécédents", "allergie", "douleur", "thoracique", "absence", "de",
         "fièvre", "auscultation", "pulmonaire", "libre", "échographie", "sans", "particularité", "avis", "le", "la")


# --- data ------------------------------------------------------------------------------------------------------------

def _pdf_text(s: str) -> bytes:
    return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode("cp1252", "replace")


def pdf_document(title: str, lines: list[str], size: int) -> bytes:
    """A valid one-page PDF (Helvetica text, a cross-reference table) of about ``size`` bytes: the text, plus an
    incompressible greyscale image standing for a letterhead or a scan, as in a real report."""
    text = b"BT /F1 14 Tf 56 780 Td (" + _pdf_text(title) + b") Tj /F1 10 Tf 0 -24 Td 13 TL " + b" ".join(
        b"(" + _pdf_text(line) + b") '" for line in lines) + b" ET"
    filler = max(64, size - len(text) - 900)
    image = os.urandom(filler)
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> "
            b"/XObject << /Im1 6 0 R >> >> /Contents 5 0 R >>",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
            b"<< /Length %d >>\nstream\n" % len(text) + text + b"\nendstream",
            b"<< /Type /XObject /Subtype /Image /Width %d /Height 1 /ColorSpace /DeviceGray /BitsPerComponent 8 "
            b"/Length %d >>\nstream\n" % (filler, filler) + image + b"\nendstream"]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def prose(rng: random.Random, n_lines: int) -> list[str]:
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 14))).capitalize() + "." for _ in range(n_lines)]


def document(rng: random.Random, key: uuid.UUID, kind: tuple[str, str, str, float], author: str,
             when: dt.datetime) -> tuple[dict[str, Any], bytes, str]:
    """A DocumentReference (as the portal's add form builds it, dated ``when``) and its content."""
    from carnet.documents import codes

    type_code, class_code, title, pdf_share = kind
    if rng.random() < pdf_share:
        ctype = "application/pdf"
        data = pdf_document(title, prose(rng, rng.randint(10, 40)), rng.choice((6, 12, 20, 30, 45, 60)) * 1024)
    else:
        ctype = "text/plain"
        data = "\n".join([title, "", *prose(rng, rng.randint(8, 30))]).encode()
    instant = when.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    res: dict[str, Any] = {
        "resourceType": "DocumentReference", "status": "current",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "type": {"coding": [{"system": codes.LOINC, "code": type_code, "display": title}]},
        "category": [{"coding": [{"system": codes.TRE_A03, "code": class_code,
                                  "display": codes.CLASSES[class_code]}]}],
        "subject": {"reference": f"Patient/{key}"}, "date": instant,
        "author": [{"reference": f"Practitioner/{author}"}],
        "content": [{"attachment": {"contentType": ctype, "title": f"{title} du {when.date():%d/%m/%Y}",
                                    "creation": instant},
                     "format": {"system": "urn:ihe:iti:xds:2017:mimeTypeSufficient",
                                "code": "urn:ihe:iti:xds:2017:mimeTypeSufficient"}}]}
    return res, data, ctype


def _coded(system: str, code: str, text: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": text}], "text": text}


SCT = "http://snomed.info/sct"


def structured_items(rng: random.Random) -> list[dict[str, Any]]:
    """Twelve items (subject filled in by the service): 2 allergies, 3 problems, 4 treatments, the blood group and
    2 vaccinations, shaped as tests/clinical/samples.py."""
    active = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                          "code": "active"}]}
    cond = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]}
    items: list[dict[str, Any]] = [
        {"resourceType": "AllergyIntolerance", "clinicalStatus": active, "category": [cat],
         "code": _coded(SCT, code, text)}
        for cat, code, text in rng.sample([("medication", "764146007", "Pénicilline"),
                                           ("environment", "111088007", "Latex"),
                                           ("medication", "387458008", "Aspirine"),
                                           ("food", "91935009", "Arachide")], 2)]
    items += [{"resourceType": "Condition", "clinicalStatus": cond, "code": _coded(SCT, code, text),
               "onsetDateTime": f"{rng.randint(1995, 2024)}-0{rng.randint(1, 9)}-01"}
              for code, text in rng.sample([("38341003", "Hypertension artérielle"), ("44054006", "Diabète de type 2"),
                                            ("195967001", "Asthme"), ("49436004", "Fibrillation auriculaire"),
                                            ("13645005", "BPCO"), ("55822004", "Hyperlipidémie")], 3)]
    items += [{"resourceType": "MedicationStatement", "status": "active", "medicationCodeableConcept": {"text": t},
               "effectiveDateTime": f"{rng.randint(2015, 2025)}-0{rng.randint(1, 9)}-15"}
              for t in rng.sample(["Amlodipine 5 mg, un comprimé par jour", "Metformine 1000 mg matin et soir",
                                   "Atorvastatine 20 mg le soir", "Apixaban 5 mg matin et soir",
                                   "Salbutamol 100 µg à la demande", "Ramipril 5 mg le matin"], 4)]
    items.append({"resourceType": "Observation", "status": "final", "category": [{"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "882-1", "display": "ABO and Rh group"}]},
        "valueCodeableConcept": {"text": rng.choice(["O Rh+", "A Rh+", "B Rh-", "AB Rh+", "O Rh-"])},
        "effectiveDateTime": "2010-06-01"})
    items += [{"resourceType": "Immunization", "status": "completed",
               "vaccineCode": _coded(SCT, code, text), "occurrenceDateTime": day}
              for code, text, day in (("836377006", "Vaccin antigrippal", "2025-10-20"),
                                      ("1119349007", "Vaccin COVID-19", "2024-11-05"))]
    return items


# --- fill ------------------------------------------------------------------------------------------------------------

def practitioners(services: Any) -> tuple[str, list[str]]:
    """The benchmark GP and the six other doctors (added to the directory; returns their national ids)."""
    from carnet import admin
    from carnet.identity.professionals import fake_rpps

    with services.engine.begin() as conn:
        gp = admin.add_practitioner(conn, rpps=fake_rpps(GP_INDEX), adeli=None, family="Bench", given="Généraliste",
                                    profession="10", specialty="SM54")
        others = [admin.add_practitioner(conn, rpps=fake_rpps(GP_INDEX + 1 + k), adeli=None, family=family,
                                         given=given, profession="10", organisation_name=org)
                  for k, (family, given, org) in enumerate(OTHERS)]
    return gp, others


def _actor(national_id: str, display: str) -> Any:
    from carnet.access.actors import Actor, ActorKind

    return Actor(ActorKind.PROFESSIONAL, id=national_id, display=display, profession="10")


def _fill_dossier(services: Any, i: int, total: int, gp: Any, others: list[Any], today: dt.datetime
                  ) -> tuple[int, int]:
    """One dossier, in the order of a real one: the GP creates it and becomes médecin traitant; specialists send their
    reports (~80% of the documents, each in one transaction with their own consent declaration); the GP records the
    structured items and their own documents (~12%); one specialist sends the latest ones (~8%, the last 3 days)."""
    from carnet.clinical import service as clinical
    from carnet.context import Context, run
    from carnet.documents import service as documents
    from carnet.dossier import service as dossiers

    rng = random.Random(i)

    def create(ctx: Context) -> uuid.UUID:
        key, _ = dossiers.create(ctx, load.patient_resource(i))
        dossiers.set_treating_gp(ctx, key, gp.id)
        return key
    key = run(services, gp, create)
    dates = sorted(today - dt.timedelta(days=rng.uniform(3, 8 * 365)) for _ in range(total))
    n_new, n_gp = max(1, total * 8 // 100), max(1, total * 12 // 100)
    spec_dates, gp_dates = dates[:total - n_new - n_gp], dates[total - n_new - n_gp:total - n_new]
    new_dates = sorted(today - dt.timedelta(hours=rng.uniform(1, 72)) for _ in range(n_new))
    authors = [others[a] for a in rng.sample(range(len(others)), rng.randint(3, 5))]

    def publisher(author: Any, when: list[dt.datetime], kinds: Any, consent: bool) -> Callable[[Context], int]:
        def work(ctx: Context) -> int:
            if consent:
                dossiers.change_access(ctx, key, "practitioner", author.id, "authorized")
            for d in when:
                res, data, ctype = document(rng, key, rng.choice(kinds), author.id, d)
                documents.publish(ctx, key, res, documents.Content(data, ctype), "ITI-65")
            return len(when)
        return work

    made = 0
    for k, author in enumerate(authors):
        made += run(services, author, publisher(author, spec_dates[k::len(authors)], SPECIALIST_TYPES, True))
    items = structured_items(rng)

    def gp_work(ctx: Context) -> int:
        for item in items:
            clinical.create(ctx, key, item)
        return publisher(gp, gp_dates, GP_TYPES, False)(ctx)
    made += run(services, gp, gp_work)
    made += run(services, authors[0], publisher(authors[0], new_dates, SPECIALIST_TYPES, False))
    return made, len(items)


def _fill_worker(db_url: str, var_dir: str, base_url: str, indexes: list[int], n_docs: int, n_heavy: int,
                 heavy_from: int, gp_id: str, other_ids: list[str]) -> tuple[int, int, int, float]:
    services = load.make_services(db_url, Path(var_dir), base_url)
    gp = _actor(gp_id, "Généraliste Bench")
    others = [_actor(o, f"{given} {family}") for o, (family, given, _) in zip(other_ids, OTHERS, strict=True)]
    made_docs = made_items = 0
    t0 = time.perf_counter()
    today = dt.datetime.now(dt.UTC).replace(microsecond=0)
    for i in indexes:
        try:
            docs, items = _fill_dossier(services, i, n_heavy if i >= heavy_from else n_docs, gp, others, today)
        except Exception as exc:  # noqa: BLE001 - FhirError does not pickle back to the parent process
            raise RuntimeError(f"dossier {i}: {type(exc).__name__}: {exc}") from None
        made_docs, made_items = made_docs + docs, made_items + items
    services.engine.dispose()
    return len(indexes), made_docs, made_items, time.perf_counter() - t0


def _news_worker(db_url: str, var_dir: str, base_url: str, pairs: list[tuple[str, str]], seed: int) -> int:
    from carnet.context import Context, run
    from carnet.documents import service as documents

    services = load.make_services(db_url, Path(var_dir), base_url)
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    made = 0
    for key_text, author_id in pairs:
        key = uuid.UUID(key_text)

        def work(ctx: Context, key: uuid.UUID = key, author_id: str = author_id) -> int:
            for _ in range(2):
                res, data, ctype = document(rng, key, rng.choice(SPECIALIST_TYPES), author_id,
                                            now - dt.timedelta(hours=rng.uniform(1, 48)))
                documents.publish(ctx, key, res, documents.Content(data, ctype), "ITI-65")
            return 2
        try:
            made += run(services, _actor(author_id, "Bench"), work)
        except Exception as exc:  # noqa: BLE001 - FhirError does not pickle back to the parent process
            raise RuntimeError(f"{type(exc).__name__}: {exc}") from None
    services.engine.dispose()
    return made


def add_news(db_url: str, var_dir: Path, base_url: str, procs: int) -> dict[str, Any]:
    """Before measuring data that an earlier run already visited: in each dossier, one of its specialists adds two
    documents, so that "new since your last access" has something to show again (as after a fresh fill)."""
    from sqlalchemy import create_engine, func, select

    from carnet.db.tables import document

    services = load.make_services(db_url, var_dir, base_url)
    gp_id, _ = practitioners(services)
    services.engine.dispose()
    eng = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with eng.connect() as conn:
        pairs = [(str(k), str(a)) for k, a in conn.execute(
            select(document.c.dossier_key, func.min(document.c.author_id)).where(document.c.author_id != gp_id)
            .group_by(document.c.dossier_key).order_by(document.c.dossier_key))]
    eng.dispose()
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(procs) as pool:
        made = sum(pool.starmap(_news_worker, [(db_url, str(var_dir), base_url, pairs[k::procs], k)
                                               for k in range(procs)]))
    print(f"news: {made} documents added to {len(pairs)} dossiers in {time.perf_counter() - t0:.1f} s", flush=True)
    return {"documents": made, "dossiers": len(pairs)}


def data_counts(db_url: str) -> dict[str, int]:
    from sqlalchemy import create_engine, func, select

    from carnet.db.tables import audit, claim_line, clinical_item, document, dossier

    eng = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with eng.connect() as conn:
        out = {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
               for t in (dossier, document, clinical_item, claim_line, audit)}
    eng.dispose()
    return out


def fresh_database(name: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    eng = create_engine(load.PG_ADMIN, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    eng.dispose()
    return make_url(load.PG_ADMIN).set(database=name).render_as_string(hide_password=False)


def fill(db_url: str, var_dir: Path, base_url: str, n_dossiers: int, n_heavy: int, n_docs: int, n_heavy_docs: int,
         claims_per_dossier: int, procs: int) -> dict[str, Any]:
    from carnet.claims.ingest import ingest
    from carnet.identity.ins import fake_nir_for
    from claims import write_file  # benchmarks/claims.py's synthetic claims file

    services = load.make_services(db_url, var_dir, base_url)  # creates the master key once
    gp_id, others = practitioners(services)
    total = n_dossiers + n_heavy
    # heavy dossiers are the last indexes; interleave so that each process gets its share of them
    jobs = [(db_url, str(var_dir), base_url, list(range(k, total, procs)), n_docs, n_heavy_docs, n_dossiers, gp_id,
             others) for k in range(procs)]
    print(f"fill: {n_dossiers} dossiers of {n_docs} documents and {n_heavy} of {n_heavy_docs}, 12 structured items "
          f"each, {procs} processes", flush=True)
    t0 = time.perf_counter()
    results = load.in_processes(_fill_worker, jobs)
    docs_s = time.perf_counter() - t0
    made_docs = sum(r[1] for r in results)
    print(f"fill: {sum(r[0] for r in results)} dossiers, {made_docs} documents, {sum(r[2] for r in results)} "
          f"structured items in {docs_s:.1f} s ({made_docs / docs_s:.0f} documents/s)", flush=True)
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "claims.csv"
        write_file(path, [fake_nir_for(load.INS_OFFSET + i) for i in range(total)], claims_per_dossier * total)
        with path.open("rb") as f:
            summary = ingest(services, f)
    claims_s = time.perf_counter() - t1
    print(f"fill: {summary.inserted} claims lines in {claims_s:.1f} s", flush=True)
    services.engine.dispose()
    return {"dossiers": n_dossiers, "heavy_dossiers": n_heavy, "documents": made_docs,
            "structured_items": sum(r[2] for r in results), "claims_lines": summary.inserted,
            "processes": procs, "documents_seconds": round(docs_s, 1), "claims_seconds": round(claims_s, 1),
            "seconds": round(docs_s + claims_s, 1)}


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
    p.add_argument("--database-url", help=f"PostgreSQL URL (default: recreate {BENCH_DB} at 127.0.0.1:5432, user "
                                          "postgres)")
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
    db_url = a.database_url or (load.PG_ADMIN.rsplit("/", 1)[0] + f"/{name}" if a.skip_fill else
                                fresh_database(name))
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
