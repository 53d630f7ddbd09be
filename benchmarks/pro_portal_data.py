"""The pro-portal benchmark's data (``benchmarks/pro_portal.py`` measures it): a fresh PostgreSQL database, the
professionals' directory, then dossiers filled through the services in parallel processes — documents of several
authors (PDF of a realistic size), structured items, Assurance Maladie claims — and, before measuring again, a
few new documents per dossier so that "new since your last access" has something to show.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
import uuid
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
