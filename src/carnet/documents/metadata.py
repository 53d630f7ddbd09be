"""Reading a DocumentReference (IHE MHD Comprehensive / ANS PDSm) into what Carnet indexes and decides on.

The resource has already passed ``fhir.resources.R4B`` validation (structure, cardinality, formats); this module checks
the bindings Carnet relies on and derives the indexed fields. Every refusal names the field at fault.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from carnet.documents import codes
from carnet.errors import FhirError, unprocessable


@dataclass
class DocMeta:
    master_identifier: str
    status: str
    class_code: str
    type_system: str
    type_code: str
    content_type: str
    language: str | None
    title: str | None
    creation: dt.datetime | None
    date: dt.datetime | None
    period_start: dt.datetime | None
    period_end: dt.datetime | None
    format_code: str | None
    masked: bool
    invisible_patient: bool
    invisible_representatives: bool
    author_given: str | None
    author_family: str | None
    replaces: list[str] = field(default_factory=list)  # DocumentReference references
    tokens: set[tuple[str, str, str]] = field(default_factory=set)  # (param, system, code)


def parse_datetime(value: str | None, expression: str) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise unprocessable("A date/time must be a string", expression)
    try:
        if len(value) == 4:
            return dt.datetime(int(value), 1, 1, tzinfo=dt.UTC)
        if len(value) == 7:
            return dt.datetime(int(value[:4]), int(value[5:7]), 1, tzinfo=dt.UTC)
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise unprocessable("Invalid date/time", expression) from exc
    return parsed.astimezone(dt.UTC) if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _codings(concept: dict[str, Any] | None) -> list[dict[str, Any]]:
    return list((concept or {}).get("coding") or [])


def confidentiality(labels: list[dict[str, Any]], expression: str = "DocumentReference.securityLabel") -> set[str]:
    """The French visibility codes a ``securityLabel`` list carries. A coding without a system, of a system Carnet
    does not know, or with an unknown code is refused: a mask is either enforced or refused, never silently dropped."""
    found: set[str] = set()
    for i, concept in enumerate(labels):
        for j, c in enumerate(_codings(concept)):
            system, code = c.get("system"), c.get("code")
            where = f"{expression}[{i}].coding[{j}]"
            if system in codes.CONFIDENTIALITY_SYSTEMS:
                if code not in codes.FRENCH_CODES:
                    raise unprocessable("Unknown confidentiality code (JDV_J58)", where + ".code", "code-invalid")
                found.add(code)
            elif system == codes.V3_CONFIDENTIALITY:
                if code not in codes.V3_CODES:
                    raise unprocessable("Unknown v3-Confidentiality code", where + ".code", "code-invalid")
            else:
                raise unprocessable("A security label needs a known code system (JDV_J58 / TRE_A07 or "
                                    "v3-Confidentiality)", where + ".system", "code-invalid")
    if codes.MASQUE_PS in found and codes.INVISIBLE_PATIENT in found:
        raise unprocessable("A document may not be both MASQUE_PS and INVISIBLE_PATIENT", expression, "business-rule")
    return found


def _contained(res: dict[str, Any], ref: str | None) -> dict[str, Any] | None:
    if not ref or not ref.startswith("#"):
        return None
    for c in res.get("contained") or []:
        if c.get("id") == ref[1:]:
            return c
    return None


def _author_names(res: dict[str, Any]) -> tuple[str | None, str | None]:
    for a in res.get("author") or []:
        target = _contained(res, a.get("reference"))
        if target and target.get("resourceType") == "PractitionerRole":
            target = _contained(res, (target.get("practitioner") or {}).get("reference")) or target
        if target and target.get("resourceType") == "Practitioner":
            for name in target.get("name") or []:
                given = " ".join(name.get("given") or []) or None
                return given, name.get("family")
    return None, None


def _type_and_class(res: dict[str, Any]) -> tuple[str, str, str]:
    """(type system, type code, class) of a DocumentReference. The class is derived from the type (DOMAIN.md):

    - a type coding of the ANS value set (LOINC or TRE_A05, in its own code system) gives the class; codings of other
      systems beside it are kept as translations;
    - a type whose codings are all unknown (code, or code system) is refused (422, ``DocumentReference.type``): an
      unknown type is never filed in a default class that more professions read (issue 15 §6);
    - no type at all (IHE MHD Minimal allows it) is filed in :data:`codes.UNTYPED_CLASS`, the class the fewest
      professions read, with an empty type code;
    - a declared TRE_A03 ``category`` must be a known class and agree with the type's class, never trusted over it.
    """
    type_system, type_code = "", ""
    type_concept = res.get("type")
    codings = [c for c in _codings(type_concept) if isinstance(c, dict)]
    if type_concept is not None and not codings:
        raise unprocessable("DocumentReference.type names no coding: state a type of the ANS value set "
                            "(JDV_J07-XdsTypeCode-CISIS) or leave the type out", "DocumentReference.type",
                            "code-invalid")
    if codings:
        known = next((c for c in codings if codes.known_type(c.get("system"), c.get("code"))), None)
        if known is None:
            raise unprocessable("Unknown document type: Carnet files the types of the ANS value set "
                                "(JDV_J07-XdsTypeCode-CISIS: LOINC and TRE_A05 codes, each in its own code system)",
                                "DocumentReference.type", "code-invalid")
        type_system, type_code = str(known["system"]), str(known["code"])
    derived = codes.TYPE_CLASS[type_code] if type_code else codes.UNTYPED_CLASS
    class_code = None
    for i, concept in enumerate(res.get("category") or []):
        for c in _codings(concept):
            if c.get("system") in codes.CLASS_SYSTEMS:
                if c.get("code") not in codes.CLASSES:
                    raise unprocessable("Unknown document class (TRE_A03)", f"DocumentReference.category[{i}]",
                                        "code-invalid")
                # the class is derived from the type (DOMAIN.md) and decides who reads: a category that contradicts
                # it is refused, never trusted
                if c["code"] != derived and c["code"] not in codes.TYPE_OTHER_CLASSES.get(type_code, ()):
                    raise unprocessable(f"The category (class {c['code']}) contradicts the class of the type "
                                        f"{type_code or '(none stated)'} (class {derived})",
                                        f"DocumentReference.category[{i}]", "business-rule")
                class_code = c["code"]
    return type_system, type_code, class_code or derived


def read_metadata(res: dict[str, Any]) -> DocMeta:
    """Derive Carnet's index of a validated DocumentReference. Raises 415 / 422 FhirErrors naming the field.

    The model check is lenient about JSON types (it coerces some); an element of the wrong shape that slips through
    is refused here too, never turned into a server error."""
    try:
        return _read_metadata(res)
    except (TypeError, AttributeError, KeyError, IndexError):
        raise unprocessable("An element has the wrong type or shape", "DocumentReference") from None


def _read_metadata(res: dict[str, Any]) -> DocMeta:
    mi = res.get("masterIdentifier") or {}
    if not mi.get("value"):
        raise unprocessable("masterIdentifier is required", "DocumentReference.masterIdentifier", "required")
    status = res.get("status")
    if status not in codes.STATUSES:
        raise unprocessable("status must be current, superseded or entered-in-error", "DocumentReference.status")
    contents = res.get("content") or []
    if len(contents) != 1:
        raise unprocessable("Exactly one content is required", "DocumentReference.content", "required")
    att = contents[0].get("attachment") or {}
    ctype = (att.get("contentType") or "").split(";")[0].strip().lower()
    if not ctype:
        raise unprocessable("contentType is required", "DocumentReference.content[0].attachment.contentType",
                            "required")
    if ctype not in codes.CONTENT_TYPES:
        raise FhirError(415, "not-supported", "This document format is not accepted",
                        "DocumentReference.content[0].attachment.contentType")

    type_system, type_code, class_code = _type_and_class(res)
    labels = confidentiality(res.get("securityLabel") or [])
    ctx = res.get("context") or {}
    period = ctx.get("period") or {}
    given, family = _author_names(res)
    meta = DocMeta(
        master_identifier=str(mi["value"]), status=status, class_code=class_code, type_system=type_system,
        type_code=type_code, content_type=ctype, language=att.get("language"), title=att.get("title"),
        creation=parse_datetime(att.get("creation"), "DocumentReference.content[0].attachment.creation"),
        date=parse_datetime(res.get("date"), "DocumentReference.date"),
        period_start=parse_datetime(period.get("start"), "DocumentReference.context.period.start"),
        period_end=parse_datetime(period.get("end"), "DocumentReference.context.period.end"),
        format_code=(contents[0].get("format") or {}).get("code"),
        masked=codes.MASQUE_PS in labels, invisible_patient=codes.INVISIBLE_PATIENT in labels,
        invisible_representatives=codes.INVISIBLE_REPRESENTANTS in labels, author_given=given, author_family=family,
    )
    for i, rel in enumerate(res.get("relatesTo") or []):
        ref = (rel.get("target") or {}).get("reference")
        if rel.get("code") == "replaces":
            if not ref:
                raise unprocessable("relatesTo.target must reference the replaced document",
                                    f"DocumentReference.relatesTo[{i}].target")
            meta.replaces.append(ref)
        if ref:
            meta.tokens.add(("related", "", ref.rsplit("/", 1)[-1]))
    t = meta.tokens
    for c in _codings(res.get("type")):
        t.add(("type", c.get("system") or "", c.get("code") or ""))
    t.add(("category", codes.TRE_A03, class_code))
    for concept in res.get("category") or []:
        for c in _codings(concept):
            t.add(("category", c.get("system") or "", c.get("code") or ""))
    for concept in res.get("securityLabel") or []:
        for c in _codings(concept):
            t.add(("security-label", c.get("system") or "", c.get("code") or ""))
    if not labels & {codes.MASQUE_PS, codes.INVISIBLE_PATIENT, codes.INVISIBLE_REPRESENTANTS}:
        t.add(("security-label", codes.TRE_A07, "N"))
    for concept in ctx.get("event") or []:
        for c in _codings(concept):
            t.add(("event", c.get("system") or "", c.get("code") or ""))
    for name, concept in (("facility", ctx.get("facilityType")), ("setting", ctx.get("practiceSetting"))):
        for c in _codings(concept):
            t.add((name, c.get("system") or "", c.get("code") or ""))
    fmt = contents[0].get("format") or {}
    if fmt.get("code"):
        t.add(("format", fmt.get("system") or "", fmt["code"]))
    t.add(("identifier", mi.get("system") or "", str(mi["value"])))
    for ident in res.get("identifier") or []:
        if ident.get("value"):
            t.add(("identifier", ident.get("system") or "", str(ident["value"])))
    meta.tokens = {(p, s[:200], c[:300]) for p, s, c in t if c}
    return meta
