"""A stored document: the one way to a document the caller may see (:func:`visible_document`: 404 when they may
not, exactly like one that does not exist; a refused read is audited), its sealed content opened with its SHA-256
checked (:func:`open_content`), and the small pieces every documents module shares."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Iterator
from typing import Any

import structlog
from sqlalchemy import bindparam, select

from carnet.access.policy import Decision, DocFacts
from carnet.blobs import IntegrityError, open_any
from carnet.blobs.stream import DEFAULT_SEGMENT_SIZE
from carnet.context import NOT_JOINED, Context, Joined, Services
from carnet.db import prepared
from carnet.db.tables import document, resource_locator
from carnet.errors import FhirError, not_found


def aad(dossier_key: uuid.UUID, document_id: uuid.UUID) -> bytes:
    return dossier_key.bytes + document_id.bytes


def fhir_instant(ts: dt.datetime) -> str:
    ts = ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def doc_facts(row: Any) -> DocFacts:
    until = row.invisible_patient_until
    if until is not None and until.tzinfo is None:
        until = until.replace(tzinfo=dt.UTC)
    return DocFacts(class_code=row.class_code, type_code=row.type_code, author_id=row.author_id, masked=row.masked,
                    invisible_patient=row.invisible_patient, invisible_patient_until=until,
                    invisible_representatives=row.invisible_representatives, deleted=row.deleted)


logger = structlog.get_logger("carnet")

_LOCATE = select(resource_locator.c.dossier_key).where(resource_locator.c.resource_id == bindparam("rid"))
_DOCUMENT = select(document).where(document.c.dossier_key == bindparam("k"), document.c.document_id == bindparam("d"))
# The same two as plain SQL, run prepared on PostgreSQL (carnet.db.prepared; tests/db/test_prepared.py compares them).
_LOCATE_SQL = "SELECT dossier_key FROM resource_locator WHERE resource_id = %(rid)s"
_DOCUMENT_COLUMNS = ", ".join(f"document.{c.name}" for c in document.c)
_DOCUMENT_SQL = (f"SELECT {_DOCUMENT_COLUMNS} FROM document "  # noqa: S608 - the table's own column names
                 "WHERE document.dossier_key = %(k)s AND document.document_id = %(d)s")
# The same row read with its dossier and the caller, in one statement (carnet.context.Joined).
_JOINED = Joined(document, "document_id")


def dossier_of(ctx: Context, resource_id: str) -> uuid.UUID:
    """The dossier a DocumentReference, Binary or List id belongs to (a lookup keyed by the id), or 404."""
    try:
        rid = uuid.UUID(resource_id)
    except ValueError:
        raise not_found() from None
    if prepared.on_postgres(ctx.conn):
        found = prepared.fetch_one(ctx.conn, _LOCATE_SQL, {"rid": rid})
        key = found[0] if found is not None else None
    else:
        key = ctx.conn.execute(_LOCATE, {"rid": rid}).scalar()
    if key is None:
        raise not_found()
    return key


def visible_document(ctx: Context, resource_id: str, event: str, action: str = "R",
                     lock: bool = False) -> tuple[Any, Decision]:
    """A document the caller may see, or 404 (forbidden looks like not found); a refused read is audited.
    ``lock`` takes the row for update (a change follows)."""
    dossier_key = dossier_of(ctx, resource_id)
    params = {"k": dossier_key, "d": uuid.UUID(resource_id)}
    if lock:
        _, decision = ctx.dossier(dossier_key)
        row = NOT_JOINED
    else:  # the document in the dossier's statement when the caller is read with it (a professional's retrieve)
        _, decision, row = ctx.dossier_and_row(dossier_key, _JOINED, params["d"])
    if row is NOT_JOINED and prepared.on_postgres(ctx.conn):
        row = prepared.fetch_one(ctx.conn, _DOCUMENT_SQL + " FOR UPDATE" if lock else _DOCUMENT_SQL, params)
    elif row is NOT_JOINED:
        row = ctx.conn.execute(_DOCUMENT.with_for_update() if lock else _DOCUMENT, params).first()
    if row is None or not decision.read or not decision.visibility.allows(doc_facts(row), ctx.now):
        raise ctx.refuse(dossier_key, action, event, not_found(), entity_type="DocumentReference",
                         entity_id=resource_id)
    return row, decision


def segments(data: bytes | bytearray, size: int = DEFAULT_SEGMENT_SIZE) -> Iterator[memoryview]:
    """``data`` in slices of ``size`` bytes, without copying: what :func:`~carnet.blobs.seal_stream` seals."""
    view = memoryview(data)
    for start in range(0, len(view), size):
        yield view[start:start + size]


def _plaintext(services: Services, row: Any) -> Iterator[bytes]:
    """The row's content, read from the store as a stream and opened segment by segment (either blob format)."""
    return open_any(services.keyring, services.blobs.get_stream(row.blob_key), bytes(row.wrapped_key), row.key_id,
                    aad(row.dossier_key, row.document_id))


def open_content(ctx: Context, row: Any) -> bytes:
    """The original bytes of the ``document`` row ``row``, decrypted, with the SHA-256 checked: a mismatch is a 500,
    never served. The caller has already decided that the row may be read, and audits the reading. The ciphertext is
    read as a stream: only the plaintext is ever whole in memory."""
    digest = hashlib.sha256()
    parts = []
    try:
        for part in _plaintext(ctx.services, row):
            digest.update(part)
            parts.append(part)
    except (IntegrityError, OSError, LookupError) as exc:
        raise FhirError(500, "exception", "The stored document failed its integrity check") from exc
    if digest.hexdigest() != row.sha256:
        raise FhirError(500, "exception", "The stored document failed its integrity check")
    return b"".join(parts)


def content_stream(services: Services, row: Any) -> Iterator[bytes]:
    """The content of a row already decided on and audited, for a response that streams it (a large document on
    ITI-68): never whole in memory. The blob's header and first segment are checked before this returns (a failure is
    the same 500 as :func:`open_content`); a later segment that fails its tag, or a SHA-256 that differs at the end,
    raises :class:`~carnet.blobs.IntegrityError` mid-stream, so the server aborts the response (the client sees a
    body shorter than its Content-Length), never a complete wrong document."""
    try:
        opened = _plaintext(services, row)
    except (IntegrityError, OSError, LookupError) as exc:
        raise FhirError(500, "exception", "The stored document failed its integrity check") from exc

    def checked() -> Iterator[bytes]:
        digest = hashlib.sha256()
        try:
            for part in opened:
                digest.update(part)
                yield part
        except IntegrityError:
            logger.error("document.integrity_failed", when="streaming")
            raise
        if digest.hexdigest() != row.sha256:
            logger.error("document.integrity_failed", when="streaming")
            raise IntegrityError("the document's SHA-256 differs from the one recorded")

    return checked()
