"""Bulk filler: millions of dossiers and documents written with COPY, with Carnet's own encryption and audit chains.

``load.py`` fills through Carnet's services, one transaction per document (about 50 to 450 documents/s here): far
from the 10^7 documents that issue 10 §5 asks latency to be measured at. This filler writes the same rows without
the per-request path, in chunks of dossiers, each chunk one transaction of ``COPY`` statements (psycopg 3
``cursor.copy``), in ``--processes`` processes (the CPU part: sealing, hashing, JSON):

* per dossier, what ``dossiers.create`` writes for a professional with the patient's consent: ``ins_lookup``,
  ``dossier`` (the served Patient resource, :func:`carnet.dossier.patient.served_patient`), ``patient_index``, the
  professional's ``access_grant`` (``authorized``) and the audit records ``dossier.create`` and ``access.consent`` —
  but **not** the owner's account and activation letter (``accounts.invite_owner``): the benchmark needs no patient
  sign-in, and a million letters in the outbox would measure the mailer;
* per document, what ``documents.publish`` writes for ITI-105: the content (``--doc-bytes``, default 1 KiB, a
  PDF-like payload) sealed by :func:`carnet.blobs.seal_stream` under a fresh data key wrapped by the var dir's master
  key, with the document's AAD (:func:`carnet.documents.stored.aad`), written to the local blob store's path for its
  key (``<var-dir>/blobs/ab/cd/<key>``, as :class:`carnet.blobs.LocalBlobStore` lays it out: Carnet keeps every
  content in the blob store, never in the database); the ``document`` row (metadata read by Carnet's own
  :func:`carnet.documents.metadata.read_metadata`, the served resource by ``publishing._served_resource``),
  ``document_identifier``, ``resource_locator``, ``document_token`` and the ``ITI-105`` audit record;
* per dossier, its audit hash chain computed with :func:`carnet.audit.log.link` and
  :func:`carnet.audit.log.body_hash` (what ``carnet audit verify`` recomputes) and its head in ``audit_chain``.

Blob files are not fsync'd one by one (``LocalBlobStore.put`` is): the chunk's files are made durable by one
``os.sync()`` before its transaction commits, so a committed document never lacks its blob.

Resumable and incremental: ``--documents`` is the total wanted; chunks already committed (found by their first
dossier's INS) are skipped, so ``--documents 100000`` then ``--documents 1000000`` adds to the same database. A crash
leaves at most the blob files of the chunks in flight (``carnet blobs gc`` removes such orphans).

    python benchmarks/fill.py --documents 100000                 # creates carnet_bench_fill if missing
    python benchmarks/fill.py --documents 1000000                # adds to it
    python benchmarks/fill.py --drop                              # drops the database and the var dir
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from load import (  # noqa: E402
    PG_ADMIN,
    database_on_server,
    docref,
    ensure_reference_data,
    make_services,
    patient_resource,
    pdf_bytes,
    pro_actor,
)

FILL_DB = "carnet_bench_fill"
DEFAULT_VAR = "/tmp/carnet-bench-fill-var"
FIRST_INDEX = 1_000_000  # patient_resource indexes of the filler's dossiers (load.py's own start at 0)
BASE_URL = "http://127.0.0.1:8000"


def plain_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def ensure_database(name: str) -> str:
    """Create the database ``name`` on :data:`PG_ADMIN`'s server if it is missing; its URL."""
    import psycopg

    with psycopg.connect(plain_url(PG_ADMIN), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
    return database_on_server(name)


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(plain_url(PG_ADMIN), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- one chunk of dossiers --------------------------------------------------------------------------------------------

_COLUMNS = {
    "ins_lookup": ("ins", "dossier_key"),
    "dossier": ("dossier_key", "status", "ins_system", "ins", "family", "given", "birth_date", "gender", "birthplace",
                "is_protected_adult", "objects_break_glass", "objects_regulation", "access_requests", "requires_code",
                "created_at", "created_by", "creation_channel", "version", "last_updated", "resource"),
    "patient_index": ("family_norm", "dossier_key", "given_norm", "birth_date", "gender"),
    "access_grant": ("dossier_key", "grant_id", "subject_kind", "subject_id", "relation", "created_at", "created_by",
                     "sees_hidden"),
    "document": ("dossier_key", "document_id", "master_identifier", "status", "class_code", "type_system",
                 "type_code", "author_id", "author_given", "author_family", "masked", "invisible_patient",
                 "invisible_patient_until", "invisible_representatives", "deleted", "creation", "date",
                 "period_start", "period_end", "content_type", "format_code", "language", "size", "sha256", "title",
                 "blob_key", "wrapped_key", "key_id", "submission_set_id", "version", "last_updated", "resource"),
    "document_identifier": ("master_identifier", "dossier_key", "document_id"),
    "resource_locator": ("resource_id", "dossier_key"),
    "document_token": ("dossier_key", "document_id", "param", "system", "code"),
    "audit": ("dossier_key", "seq", "event_id", "recorded", "action", "event", "outcome", "actor_kind", "actor_id",
              "actor_name", "organisation_id", "client_id", "mode", "reason", "entity_type", "entity_id", "detail",
              "prev_hash", "hash"),
    "audit_chain": ("dossier_key", "seq", "head", "prev"),
}


class _Chain:
    """One dossier's audit chain, built as :func:`carnet.audit.log.record` would append it."""

    def __init__(self, key: uuid.UUID, actor: Any, rows: list[tuple[Any, ...]]) -> None:
        self.key, self.actor, self.rows = key, actor, rows
        self.seq, self.head = 0, "0" * 64  # GENESIS
        self.prev: str | None = None

    def append(self, action: str, event: str, now: dt.datetime, entity_type: str, entity_id: str,
               detail: dict[str, Any]) -> None:
        from carnet.audit.log import OUTCOME_SUCCESS, body_hash, link
        from carnet.ids import new_id

        a = self.actor
        row = {"dossier_key": self.key, "event_id": new_id(), "recorded": now, "action": action, "event": event,
               "outcome": OUTCOME_SUCCESS, "actor_kind": a.kind.value, "actor_id": a.audit_id,
               "actor_name": a.display, "organisation_id": a.organisation_id, "client_id": a.client_id,
               "mode": a.mode.value, "reason": a.reason, "entity_type": entity_type, "entity_id": entity_id,
               "detail": detail}
        seq = self.seq + 1
        h = link(self.head, seq, body_hash(row))
        self.rows.append((self.key, seq, row["event_id"], now, action, event, OUTCOME_SUCCESS, row["actor_kind"],
                          row["actor_id"], row["actor_name"], row["organisation_id"], row["client_id"], row["mode"],
                          row["reason"], entity_type, entity_id, json.dumps(detail, ensure_ascii=False), self.head, h))
        self.prev, self.head, self.seq = self.head, h, seq


class _Ctx:
    """What ``publishing._served_resource`` reads of a request context: the settings' base URL."""

    def __init__(self, base_url: str) -> None:
        self.settings = type("S", (), {"base_url": base_url})()


def build_chunk(keyring: Any, blob_root: Path, chunk: int, chunk_size: int, per_dossier: int, doc_bytes: int,
                ) -> tuple[dict[str, list[tuple[Any, ...]]], list[tuple[Path, bytes]]]:
    """The rows of every table and the blob files of chunk ``chunk`` (dossiers ``chunk * chunk_size`` onwards)."""
    import hashlib

    from carnet.blobs import seal_stream
    from carnet.documents.metadata import read_metadata
    from carnet.documents.publishing import Content, _served_resource
    from carnet.documents.stored import aad, segments
    from carnet.dossier.patient import ins_of, norm, served_patient, traits
    from carnet.ids import new_id

    actor = pro_actor()
    ctx = _Ctx(BASE_URL)
    rows: dict[str, list[tuple[Any, ...]]] = {t: [] for t in _COLUMNS}
    blobs: list[tuple[Path, bytes]] = []
    for i in range(chunk * chunk_size, (chunk + 1) * chunk_size):
        resource = patient_resource(FIRST_INDEX + i)
        system, ins = ins_of(resource)
        t = traits(resource)
        key = new_id()
        now = dt.datetime.now(dt.UTC)
        served = json.dumps(served_patient(resource, key, 1, now), ensure_ascii=False, separators=(",", ":"))
        rows["ins_lookup"].append((ins, key))
        rows["dossier"].append((key, "active", system, ins, t["family"], t["given"], t["birth_date"], t["gender"],
                                t["birthplace"], False, False, False, "ask", False, now, actor.audit_id,
                                "professional", 1, now, served))
        rows["patient_index"].append((norm(t["family"]), key, norm(t["given"]), t["birth_date"], t["gender"]))
        chain = _Chain(key, actor, rows["audit"])
        chain.append("C", "dossier.create", now, "Patient", str(key), {"channel": "professional"})
        grant_id = new_id()
        rows["access_grant"].append((key, grant_id, "practitioner", actor.id, "authorized", now, actor.audit_id,
                                     False))
        chain.append("U", "access.consent", now, "Consent", str(grant_id),
                     {"subject_kind": "practitioner", "subject": actor.id, "relation": "authorized"})
        for _ in range(per_dossier):
            document_id = new_id()
            now = dt.datetime.now(dt.UTC)
            data = pdf_bytes(document_id.hex, doc_bytes)
            res = docref(f"urn:uuid:{uuid.uuid4()}")
            meta = read_metadata(res)
            sha256 = hashlib.sha256(data).hexdigest()
            sealer = seal_stream(keyring, segments(data), aad(key, document_id))
            blob_key = document_id.hex
            blobs.append((blob_root / blob_key[0:2] / blob_key[2:4] / blob_key, b"".join(sealer)))
            doc_json = json.dumps(_served_resource(ctx, res, document_id, key, Content(data, "application/pdf"),
                                                   sha256, now, 1), ensure_ascii=False, separators=(",", ":"))
            rows["document"].append((
                key, document_id, meta.master_identifier, meta.status, meta.class_code, meta.type_system,
                meta.type_code, actor.id, meta.author_given, meta.author_family, meta.masked, meta.invisible_patient,
                None, meta.invisible_representatives, False, meta.creation, meta.date or now, meta.period_start,
                meta.period_end, meta.content_type, meta.format_code, meta.language, len(data), sha256, meta.title,
                blob_key, sealer.wrapped_key, sealer.key_id, None, 1, now, doc_json))
            rows["document_identifier"].append((meta.master_identifier, key, document_id))
            rows["resource_locator"].append((document_id, key))
            rows["document_token"].extend((key, document_id, p, s, c) for p, s, c in sorted(meta.tokens))
            chain.append("C", "ITI-105", now, "DocumentReference", str(document_id),
                         {"class": meta.class_code, "type": meta.type_code, "size": len(data)})
        rows["audit_chain"].append((key, chain.seq, chain.head, chain.prev))
    return rows, blobs


def write_blobs(blobs: list[tuple[Path, bytes]]) -> None:
    for path, data in blobs:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    os.sync()  # the chunk's blobs are durable before its metadata commits


def copy_rows(conn: Any, rows: dict[str, list[tuple[Any, ...]]]) -> None:
    with conn.cursor() as cur:
        for table, columns in _COLUMNS.items():  # in foreign-key order
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows[table]:
                    copy.write_row(row)


_worker: dict[str, Any] = {}


def _init_worker(db_url: str, var_dir: str, chunk_size: int, per_dossier: int, doc_bytes: int) -> None:
    import psycopg

    services = make_services(db_url, Path(var_dir), BASE_URL, pool_size=1)
    _worker.update(keyring=services.keyring, blob_root=Path(var_dir) / "blobs", chunk_size=chunk_size,
                   per_dossier=per_dossier, doc_bytes=doc_bytes, conn=psycopg.connect(plain_url(db_url)))
    services.engine.dispose()


def _fill_chunk(chunk: int) -> tuple[int, float, float]:
    """Build, write and commit one chunk; (chunk, CPU seconds building it, seconds writing it)."""
    w = _worker
    t0 = time.perf_counter()
    rows, blobs = build_chunk(w["keyring"], w["blob_root"], chunk, w["chunk_size"], w["per_dossier"], w["doc_bytes"])
    t1 = time.perf_counter()
    write_blobs(blobs)
    with w["conn"].transaction():
        copy_rows(w["conn"], rows)
    return chunk, t1 - t0, time.perf_counter() - t1


def done_chunks(db_url: str, chunks: int, chunk_size: int) -> set[int]:
    """The chunks already committed: those whose first and last dossiers exist (a chunk commits whole, so one of the
    two alone means an earlier run used another ``--chunk``: refused, as its dossiers would be made twice)."""
    import psycopg

    from carnet.dossier.patient import ins_of

    def ins(index: int) -> str:
        return ins_of(patient_resource(FIRST_INDEX + index))[1]

    ends = {c: (ins(c * chunk_size), ins((c + 1) * chunk_size - 1)) for c in range(chunks)}
    with psycopg.connect(plain_url(db_url)) as conn:
        found = {r[0] for r in conn.execute("SELECT ins FROM ins_lookup WHERE ins = ANY(%s)",
                                            ([i for pair in ends.values() for i in pair],)).fetchall()}
    done = set()
    for c, (first, last) in ends.items():
        if (first in found) != (last in found):
            raise SystemExit(f"chunk {c} is partly there: fill again with the --chunk of the earlier run")
        if first in found:
            done.add(c)
    return done


def fill(db_url: str, var_dir: Path, documents: int, per_dossier: int, doc_bytes: int, processes: int,
         chunk_size: int) -> dict[str, Any]:
    from carnet.db.migrate import upgrade

    var_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    upgrade(db_url)
    services = make_services(db_url, var_dir, BASE_URL)  # creates the master key once, before the workers
    ensure_reference_data(services)
    services.engine.dispose()
    chunks = -(-documents // (per_dossier * chunk_size))
    done = done_chunks(db_url, chunks, chunk_size)
    todo = [c for c in range(chunks) if c not in done]
    print(f"fill: {chunks} chunks of {chunk_size} dossiers × {per_dossier} documents of {doc_bytes} B; "
          f"{len(done)} already there, {len(todo)} to do, {processes} processes", flush=True)
    t0 = time.perf_counter()
    load0 = os.getloadavg()
    build = write = 0.0
    n = 0
    if todo:
        with mp.get_context("spawn").Pool(processes, _init_worker,
                                          (db_url, str(var_dir), chunk_size, per_dossier, doc_bytes)) as pool:
            for _, b, w in pool.imap_unordered(_fill_chunk, todo):
                n += 1
                build += b
                write += w
                if n % max(1, len(todo) // 20) == 0 or n == len(todo):
                    el = time.perf_counter() - t0
                    docs = n * chunk_size * per_dossier
                    print(f"  {n}/{len(todo)} chunks, {docs} documents in {el:.0f} s ({docs / el:.0f} documents/s), "
                          f"load {os.getloadavg()[0]:.1f}", flush=True)
    elapsed = time.perf_counter() - t0
    docs = len(todo) * chunk_size * per_dossier
    out = {"documents_added": docs, "dossiers_added": len(todo) * chunk_size, "seconds": round(elapsed, 1),
           "documents_per_s": round(docs / elapsed, 1) if docs else None, "processes": processes,
           "document_bytes": doc_bytes, "documents_per_dossier": per_dossier,
           "build_s": round(build, 1), "write_and_copy_s": round(write, 1),
           "load_average_1m": [load0[0], os.getloadavg()[0]]}
    print(f"fill: {json.dumps(out)}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--documents", type=int, default=100_000, help="total documents wanted (existing ones count)")
    p.add_argument("--docs-per-dossier", type=int, default=10)
    p.add_argument("--doc-bytes", type=int, default=1024, help="size of each document's content")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--chunk", type=int, default=200, help="dossiers per transaction")
    p.add_argument("--database", default=FILL_DB, help="the database's name on CARNET_TEST_DATABASE_URL's server "
                   "(created if missing)")
    p.add_argument("--database-url", help="use this database instead (migrated, never dropped)")
    p.add_argument("--var-dir", default=DEFAULT_VAR, help="master key and blobs (the server must use the same)")
    p.add_argument("--drop", action="store_true", help="drop --database and the var dir, then stop")
    p.add_argument("--output", help="write the figures as JSON here")
    a = p.parse_args(argv)
    if not a.database.startswith("carnet_bench"):
        p.error("--database: benchmark databases are named carnet_bench* (docs/CONTRIBUTING.md)")
    var_dir = Path(a.var_dir).resolve()
    if a.drop:
        drop_database(a.database)
        shutil.rmtree(var_dir, ignore_errors=True)
        print(f"dropped {a.database} and {var_dir}")
        return 0
    db_url = a.database_url or ensure_database(a.database)
    out = fill(db_url, var_dir, a.documents, a.docs_per_dossier, a.doc_bytes, a.processes, a.chunk)
    if a.output:
        Path(a.output).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
