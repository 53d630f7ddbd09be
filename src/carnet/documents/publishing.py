"""Publishing a document (ITI-65, ITI-105): the metadata checked, the content sealed (AES-256-GCM, a fresh data key
per document) and written durably to the blob store *before* the metadata is inserted; if the transaction then
fails, :func:`carnet.context.run` removes the blob. A document that replaces others (``relatesTo.replaces``)
supersedes them (:func:`carnet.documents.lifecycle.supersede`)."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from carnet.access.policy import Decision
from carnet.blobs import seal_stream
from carnet.context import Context
from carnet.db import prepared
from carnet.db.tables import document, document_identifier, document_token, resource_locator
from carnet.documents import cda, content_types, fhir_content
from carnet.documents.lifecycle import supersede
from carnet.documents.metadata import DocMeta, read_metadata
from carnet.documents.stored import aad, fhir_instant, segments
from carnet.errors import FhirError, Issue, conflict, forbidden, unprocessable
from carnet.ids import new_id

# Hot statements built once (a statement built per call costs SQLAlchemy its construction and cache key each time).
_INSERT_DOCUMENT = insert(document)
_TAKE_IDENTIFIER = sqlite_insert(document_identifier).on_conflict_do_nothing().returning(
    document_identifier.c.document_id)
# The same on PostgreSQL as plain SQL run prepared (carnet.db.prepared; tests/db/test_prepared.py compares them), and
# the locators and tokens of a document, one statement of n rows each (the text for each n made once).
_TAKE_IDENTIFIER_SQL = ("INSERT INTO document_identifier (master_identifier, dossier_key, document_id) "
                        "VALUES (%(master_identifier)s, %(dossier_key)s, %(document_id)s) "
                        "ON CONFLICT DO NOTHING RETURNING document_identifier.document_id")
DOCUMENT_COLUMNS = tuple(c.name for c in document.c)
_INSERT_DOCUMENT_SQL = (f"INSERT INTO document ({', '.join(DOCUMENT_COLUMNS)}) "  # noqa: S608 - the table's names
                        f"VALUES ({', '.join(f'%({c})s' for c in DOCUMENT_COLUMNS)})")


@functools.cache
def _insert_locators_sql(n: int) -> str:
    return "INSERT INTO resource_locator (resource_id, dossier_key) VALUES " + ", ".join(  # noqa: S608 - n
        f"(%(r{i})s, %(k)s)" for i in range(n))


@functools.cache
def _insert_tokens_sql(n: int) -> str:
    return "INSERT INTO document_token (dossier_key, document_id, param, system, code) VALUES " + ", ".join(  # noqa: S608
        f"(%(k)s, %(d)s, %(p{i})s, %(s{i})s, %(c{i})s)" for i in range(n))


def insert_document(ctx: Context, row: dict[str, Any]) -> None:
    """Insert the ``document`` row ``row`` (every column of the table)."""
    if prepared.on_postgres(ctx.conn):
        prepared.execute(ctx.conn, _INSERT_DOCUMENT_SQL, row)
    else:
        ctx.conn.execute(_INSERT_DOCUMENT, row)


def insert_locators(ctx: Context, dossier_key: uuid.UUID, resource_ids: tuple[uuid.UUID, ...]) -> None:
    """Enter the resource ids in ``resource_locator``, each of them in ``dossier_key``: one statement."""
    if prepared.on_postgres(ctx.conn) and len(resource_ids) <= 8:
        params: dict[str, Any] = {f"r{i}": rid for i, rid in enumerate(resource_ids)}
        params["k"] = dossier_key
        prepared.execute(ctx.conn, _insert_locators_sql(len(resource_ids)), params)
        return
    ctx.conn.execute(insert(resource_locator).values(
        [{"resource_id": rid, "dossier_key": dossier_key} for rid in resource_ids]))


def insert_tokens(ctx: Context, dossier_key: uuid.UUID, document_id: uuid.UUID,
                  tokens: list[tuple[str, str, str]]) -> None:
    """A document's search tokens (param, system, code), in one statement."""
    if prepared.on_postgres(ctx.conn) and len(tokens) <= 16:
        params: dict[str, Any] = {"k": dossier_key, "d": document_id}
        for i, (p, s, c) in enumerate(tokens):
            params[f"p{i}"], params[f"s{i}"], params[f"c{i}"] = p, s, c
        prepared.execute(ctx.conn, _insert_tokens_sql(len(tokens)), params)
        return
    ctx.conn.execute(insert(document_token).values([
        {"dossier_key": dossier_key, "document_id": document_id, "param": p, "system": s, "code": c}
        for p, s, c in tokens]))


@dataclass
class Content:
    data: bytes | bytearray  # a large document decoded in place (fhir.routes.documents.decode_base64) is a bytearray
    content_type: str


@dataclass
class Published:
    document_id: uuid.UUID
    version: int
    last_updated: dt.datetime
    warnings: list[Issue]
    resource: str  # the DocumentReference as stored and served


def require_write(ctx: Context, dossier_key: uuid.UUID, decision: Decision, class_code: str, event: str) -> None:
    if not decision.may_add(class_code):
        msg = decision.refusal if not decision.read and decision.add_classes == "none" else \
            "This caller may not add a document of this class to this dossier."
        raise ctx.refuse(dossier_key, "C", event, forbidden(msg), detail={"class": class_code})


def publish(ctx: Context, dossier_key: uuid.UUID, resource: dict[str, Any], content: Content,
            event: str, submission_set_id: uuid.UUID | None = None, decision: Decision | None = None,
            meta: DocMeta | None = None, locate: tuple[uuid.UUID, ...] = ()) -> Published:
    """Store one document (metadata + sealed content). ``resource`` is the validated DocumentReference JSON.
    ``locate``: other ids of this dossier to enter in ``resource_locator`` with the document's (its submission set's,
    which :func:`~carnet.documents.submission_sets.record_submission_set` then need not insert): one statement."""
    if decision is None:
        _, decision = ctx.dossier(dossier_key)
    meta = meta or read_metadata(resource)
    require_write(ctx, dossier_key, decision, meta.class_code, event)
    if meta.status != "current":
        raise unprocessable("A new document must have status current", "DocumentReference.status")
    if len(content.data) > ctx.settings.max_document_bytes:
        raise FhirError(413, "too-costly", "The document is larger than this server accepts",
                        "DocumentReference.content[0].attachment")
    if content.content_type.split(";")[0].strip().lower() != meta.content_type:
        raise unprocessable("The content's type differs from attachment.contentType",
                            "DocumentReference.content[0].attachment.contentType")
    check_content(ctx, dossier_key, resource, content)
    document_id = new_id()
    # The masterIdentifier taken in one statement (unique across every dossier): none returned, it was already taken
    # (by a committed document, or one being published concurrently, whose commit this waits for).
    identifier = {"master_identifier": meta.master_identifier, "dossier_key": dossier_key, "document_id": document_id}
    if prepared.on_postgres(ctx.conn):
        taken = prepared.fetch_one(ctx.conn, _TAKE_IDENTIFIER_SQL, identifier) is None
    else:
        taken = ctx.conn.execute(_TAKE_IDENTIFIER, identifier).first() is None
    if taken:
        raise conflict("A document with this masterIdentifier already exists", "DocumentReference.masterIdentifier")

    now = ctx.now
    warnings = _check_size_and_hash(resource, content.data)
    sha256 = hashlib.sha256(content.data).hexdigest()
    # Sealed in segments straight into the store (multipart on S3): the ciphertext is never whole in memory. A
    # streamed blob's hash is known only at its end, so its key is the document's id, which is never reused.
    sealed = seal_stream(ctx.services.keyring, segments(content.data), aad(dossier_key, document_id))
    blob_key = document_id.hex
    ctx.new_blobs.append(blob_key)  # removed again if anything below fails (idempotent if it was never written)
    ctx.services.blobs.put_stream(blob_key, sealed)  # durable before the metadata commits

    for ref in meta.replaces:
        supersede(ctx, dossier_key, decision, ref, document_id)

    author = ctx.actor.id if ctx.actor.kind.value == "professional" else ctx.actor.audit_id
    author_given, author_family = meta.author_given, meta.author_family
    if author_given is None and author_family is None:
        author_given, author_family = directory_author(ctx, resource)
    served = json.dumps(_served_resource(ctx, resource, document_id, dossier_key, content, sha256, now, 1),
                        ensure_ascii=False, separators=(",", ":"))
    invisible_until = now + dt.timedelta(days=ctx.settings.invisible_patient_days) if meta.invisible_patient \
        else None
    insert_document(ctx, dict(
        dossier_key=dossier_key, document_id=document_id, master_identifier=meta.master_identifier,
        status=meta.status, class_code=meta.class_code, type_system=meta.type_system, type_code=meta.type_code,
        author_id=author, author_given=author_given, author_family=author_family, masked=meta.masked,
        invisible_patient=meta.invisible_patient, invisible_patient_until=invisible_until,
        invisible_representatives=meta.invisible_representatives, deleted=False, creation=meta.creation,
        date=meta.date or now, period_start=meta.period_start, period_end=meta.period_end,
        content_type=meta.content_type, format_code=meta.format_code, language=meta.language,
        size=len(content.data), sha256=sha256, title=meta.title, blob_key=blob_key,
        wrapped_key=sealed.wrapped_key, key_id=sealed.key_id, submission_set_id=submission_set_id, version=1,
        last_updated=now, resource=served))
    insert_locators(ctx, dossier_key, (document_id, *locate))
    if meta.tokens:  # one statement of several rows
        insert_tokens(ctx, dossier_key, document_id, sorted(meta.tokens))
    # the subscribers (notifications) learn the document's visibility here rather than reading it back
    ctx.audit(dossier_key, "C", event, entity_type="DocumentReference", entity_id=str(document_id),
              detail={"class": meta.class_code, "type": meta.type_code, "size": len(content.data)},
              facts={"invisible_patient": meta.invisible_patient,
                     "invisible_representatives": meta.invisible_representatives})
    return Published(document_id, 1, now, warnings, served)


def directory_author(ctx: Context, resource: dict[str, Any]) -> tuple[str | None, str | None]:
    """(given, family) of the first ``DocumentReference.author`` that references a professional of the directory:
    ``Practitioner/{id}`` or ``PractitionerRole/{id}`` (relative, or absolute on this server; the id is the national
    id, as Carnet serves them), or a logical reference by national id (``identifier.system`` IDNPS). Resolved once,
    at publish time, so that ``author.given`` / ``author.family`` find such documents (a contained Practitioner is
    read by :mod:`carnet.documents.metadata`). Nothing found: (None, None)."""
    from carnet.identity.practitioners import by_ids
    from carnet.identity.professionals import IDNPS_SYSTEM

    base = f"{ctx.settings.base_url}/fhir/"
    wanted: list[str] = []
    for a in resource.get("author") or []:
        if not isinstance(a, dict):
            continue
        ref = str(a.get("reference") or "")
        ref = ref[len(base):] if ref.startswith(base) else ref
        rtype, _, rid = ref.partition("/")
        if rtype in ("Practitioner", "PractitionerRole") and rid and "/" not in rid:
            wanted.append(rid)
        ident = a.get("identifier")
        if isinstance(ident, dict) and ident.get("system") == IDNPS_SYSTEM and ident.get("value"):
            wanted.append(str(ident["value"]))
    rows = by_ids(ctx.conn, wanted)
    for rid in wanted:
        if rid in rows:
            return rows[rid].given or None, rows[rid].family or None
    return None, None


def check_content(ctx: Context, dossier_key: uuid.UUID, resource: dict[str, Any], content: Content) -> None:
    """The bytes decide, not the label (issue 15 §7): a content that is an HL7 CDA document, whatever its declared
    type, is checked as a CDA against the dossier and its DocumentReference (issue 3 §4: patient, type, author, dates,
    confidentiality; 422 naming the field; content declared a CDA that is not one: 422 naming the attachment), and a
    declared type the bytes contradict is refused (422 naming ``attachment.contentType``); a FHIR content whose
    Patient states another INS is refused (:mod:`carnet.documents.fhir_content`). Only the first bytes are sniffed
    (:mod:`carnet.documents.content_types`)."""
    kind = content_types.sniff(content.data, content_types.charset(content.content_type))
    declared = content.content_type.split(";")[0].strip().lower()
    if kind == content_types.CDA or declared in cda.CONTENT_TYPES:  # a CDA, or a CDA label: a CDA of this patient
        cda.check_header(content.data, resource, _dossier_ins(ctx, dossier_key))
    content_types.require_declared(content.content_type, kind)
    if declared in ("application/fhir+json", "application/fhir+xml"):  # its Patient must not be another one
        fhir_content.check_patient(content.data, kind, _dossier_ins(ctx, dossier_key))


def _dossier_ins(ctx: Context, dossier_key: uuid.UUID) -> str:
    from carnet.db.tables import dossier

    return str(ctx.conn.execute(select(dossier.c.ins).where(dossier.c.dossier_key == dossier_key)).scalar_one())


def _check_size_and_hash(resource: dict[str, Any], data: bytes | bytearray) -> list[Issue]:
    """MHD lets the source state size and (SHA-1, R4) hash. Carnet computes both itself and serves its own values;
    a stated value that differs is reported as a warning rather than refused, as published examples carry
    placeholder hashes."""
    att = resource["content"][0]["attachment"]
    warnings: list[Issue] = []
    expr = "DocumentReference.content[0].attachment"
    if att.get("size") is not None and int(att["size"]) != len(data):
        warnings.append(Issue("value", "attachment.size differs from the content; the actual size is kept",
                              [expr + ".size"], "warning"))
    sha1 = base64.b64encode(hashlib.sha1(data, usedforsecurity=False).digest()).decode()
    if att.get("hash") and att["hash"] != sha1:
        warnings.append(Issue("value", "attachment.hash differs from the content; the actual hash is kept",
                              [expr + ".hash"], "warning"))
    return warnings


def _served_resource(ctx: Context, resource: dict[str, Any], document_id: uuid.UUID, dossier_key: uuid.UUID,
                     content: Content, sha256: str, now: dt.datetime, version: int) -> dict[str, Any]:
    # resourceType and id first: searchsets read the id from the head of the stored text
    res = {"resourceType": "DocumentReference", "id": str(document_id),
           **{k: v for k, v in resource.items() if k not in ("resourceType", "id")}}
    res["meta"] = {**(res.get("meta") or {}), "versionId": str(version), "lastUpdated": fhir_instant(now)}
    res["subject"] = {"reference": f"Patient/{dossier_key}"}
    content0 = dict(res["content"][0])
    att = {k: v for k, v in content0["attachment"].items() if k != "data"}
    att.update({"contentType": content.content_type, "size": len(content.data),
                "hash": base64.b64encode(hashlib.sha1(content.data, usedforsecurity=False).digest()).decode(),
                "url": f"{ctx.settings.base_url}/fhir/Binary/{document_id}"})
    content0["attachment"] = att
    res["content"] = [content0] + list(res["content"][1:])
    if not res.get("date"):
        res["date"] = fhir_instant(now)
    return res
