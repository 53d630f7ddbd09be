"""The complete copy of a dossier, as one zip (issue 4 §2; DOMAIN.md "The dossier's life": the patient, heirs after
death, may ask for a complete copy).

The zip holds::

    LISEZMOI.txt, README.txt          what the copy holds and how to check it (French, English)
    dossier.pdf                       the readable booklet (identity, access, documents, access history)
    fhir/bundle.json                  a FHIR R4 Bundle (collection) of everything
    fhir/ips.json                     the emergency summary as an IPS document Bundle (carnet.clinical.summary)
    documents/<class>/<date>-<id>.<ext>   each document the caller may see, byte for byte
    audit/history.json, receipt.json, verify_receipt.py   the audit chain and its signed receipt, when a checkpoint
                                      commits to it (:mod:`carnet.export.trail`, docs/AUDIT.md)
    SHA256SUMS                        SHA-256 of every other file, in ``sha256sum -c`` format

Who may have it is the policy's ``Decision.copy`` (the patient and a current legal representative, on a closed
dossier too). The documents are those the caller's searches return (``decision.visibility``: deleted documents and
those still invisible to the patient are left out). Each is decrypted and its SHA-256 checked on the way out; a
mismatch fails the whole copy (500), as ITI-68 never serves a document that failed its check.

The access history is the dossier's audit records, as ``AuditEvent`` search serves them to the patient, less the
records about a document the caller may not see yet (awaiting its announcement, or a minor's confidential care for a
representative), so that the copy cannot reveal such a document exists.

Besides the documents and the history, the copy holds what the portal shows the patient elsewhere
(:mod:`carnet.export.contents`): structured data, the IPS summary, emergency contacts, the care history, the access
and rectification requests.

Audit: one record ``dossier.copy`` (action R, entity Patient, detail: the number of documents), written in the same
transaction before the history is read, so the copy's own history ends with it. The document reads inside the copy
are not audited one by one: the one record says that every visible document left in the copy.

The zip is written to ``out`` as it goes: one document's bytes are held at a time, never all of them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

import structlog
from sqlalchemy import Row, select

from carnet.access.actors import ActorKind
from carnet.access.policy import Decision
from carnet.context import Context
from carnet.db.tables import access_grant, audit, document, practitioner, representative
from carnet.documents import codes
from carnet.documents import service as documents
from carnet.dossier.patient import display_name
from carnet.errors import FhirError, forbidden, not_found
from carnet.export import booklet, bundle, contents, readme, trail
from carnet.export.facts import (
    CopyFacts,
    DocEntry,
    Grant,
    HistoryEntry,
    Person,
    Representative,
    class_folder,
    local,
)
from carnet.history import audit_events as audit_fhir
from carnet.identity.ins import INS_SYSTEMS
from carnet.identity.professions import PROFESSIONS

logger = structlog.get_logger("carnet")

EVENT = "dossier.copy"
REFUSAL = "The complete copy of a dossier is given to the patient and their legal representatives only."
TEXT_LIMIT = 20_000  # characters of one text document shown in the booklet (the file itself is always complete)
TEXT_BUDGET = 200_000  # characters of all text documents shown in the booklet
EXTENSIONS = {
    "application/pdf": "pdf", "text/plain": "txt", "image/jpeg": "jpg", "image/png": "png", "text/xml": "xml",
    "application/xml": "xml", "application/hl7-v3+xml": "xml", "application/hl7-cda+xml": "xml",
    "application/fhir+json": "json",
    "application/fhir+xml": "xml",
}
COMPRESSED = frozenset({"application/pdf", "image/jpeg", "image/png"})  # stored as they are: deflate gains nothing


@dataclass(frozen=True)
class CopySummary:
    dossier_key: uuid.UUID
    created: dt.datetime
    documents: int
    files: tuple[str, ...]  # every file in the zip, in order

    @property
    def filename(self) -> str:
        """The name offered for download: ``carnet-copy-<date>.zip`` (the date in France)."""
        return f"carnet-copy-{local(self.created).date().isoformat()}.zip"


def document_path(row: Any) -> str:
    day = local(row.creation or row.date).date().isoformat()
    return f"documents/{class_folder(row.class_code)}/{day}-{row.document_id}.{EXTENSIONS.get(row.content_type, 'bin')}"


def build_copy(ctx: Context, dossier_key: uuid.UUID, out: IO[bytes]) -> CopySummary:
    """Write the complete copy of ``dossier_key`` as a zip to ``out``, for the caller of ``ctx``.

    Refused (and the refusal audited) unless the policy's ``Decision.copy`` allows it: 403 to a caller who may know
    the dossier exists, 404 to anyone else."""
    row, decision = ctx.dossier(dossier_key)
    if not decision.copy:
        error = forbidden(REFUSAL) if decision.check else not_found("Patient")
        raise ctx.refuse(dossier_key, "R", EVENT, error, entity_type="Patient", entity_id=str(dossier_key))
    docs = ctx.conn.execute(select(document).where(
        document.c.dossier_key == dossier_key, decision.visibility.where(document, ctx.now))
        .order_by(document.c.class_code, document.c.date, document.c.document_id)).all()
    ctx.audit(dossier_key, "R", EVENT, entity_type="Patient", entity_id=str(dossier_key),
              detail={"documents": len(docs)})

    stamp = local(ctx.now).timetuple()[:6]
    sums: list[tuple[str, str]] = []
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        def put(name: str, data: bytes) -> None:
            zf.writestr(_info(name, stamp), data)
            sums.append((hashlib.sha256(data).hexdigest(), name))

        entries: list[DocEntry] = []
        budget = TEXT_BUDGET
        for d in docs:
            data = _open(ctx, d)
            path = document_path(d)
            zf.writestr(_info(path, stamp, d.content_type in COMPRESSED), data)
            sums.append((d.sha256, path))
            entry = _doc_entry(d, path)
            if d.content_type == "text/plain" and budget > 0:
                text = data.decode("utf-8", errors="replace")
                shown = text[:min(TEXT_LIMIT, budget)]
                entry.text, entry.text_truncated = shown, len(shown) < len(text)
                budget -= len(shown)
            entries.append(entry)
            del data

        served = [bundle.document_reference(d.resource, entry.path) for d, entry in zip(docs, entries, strict=True)]
        more = contents.gather(ctx, dossier_key, decision, json.loads(row.resource), served)
        audit_rows = _history_rows(ctx, dossier_key, decision)
        facts = _facts(ctx, row, entries, audit_rows)
        facts.health, facts.contacts, facts.claims, facts.requests = contents.facts(more)

        with zf.open(_info("fhir/bundle.json", stamp), "w", force_zip64=True) as raw:
            sink = _Hashing(raw)
            bundle.write(sink, _resources(ctx, row, served, more, audit_rows), ctx.settings.base_url, ctx.now)
        sums.append((sink.hexdigest(), "fhir/bundle.json"))
        put("fhir/ips.json", (json.dumps(more.ips, ensure_ascii=False, indent=1) + "\n").encode())

        with zf.open(_info("dossier.pdf", stamp), "w", force_zip64=True) as raw:
            sink = _Hashing(raw)
            booklet.render(facts, sink)
        sums.append((sink.hexdigest(), "dossier.pdf"))

        for name, data in trail.files(ctx, dossier_key, audit_rows):
            put(name, data)
        facts.receipt = any(name == "audit/receipt.json" for _, name in sums)
        put("LISEZMOI.txt", readme.french(facts).encode())
        put("README.txt", readme.english(facts).encode())
        zf.writestr(_info("SHA256SUMS", stamp), "".join(f"{h}  {name}\n" for h, name in sums).encode())
        files = tuple(i.filename for i in zf.infolist())
    return CopySummary(dossier_key, ctx.now, len(docs), files)


def _info(name: str, stamp: Any, stored: bool = False) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=stamp)
    info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


class _Hashing:
    """A write-only stream that passes bytes on and keeps their SHA-256."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()

    def write(self, data: bytes | str) -> int:
        b = data.encode() if isinstance(data, str) else bytes(data)
        self.sha.update(b)
        self.raw.write(b)
        return len(b)

    def flush(self) -> None:
        self.raw.flush()

    def hexdigest(self) -> str:
        return self.sha.hexdigest()


def _open(ctx: Context, row: Any) -> bytes:
    """A document's original bytes, decrypted, with its SHA-256 checked (as ITI-68 does)."""
    try:
        return documents.open_content(ctx, row)
    except FhirError:
        logger.error("copy.integrity_failed")
        raise


def _history_rows(ctx: Context, dossier_key: uuid.UUID, decision: Decision) -> list[Row[Any]]:
    """The dossier's audit records, less those about a document the caller may not see yet (the one rule of
    :func:`carnet.history.audit_events.not_about_hidden_documents`): the copy must not reveal that such a document
    exists."""
    from carnet.history.audit_events import not_about_hidden_documents

    conds = [audit.c.dossier_key == dossier_key, *not_about_hidden_documents(ctx, dossier_key, decision)]
    return list(ctx.conn.execute(select(audit).where(*conds).order_by(audit.c.seq)).all())


# --- gathering the facts --------------------------------------------------------------------------------------------

def _chunks(values: Iterable[str], size: int = 500) -> Iterator[list[str]]:
    items = sorted(set(values))
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _profession(code: str | None) -> str | None:
    return PROFESSIONS[code][0] if code in PROFESSIONS else code


def _people(ctx: Context, ids: Iterable[str | None]) -> dict[str, Person]:
    """The professionals named by ``ids`` (national ids), from the directory (a reference table)."""
    out: dict[str, Person] = {}
    for chunk in _chunks(i for i in ids if i):
        for p in ctx.conn.execute(select(practitioner).where(practitioner.c.national_id.in_(chunk))):
            out[p.national_id] = Person(p.national_id, f"{p.given} {p.family}", _profession(p.profession),
                                        p.organisation_name or p.organisation_id)
    return out


def _organisations(ctx: Context, ids: Iterable[str | None]) -> dict[str, str]:
    out: dict[str, str] = {}
    for chunk in _chunks(i for i in ids if i):
        for org_id, name in ctx.conn.execute(select(practitioner.c.organisation_id, practitioner.c.organisation_name)
                                             .where(practitioner.c.organisation_id.in_(chunk))):
            if name:
                out[org_id] = name
    return out


def _type_display(resource: dict[str, Any], code: str) -> str:
    for coding in (resource.get("type") or {}).get("coding") or []:
        if coding.get("code") == code and coding.get("display"):
            return str(coding["display"])
    return str((resource.get("type") or {}).get("text") or code)


def _doc_entry(d: Any, path: str) -> DocEntry:
    res = json.loads(d.resource)
    author = " ".join(p for p in (d.author_given, d.author_family) if p) or d.author_id or ""
    title = d.title or (res.get("content") or [{}])[0].get("attachment", {}).get("title") or res.get("description")
    return DocEntry(document_id=str(d.document_id), class_code=d.class_code,
                    class_label=codes.CLASSES.get(d.class_code, d.class_code), type_code=d.type_code,
                    type_display=_type_display(res, d.type_code), date=d.creation or d.date, status=d.status,
                    title=str(title or ""), author=author, author_id=d.author_id, path=path, sha256=d.sha256,
                    size=d.size, content_type=d.content_type, masked=d.masked)


def _names(resource: dict[str, Any], row: Any) -> list[str]:
    """The patient's name as the DMP shows it (:func:`carnet.dossier.patient.display_name`: each given name once,
    the birth name beside a used name)."""
    return [display_name(resource) or f"{row.given} {row.family}"]


def _facts(ctx: Context, row: Any, entries: list[DocEntry], audit_rows: Sequence[Row[Any]]) -> CopyFacts:
    key = row.dossier_key
    reps = ctx.conn.execute(select(representative).where(representative.c.dossier_key == key)
                            .order_by(representative.c.since)).all()
    grants = ctx.conn.execute(select(access_grant).where(access_grant.c.dossier_key == key,
                                                         access_grant.c.revoked_at.is_(None))
                              .order_by(access_grant.c.created_at)).all()
    people = _people(ctx, [row.treating_gp, *(g.subject_id for g in grants if g.subject_kind == "practitioner"),
                           *(a.actor_id for a in audit_rows if a.actor_kind == "professional"),
                           *(e.author_id for e in entries)])
    orgs = _organisations(ctx, [*(g.subject_id for g in grants if g.subject_kind == "organisation"),
                                *(a.organisation_id for a in audit_rows)])
    rep_names = {str(r.representative_id): f"{r.given} {r.family}" for r in reps}
    for e in entries:  # name each author as the patient knows them: the directory's name and profession
        if e.author_id in people:
            p = people[e.author_id]
            e.author = ", ".join(x for x in (p.name, p.profession) if x)
        elif e.author_id == row.ins:
            e.author = "le patient"
        elif e.author_id in rep_names:
            e.author = f"{rep_names[e.author_id]} (représentant légal)"

    def subject(g: Any) -> Person:
        if g.subject_kind == "organisation":
            return Person(g.subject_id, orgs.get(g.subject_id, g.subject_id))
        return people.get(g.subject_id, Person(g.subject_id, g.subject_id))

    history = [_history(a, people, orgs, rep_names, row.ins) for a in audit_rows]
    return CopyFacts(
        created=ctx.now, requested_by="representative" if ctx.actor.kind is ActorKind.REPRESENTATIVE else "patient",
        names=_names(json.loads(row.resource), row), birth_date=row.birth_date, gender=row.gender, ins=row.ins,
        ins_kind=INS_SYSTEMS.get(row.ins_system, "nir"), birthplace=row.birthplace, status=row.status,
        closed_at=row.closed_at, close_reason=row.close_reason, death_date=row.death_date,
        treating_gp=people.get(row.treating_gp, Person(row.treating_gp, row.treating_gp)) if row.treating_gp else None,
        representatives=[Representative(f"{r.given} {r.family}", r.relationship, r.kind, r.since, r.ended_at)
                         for r in reps],
        grants=[Grant(subject(g), g.subject_kind, g.relation, g.created_at) for g in grants],
        objects_break_glass=row.objects_break_glass, objects_regulation=row.objects_regulation,
        access_requests=getattr(row, "access_requests", None) or "ask", documents=entries, history=history)


ACTOR_KINDS = {"patient": "Le patient", "representative": "Représentant légal",
               "assurance_maladie": "Assurance Maladie", "operator": "Exploitant de Carnet", "system": "Carnet"}


def _history(a: Any, people: dict[str, Person], orgs: dict[str, str], reps: dict[str, str], ins: str) -> HistoryEntry:
    person = people.get(a.actor_id) if a.actor_kind == "professional" else None
    if person is not None:
        who, profession = person.name, person.profession or ""
    elif a.actor_kind == "representative" and a.actor_id in reps:
        who, profession = f"{reps[a.actor_id]} (représentant légal)", ""
    elif a.actor_kind == "patient" and a.actor_id == ins:
        who, profession = "Le patient", ""
    else:
        who, profession = a.actor_name or ACTOR_KINDS.get(a.actor_kind, a.actor_kind), ""
    org = orgs.get(a.organisation_id or "", a.organisation_id or "") or (person.organisation if person else "") or ""
    return HistoryEntry(when=a.recorded, who=who, profession=profession, organisation=org, what=a.event,
                        mode=a.mode, refused=a.outcome != "0", reason=a.reason)


# --- the FHIR resources ---------------------------------------------------------------------------------------------

def _resources(ctx: Context, row: Any, served: list[dict[str, Any]], more: contents.Contents,
               audit_rows: Sequence[Row[Any]]) -> Iterator[dict[str, Any]]:
    """Every resource of the Bundle, one at a time: Patient, RelatedPerson (legal representatives), Consent,
    RelatedPerson (emergency contacts), the IPS Composition, the structured items and their authors (Practitioner),
    DocumentReference, ExplanationOfBenefit, Task, AuditEvent."""
    key = row.dossier_key
    yield json.loads(row.resource)
    for r in ctx.conn.execute(select(representative).where(representative.c.dossier_key == key)
                              .order_by(representative.c.since)):
        yield bundle.related_person(r)
    grants = ctx.conn.execute(select(access_grant).where(access_grant.c.dossier_key == key,
                                                         access_grant.c.revoked_at.is_(None))
                              .order_by(access_grant.c.created_at)).all()
    yield from bundle.consents(row, grants)
    yield from contents.health_resources(more, key)
    yield from served
    yield from contents.later_resources(more, key, {str(d["id"]) for d in served})
    base = f"{ctx.settings.base_url}/fhir"
    for a in audit_rows:
        yield audit_fhir.to_fhir(a, base)
