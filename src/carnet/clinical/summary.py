"""The emergency summary: an International Patient Summary (IPS) document Bundle (issue 3 §3).

``GET /fhir/Patient/{id}/$summary`` (https://hl7.org/fhir/uv/ips/OperationDefinition-summary.html) answers a FHIR R4
``Bundle`` of type ``document``: a ``Composition`` (LOINC 60591-5, "Patient summary Document") whose sections are
Allergies and Intolerances (48765-2), Medication Summary (10160-0), Problem List (11450-4), Immunizations (11369-6),
Results (30954-2: blood group, vital signs), Advance Directives (42348-3, the current ``EXPPAT_3`` documents) and
"Summary documents" (the latest summaries the caller may see: IPS 60591-5 and the ANS VSM, TRE_A05 ``SYNTH``),
each with a generated narrative and its entries, or
the IPS ``emptyReason`` when it has none; then the Patient, the items, the documents and their authors
(Practitioner). The same rules as reading the dossier apply (``MASQUE_PS`` documents stay hidden from professionals
without full rights); one audit record ``summary.read``.

:func:`summary_view` gives the same content as plain data for the portals and the one-page PDF.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import select

from carnet.access.policy import Decision
from carnet.clinical import service as items
from carnet.context import Context
from carnet.db.tables import client, document, practitioner
from carnet.directory import practitioner_resource
from carnet.documents import codes
from carnet.documents import service as documents
from carnet.documents.service import fhir_instant
from carnet.dossier import contacts as contacts_service
from carnet.dossier import service as dossiers
from carnet.errors import forbidden, not_found
from carnet.ids import new_id

LOINC = "http://loinc.org"
VSM_TYPE = "60591-5"
EMPTY_REASON = "http://terminology.hl7.org/CodeSystem/list-empty-reason"
XHTML = "http://www.w3.org/1999/xhtml"
# (key, LOINC code, title, resource types)
SECTIONS = (
    ("allergies", "48765-2", "Allergies and Intolerances", ("AllergyIntolerance",)),
    ("medications", "10160-0", "Medication Summary", ("MedicationStatement",)),
    ("problems", "11450-4", "Problem List", ("Condition",)),
    ("immunizations", "11369-6", "Immunizations", ("Immunization",)),
    ("results", "30954-2", "Results", ("Observation",)),
    ("directives", "42348-3", "Advance Directives", ()),
    ("summaries", VSM_TYPE, "Summary documents", ()),
)


@dataclass(frozen=True)
class DocumentEntry:
    id: str
    title: str
    date: str | None
    author: str | None


@dataclass
class SummaryView:
    """The emergency summary as plain lists (for the portals and the PDF)."""

    dossier_key: uuid.UUID
    patient_name: str
    birth_date: str | None
    gender: str | None
    allergies: list[items.Item] = field(default_factory=list)
    medications: list[items.Item] = field(default_factory=list)
    problems: list[items.Item] = field(default_factory=list)
    immunizations: list[items.Item] = field(default_factory=list)
    blood_group: list[items.Item] = field(default_factory=list)
    vitals: list[items.Item] = field(default_factory=list)  # other observations (vital signs, ...)
    directives: list[DocumentEntry] = field(default_factory=list)
    summaries: list[DocumentEntry] = field(default_factory=list)
    generated_at: dt.datetime | None = None

    @property
    def results(self) -> list[items.Item]:
        return self.blood_group + self.vitals


@dataclass
class _Collected:
    view: SummaryView
    patient: dict[str, Any]
    directive_docs: list[dict[str, Any]]
    summary_docs: list[dict[str, Any]]


def _patient_name(res: dict[str, Any]) -> str:
    names = res.get("name") or [{}]
    n = next((x for x in names if x.get("use") == "official"), names[0])
    return " ".join([*(n.get("given") or []), n.get("family") or ""]).strip() or "?"


def _doc_entry(res: dict[str, Any]) -> DocumentEntry:
    att = ((res.get("content") or [{}])[0]).get("attachment") or {}
    author = next((a.get("display") for a in res.get("author") or [] if a.get("display")), None)
    title = att.get("title") or res.get("description") or \
        next((c.get("display") for c in (res.get("type") or {}).get("coding") or [] if c.get("display")), None) or \
        "Document"
    return DocumentEntry(str(res["id"]), str(title), res.get("date"), author)


def source_labels(ctx: Context, found: list[items.Item]) -> list[items.Item]:
    """Each item with the name of the software that sent it, for a screen: ``meta.source`` as the sender gave it
    (a system URI), the registered client's name when Carnet set it (``{base}/fhir#client={id}``), and nothing when it
    was entered in Carnet itself (the author says enough). A clinician reads "Logiciel du cabinet", not a URL."""
    own = f"{ctx.settings.base_url}/fhir"
    marker = own + "#client="
    ids = {it.source[len(marker):] for it in found if it.source and it.source.startswith(marker)}
    names = {r.client_id: r.name for r in ctx.conn.execute(select(client.c.client_id, client.c.name).where(
        client.c.client_id.in_(sorted(ids))))} if ids else {}

    def label(source: str | None) -> str | None:
        if not source or source == own:
            return None
        if source.startswith(marker):
            return names.get(source[len(marker):], source[len(marker):])
        return source
    return [replace(it, source_label=label(it.source)) for it in found]


def _collect(ctx: Context, key: uuid.UUID) -> _Collected:
    row, decision = ctx.dossier(key)
    if not decision.read:
        raise ctx.refuse(key, "R", "summary.read",
                         forbidden(decision.refusal) if decision.check else not_found("Patient"))
    patient = json.loads(dossiers.with_access(row.resource, row, decision))
    found = source_labels(ctx, items.items_for_summary(ctx, key, decision))
    directive_docs, _ = documents.search(ctx, documents.DocumentQuery(
        key, [document.c.type_code == contacts_service.DIRECTIVE_TYPE, document.c.status == "current"], 10, 0),
        "ITI-67", "summary:directives")
    summary_docs, _ = documents.search(ctx, documents.DocumentQuery(
        key, [document.c.type_code.in_(codes.SUMMARY_TYPES), document.c.status == "current"], 3, 0), "ITI-67",
        "summary:vsm")
    dirs = [json.loads(t) for t in directive_docs]
    vsms = [json.loads(t) for t in summary_docs]
    ctx.audit(key, "R", "summary.read", entity_type="Patient", entity_id=str(key),
              detail={"returned": len(found) + len(dirs) + len(vsms)})
    return _Collected(_view(key, patient, found, dirs, vsms, ctx.now), patient, dirs, vsms)


def _view(key: uuid.UUID, patient: dict[str, Any], found: list[items.Item], dirs: list[dict[str, Any]],
          vsms: list[dict[str, Any]], now: dt.datetime) -> SummaryView:
    view = SummaryView(dossier_key=key, patient_name=_patient_name(patient), birth_date=patient.get("birthDate"),
                       gender=patient.get("gender"), generated_at=now)
    for it in found:
        if it.resource_type == "AllergyIntolerance":
            view.allergies.append(it)
        elif it.resource_type == "MedicationStatement":
            view.medications.append(it)
        elif it.resource_type == "Condition":
            view.problems.append(it)
        elif it.resource_type == "Immunization":
            view.immunizations.append(it)
        elif it.category == "blood-group":
            view.blood_group.append(it)
        else:
            view.vitals.append(it)
    view.directives = [_doc_entry(r) for r in dirs]
    view.summaries = [_doc_entry(r) for r in vsms]
    return view


def summary_view(ctx: Context, key: uuid.UUID) -> SummaryView:
    """The emergency summary for a portal screen (same rules and audit as the Bundle)."""
    return _collect(ctx, key).view


def _narrative(lines: list[str]) -> dict[str, Any]:
    if not lines:
        body = "<p>No information</p>"
    else:
        body = "<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in lines) + "</ul>"
    return {"status": "generated", "div": f'<div xmlns="{XHTML}">{body}</div>'}


def _item_line(it: items.Item) -> str:
    when = f", {it.effective.date().isoformat()}" if it.effective else ""
    line = f"{it.display} ({it.status}{when}; by {it.author_name})"
    if it.masked:  # only those who may see a hidden item get it, so they may know it is hidden
        line += " [hidden by the patient from other professionals]"
    if it.dispute:
        line += f" [disputed by the patient: {it.dispute}]"
    return line


def _doc_line(d: DocumentEntry) -> str:
    return f"{d.title}" + (f" ({d.date[:10]})" if d.date else "") + (f", {d.author}" if d.author else "")


def _patient_contact(key: uuid.UUID, c: contacts_service.Contact) -> dict[str, Any]:
    """An emergency contact as ``Patient.contact`` (where IPS puts them): the RelatedPerson's relationship, name and
    telecom."""
    rp = contacts_service.as_related_person(key, c)
    return {"relationship": rp["relationship"], "name": rp["name"][0], "telecom": rp["telecom"]}


def build_bundle(ctx: Context, key: uuid.UUID) -> dict[str, Any]:
    """The IPS document Bundle for the caller (see the module docstring)."""
    c = _collect(ctx, key)
    contacts = contacts_service.list_contacts(ctx, key)  # the emergency contacts go in Patient.contact (IPS)
    return _document(ctx, key, c, contacts)


def for_copy(ctx: Context, key: uuid.UUID, decision: Decision, patient: dict[str, Any], found: list[items.Item],
             documents_served: list[dict[str, Any]], contacts: list[contacts_service.Contact]) -> tuple[
        SummaryView, dict[str, Any]]:
    """The emergency summary and its IPS document Bundle for the complete copy, from what the copy already read
    under its own ``decision`` (``decision.copy``, audited once by the copy): the items, the DocumentReferences it
    holds (the current advance directives, newest first, and the three latest current VSM are taken from them) and
    the contacts. Nothing is read or audited here beyond the authors' directory entries."""
    if not decision.read:
        raise forbidden(decision.refusal)

    def newest(type_codes: frozenset[str] | set[str], limit: int) -> list[dict[str, Any]]:
        chosen = [d for d in documents_served if d.get("status") == "current" and any(
            c.get("code") in type_codes for c in (d.get("type") or {}).get("coding") or [])]
        return sorted(chosen, key=lambda d: (str(d.get("date") or ""), str(d.get("id"))), reverse=True)[:limit]

    current = [it for it in found if it.status != items.ERROR_STATUS]
    dirs, vsms = newest({contacts_service.DIRECTIVE_TYPE}, 10), newest(set(codes.SUMMARY_TYPES), 3)
    c = _Collected(_view(key, patient, current, dirs, vsms, ctx.now), json.loads(json.dumps(patient)), dirs, vsms)
    return c.view, _document(ctx, key, c, contacts)


def _document(ctx: Context, key: uuid.UUID, c: _Collected, contacts: list[contacts_service.Contact]) -> dict[
        str, Any]:
    v = c.view
    base = f"{ctx.settings.base_url}/fhir"
    if contacts:
        c.patient["contact"] = [*(c.patient.get("contact") or []), *(_patient_contact(key, x) for x in contacts)]
    patient_ref = f"Patient/{key}"
    by_section: dict[str, tuple[list[str], list[str]]] = {}  # key -> (references, narrative lines)
    lists = {"allergies": v.allergies, "medications": v.medications, "problems": v.problems,
             "immunizations": v.immunizations, "results": v.results}
    for skey, chosen in lists.items():
        by_section[skey] = ([f"{it.resource_type}/{it.id}" for it in chosen], [_item_line(it) for it in chosen])
    by_section["directives"] = ([f"DocumentReference/{d.id}" for d in v.directives],
                                [_doc_line(d) for d in v.directives])
    by_section["summaries"] = ([f"DocumentReference/{d.id}" for d in v.summaries],
                               [_doc_line(d) for d in v.summaries])
    sections = []
    for skey, code, title, _ in SECTIONS:
        refs, lines = by_section[skey]
        section: dict[str, Any] = {"title": title, "code": {"coding": [{"system": LOINC, "code": code,
                                                                        "display": title}]},
                                   "text": _narrative(lines)}
        if refs:
            section["entry"] = [{"reference": r} for r in refs]
        else:
            section["emptyReason"] = {"coding": [{"system": EMPTY_REASON, "code": "unavailable",
                                                  "display": "Unavailable"}], "text": "No information"}
        sections.append(section)
    now = fhir_instant(ctx.now)
    composition = {
        "resourceType": "Composition", "id": str(new_id()), "status": "final",
        "type": {"coding": [{"system": LOINC, "code": "60591-5", "display": "Patient summary Document"}]},
        "subject": {"reference": patient_ref, "display": v.patient_name}, "date": now,
        "author": [{"display": "Carnet"}], "title": "Patient summary", "confidentiality": "N",
        "section": sections}
    all_items = v.allergies + v.medications + v.problems + v.immunizations + v.results
    authors = sorted({it.author_id for it in all_items if it.author_id})
    pros = [practitioner_resource(r) for r in ctx.conn.execute(
        select(practitioner).where(practitioner.c.national_id.in_(authors)))] if authors else []
    entries: list[dict[str, Any]] = [{"fullUrl": f"{base}/Composition/{composition['id']}", "resource": composition},
                                     {"fullUrl": f"{base}/{patient_ref}", "resource": c.patient}]
    entries += [{"fullUrl": f"{base}/{it.resource_type}/{it.id}", "resource": it.resource} for it in all_items]
    entries += [{"fullUrl": f"{base}/DocumentReference/{d['id']}", "resource": d}
                for d in c.directive_docs + c.summary_docs]
    entries += [{"fullUrl": f"{base}/Practitioner/{p['id']}", "resource": p} for p in pros]
    return {"resourceType": "Bundle", "id": str(new_id()),
            "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{new_id()}"},
            "type": "document", "timestamp": now, "entry": entries}
