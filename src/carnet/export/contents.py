"""What the complete copy holds besides the documents and the access history (issue 16 §3: "everything the patient
can see"): the structured data and the emergency summary (IPS), the emergency contacts, the care history and the
access and rectification requests with their answers.

Each is read through its own service's copy function, under the decision the copy already took
(``Decision.copy``, the patient side): the same rules as the portal's pages (:func:`carnet.clinical.service.
visible_where`, :func:`carnet.claims.service.may_read`, the patient side's view of Tasks), and no audit record of its
own: the copy's one ``dossier.copy`` record says that all of it left in the copy. The advance directives are
documents (type ``EXPPAT_3``) and leave with the documents.

:func:`health_resources` and :func:`later_resources` give their FHIR R4 resources for the Bundle, :func:`facts`
their plain values for the booklet.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from carnet.access.policy import Decision
from carnet.claims import fhir as claims_fhir
from carnet.claims import service as claims
from carnet.clinical import service as clinical
from carnet.clinical import summary
from carnet.context import Context
from carnet.db.tables import practitioner
from carnet.directory import practitioner_resource
from carnet.dossier import contacts as contacts_service
from carnet.export.facts import ClaimEntry, ContactEntry, HealthItem, RequestEntry
from carnet.tasks import fhir as tasks_fhir
from carnet.tasks import service as tasks

# the sections of Home's emergency essentials, in its order (carnet.portal.pages.home)
SECTIONS = ("allergies", "medications", "problems", "blood_group", "results", "immunizations")
_BY_TYPE = {"AllergyIntolerance": "allergies", "MedicationStatement": "medications", "Condition": "problems",
            "Immunization": "immunizations"}


@dataclass
class Contents:
    items: list[clinical.Item]  # withdrawn ones included (status entered-in-error)
    view: summary.SummaryView
    ips: dict[str, Any]  # the IPS document Bundle (carnet.clinical.summary)
    contacts: list[contacts_service.Contact]
    claims: list[claims.ClaimView]
    tasks: list[tasks.TaskView]
    authors: list[dict[str, Any]]  # the items' authors as Practitioner resources (the directory's entries)


def gather(ctx: Context, key: uuid.UUID, decision: Decision, patient: dict[str, Any],
           documents_served: list[dict[str, Any]]) -> Contents:
    """Read it all for the caller of ``decision`` (``documents_served``: the DocumentReferences the copy holds)."""
    found = summary.source_labels(ctx, clinical.items_for_summary(ctx, key, decision, withdrawn=True))
    contacts = contacts_service.contacts_for_copy(ctx, key, decision)
    view, ips = summary.for_copy(ctx, key, decision, patient, found, documents_served, contacts)
    ids = sorted({it.author_id for it in found if it.author_id})
    authors = [practitioner_resource(r) for r in ctx.conn.execute(
        select(practitioner).where(practitioner.c.national_id.in_(ids)))] if ids else []
    return Contents(found, view, ips, contacts, claims.lines_for_copy(ctx, key, decision),
                    tasks.for_copy(ctx, key, decision), authors)


def health_resources(c: Contents, key: uuid.UUID) -> Iterator[dict[str, Any]]:
    """RelatedPerson (emergency contacts), the IPS Composition (its sections reference the items and the documents),
    the structured items (withdrawn ones too) and their authors (Practitioner)."""
    for contact in c.contacts:
        yield contacts_service.as_related_person(key, contact)
    ips_entries = [e["resource"] for e in c.ips["entry"]]
    yield ips_entries[0]
    for it in c.items:
        yield it.resource
    yield from c.authors


def later_resources(c: Contents, key: uuid.UUID, document_ids: set[str]) -> Iterator[dict[str, Any]]:
    """ExplanationOfBenefit (the care history) and Task (the requests). A Task's reference to a document the copy
    does not hold (``document_ids``) is left out: the copy must not reveal a document the caller may not see yet."""
    for line in c.claims:
        yield claims_fhir.eob(line, key)
    for t in c.tasks:
        yield _task(t, document_ids)


def _task(t: tasks.TaskView, document_ids: set[str]) -> dict[str, Any]:
    res = tasks_fhir.to_fhir(t)
    if "focus" in res and res["focus"]["reference"].rsplit("/", 1)[-1] not in document_ids:
        del res["focus"]
    if "output" in res and res["output"][0]["valueReference"]["reference"].rsplit("/", 1)[-1] not in document_ids:
        del res["output"]
    return res


def section(it: clinical.Item) -> str:
    if it.resource_type in _BY_TYPE:
        return _BY_TYPE[it.resource_type]
    return "blood_group" if it.category == "blood-group" else "results"


def _item_text(it: clinical.Item) -> str:
    """As Home shows it: a blood group is its value ("O Rh+") under its heading."""
    if it.category == "blood-group":
        value = (it.resource or {}).get("valueCodeableConcept") or {}
        coding: dict[str, Any] = next(iter(value.get("coding") or []), {})
        shown = value.get("text") or coding.get("display") or coding.get("code")
        if shown:
            return str(shown)
    return it.display


def _euros(amount: Decimal | None) -> str | None:
    if amount is None:
        return None
    return f"{amount:,.2f} €".replace(",", " ").replace(".", ",")


def facts(c: Contents) -> tuple[list[HealthItem], list[ContactEntry], list[ClaimEntry], list[RequestEntry]]:
    """The booklet's plain values for ``c``, in Home's order."""
    order = {name: i for i, name in enumerate(SECTIONS)}
    health = sorted((HealthItem(section(it), _item_text(it), it.effective, it.author_name, it.status, it.dispute)
                     for it in c.items), key=lambda h: (order[h.section], h.status == clinical.ERROR_STATUS,
                                                        -(h.date or _EPOCH).timestamp()))
    contacts = [ContactEntry(x.name, x.relationship, x.phone, x.email, x.note) for x in c.contacts]
    lines = [ClaimEntry(x.care_date, x.kind, f"{x.code_system} {x.code}", x.label, _euros(x.amount))
             for x in c.claims]
    requests = [RequestEntry(t.kind, t.created_at,
                             (t.requester_name or t.requester_id) if t.kind == tasks.ACCESS else
                             (t.owner_name or t.owner_id or ""), t.status, t.reason, t.answer, t.answered_at,
                             t.by_policy) for t in c.tasks]
    return health, contacts, lines, requests


_EPOCH = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
