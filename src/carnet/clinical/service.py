"""Structured clinical data as FHIR R4 resources (issue 3 §2): AllergyIntolerance, Condition, MedicationStatement,
Immunization, Observation (blood group LOINC 882-1, vital signs), in the dossier-keyed table ``clinical_item``.

Rules (see docs/CLINICAL.md):
- a professional adds an item when the policy lets them add to the dossier (``decision.add_classes ==
  "all-professional"``); the author is the caller, taken from the token and never from the body: the server writes
  ``recorder``/``asserter`` (AllergyIntolerance, Condition), ``informationSource`` (MedicationStatement) or
  ``performer`` (Immunization, Observation), with the professional's name as display, and ``meta.source``;
- reading follows the dossier's rules, decided by the policy (``Visibility.allows_item`` / ``item_where``): structured
  data is read as the patient summary (class ``11``) for the habilitation matrix, so a professional whose matrix
  admits it reads every item, any other reads only their own; an item the patient hid from professionals
  (:mod:`carnet.clinical.hiding`, ``MASQUE_PS``) is read only by its author, the médecin traitant and the patient
  side; the patient side reads everything;
- only the author withdraws an item (``$entered-in-error``); the patient side adds a dispute note (``$dispute``),
  served as a ``note`` authored by the patient and marked with :data:`DISPUTE_EXT`;
- every access is audited (``clinical.create``, ``clinical.read``, ``clinical.search``, ``clinical.withdraw``,
  ``clinical.dispute``), refusals too; an item the caller may not see answers 404.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from carnet.access.actors import ActorKind
from carnet.access.policy import Decision, ItemFacts
from carnet.context import Context
from carnet.db.tables import clinical_item, practitioner, resource_locator
from carnet.documents.service import fhir_instant
from carnet.errors import FhirError, Issue, forbidden, invalid, not_found, unprocessable
from carnet.ids import new_id

TYPES = ("AllergyIntolerance", "Condition", "MedicationStatement", "Immunization", "Observation")
DISPUTE_EXT = "https://carnet.invalid/fhir/StructureDefinition/disputed-by-patient"
LOINC = "http://loinc.org"
BLOOD_GROUP = "882-1"  # ABO and Rh group [Type] in Blood
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
MAX_DISPUTE = 2000
# where each type names its patient, its code, its date, and where the server writes the author
_SUBJECT = {"AllergyIntolerance": "patient", "Immunization": "patient"}
_CODE = {"MedicationStatement": "medicationCodeableConcept", "Immunization": "vaccineCode"}
_DATES = ("onsetDateTime", "effectiveDateTime", "occurrenceDateTime", "recordedDate", "dateAsserted", "issued")
ERROR_STATUS = "entered-in-error"


@dataclass(frozen=True)
class Item:
    """One item as the portals show it."""

    id: uuid.UUID
    resource_type: str
    display: str
    code: str | None
    category: str | None
    status: str
    effective: dt.datetime | None
    author_id: str
    author_name: str
    source: str | None
    dispute: str | None
    disputed_at: dt.datetime | None
    resource: dict[str, Any]
    source_label: str | None = None  # the sending software, for a screen (see summary.source_labels)
    masked: bool = False  # the patient hid it from professionals (only those who still see it get it)


# --- validation and shaping ----------------------------------------------------------------------------------------

def check(resource: Any, rtype: str) -> dict[str, Any]:
    """Validate with ``fhir.resources.R4B`` in strict mode (JSON types as R4 defines them); 400/422 otherwise."""
    if not isinstance(resource, dict):
        raise FhirError(400, "structure", "A resource must be a JSON object", rtype)
    if resource.get("resourceType") != rtype:
        raise invalid(f"Expected resourceType {rtype}", "resourceType")
    model = getattr(importlib.import_module(f"fhir.resources.R4B.{rtype.lower()}"), rtype)
    try:
        model.model_validate(resource, strict=True)
    except ValidationError as exc:
        issues = [Issue("invalid", f"Invalid element ({e.get('type', 'value')})",
                        [".".join([rtype, *(str(p) for p in e.get("loc", ()) if p != "__root__")])])
                  for e in exc.errors()[:20]]
        raise FhirError(422, "invalid", "Invalid resource", issues=issues) from None
    except Exception:  # noqa: BLE001 - some validators fail with other errors on ill-typed input
        raise FhirError(422, "invalid", "Invalid resource", rtype) from None
    return resource


def _concept(res: dict[str, Any], rtype: str) -> dict[str, Any]:
    return res.get(_CODE.get(rtype, "code")) or {}


def _first_coding(concept: dict[str, Any]) -> dict[str, Any]:
    return (concept.get("coding") or [{}])[0]


def _status(res: dict[str, Any], rtype: str) -> str:
    if rtype in ("AllergyIntolerance", "Condition"):
        if _first_coding(res.get("verificationStatus") or {}).get("code") == ERROR_STATUS:
            return ERROR_STATUS
        return str(_first_coding(res.get("clinicalStatus") or {}).get("code") or "unknown")
    return str(res.get("status") or "unknown")


def _category(res: dict[str, Any], rtype: str) -> str | None:
    if rtype == "Observation":
        if any(c.get("system") == LOINC and c.get("code") == BLOOD_GROUP
               for c in (res.get("code") or {}).get("coding") or []):
            return "blood-group"
        for cat in res.get("category") or []:
            for c in cat.get("coding") or []:
                if c.get("code"):
                    return str(c["code"])[:64]
        return None
    if rtype == "AllergyIntolerance":
        cats = res.get("category") or []
        return str(cats[0])[:64] if cats else None
    return None


def _effective(res: dict[str, Any]) -> dt.datetime | None:
    for name in _DATES:
        value = res.get(name)
        if isinstance(value, str):
            try:
                when = dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if "T" in value else \
                    dt.datetime.fromisoformat(value[:10] if len(value) >= 10 else f"{value[:4]}-01-01")
            except ValueError:
                continue
            return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    return None


def _display(res: dict[str, Any], rtype: str) -> str:
    concept = _concept(res, rtype)
    text = concept.get("text") or _first_coding(concept).get("display") or _first_coding(concept).get("code")
    if rtype == "Observation":
        value = res.get("valueCodeableConcept")
        if value:
            shown = value.get("text") or _first_coding(value).get("display") or _first_coding(value).get("code")
            text = f"{text}: {shown}" if text else shown
        elif res.get("valueQuantity"):
            q = res["valueQuantity"]
            text = f"{text}: {q.get('value')} {q.get('unit') or q.get('code') or ''}".strip()
        elif res.get("valueString"):
            text = f"{text}: {res['valueString']}"
    return str(text or rtype)


def _author_ref(author_id: str, name: str) -> dict[str, Any]:
    return {"reference": f"Practitioner/{author_id}", "display": name}


def _set_author(res: dict[str, Any], rtype: str, ref: dict[str, Any]) -> None:
    """The server writes the author (from the token); any author the body named is replaced."""
    if rtype in ("AllergyIntolerance", "Condition"):
        res["recorder"] = ref
        res["asserter"] = ref
    elif rtype == "MedicationStatement":
        res["informationSource"] = ref
    elif rtype == "Immunization":
        res["performer"] = [{"actor": ref}]
    else:
        res["performer"] = [ref]


def _dump(res: dict[str, Any]) -> str:
    return json.dumps(res, ensure_ascii=False, separators=(",", ":"))


def practitioner_names(ctx: Context, ids: list[str]) -> dict[str, str]:
    if not ids:
        return {}
    return {r.national_id: f"{r.given} {r.family}" for r in ctx.conn.execute(select(
        practitioner.c.national_id, practitioner.c.given, practitioner.c.family).where(
        practitioner.c.national_id.in_(sorted(set(ids)))))}


# --- who sees what -----------------------------------------------------------------------------------------------

def visible_where(ctx: Context, decision: Decision) -> ColumnElement[bool]:
    """The items the caller sees, as a SQL condition (used by searches and the summary): the policy's rule."""
    return decision.visibility.item_where(clinical_item)


def sees(decision: Decision, row: Any) -> bool:
    """Whether the caller sees this ``clinical_item`` row (the same rule as :func:`visible_where`)."""
    return decision.read and decision.visibility.allows_item(ItemFacts(author_id=row.author_id,
                                                                         hidden=bool(row.masked)))


def _readable(ctx: Context, key: uuid.UUID, event: str, action: str = "R") -> Decision:
    _, decision = ctx.dossier(key)
    if not decision.read:
        raise ctx.refuse(key, action, event, forbidden(decision.refusal) if decision.check else not_found("Patient"))
    return decision


_LOCATE = select(resource_locator.c.dossier_key).where(resource_locator.c.resource_id == bindparam("rid"))


def locate(ctx: Context, rtype: str, item_id: str, event: str, action: str,
           lock: bool = False) -> tuple[Any, Decision]:
    """The item the caller may see, or 404 (forbidden looks like not found; the refusal is audited)."""
    try:
        iid = uuid.UUID(item_id)
    except ValueError:
        raise not_found(rtype) from None
    key = ctx.conn.execute(_LOCATE, {"rid": iid}).scalar()
    if key is None:
        raise not_found(rtype)
    _, decision = ctx.dossier(key)
    q = select(clinical_item).where(clinical_item.c.dossier_key == key, clinical_item.c.item_id == iid,
                                    clinical_item.c.resource_type == rtype)
    row = ctx.conn.execute(q.with_for_update() if lock else q).first()
    if row is None or not sees(decision, row):
        raise ctx.refuse(key, action, event, not_found(rtype), entity_type=rtype, entity_id=item_id)
    return row, decision


# --- the operations --------------------------------------------------------------------------------------------------

def create(ctx: Context, key: uuid.UUID, resource: dict[str, Any]) -> str:
    """A professional adds a structured item (the resource was checked with :func:`check`). Returns it as served."""
    rtype = str(resource.get("resourceType"))
    if rtype not in TYPES:
        raise invalid("This resource type is not structured data Carnet keeps", "resourceType")
    _, decision = ctx.dossier(key, lock=True)
    if decision.add_classes != "all-professional" or ctx.actor.kind is not ActorKind.PROFESSIONAL or not ctx.actor.id:
        message = decision.refusal if not decision.read else \
            "Only a professional who may add to this dossier records structured data."
        raise ctx.refuse(key, "C", "clinical.create", forbidden(message), detail={"type": rtype})
    author = ctx.actor.id
    name = practitioner_names(ctx, [author]).get(author) or ctx.actor.display or author
    item_id = new_id()
    source = (resource.get("meta") or {}).get("source")
    if not isinstance(source, str) or not source:
        source = f"{ctx.settings.base_url}/fhir" + (f"#client={ctx.actor.client_id}" if ctx.actor.client_id else "")
    res: dict[str, Any] = {"resourceType": rtype, "id": str(item_id),
                           **{k: v for k, v in resource.items() if k not in ("resourceType", "id", "meta", "text")}}
    res["meta"] = {"versionId": "1", "lastUpdated": fhir_instant(ctx.now), "source": source[:300]}
    res[_SUBJECT.get(rtype, "subject")] = {"reference": f"Patient/{key}"}
    _set_author(res, rtype, _author_ref(author, name))
    if rtype in ("AllergyIntolerance", "Condition") and not res.get("recordedDate"):
        res["recordedDate"] = fhir_instant(ctx.now)
    check(res, rtype)
    coding = _first_coding(_concept(res, rtype))
    ctx.conn.execute(insert(clinical_item).values(
        dossier_key=key, item_id=item_id, resource_type=rtype, status=_status(res, rtype)[:24],
        code_system=(coding.get("system") or None), code=(str(coding.get("code"))[:64] if coding.get("code") else None),
        display=_display(res, rtype)[:500], category=_category(res, rtype), author_id=author,
        author_kind="professional", source=source[:300], effective=_effective(res), recorded_at=ctx.now,
        version=1, last_updated=ctx.now, resource=_dump(res)))
    ctx.conn.execute(insert(resource_locator).values(resource_id=item_id, dossier_key=key))
    ctx.audit(key, "C", "clinical.create", entity_type=rtype, entity_id=str(item_id), detail={"type": rtype})
    return _dump(res)


def read(ctx: Context, rtype: str, item_id: str) -> str:
    row, _ = locate(ctx, rtype, item_id, "clinical.read", "R")
    ctx.audit(row.dossier_key, "R", "clinical.read", entity_type=rtype, entity_id=item_id)
    return str(row.resource)


def search(ctx: Context, key: uuid.UUID, rtype: str, conditions: list[Any], count: int, offset: int,
           query_text: str) -> tuple[list[str], int]:
    """Items of one type in one dossier, filtered in SQL (visibility included), newest first. Withdrawn items are
    left out unless the caller asks for ``status`` or ``clinical-status`` explicitly."""
    decision = _readable(ctx, key, "clinical.search", "E")
    where = and_(clinical_item.c.dossier_key == key, clinical_item.c.resource_type == rtype,
                 visible_where(ctx, decision), *conditions)
    rows = ctx.conn.execute(select(clinical_item.c.resource).where(where).order_by(
        clinical_item.c.recorded_at.desc(), clinical_item.c.item_id.desc()).limit(count).offset(offset)).scalars()
    found = list(rows)
    total = ctx.conn.execute(select(func.count()).select_from(clinical_item).where(where)).scalar_one()
    ctx.audit(key, "E", "clinical.search", entity_type="Patient", entity_id=str(key),
              detail={"type": rtype, "query": query_text, "returned": len(found)})
    return found, total


def search_conditions(rtype: str, params: list[tuple[str, str]]) -> list[Any]:
    """SQL conditions for ``code``, ``category`` and ``status``/``clinical-status`` (comma = or)."""
    conds: list[Any] = []
    asked_status = False
    for name, value in params:
        values = [v for v in value.split(",") if v]
        if name == "code":
            conds.append(or_(*[and_(clinical_item.c.code == v.rpartition("|")[2],
                                    *([clinical_item.c.code_system == v.rpartition("|")[0]]
                                      if v.rpartition("|")[0] else [])) for v in values]))
        elif name == "category":
            conds.append(clinical_item.c.category.in_([v.rpartition("|")[2] for v in values]))
        elif name in ("status", "clinical-status"):
            asked_status = True
            conds.append(clinical_item.c.status.in_(values))
    if not asked_status:
        conds.append(clinical_item.c.status != ERROR_STATUS)
    return conds


def rewrite(ctx: Context, row: Any, res: dict[str, Any], **columns: Any) -> str:
    version = row.version + 1
    res["meta"] = {**(res.get("meta") or {}), "versionId": str(version), "lastUpdated": fhir_instant(ctx.now)}
    text = _dump(res)
    ctx.conn.execute(update(clinical_item).where(clinical_item.c.dossier_key == row.dossier_key,
                                                 clinical_item.c.item_id == row.item_id).values(
        version=version, last_updated=ctx.now, resource=text, **columns))
    return text


def withdraw(ctx: Context, rtype: str, item_id: str) -> str:
    """``$entered-in-error``: the author withdraws their item (it leaves searches and the summary; a read still
    answers, with the status). Only the author may."""
    row, _ = locate(ctx, rtype, item_id, "clinical.withdraw", "U", lock=True)
    if row.author_id != ctx.actor.id or ctx.actor.kind is not ActorKind.PROFESSIONAL:
        raise ctx.refuse(row.dossier_key, "U", "clinical.withdraw", forbidden("Only the author withdraws an item"),
                         entity_type=rtype, entity_id=item_id)
    if row.status == ERROR_STATUS:
        return str(row.resource)
    res = json.loads(row.resource)
    if rtype in ("AllergyIntolerance", "Condition"):
        res["verificationStatus"] = {"coding": [{"system": f"http://terminology.hl7.org/CodeSystem/"
                                                           f"{'allergyintolerance' if rtype[0] == 'A' else 'condition'}"
                                                           f"-ver-status", "code": ERROR_STATUS}]}
        res.pop("clinicalStatus", None)  # R4 invariant: no clinicalStatus on an entered-in-error item
    else:
        res["status"] = ERROR_STATUS
    text = rewrite(ctx, row, res, status=ERROR_STATUS)
    ctx.audit(row.dossier_key, "U", "clinical.withdraw", entity_type=rtype, entity_id=item_id)
    return text


def dispute(ctx: Context, rtype: str, item_id: str, text: str) -> str:
    """``$dispute``: the patient or a legal representative says the item is wrong. The note replaces any earlier
    dispute note; it is served in ``note`` with the patient as author and :data:`DISPUTE_EXT`."""
    row, decision = locate(ctx, rtype, item_id, "clinical.dispute", "U", lock=True)
    if decision.basis not in ("patient", "representative"):
        raise ctx.refuse(row.dossier_key, "U", "clinical.dispute",
                         forbidden("Only the patient or a legal representative disputes an item"),
                         entity_type=rtype, entity_id=item_id)
    note_text = text.strip()
    if not note_text:
        raise unprocessable("The dispute note needs a text", "Parameters.parameter[text]", "required")
    if len(note_text) > MAX_DISPUTE:
        raise unprocessable("The dispute note is too long", "Parameters.parameter[text]")
    res = json.loads(row.resource)
    notes = [n for n in res.get("note") or []
             if not any(e.get("url") == DISPUTE_EXT for e in n.get("extension") or [])]
    note: dict[str, Any] = {"extension": [{"url": DISPUTE_EXT, "valueBoolean": True}],
                            "time": fhir_instant(ctx.now), "text": note_text}
    if decision.basis == "patient":
        note["authorReference"] = {"reference": f"Patient/{row.dossier_key}", "display": "The patient"}
    else:
        note["authorString"] = "The patient's legal representative"
    res["note"] = notes + [note]
    served = rewrite(ctx, row, res, dispute=note_text, disputed_at=ctx.now)
    ctx.audit(row.dossier_key, "U", "clinical.dispute", entity_type=rtype, entity_id=item_id)
    return served


def items_for_summary(ctx: Context, key: uuid.UUID, decision: Decision, *, withdrawn: bool = False) -> list[Item]:
    """Every current item the caller sees, and the withdrawn ones too when ``withdrawn`` (the complete copy). No
    audit: the caller audits the view it builds."""
    current = clinical_item.c.item_id.is_not(None) if withdrawn else clinical_item.c.status != ERROR_STATUS
    rows = ctx.conn.execute(select(clinical_item).where(
        clinical_item.c.dossier_key == key, current, visible_where(ctx, decision))
        .order_by(clinical_item.c.resource_type, clinical_item.c.recorded_at.desc(),
                  clinical_item.c.item_id.desc())).all()
    names = practitioner_names(ctx, [r.author_id for r in rows if r.author_kind == "professional"])
    out = []
    for r in rows:
        out.append(Item(id=r.item_id, resource_type=r.resource_type, display=r.display or r.resource_type,
                        code=r.code, category=r.category, status=r.status, effective=_aware(r.effective),
                        author_id=r.author_id, author_name=names.get(r.author_id, r.author_id), source=r.source,
                        dispute=r.dispute, disputed_at=_aware(r.disputed_at), resource=json.loads(r.resource),
                        masked=bool(r.masked)))
    return out


def _aware(ts: dt.datetime | None) -> dt.datetime | None:
    if ts is None:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=dt.UTC)
