"""Bulk filler: millions of dossiers and documents written with COPY, with Carnet's own encryption and audit chains.

``load.py`` fills through Carnet's services, one transaction per document (about 50 to 450 documents/s here): far
from the 10^7 documents that issue 10 §5 asks latency to be measured at. This filler writes the same rows without
the per-request path, in chunks of dossiers, each chunk one transaction of ``COPY`` statements (text format, the
lines built here), in ``--processes`` processes (the CPU part: sealing, hashing, JSON):

* per dossier, what ``dossiers.create`` writes for a professional with the patient's consent: ``ins_lookup``,
  ``dossier`` (the served Patient resource, :func:`carnet.dossier.patient.served_patient`), ``patient_index``, the
  professional's ``access_grant`` (``authorized``) and the audit records ``dossier.create`` and ``access.consent`` —
  but **not** the owner's account and activation letter (``accounts.invite_owner``): the benchmark needs no patient
  sign-in, and a million letters in the outbox would measure the mailer;
* per document, what ``documents.publish`` writes for ITI-105: the content (``--doc-bytes``, default 1 KiB, a
  PDF-like payload) sealed in the format of :func:`carnet.blobs.seal_stream` (one segment) under a fresh data key
  wrapped by the var dir's master key, with the document's AAD (:func:`carnet.documents.stored.aad`), written where
  :class:`carnet.blobs.LocalBlobStore` keeps it (``<var-dir>/blobs/`` + :func:`carnet.blobs.local.relative_path`:
  Carnet keeps every content in the blob store, never in the database); the ``document`` row (metadata read by
  Carnet's own :func:`carnet.documents.metadata.read_metadata`, the served resource by
  ``publishing._served_resource``), ``document_identifier``, ``resource_locator``, ``document_token`` and the
  ``ITI-105`` audit record;
* per dossier, its audit hash chain computed with :func:`carnet.audit.log.link` and
  :func:`carnet.audit.log.body_hash` (what ``carnet audit verify`` recomputes) and its head in ``audit_chain``.

What every document has in common is computed once per process by those functions, with placeholders, and filled in
per document (:class:`_Templates`); once per chunk, one document's rows, resource, audit hash and blob are checked
against the functions themselves (and the blob opened by Carnet's reader): a change in Carnet the templates miss
stops the fill.

Blob files are not fsync'd one by one (``LocalBlobStore.put`` is): the chunk's files are made durable by one
``syncfs`` of their file system before its transaction commits, so a committed document never lacks its blob.

Resumable and incremental: ``--documents`` is the total wanted; chunks already committed (found by their first
dossier's INS) are skipped, so ``--documents 100000`` then ``--documents 1000000`` adds to the same database. A crash
leaves at most the blob files of the chunks in flight (``carnet blobs gc`` removes such orphans).

    python benchmarks/fill.py --documents 100000                 # creates carnet_bench_fill if missing
    python benchmarks/fill.py --documents 1000000                # adds to it
    python benchmarks/fill.py --drop                              # drops the database and the var dir
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
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

from limits import cpu_seconds  # noqa: E402
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
    "audit_chain": ("dossier_key", "seq", "head", "prev", "moved"),
}


def _esc(text: str) -> str:
    """``text`` as a value of PostgreSQL's COPY text format."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _copy_value(v: Any) -> str:
    if v is None:
        return "\\N"
    if v is True or v is False:
        return "t" if v else "f"
    if isinstance(v, bytes | bytearray):
        return "\\\\x" + bytes(v).hex()
    if isinstance(v, dt.datetime):
        return v.isoformat(timespec="microseconds")
    if isinstance(v, dt.date):
        return v.isoformat()
    return _esc(str(v))


def copy_line(values: tuple[Any, ...]) -> str:
    """One row in PostgreSQL's COPY text format (what ``cursor.copy(...).write_row`` sends, built here for a
    fraction of its cost: the filler writes 8 rows per document)."""
    return "\t".join(map(_copy_value, values)) + "\n"


class _Chain:
    """One dossier's audit chain, built as :func:`carnet.audit.log.record` would append it, as COPY lines."""

    def __init__(self, key: uuid.UUID, actor: Any, lines: list[str]) -> None:
        from carnet.audit.log import OUTCOME_SUCCESS

        self.key, self.key_s, self.actor, self.lines = key, str(key), actor, lines
        self.seq, self.head = 0, "0" * 64  # GENESIS
        self.prev: str | None = None
        a = actor
        self.who = copy_line((OUTCOME_SUCCESS, a.kind.value, a.audit_id, a.display, a.organisation_id, a.client_id,
                              a.mode.value, a.reason))[:-1]

    def append(self, action: str, event: str, now: dt.datetime, entity_type: str, entity_id: str,
               detail: dict[str, Any]) -> None:
        from carnet.audit.log import OUTCOME_SUCCESS, body_hash

        a = self.actor
        event_id = _new_id()
        row = {"dossier_key": self.key, "event_id": event_id, "recorded": now, "action": action, "event": event,
               "outcome": OUTCOME_SUCCESS, "actor_kind": a.kind.value, "actor_id": a.audit_id,
               "actor_name": a.display, "organisation_id": a.organisation_id, "client_id": a.client_id,
               "mode": a.mode.value, "reason": a.reason, "entity_type": entity_type, "entity_id": entity_id,
               "detail": detail}
        self.add(str(event_id), now.isoformat(), action, event, entity_type, entity_id,
                 _esc(json.dumps(detail, ensure_ascii=False)), body_hash(row))

    def add(self, event_id: str, recorded: str, action: str, event: str, entity_type: str, entity_id: str,
            detail_copy: str, body: str) -> None:
        """Append a record whose body hash is known (``body``, :func:`carnet.audit.log.body_hash`); ``recorded``
        and ``detail_copy`` as COPY text values."""
        from carnet.audit.log import link

        seq = self.seq + 1
        h = link(self.head, seq, body)
        self.lines.append(f"{self.key_s}\t{seq}\t{event_id}\t{recorded}\t{action}\t{event}\t{self.who}\t"
                          f"{entity_type}\t{entity_id}\t{detail_copy}\t{self.head}\t{h}\n")
        self.prev, self.head, self.seq = self.head, h, seq


class _Ctx:
    """What ``publishing._served_resource`` reads of a request context: the settings' base URL."""

    def __init__(self, base_url: str) -> None:
        self.settings = type("S", (), {"base_url": base_url})()


def _new_id() -> uuid.UUID:
    """A UUIDv7 (RFC 9562: 48 bits of Unix milliseconds, version 7, 12 + 62 random bits, variant 10), as
    :func:`carnet.ids.new_id` makes them, for a fraction of its cost (the filler makes 2.4 per document)."""
    r = int.from_bytes(os.urandom(10))
    return uuid.UUID(int=(time.time_ns() // 1_000_000) << 80 | 0x7 << 76 | (r >> 62 & 0xFFF) << 64
                     | 0b10 << 62 | (r & (1 << 62) - 1))


def _seal_small(keyring: Any, data: bytes, aad: bytes) -> tuple[bytes, bytes, str]:
    """``(blob, wrapped key, key id)``: what :func:`carnet.blobs.seal_stream` makes of a content of one segment
    (a fresh data key wrapped by the master key, the signed header, one AES-GCM segment), without the stream's
    machinery. :meth:`_Templates.check` opens one blob per chunk with Carnet's own reader."""
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap

    from carnet.blobs import stream

    data_key = os.urandom(32)
    key_id = keyring.current_id
    signed = stream.MAGIC + bytes([stream.VERSION]) + stream.DEFAULT_SEGMENT_SIZE.to_bytes(4, "big") \
        + os.urandom(stream.SALT_BYTES)
    aead, tag = stream._derive(data_key, signed, aad)
    return (signed + tag + aead.encrypt(stream._nonce(0, True), data, b""),
            aes_key_wrap(keyring._kek(key_id), data_key), key_id)


# Placeholders of the per-process templates: values no real document, dossier or time can have.
_P_DOC = uuid.UUID("00000000-0000-4000-8000-0000000d0c00")
_P_KEY = uuid.UUID("00000000-0000-4000-8000-00000000d055")
_P_MASTER = "urn:uuid:00000000-0000-4000-8000-00000000a57e"
_P_EVENT = uuid.UUID("00000000-0000-4000-8000-0000000e7e47")
_P_NOW = dt.datetime(1901, 2, 3, 4, 5, 6, 789123, tzinfo=dt.UTC)
_P_SHA256 = "5a" * 32
_P_WRAPPED = bytes(range(200, 240))
_P_SIZE = 987654321
_P_RESOURCE = "<resource-placeholder>"


def _template(text: str, fields: dict[str, str]) -> str:
    """``text`` as a :meth:`str.format` template: each placeholder value in ``fields`` becomes ``{name}``."""
    text = text.replace("{", "{{").replace("}", "}}")
    for name, value in fields.items():
        if value not in text:
            raise AssertionError(f"placeholder {name} is not in the template")
        text = text.replace(value, "{" + name + "}")
    return text


def _times(now: dt.datetime) -> tuple[str, str, str]:
    """``now`` (UTC) as COPY text, as the audit record's ``_ts`` and as a FHIR instant (milliseconds)."""
    iso = now.isoformat(timespec="microseconds")
    return iso, iso[:26] + "Z", iso[:23] + "Z"


class _Templates:
    """What every document of the fill has in common, computed once per process by Carnet's own functions
    (``read_metadata``, ``_served_resource``, :func:`carnet.audit.log.canonical`) with placeholder ids, times and
    hashes; each document then fills in its own. :meth:`check` compares a document's rows with what the functions
    themselves give, once per chunk: a change in Carnet that the templates would miss stops the fill."""

    def __init__(self, actor: Any, base_url: str, doc_bytes: int) -> None:
        from carnet.audit.log import OUTCOME_SUCCESS, _ts, canonical
        from carnet.documents.metadata import read_metadata
        from carnet.documents.publishing import Content, _served_resource
        from carnet.documents.stored import fhir_instant

        self.actor, self.ctx, self.doc_bytes = actor, _Ctx(base_url), doc_bytes
        res = docref(_P_MASTER)
        meta = self.meta = read_metadata(res)
        if meta.date is not None:
            raise AssertionError("the filler's documents carry no date: the row's date is the publication's")
        self.tokens = sorted(meta.tokens)
        data = pdf_bytes("template", doc_bytes)
        sha1_0 = base64.b64encode(hashlib.sha1(data, usedforsecurity=False).digest()).decode()
        served = json.dumps(_served_resource(self.ctx, res, _P_DOC, _P_KEY, Content(data, "application/pdf"),
                                             "0" * 64, _P_NOW, 1), ensure_ascii=False, separators=(",", ":"))
        self.served = _template(served, {"master": _P_MASTER, "doc": str(_P_DOC), "key": str(_P_KEY),
                                         "now": fhir_instant(_P_NOW), "sha1": sha1_0})
        detail = {"class": meta.class_code, "type": meta.type_code, "size": doc_bytes}
        self.detail_copy = _esc(json.dumps(detail, ensure_ascii=False))
        a = actor
        row = {"dossier_key": _P_KEY, "event_id": _P_EVENT, "recorded": _P_NOW, "action": "C", "event": "ITI-105",
               "outcome": OUTCOME_SUCCESS, "actor_kind": a.kind.value, "actor_id": a.audit_id,
               "actor_name": a.display, "organisation_id": a.organisation_id, "client_id": a.client_id,
               "mode": a.mode.value, "reason": a.reason, "entity_type": "DocumentReference",
               "entity_id": str(_P_DOC), "detail": detail}
        self.audit = _template(canonical(row).decode(), {"event": str(_P_EVENT), "key": str(_P_KEY),
                                                           "doc": str(_P_DOC), "now": _ts(_P_NOW)})
        document = (_P_KEY, _P_DOC, _P_MASTER, meta.status, meta.class_code, meta.type_system, meta.type_code,
                    actor.id, meta.author_given, meta.author_family, meta.masked, meta.invisible_patient, None,
                    meta.invisible_representatives, False, meta.creation, _P_NOW, meta.period_start,
                    meta.period_end, meta.content_type, meta.format_code, meta.language, _P_SIZE, _P_SHA256,
                    meta.title, _P_DOC.hex, _P_WRAPPED, "<key-id>", None, 1, _P_NOW, _P_RESOURCE)
        self.document = _template(copy_line(document), {
            "key": str(_P_KEY), "master": _esc(_P_MASTER), "now": _P_NOW.isoformat(timespec="microseconds"),
            "size": str(_P_SIZE),
            "sha256": _P_SHA256, "blob": _P_DOC.hex, "doc": str(_P_DOC), "wrapped": _P_WRAPPED.hex(),
            "key_id": "<key-id>", "resource": _P_RESOURCE})
        self.token_lines = [copy_line((_P_KEY, _P_DOC, p, s, c)) for p, s, c in self.tokens]
        self.token_lines = [_template(line, {"key": str(_P_KEY), "doc": str(_P_DOC)}
                                      | ({"master": _esc(_P_MASTER)} if _P_MASTER in line else {}))
                            for line in self.token_lines]

    def tokens_for(self, master: str) -> list[tuple[str, str, str]]:
        return [(p, s, master if c == _P_MASTER else c) for p, s, c in self.tokens]

    def served_json(self, master: str, document_id: str, key: str, fhir_now: str, data: bytes) -> str:
        sha1 = base64.b64encode(hashlib.sha1(data, usedforsecurity=False).digest()).decode()
        return self.served.format(master=master, doc=document_id, key=key, now=fhir_now, sha1=sha1)

    def audit_body(self, key: str, event_id: str, document_id: str, audit_now: str) -> str:
        return hashlib.sha256(self.audit.format(event=event_id, key=key, doc=document_id, now=audit_now)
                              .encode()).hexdigest()

    def document_line(self, key: str, doc: str, master: str, copy_now: str, size: int, sha256: str, blob: str,
                      wrapped: bytes, key_id: str, resource: str) -> str:
        return self.document.format(key=key, doc=doc, master=_esc(master), now=copy_now, size=size, sha256=sha256,
                                    blob=blob, wrapped=wrapped.hex(), key_id=_esc(key_id), resource=_esc(resource))

    def token_copy(self, key: str, doc: str, master: str) -> str:
        return "".join(t.format(key=key, doc=doc, master=_esc(master)) for t in self.token_lines)

    def check(self, keyring: Any, master: str, document_id: uuid.UUID, key: uuid.UUID, now: dt.datetime,
              data: bytes, sha256: str, event_id: uuid.UUID, blob: bytes, wrapped: bytes, key_id: str) -> None:
        """The templates give, for this document, exactly what Carnet's functions give, and Carnet opens its
        blob."""
        from carnet.audit.log import OUTCOME_SUCCESS, body_hash
        from carnet.blobs import open_stream
        from carnet.documents.metadata import read_metadata
        from carnet.documents.publishing import Content, _served_resource
        from carnet.documents.stored import aad

        res = docref(master)
        meta = read_metadata(res)
        want = json.dumps(_served_resource(self.ctx, res, document_id, key, Content(data, "application/pdf"), sha256,
                                           now, 1), ensure_ascii=False, separators=(",", ":"))
        a = self.actor
        row = {"dossier_key": key, "event_id": event_id, "recorded": now, "action": "C", "event": "ITI-105",
               "outcome": OUTCOME_SUCCESS, "actor_kind": a.kind.value, "actor_id": a.audit_id,
               "actor_name": a.display, "organisation_id": a.organisation_id, "client_id": a.client_id,
               "mode": a.mode.value, "reason": a.reason, "entity_type": "DocumentReference",
               "entity_id": str(document_id), "detail": {"class": meta.class_code, "type": meta.type_code,
                                                          "size": len(data)}}
        copy_now, audit_now, fhir_now = _times(now)
        m = meta
        document = copy_line((key, document_id, master, m.status, m.class_code, m.type_system, m.type_code,
                              a.id, m.author_given, m.author_family, m.masked, m.invisible_patient, None,
                              m.invisible_representatives, False, m.creation, m.date or now, m.period_start,
                              m.period_end, m.content_type, m.format_code, m.language, len(data), sha256, m.title,
                              document_id.hex, wrapped, key_id, None, 1, now, want))
        tokens = "".join(copy_line((key, document_id, p, s, c)) for p, s, c in sorted(meta.tokens))
        opened = b"".join(open_stream(keyring, [blob], wrapped, key_id, aad(key, document_id)))
        if (want != self.served_json(master, str(document_id), str(key), fhir_now, data)
                or document != self.document_line(str(key), str(document_id), master, copy_now, len(data), sha256,
                                                  document_id.hex, wrapped, key_id, want)
                or tokens != self.token_copy(str(key), str(document_id), master)
                or body_hash(row) != self.audit_body(str(key), str(event_id), str(document_id), audit_now)
                or opened != data):
            raise AssertionError("the filler's templates no longer give what Carnet writes: update fill.py")


_templates: dict[tuple[str, int], _Templates] = {}


def build_chunk(keyring: Any, blob_root: Path, chunk: int, chunk_size: int, per_dossier: int, doc_bytes: int,
                ) -> tuple[dict[str, list[str]], list[tuple[str, bytes]]]:
    """The rows of every table (COPY text lines) and the blob files of chunk ``chunk`` (dossiers
    ``chunk * chunk_size`` onwards)."""
    from carnet.blobs.local import relative_path
    from carnet.documents.stored import aad
    from carnet.dossier.patient import ins_of, norm, served_patient, traits

    actor = pro_actor()
    tpl = _templates.get((BASE_URL, doc_bytes))
    if tpl is None:
        tpl = _templates[(BASE_URL, doc_bytes)] = _Templates(actor, BASE_URL, doc_bytes)
    root = str(blob_root)
    rows: dict[str, list[str]] = {t: [] for t in _COLUMNS}
    documents, identifiers, locators, tokens = rows["document"], rows["document_identifier"], \
        rows["resource_locator"], rows["document_token"]
    blobs: list[tuple[str, bytes]] = []
    checked = False
    for i in range(chunk * chunk_size, (chunk + 1) * chunk_size):
        resource = patient_resource(FIRST_INDEX + i)
        system, ins = ins_of(resource)
        t = traits(resource)
        key = _new_id()
        key_s = str(key)
        now = dt.datetime.now(dt.UTC)
        served = json.dumps(served_patient(resource, key, 1, now), ensure_ascii=False, separators=(",", ":"))
        rows["ins_lookup"].append(copy_line((ins, key)))
        rows["dossier"].append(copy_line((key, "active", system, ins, t["family"], t["given"], t["birth_date"],
                                          t["gender"], t["birthplace"], False, False, False, "ask", False, now,
                                          actor.audit_id, "professional", 1, now, served)))
        rows["patient_index"].append(copy_line((norm(t["family"]), key, norm(t["given"]), t["birth_date"],
                                                t["gender"])))
        chain = _Chain(key, actor, rows["audit"])
        chain.append("C", "dossier.create", now, "Patient", key_s, {"channel": "professional"})
        grant_id = _new_id()
        rows["access_grant"].append(copy_line((key, grant_id, "practitioner", actor.id, "authorized", now,
                                               actor.audit_id, False)))
        chain.append("U", "access.consent", now, "Consent", str(grant_id),
                     {"subject_kind": "practitioner", "subject": actor.id, "relation": "authorized"})
        for _ in range(per_dossier):
            document_id = _new_id()
            event_id = _new_id()
            doc_s, event_s, blob_key = str(document_id), str(event_id), document_id.hex
            now = dt.datetime.now(dt.UTC)
            copy_now, audit_now, fhir_now = _times(now)
            data = pdf_bytes(blob_key, doc_bytes)
            master = f"urn:uuid:{uuid.uuid4()}"
            sha256 = hashlib.sha256(data).hexdigest()
            blob, wrapped, key_id = _seal_small(keyring, data, aad(key, document_id))
            if not checked:
                tpl.check(keyring, master, document_id, key, now, data, sha256, event_id, blob, wrapped, key_id)
                checked = True
            blobs.append((f"{root}/{relative_path(blob_key)}", blob))
            documents.append(tpl.document_line(key_s, doc_s, master, copy_now, len(data), sha256, blob_key, wrapped,
                                               key_id, tpl.served_json(master, doc_s, key_s, fhir_now, data)))
            identifiers.append(f"{_esc(master)}\t{key_s}\t{doc_s}\n")
            locators.append(f"{doc_s}\t{key_s}\n")
            tokens.append(tpl.token_copy(key_s, doc_s, master))
            chain.add(event_s, copy_now, "C", "ITI-105", "DocumentReference", doc_s, tpl.detail_copy,
                      tpl.audit_body(key_s, event_s, doc_s, audit_now))
        rows["audit_chain"].append(copy_line((key, chain.seq, chain.head, chain.prev, chain.seq > 0)))
    return rows, blobs


def _syncfs(root: Path) -> None:
    """Flush the file system holding ``root`` (Linux ``syncfs``): the chunk's blob files, not every disk's dirty
    pages as ``os.sync()`` would (PostgreSQL's among them, when the blobs are on a file system of their own)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(root, os.O_RDONLY)
    try:
        if libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    finally:
        os.close(fd)


_made_dirs: set[str] = set()


def write_blobs(blob_root: Path, blobs: list[tuple[str, bytes]]) -> None:
    for path, data in blobs:
        parent = path[:path.rfind("/")]
        if parent not in _made_dirs:
            os.makedirs(parent, mode=0o700, exist_ok=True)
            _made_dirs.add(parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    _syncfs(blob_root)  # the chunk's blobs are durable before its metadata commits


def copy_rows(conn: Any, rows: dict[str, list[str]]) -> None:
    with conn.cursor() as cur:
        for table, columns in _COLUMNS.items():  # in foreign-key order
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                copy.write("".join(rows[table]).encode())


_worker: dict[str, Any] = {}


def _init_worker(db_url: str, var_dir: str, chunk_size: int, per_dossier: int, doc_bytes: int) -> None:
    import psycopg

    services = make_services(db_url, Path(var_dir), BASE_URL, pool_size=1)
    # autocommit: each chunk's ``conn.transaction()`` is then a transaction of its own, committed at its end (on a
    # connection already in a transaction it would only be a savepoint, and nothing would ever commit)
    conn = psycopg.connect(plain_url(db_url), autocommit=True)
    backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
    _worker.update(keyring=services.keyring, blob_root=Path(var_dir) / "blobs", chunk_size=chunk_size,
                   per_dossier=per_dossier, doc_bytes=doc_bytes, conn=conn, backend=backend)
    services.engine.dispose()


def _fill_chunk(chunk: int) -> tuple[int, float, float, float, float]:
    """Build, write and commit one chunk; (chunk, seconds building it, seconds writing it, CPU seconds of this
    process, CPU seconds of its PostgreSQL backend)."""
    w = _worker
    cpu0, pg0 = time.process_time(), (cpu_seconds(w["backend"]) or 0.0)
    t0 = time.perf_counter()
    rows, blobs = build_chunk(w["keyring"], w["blob_root"], chunk, w["chunk_size"], w["per_dossier"], w["doc_bytes"])
    t1 = time.perf_counter()
    write_blobs(w["blob_root"], blobs)
    with w["conn"].transaction():
        copy_rows(w["conn"], rows)
    return (chunk, t1 - t0, time.perf_counter() - t1, time.process_time() - cpu0,
            (cpu_seconds(w["backend"]) or 0.0) - pg0)


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
    build = write = cpu = pg_cpu = 0.0
    n = 0
    if todo:
        with mp.get_context("spawn").Pool(processes, _init_worker,
                                          (db_url, str(var_dir), chunk_size, per_dossier, doc_bytes)) as pool:
            for _, b, w, c, g in pool.imap_unordered(_fill_chunk, todo):
                n += 1
                build += b
                write += w
                cpu += c
                pg_cpu += g
                if n % max(1, len(todo) // 20) == 0 or n == len(todo):
                    el = time.perf_counter() - t0
                    docs = n * chunk_size * per_dossier
                    print(f"  {n}/{len(todo)} chunks, {docs} documents in {el:.0f} s ({docs / el:.0f} documents/s), "
                          f"load {os.getloadavg()[0]:.1f}", flush=True)
    elapsed = time.perf_counter() - t0
    missing = set(todo) - done_chunks(db_url, chunks, chunk_size)
    if missing:
        raise SystemExit(f"fill: {len(missing)} chunks were written but are not in the database")
    docs = len(todo) * chunk_size * per_dossier
    out = {"documents_added": docs, "dossiers_added": len(todo) * chunk_size, "seconds": round(elapsed, 1),
           "documents_per_s": round(docs / elapsed, 1) if docs else None, "processes": processes,
           "document_bytes": doc_bytes, "documents_per_dossier": per_dossier,
           "build_s": round(build, 1), "write_and_copy_s": round(write, 1),
           # CPU per document, the figure the machine's other load disturbs least: the filler's processes (user +
           # system, building, writing the blob files, sending the COPY data) and their PostgreSQL backends (COPY,
           # index maintenance, commit); what 2 cores can fill at that cost when nothing else runs
           "filler_cpu_ms_per_document": round(cpu / docs * 1000, 3) if docs else None,
           "postgresql_cpu_ms_per_document": round(pg_cpu / docs * 1000, 3) if docs else None,
           "documents_per_s_on_2_idle_cores": round(2 * docs / (cpu + pg_cpu)) if docs and cpu + pg_cpu else None,
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
