"""The patient's emergency information: emergency contacts and advance directives (issue 4 §2, "Emergency contacts,
advance directives"; DOMAIN.md, "Who may do what").

Emergency contacts live in the dossier-keyed table ``contact``. Who may do what comes from the policy's
:class:`~carnet.access.policy.Decision`, as for every other piece of the dossier:

- whoever may read the dossier (``decision.read``) may read its contacts: the patient, a legal representative, and
  the professionals the rules admit (emergency and regulation modes included: that is what the contacts are for);
- the patient side (``basis`` patient or representative) manages them while the dossier is open
  (``decision.manage_access``, false on a closed dossier). A professional's ``manage_access`` (declaring the
  patient's consent) does not extend to the contacts.

Every read and change is audited (``contact.read``, ``contact.add``, ``contact.update``, ``contact.remove``); the
audit detail names no contact (names and numbers are personal data: the record's entity id is enough).

Advance directives are documents of type ``EXPPAT_3`` (TRE_A05). The patient side deposits theirs as a class-90
document (category given explicitly, as an explicit TRE_A03 category wins over the class derived from the type) through
:func:`carnet.documents.service.publish`, so the same rules, audit and notifications apply; a new version replaces the
previous one through ``relatesTo.replaces``.

A contact is served as a FHIR R4 ``RelatedPerson`` whose relationship is ``C`` (emergency contact, HL7 v2 table 0131).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from carnet.access.policy import Decision
from carnet.context import Context
from carnet.db.tables import contact, document
from carnet.documents import codes
from carnet.documents import service as documents
from carnet.documents.metadata import parse_datetime
from carnet.documents.submission_sets import implicit_submission_set
from carnet.documents.validate import validate
from carnet.errors import FhirError, forbidden, not_found, unprocessable
from carnet.ids import new_id

V2_0131 = "http://terminology.hl7.org/CodeSystem/v2-0131"
EMERGENCY_CONTACT = "C"
TRE_A05 = "https://mos.esante.gouv.fr/NOS/TRE_A05-TypeDocComplementaire/FHIR/TRE-A05-TypeDocComplementaire"
DIRECTIVE_TYPE = "EXPPAT_3"
DIRECTIVE_DISPLAY = "Directives anticipées"
FORMAT_SYSTEM = "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode"
FORMATS = {"application/pdf": "urn:ihe:iti:xds-sd:pdf:2008", "text/plain": "urn:ihe:iti:xds-sd:text:2008",
           "image/jpeg": "urn:ihe:iti-fr:xds-sd:jpeg:2010"}  # PNG has no format code in DOMAIN.md: none is given
DIRECTIVE_CONTENT_TYPES = ("application/pdf", "image/jpeg", "image/png", "text/plain")
MAX_CONTACTS = 20  # per dossier: a list someone can read in an emergency
LIMITS = {"name": 300, "relationship": 100, "phone": 32, "email": 320, "note": 500}
_PHONE = re.compile(r"^\+?[0-9][0-9 .()-]{3,30}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class Contact:
    contact_id: uuid.UUID
    name: str
    relationship: str | None
    phone: str | None
    email: str | None
    note: str | None
    updated_at: dt.datetime


@dataclass(frozen=True)
class Directive:
    """An advance directive as the caller sees it (from the served DocumentReference)."""

    document_id: str
    title: str | None
    date: dt.datetime | None
    content_type: str | None
    by_patient_side: bool  # deposited by the patient or a representative (class 90)


# --- the decision ---------------------------------------------------------------------------------------------------

def _readable(ctx: Context, key: uuid.UUID, event: str) -> Decision:
    _, decision = ctx.dossier(key)
    if not decision.read:
        if decision.check:
            raise ctx.refuse(key, "R", event, forbidden(decision.refusal))
        raise ctx.refuse(key, "R", event, not_found("Patient"))
    return decision


def _manageable(ctx: Context, key: uuid.UUID, action: str, event: str) -> Decision:
    _, decision = ctx.dossier(key, lock=True)
    if decision.basis not in ("patient", "representative") or not decision.manage_access:
        message = decision.refusal if not decision.read else (
            "Only the patient or a legal representative manages the emergency contacts, while the dossier is open.")
        raise ctx.refuse(key, action, event, forbidden(message))
    return decision


def may_manage(decision: Decision) -> bool:
    """Whether this decision lets the caller change contacts and deposit advance directives (for showing forms)."""
    return decision.basis in ("patient", "representative") and decision.manage_access


@dataclass(frozen=True)
class EmergencyInfo:
    """What the portal's settings screen shows: the contacts, the advance directives, and whether the caller may
    change them (the patient side, open dossier)."""

    contacts: list[Contact]
    directives: list[Directive]
    can_manage: bool
    status: str  # active | closed


def emergency_info(ctx: Context, key: uuid.UUID) -> EmergencyInfo:
    """Contacts and advance directives in one call (each read audited as in :func:`list_contacts` and
    :func:`list_directives`)."""
    row, decision = ctx.dossier(key)
    return EmergencyInfo(list_contacts(ctx, key), list_directives(ctx, key), may_manage(decision), row.status)


# --- emergency contacts -----------------------------------------------------------------------------------------

def _clean(values: dict[str, str | None]) -> dict[str, str | None]:
    """Trim, bound and check the fields; a 422 names the field at fault (``RelatedPerson.<field>``)."""
    out: dict[str, str | None] = {}
    for name, limit in LIMITS.items():
        text = " ".join(str(values.get(name) or "").split()) if name != "note" else str(values.get(name) or "").strip()
        if len(text) > limit:
            raise unprocessable(f"The {name} is too long", f"RelatedPerson.{name}")
        out[name] = text or None
    if not out["name"]:
        raise unprocessable("The contact's name is required", "RelatedPerson.name", "required")
    if out["phone"] and not _PHONE.match(out["phone"]):
        raise unprocessable("This phone number is not valid", "RelatedPerson.phone")
    if out["email"]:
        out["email"] = out["email"].lower()
        if not _EMAIL.match(out["email"]):
            raise unprocessable("This email address is not valid", "RelatedPerson.email")
    if not out["phone"] and not out["email"]:
        raise unprocessable("Give a phone number or an email address", "RelatedPerson.telecom", "required")
    return out


def _contact(row: Any) -> Contact:
    return Contact(row.contact_id, row.name, row.relationship, row.phone, row.email, row.note, row.updated_at)


def list_contacts(ctx: Context, key: uuid.UUID) -> list[Contact]:
    """The dossier's emergency contacts, in the order they were added. Audited ``contact.read``."""
    _readable(ctx, key, "contact.read")
    rows = ctx.conn.execute(select(contact).where(contact.c.dossier_key == key)
                            .order_by(contact.c.created_at, contact.c.contact_id)).all()
    ctx.audit(key, "R", "contact.read", entity_type="RelatedPerson", detail={"returned": len(rows)})
    return [_contact(r) for r in rows]


def contacts_for_copy(ctx: Context, key: uuid.UUID, decision: Decision) -> list[Contact]:
    """The dossier's emergency contacts for a caller whose ``decision`` was already taken (the complete copy,
    audited once by the copy itself); nothing when it does not let them read the dossier."""
    if not decision.read:
        return []
    rows = ctx.conn.execute(select(contact).where(contact.c.dossier_key == key)
                            .order_by(contact.c.created_at, contact.c.contact_id)).all()
    return [_contact(r) for r in rows]


def add_contact(ctx: Context, key: uuid.UUID, *, name: str, relationship: str | None = None,
                phone: str | None = None, email: str | None = None, note: str | None = None) -> uuid.UUID:
    """Add an emergency contact (the patient side, open dossier). Audited ``contact.add``."""
    _manageable(ctx, key, "C", "contact.add")
    values = _clean({"name": name, "relationship": relationship, "phone": phone, "email": email, "note": note})
    count = ctx.conn.execute(select(func.count()).select_from(contact).where(contact.c.dossier_key == key)).scalar()
    if (count or 0) >= MAX_CONTACTS:
        raise unprocessable(f"A dossier holds at most {MAX_CONTACTS} emergency contacts", "RelatedPerson")
    contact_id = new_id()
    ctx.conn.execute(insert(contact).values(dossier_key=key, contact_id=contact_id, created_at=ctx.now,
                                            created_by=ctx.actor.audit_id, updated_at=ctx.now, **values))
    ctx.audit(key, "C", "contact.add", entity_type="RelatedPerson", entity_id=str(contact_id))
    return contact_id


def _existing(ctx: Context, key: uuid.UUID, contact_id: uuid.UUID, action: str, event: str) -> Any:
    row = ctx.conn.execute(select(contact).where(contact.c.dossier_key == key, contact.c.contact_id == contact_id)
                           .with_for_update()).first()
    if row is None:
        raise ctx.refuse(key, action, event, not_found("RelatedPerson"), entity_type="RelatedPerson",
                         entity_id=str(contact_id))
    return row


def update_contact(ctx: Context, key: uuid.UUID, contact_id: uuid.UUID, *, name: str,
                   relationship: str | None = None, phone: str | None = None, email: str | None = None,
                   note: str | None = None) -> None:
    """Replace a contact's fields (the patient side, open dossier). Audited ``contact.update``."""
    _manageable(ctx, key, "U", "contact.update")
    _existing(ctx, key, contact_id, "U", "contact.update")
    values = _clean({"name": name, "relationship": relationship, "phone": phone, "email": email, "note": note})
    ctx.conn.execute(update(contact).where(contact.c.dossier_key == key, contact.c.contact_id == contact_id)
                     .values(updated_at=ctx.now, **values))
    ctx.audit(key, "U", "contact.update", entity_type="RelatedPerson", entity_id=str(contact_id))


def remove_contact(ctx: Context, key: uuid.UUID, contact_id: uuid.UUID) -> None:
    """Remove a contact (the patient side, open dossier). Audited ``contact.remove``; the audit keeps the trace."""
    _manageable(ctx, key, "D", "contact.remove")
    _existing(ctx, key, contact_id, "D", "contact.remove")
    ctx.conn.execute(delete(contact).where(contact.c.dossier_key == key, contact.c.contact_id == contact_id))
    ctx.audit(key, "D", "contact.remove", entity_type="RelatedPerson", entity_id=str(contact_id))


def as_related_person(key: uuid.UUID, c: Contact) -> dict[str, Any]:
    """A contact as a FHIR R4 ``RelatedPerson`` (relationship ``C``, emergency contact; the relationship in the
    family, as the patient typed it, is the concept's text). The free-text note is not served: it is for the
    patient's own page."""
    telecom = []
    if c.phone:
        telecom.append({"system": "phone", "value": c.phone})
    if c.email:
        telecom.append({"system": "email", "value": c.email})
    relation: dict[str, Any] = {"coding": [{"system": V2_0131, "code": EMERGENCY_CONTACT,
                                            "display": "Emergency Contact"}]}
    if c.relationship:
        relation["text"] = c.relationship
    return {"resourceType": "RelatedPerson", "id": str(c.contact_id),
            "meta": {"lastUpdated": documents.fhir_instant(c.updated_at)}, "active": True,
            "patient": {"reference": f"Patient/{key}"}, "relationship": [relation], "name": [{"text": c.name}],
            "telecom": telecom}


# --- advance directives -------------------------------------------------------------------------------------------

def list_directives(ctx: Context, key: uuid.UUID) -> list[Directive]:
    """The current advance directives the caller may see (type ``EXPPAT_3``, newest first), through the documents'
    search: the caller's visibility applies and the search is audited as any other."""
    rows, _ = documents.search(ctx, documents.DocumentQuery(
        dossier_key=key, conditions=[document.c.type_code == DIRECTIVE_TYPE, document.c.status == "current"],
        count=50, offset=0), "ITI-67", f"type={DIRECTIVE_TYPE}&status=current")
    out = []
    for text in rows:
        res = json.loads(text)
        att = ((res.get("content") or [{}])[0]).get("attachment") or {}
        classes = {c.get("code") for cat in res.get("category") or [] for c in cat.get("coding") or []}
        out.append(Directive(document_id=str(res["id"]), title=att.get("title"),
                             date=parse_datetime(res.get("date"), "DocumentReference.date"),
                             content_type=att.get("contentType"), by_patient_side="90" in classes))
    return out


def directive_resource(key: uuid.UUID, data: bytes, content_type: str, title: str, now: dt.datetime,
                       replaces: str | None = None) -> dict[str, Any]:
    """The DocumentReference of an advance directive deposited by the patient side: type ``EXPPAT_3``, category 90
    given explicitly (the type alone would file it as a summary, class 11), content inline as ITI-105 carries it."""
    res: dict[str, Any] = {
        "resourceType": "DocumentReference", "status": "current",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{new_id()}"},
        "type": {"coding": [{"system": TRE_A05, "code": DIRECTIVE_TYPE, "display": DIRECTIVE_DISPLAY}]},
        "category": [{"coding": [{"system": codes.TRE_A03, "code": "90",
                                  "display": codes.CLASSES["90"]}]}],
        "subject": {"reference": f"Patient/{key}"},
        "date": documents.fhir_instant(now),
        "content": [{"attachment": {"contentType": content_type, "title": title[:200],
                                    "data": base64.b64encode(data).decode(), "creation": documents.fhir_instant(now)}}]}
    if content_type in FORMATS:
        res["content"][0]["format"] = {"system": FORMAT_SYSTEM, "code": FORMATS[content_type]}
    if replaces:
        res["relatesTo"] = [{"code": "replaces", "target": {"reference": f"DocumentReference/{replaces}"}}]
    return res


def deposit_directive(ctx: Context, key: uuid.UUID, data: bytes, content_type: str, title: str,
                      replaces: str | None = None) -> uuid.UUID:
    """The patient side deposits its advance directives (a PDF, an image, or typed text as ``text/plain``), as a
    class-90 ``EXPPAT_3`` document through :func:`carnet.documents.service.publish` (audited ``ITI-105``).
    ``replaces`` is the id of the directive this one replaces (``relatesTo.replaces``: it becomes superseded)."""
    _, decision = ctx.dossier(key)
    if decision.basis not in ("patient", "representative"):
        raise ctx.refuse(key, "C", "ITI-105", forbidden(
            decision.refusal if not decision.read else "Only the patient or a legal representative deposits the "
                                                       "patient's advance directives."))
    ctype = content_type.split(";")[0].strip().lower()
    if ctype not in DIRECTIVE_CONTENT_TYPES:
        raise FhirError(415, "not-supported", "This document format is not accepted",
                        "DocumentReference.content[0].attachment.contentType")
    if not data:
        raise unprocessable("The document is empty", "DocumentReference.content[0].attachment.data", "required")
    if replaces is not None:
        try:
            replaces = str(uuid.UUID(replaces))
        except ValueError:
            raise unprocessable("The replaced document does not exist in this dossier",
                                "DocumentReference.relatesTo.target") from None
    resource = validate(directive_resource(key, data, ctype, title.strip() or DIRECTIVE_DISPLAY, ctx.now, replaces),
                        "DocumentReference")
    list_id = new_id()
    published = documents.publish(ctx, key, resource, documents.Content(data, ctype), "ITI-105",
                                  submission_set_id=list_id, decision=decision)
    implicit_submission_set(ctx, key, published.document_id, list_id)
    return published.document_id
