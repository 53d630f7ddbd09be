"""Documents: publish (ITI-65, ITI-105), find (ITI-67), read, retrieve (ITI-68), update status and labels.

Every function takes a :class:`~carnet.context.Context`; the dossier and the caller's decision come from
``ctx.dossier()``, document visibility is the policy's SQL clause, and the audit record is written in the same
transaction. A document the caller may not see answers 404, exactly like one that does not exist.

Contents are sealed (AES-256-GCM, a fresh data key per document) and written durably to the blob store *before* the
metadata is inserted; if the transaction then fails, :func:`carnet.context.run` removes the blob.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, delete, exists, func, insert, or_, select, update

from carnet.access.policy import Decision, DocFacts
from carnet.blobs import IntegrityError, Sealed, open_sealed, seal
from carnet.context import Context
from carnet.db.tables import document, document_identifier, document_token, resource_locator, submission_set
from carnet.documents import cda, codes
from carnet.documents.metadata import DocMeta, read_metadata
from carnet.documents.patch_plan import PatchPlan
from carnet.errors import FhirError, Issue, conflict, forbidden, not_found, unprocessable
from carnet.events import DocumentReplaced
from carnet.ids import new_id


@dataclass
class Content:
    data: bytes
    content_type: str


@dataclass
class Published:
    document_id: uuid.UUID
    version: int
    last_updated: dt.datetime
    warnings: list[Issue]
    resource: str  # the DocumentReference as stored and served


def _aad(dossier_key: uuid.UUID, document_id: uuid.UUID) -> bytes:
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


def require_write(ctx: Context, dossier_key: uuid.UUID, decision: Decision, class_code: str, event: str) -> None:
    if not decision.may_add(class_code):
        msg = decision.refusal if not decision.read and decision.add_classes == "none" else \
            "This caller may not add a document of this class to this dossier."
        raise ctx.refuse(dossier_key, "C", event, forbidden(msg), detail={"class": class_code})


def publish(ctx: Context, dossier_key: uuid.UUID, resource: dict[str, Any], content: Content,
            event: str, submission_set_id: uuid.UUID | None = None, decision: Decision | None = None,
            meta: DocMeta | None = None) -> Published:
    """Store one document (metadata + sealed content). ``resource`` is the validated DocumentReference JSON."""
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
    if meta.content_type in cda.CONTENT_TYPES:  # issue 3 §4: the CDA header must not contradict the metadata
        from carnet.db.tables import dossier

        ins = ctx.conn.execute(select(dossier.c.ins).where(dossier.c.dossier_key == dossier_key)).scalar_one()
        cda.check_header(content.data, resource, ins)
    taken = ctx.conn.execute(select(document_identifier.c.document_id).where(
        document_identifier.c.master_identifier == meta.master_identifier)).first()
    if taken is not None:
        raise conflict("A document with this masterIdentifier already exists", "DocumentReference.masterIdentifier")

    document_id = new_id()
    now = ctx.now
    warnings = _check_size_and_hash(resource, content.data)
    sha256 = hashlib.sha256(content.data).hexdigest()
    sealed = seal(ctx.services.keyring, content.data, _aad(dossier_key, document_id))
    blob_key = hashlib.sha256(sealed.ciphertext).hexdigest()
    ctx.services.blobs.put(blob_key, sealed.ciphertext)  # durable before the metadata commits
    ctx.new_blobs.append(blob_key)

    for ref in meta.replaces:
        _supersede(ctx, dossier_key, decision, ref, document_id)

    author = ctx.actor.id if ctx.actor.kind.value == "professional" else ctx.actor.audit_id
    served = json.dumps(_served_resource(ctx, resource, document_id, dossier_key, content, sha256, now, 1),
                        ensure_ascii=False, separators=(",", ":"))
    invisible_until = now + dt.timedelta(days=ctx.settings.invisible_patient_days) if meta.invisible_patient \
        else None
    ctx.conn.execute(insert(document).values(
        dossier_key=dossier_key, document_id=document_id, master_identifier=meta.master_identifier,
        status=meta.status, class_code=meta.class_code, type_system=meta.type_system, type_code=meta.type_code,
        author_id=author, author_given=meta.author_given, author_family=meta.author_family, masked=meta.masked,
        invisible_patient=meta.invisible_patient, invisible_patient_until=invisible_until,
        invisible_representatives=meta.invisible_representatives, deleted=False, creation=meta.creation,
        date=meta.date or now, period_start=meta.period_start, period_end=meta.period_end,
        content_type=meta.content_type, format_code=meta.format_code, language=meta.language,
        size=len(content.data), sha256=sha256, title=meta.title, blob_key=blob_key,
        wrapped_key=sealed.wrapped_key, key_id=sealed.key_id, submission_set_id=submission_set_id, version=1,
        last_updated=now, resource=served))
    ctx.conn.execute(insert(document_identifier).values(master_identifier=meta.master_identifier,
                                                         dossier_key=dossier_key, document_id=document_id))
    ctx.conn.execute(insert(resource_locator).values(resource_id=document_id, dossier_key=dossier_key))
    if meta.tokens:
        ctx.conn.execute(insert(document_token), [
            {"dossier_key": dossier_key, "document_id": document_id, "param": p, "system": s, "code": c}
            for p, s, c in sorted(meta.tokens)])
    ctx.audit(dossier_key, "C", event, entity_type="DocumentReference", entity_id=str(document_id),
              detail={"class": meta.class_code, "type": meta.type_code, "size": len(content.data)})
    return Published(document_id, 1, now, warnings, served)


def _check_size_and_hash(resource: dict[str, Any], data: bytes) -> list[Issue]:
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


def _supersede(ctx: Context, dossier_key: uuid.UUID, decision: Decision, ref: str,
               replacement: uuid.UUID | None = None) -> None:
    """``relatesTo.replaces``: the replaced document becomes ``superseded``. Only its author (or someone with the
    médecin traitant's rights) may replace it, and only within the same dossier. Open rectification requests on the
    replaced document are completed with ``replacement`` as their output (issue 4 §3): the task service hears of it
    through :class:`~carnet.events.DocumentReplaced`."""
    target = _locate(ctx, ref.rsplit("/", 1)[-1], dossier_key)
    if target is None:
        raise unprocessable("The replaced document does not exist in this dossier",
                            "DocumentReference.relatesTo.target")
    if target.status == "entered-in-error":
        raise conflict("The replaced document was withdrawn", "DocumentReference.relatesTo.target")
    if target.author_id != ctx.actor.id and decision.basis not in ("treating_gp", "gp_rights"):
        raise forbidden("Only the author of a document may replace it")
    _set_status(ctx, target, "superseded")
    if replacement is not None:
        ctx.publish(DocumentReplaced(dossier_key, target.document_id, replacement))


def _locate(ctx: Context, doc_id: str, dossier_key: uuid.UUID) -> Any:
    try:
        did = uuid.UUID(doc_id)
    except ValueError:
        return None
    return ctx.conn.execute(select(document).where(document.c.dossier_key == dossier_key,
                                                   document.c.document_id == did).with_for_update()).first()


def _set_status(ctx: Context, row: Any, status: str) -> None:
    res = json.loads(row.resource)
    res["status"] = status
    _rewrite(ctx, row, res, status=status)


def _rewrite(ctx: Context, row: Any, res: dict[str, Any], **columns: Any) -> None:
    version = row.version + 1
    res["meta"] = {**(res.get("meta") or {}), "versionId": str(version), "lastUpdated": fhir_instant(ctx.now)}
    ctx.conn.execute(update(document).where(document.c.dossier_key == row.dossier_key,
                                            document.c.document_id == row.document_id).values(
        version=version, last_updated=ctx.now, resource=json.dumps(res, ensure_ascii=False, separators=(",", ":")),
        **columns))
    ctx.audit(row.dossier_key, "U", "document.update", entity_type="DocumentReference",
              entity_id=str(row.document_id), detail={k: v for k, v in columns.items() if isinstance(v, str | bool)})


_LOCATE = select(resource_locator.c.dossier_key).where(resource_locator.c.resource_id == bindparam("rid"))
_DOCUMENT = select(document).where(document.c.dossier_key == bindparam("k"), document.c.document_id == bindparam("d"))


def dossier_of(ctx: Context, resource_id: str) -> uuid.UUID:
    """The dossier a DocumentReference, Binary or List id belongs to (a lookup keyed by the id), or 404."""
    try:
        rid = uuid.UUID(resource_id)
    except ValueError:
        raise not_found() from None
    key = ctx.conn.execute(_LOCATE, {"rid": rid}).scalar()
    if key is None:
        raise not_found()
    return key


def visible_document(ctx: Context, resource_id: str, event: str, action: str = "R",
                     lock: bool = False) -> tuple[Any, Decision]:
    """A document the caller may see, or 404 (forbidden looks like not found); a refused read is audited.
    ``lock`` takes the row for update (a change follows)."""
    dossier_key = dossier_of(ctx, resource_id)
    _, decision = ctx.dossier(dossier_key)
    query = _DOCUMENT.with_for_update() if lock else _DOCUMENT
    row = ctx.conn.execute(query, {"k": dossier_key, "d": uuid.UUID(resource_id)}).first()
    if row is None or not decision.read or not decision.visibility.allows(doc_facts(row), ctx.now):
        raise ctx.refuse(dossier_key, action, event, not_found(), entity_type="DocumentReference",
                         entity_id=resource_id)
    return row, decision


def read(ctx: Context, resource_id: str) -> str:
    row, _ = visible_document(ctx, resource_id, "document.read")
    ctx.audit(row.dossier_key, "R", "document.read", entity_type="DocumentReference", entity_id=resource_id)
    return str(row.resource)


def retrieve(ctx: Context, resource_id: str) -> tuple[bytes, str, Any]:
    """ITI-68: the exact bytes. The SHA-256 is checked on every retrieval; a mismatch is an error, never served."""
    row, _ = visible_document(ctx, resource_id, "ITI-68")
    data = open_content(ctx, row)
    ctx.audit(row.dossier_key, "R", "ITI-68", entity_type="Binary", entity_id=resource_id)
    return data, row.content_type, row


def open_content(ctx: Context, row: Any) -> bytes:
    """The original bytes of the ``document`` row ``row``, decrypted, with the SHA-256 checked: a mismatch is a 500,
    never served. The caller has already decided that the row may be read, and audits the reading."""
    try:
        ciphertext = ctx.services.blobs.get(row.blob_key)
        data = open_sealed(ctx.services.keyring, Sealed(ciphertext, bytes(row.wrapped_key), row.key_id),
                           _aad(row.dossier_key, row.document_id))
    except (IntegrityError, OSError, LookupError) as exc:
        raise FhirError(500, "exception", "The stored document failed its integrity check") from exc
    if hashlib.sha256(data).hexdigest() != row.sha256:
        raise FhirError(500, "exception", "The stored document failed its integrity check")
    return data


def delete_from_dossier(ctx: Context, resource_id: str) -> None:
    """The patient (or a legal representative) deletes a document from the dossier (DOMAIN.md: "delete documents
    from their view"): it is gone for everyone, its content and metadata are kept out of every answer, and the audit
    keeps the trace. Professionals never delete: an author withdraws (status entered-in-error) or replaces."""
    row, decision = visible_document(ctx, resource_id, "document.delete", "D", lock=True)
    if decision.basis not in ("patient", "representative"):
        raise ctx.refuse(row.dossier_key, "D", "document.delete",
                         forbidden("Only the patient or a legal representative deletes a document from the dossier; "
                                   "its author may withdraw it (status entered-in-error) or replace it"),
                         entity_type="DocumentReference", entity_id=resource_id)
    ctx.conn.execute(update(document).where(document.c.dossier_key == row.dossier_key,
                                            document.c.document_id == row.document_id)
                     .values(deleted=True, last_updated=ctx.now, version=row.version + 1))
    ctx.audit(row.dossier_key, "D", "document.delete", entity_type="DocumentReference", entity_id=resource_id)


# --- PATCH (PDSm: status and securityLabel) --------------------------------------------------------------------

def patch(ctx: Context, resource_id: str, plan: PatchPlan) -> str:
    """Update ``status`` and/or ``securityLabel``, as PDSm allows (TD3.2 withdraw, TD3.3 mask/unmask)."""
    from carnet.documents.metadata import confidentiality

    row, decision = visible_document(ctx, resource_id, "document.update", "U", lock=True)
    is_author = row.author_id == ctx.actor.id
    patient_side = decision.basis in ("patient", "representative")
    full = decision.basis in ("treating_gp", "gp_rights")
    res = json.loads(row.resource)
    plan.check_tests(res)
    status = plan.status
    # a document filed without a label is "N"; a patch's /securityLabel/0 then means that implicit label
    labels = plan.new_labels(res.get("securityLabel") or [{"coding": [{"system": codes.TRE_A07, "code": "N"}]}])
    cols: dict[str, Any] = {}
    if status is not None:
        if status not in codes.STATUSES:
            raise unprocessable("status must be current, superseded or entered-in-error", "DocumentReference.status")
        if not (is_author or full):
            raise ctx.refuse(row.dossier_key, "U", "document.update",
                             forbidden("Only the author of a document may change its status"),
                             entity_type="DocumentReference", entity_id=resource_id)
        res["status"] = status
        cols["status"] = status
    if labels is not None:
        found = confidentiality(labels)
        masked = codes.MASQUE_PS in found
        inv_p = codes.INVISIBLE_PATIENT in found
        inv_r = codes.INVISIBLE_REPRESENTANTS in found
        if masked != row.masked and not (patient_side or is_author or full):
            raise ctx.refuse(row.dossier_key, "U", "document.update",
                             forbidden("Only the patient, the author or the médecin traitant may mask a document"),
                             entity_type="DocumentReference", entity_id=resource_id)
        if inv_p != row.invisible_patient and (patient_side or not (is_author or full)):
            raise ctx.refuse(row.dossier_key, "U", "document.update",
                             forbidden("Only the author may change a document's visibility to the patient"),
                             entity_type="DocumentReference", entity_id=resource_id)
        if inv_r and not row.invisible_representatives:
            raise conflict("Once visible to the legal representatives a document cannot be hidden from them again",
                           "DocumentReference.securityLabel")
        if inv_r != row.invisible_representatives and not patient_side and not (is_author or full):
            raise forbidden("This caller may not change this label")
        res["securityLabel"] = labels
        cols.update(masked=masked, invisible_patient=inv_p, invisible_representatives=inv_r,
                    invisible_patient_until=(row.invisible_patient_until if inv_p and row.invisible_patient
                                             else ctx.now + dt.timedelta(days=ctx.settings.invisible_patient_days)
                                             if inv_p else None))
        ctx.conn.execute(delete(document_token).where(document_token.c.dossier_key == row.dossier_key,
                                                      document_token.c.document_id == row.document_id,
                                                      document_token.c.param == "security-label"))
        tokens = {("security-label", c.get("system") or "", c.get("code") or "")
                  for concept in labels for c in concept.get("coding") or [] if c.get("code")}
        if not found - {"N"}:
            tokens.add(("security-label", codes.TRE_A07, "N"))
        if tokens:
            ctx.conn.execute(insert(document_token), [
                {"dossier_key": row.dossier_key, "document_id": row.document_id, "param": p, "system": s, "code": c}
                for p, s, c in sorted(tokens)])
    if not cols:
        raise unprocessable("Only status and securityLabel may be patched", "DocumentReference")
    _rewrite(ctx, row, res, **cols)
    return json.dumps(res, ensure_ascii=False, separators=(",", ":"))


# --- search (ITI-67) -------------------------------------------------------------------------------------------

@dataclass
class DocumentQuery:
    dossier_key: uuid.UUID
    conditions: list[Any]
    count: int
    offset: int
    sort_desc: bool = True


def token_condition(param: str, values: list[tuple[str | None, str]]) -> Any:
    """OR of (system|code) values for one token parameter, as an EXISTS on ``document_token``."""
    alts = []
    for system, code in values:
        cond = [document_token.c.param == param, document_token.c.code == code]
        if system is not None:
            cond.append(document_token.c.system == system)
        alts.append(and_(*cond))
    return exists().where(document_token.c.dossier_key == document.c.dossier_key,
                          document_token.c.document_id == document.c.document_id, or_(*alts))


def search(ctx: Context, q: DocumentQuery, event: str = "ITI-67", query_text: str = "") -> tuple[list[str], int]:
    _, decision = ctx.dossier(q.dossier_key)
    if not decision.read:
        raise ctx.refuse(q.dossier_key, "E", event, forbidden(decision.refusal), detail={"query": query_text})
    where = and_(document.c.dossier_key == q.dossier_key, decision.visibility.where(document, ctx.now),
                 *q.conditions)
    order = (document.c.date.desc(), document.c.document_id.desc()) if q.sort_desc else \
        (document.c.date.asc(), document.c.document_id.asc())
    rows = ctx.conn.execute(select(document.c.resource).where(where).order_by(*order)
                            .limit(q.count).offset(q.offset)).scalars().all()
    if q.offset == 0 and len(rows) < q.count:
        total = len(rows)
    else:
        total = ctx.conn.execute(select(func.count()).select_from(document).where(where)).scalar_one()
    ctx.audit(q.dossier_key, "E", event, entity_type="Patient", entity_id=str(q.dossier_key),
              detail={"query": query_text, "returned": len(rows)})
    return list(rows), total


def search_lists(ctx: Context, dossier_key: uuid.UUID, conditions: list[Any], count: int, offset: int,
                 query_text: str) -> tuple[list[str], int]:
    """ITI-66: SubmissionSets (and folders) of a dossier. A List is shown only if the caller sees at least one of
    its documents, and lists only the documents the caller sees, so that a SubmissionSet cannot reveal a hidden
    document's existence."""
    _, decision = ctx.dossier(dossier_key)
    if not decision.read:
        raise ctx.refuse(dossier_key, "E", "ITI-66", forbidden(decision.refusal), detail={"query": query_text})
    visible = exists().where(document.c.dossier_key == submission_set.c.dossier_key,
                             document.c.submission_set_id == submission_set.c.list_id,
                             decision.visibility.where(document, ctx.now))
    where = and_(submission_set.c.dossier_key == dossier_key, visible, *conditions)
    rows = ctx.conn.execute(select(submission_set.c.resource, submission_set.c.list_id).where(where)
                            .order_by(submission_set.c.date.desc()).limit(count).offset(offset)).all()
    total = ctx.conn.execute(select(func.count()).select_from(submission_set).where(where)).scalar_one()
    seen = {str(d) for d in ctx.conn.execute(select(document.c.document_id).where(
        document.c.dossier_key == dossier_key, document.c.submission_set_id.in_([r.list_id for r in rows]),
        decision.visibility.where(document, ctx.now))).scalars()}
    out = []
    for r in rows:
        res = json.loads(r.resource)
        res["entry"] = [e for e in res.get("entry") or []
                        if str((e.get("item") or {}).get("reference", "")).rsplit("/", 1)[-1] in seen]
        out.append(json.dumps(res, ensure_ascii=False, separators=(",", ":")))
    ctx.audit(dossier_key, "E", "ITI-66", entity_type="Patient", entity_id=str(dossier_key),
              detail={"query": query_text, "returned": len(out)})
    return out, total


# --- the patient's portal: browse, what is new, mask / unmask (issue 4 §2) ----------------------------------------

@dataclass(frozen=True)
class Listed:
    """One document as the patient's portal shows it: metadata only, authors resolved from the directory."""

    id: uuid.UUID
    title: str
    class_code: str
    type_code: str
    type_display: str | None  # the display the source gave with the type code
    date: dt.datetime  # when it was filed (DocumentReference.date)
    creation: dt.datetime | None  # when it was written (attachment.creation)
    status: str  # current | superseded | entered-in-error
    masked: bool  # MASQUE_PS: hidden from professionals
    content_type: str
    size: int
    author_id: str | None
    author_name: str | None
    author_profession: str | None  # TRE_G15 code, for a professional found in the directory
    author_organisation: str | None
    added_by: str  # you | patient_side | professional


@dataclass(frozen=True)
class DocumentFilter:
    """The portal's filters; dates are instants, ``since`` included and ``until`` excluded."""

    classes: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    author: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


@dataclass(frozen=True)
class DocumentPage:
    documents: list[Listed]
    total: int
    classes: list[tuple[str, int]]  # (class code, how many visible documents) for every class present
    types: list[str]  # type codes present in the dossier
    authors: list[tuple[str, str | None, str]]  # (author id, name, added_by as in Listed) present in the dossier


LISTED_COLUMNS = (document.c.dossier_key, document.c.document_id, document.c.title, document.c.class_code,
                   document.c.type_code, document.c.date, document.c.creation, document.c.status, document.c.masked,
                   document.c.content_type, document.c.size, document.c.author_id, document.c.author_given,
                   document.c.author_family, document.c.resource)


def _type_display(resource: str, code: str) -> str | None:
    res = json.loads(resource)
    for coding in (res.get("type") or {}).get("coding") or []:
        if coding.get("code") == code and coding.get("display"):
            return str(coding["display"])
    return None


def listed_from_rows(ctx: Context, rows: list[Any]) -> list[Listed]:
    from carnet.db.tables import practitioner

    ids = sorted({r.author_id for r in rows if r.author_id})
    pros = {p.national_id: p for p in ctx.conn.execute(select(
        practitioner.c.national_id, practitioner.c.given, practitioner.c.family, practitioner.c.profession,
        practitioner.c.organisation_name, practitioner.c.organisation_id).where(
        practitioner.c.national_id.in_(ids)))} if ids else {}
    me = ctx.actor.audit_id
    out = []
    for r in rows:
        pro = pros.get(r.author_id) if r.author_id else None
        name = f"{pro.given} {pro.family}" if pro is not None else \
            (" ".join(n for n in (r.author_given, r.author_family) if n) or None)
        added_by = "you" if r.author_id == me else "professional" if pro is not None else \
            "patient_side" if r.class_code == "90" else "professional"
        res = json.loads(r.resource)
        title = r.title or (res.get("content") or [{}])[0].get("attachment", {}).get("title") or \
            res.get("description") or ""
        out.append(Listed(
            id=r.document_id, title=str(title), class_code=r.class_code, type_code=r.type_code,
            type_display=_type_display(r.resource, r.type_code), date=_aware(r.date), creation=_aware(r.creation),
            status=r.status, masked=r.masked, content_type=r.content_type, size=r.size, author_id=r.author_id,
            author_name=name, author_profession=pro.profession if pro is not None else None,
            author_organisation=(pro.organisation_name or pro.organisation_id) if pro is not None else None,
            added_by=added_by))
    return out


def _aware(ts: Any) -> Any:
    if ts is None:
        return None
    return ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts


def _readable(ctx: Context, dossier_key: uuid.UUID, event: str) -> Decision:
    _, decision = ctx.dossier(dossier_key)
    if not decision.read:
        raise ctx.refuse(dossier_key, "E", event, forbidden(decision.refusal))
    return decision


def filter_conditions(f: DocumentFilter) -> list[Any]:
    conds: list[Any] = []
    if f.classes:
        conds.append(document.c.class_code.in_(list(f.classes)))
    if f.types:
        conds.append(document.c.type_code.in_(list(f.types)))
    if f.author:
        conds.append(document.c.author_id == f.author)
    if f.since is not None:
        conds.append(document.c.date >= f.since.astimezone(dt.UTC))
    if f.until is not None:
        conds.append(document.c.date < f.until.astimezone(dt.UTC))
    return conds


def browse(ctx: Context, dossier_key: uuid.UUID, f: DocumentFilter, count: int = 20,
           offset: int = 0) -> DocumentPage:
    """The documents the caller sees, filtered in SQL, grouped by class (class order, then newest first), with the
    classes, types and authors present for the filter menus. Audited as one search (``ITI-67``)."""
    decision = _readable(ctx, dossier_key, "ITI-67")
    visible = and_(document.c.dossier_key == dossier_key, decision.visibility.where(document, ctx.now))
    where = and_(visible, *filter_conditions(f))
    rows = ctx.conn.execute(select(*LISTED_COLUMNS).where(where).order_by(
        document.c.class_code, document.c.date.desc(), document.c.document_id.desc())
        .limit(max(1, min(count, 100))).offset(max(0, offset))).all()
    total = ctx.conn.execute(select(func.count()).select_from(document).where(where)).scalar_one()
    classes = [(c, n) for c, n in ctx.conn.execute(select(document.c.class_code, func.count()).where(visible)
                                                   .group_by(document.c.class_code).order_by(document.c.class_code))]
    types = sorted(ctx.conn.execute(select(document.c.type_code).where(visible).distinct()).scalars())
    authors = _authors(ctx, list(ctx.conn.execute(
        select(document.c.author_id, document.c.author_given, document.c.author_family, document.c.class_code)
        .where(visible, document.c.author_id.is_not(None)).distinct()).all()))
    ctx.audit(dossier_key, "E", "ITI-67", entity_type="Patient", entity_id=str(dossier_key),
              detail={"query": "portal", "returned": len(rows)})
    return DocumentPage(listed_from_rows(ctx, list(rows)), total, classes, types, authors)


def _authors(ctx: Context, rows: list[Any]) -> list[tuple[str, str | None, str]]:
    """(author id, name, added_by) for the filter menu: professionals by their directory name, then the patient
    side (the caller first)."""
    from carnet.db.tables import practitioner

    ids = sorted({r.author_id for r in rows})
    pros = {p.national_id: f"{p.given} {p.family}" for p in ctx.conn.execute(select(
        practitioner.c.national_id, practitioner.c.given, practitioner.c.family).where(
        practitioner.c.national_id.in_(ids)))} if ids else {}
    me = ctx.actor.audit_id
    found: dict[str, tuple[str, str | None, str]] = {}
    for r in rows:
        if r.author_id in found:
            continue
        named = " ".join(n for n in (r.author_given, r.author_family) if n) or None
        kind = "you" if r.author_id == me else "professional" if r.author_id in pros or r.class_code != "90" \
            else "patient_side"
        found[r.author_id] = (r.author_id, pros.get(r.author_id) or named, kind)
    order = {"you": 0, "patient_side": 1, "professional": 2}
    return sorted(found.values(), key=lambda a: (order[a[2]], (a[1] or a[0]).lower()))


def newly_added(ctx: Context, dossier_key: uuid.UUID, since: dt.datetime) -> list[uuid.UUID]:
    """Documents added to the dossier since ``since``: the audit's record of each addition is the reliable clock
    (``DocumentReference.date`` is the source's, and may be older than the deposit)."""
    from carnet.db.tables import audit

    ids = ctx.conn.execute(select(audit.c.entity_id).where(
        audit.c.dossier_key == dossier_key, audit.c.recorded >= since.astimezone(dt.UTC), audit.c.action == "C",
        audit.c.entity_type == "DocumentReference", audit.c.outcome == "0").order_by(audit.c.seq.desc())
        .limit(500)).scalars()
    out = []
    for value in ids:
        try:
            out.append(uuid.UUID(str(value)))
        except ValueError:
            continue
    return out


@dataclass(frozen=True)
class HomeDocuments:
    summaries: list[Listed]  # the latest summaries (class 11, e.g. the médecin traitant's VSM)
    directives: list[Listed]  # advance directives (type EXPPAT_3)
    new: list[Listed]  # added since ``since`` by others, or the latest ones when there is no previous visit


def home_documents(ctx: Context, dossier_key: uuid.UUID, since: dt.datetime | None, limit: int = 20) -> HomeDocuments:
    """What the portal's home page shows of the documents, in one audited search (``ITI-67``): the latest summaries,
    the advance directives, and what was added since the previous visit (a document hidden from the patient whose
    invisibility lapsed since then counts as new)."""
    decision = _readable(ctx, dossier_key, "ITI-67")
    visible = and_(document.c.dossier_key == dossier_key, decision.visibility.where(document, ctx.now))
    newest = (document.c.date.desc(), document.c.document_id.desc())
    summaries = ctx.conn.execute(select(*LISTED_COLUMNS).where(
        visible, document.c.class_code == "11", document.c.type_code != "EXPPAT_3", document.c.status == "current")
        .order_by(*newest).limit(3)).all()
    directives = ctx.conn.execute(select(*LISTED_COLUMNS).where(
        visible, document.c.type_code == "EXPPAT_3", document.c.status == "current").order_by(*newest)
        .limit(10)).all()
    if since is None:
        new = ctx.conn.execute(select(*LISTED_COLUMNS).where(visible).order_by(*newest).limit(5)).all()
    else:
        added = newly_added(ctx, dossier_key, since)
        lapsed = and_(document.c.invisible_patient.is_(True),
                      document.c.invisible_patient_until > since.astimezone(dt.UTC),
                      document.c.invisible_patient_until <= ctx.now.astimezone(dt.UTC))
        new = ctx.conn.execute(select(*LISTED_COLUMNS).where(
            visible, or_(document.c.document_id.in_(added), lapsed),
            or_(document.c.author_id.is_(None), document.c.author_id != ctx.actor.audit_id))
            .order_by(*newest).limit(limit)).all()
    ctx.audit(dossier_key, "E", "ITI-67", entity_type="Patient", entity_id=str(dossier_key),
              detail={"query": "portal-home", "returned": len(summaries) + len(directives) + len(new)})
    return HomeDocuments(listed_from_rows(ctx, list(summaries)), listed_from_rows(ctx, list(directives)),
                         listed_from_rows(ctx, list(new)))


def open_document(ctx: Context, resource_id: str) -> tuple[Listed, dict[str, Any]]:
    """One document's metadata for the portal's document page (404 if the caller may not see it), audited as a
    read: the portal's view of it, and the DocumentReference as stored."""
    row, _ = visible_document(ctx, resource_id, "document.read")
    ctx.audit(row.dossier_key, "R", "document.read", entity_type="DocumentReference", entity_id=resource_id)
    return listed_from_rows(ctx, [row])[0], json.loads(row.resource)


def set_masked(ctx: Context, resource_id: str, masked: bool) -> bool:
    """The patient hides a document from professionals (``MASQUE_PS``) or shows it again; DOMAIN.md: its author
    and the médecin traitant still see it. Goes through :func:`patch`, which checks who may change the label and
    audits the change. Returns False when the document was already so (nothing changes)."""
    row, _ = visible_document(ctx, resource_id, "document.update", "U", lock=True)
    if bool(row.masked) == masked:
        return False
    labels: list[dict[str, Any]] = []
    for concept in json.loads(row.resource).get("securityLabel") or []:
        codings = [c for c in concept.get("coding") or [] if not (
            c.get("system") in codes.CONFIDENTIALITY_SYSTEMS and c.get("code") in (codes.MASQUE_PS, "N"))]
        if codings:
            labels.append({**concept, "coding": codings})
    if masked:
        labels.append({"coding": [{"system": codes.TRE_A07, "code": codes.MASQUE_PS}]})
    if not labels:
        labels = [{"coding": [{"system": codes.TRE_A07, "code": "N"}]}]
    patch(ctx, resource_id, PatchPlan(label_ops=[{"op": "replace", "path": "/securityLabel", "value": labels}]))
    return True
