"""The dossier's Patient resource: the INS and the five identity traits read from it, the name's form for the
demographic index, the resource as served, and the extensions Carnet defines."""

from __future__ import annotations

import datetime as dt
import unicodedata
import uuid
from typing import Any

from carnet.documents.cda_names import PersonName, once
from carnet.documents.stored import fhir_instant
from carnet.errors import unprocessable
from carnet.identity.ins import INS_SYSTEMS, InvalidIdentifier, parse_ins_identifier

CANONICAL = "https://carnet.invalid/fhir"  # placeholder base for Carnet-defined extensions until the project has one
EXT_CREATION_CONSENT = f"{CANONICAL}/StructureDefinition/dossier-creation-consent"
EXT_DOSSIER_ACCESS = f"{CANONICAL}/StructureDefinition/dossier-access"
BIRTHPLACE_EXT = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
INSEE_EXT = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code"
GENDERS = ("male", "female", "other", "unknown")


def norm(text: str) -> str:
    """Case- and accent-insensitive form for demographic search."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


def ins_of(resource: dict[str, Any], expression: str = "Patient.identifier") -> tuple[str, str]:
    for i, ident in enumerate(resource.get("identifier") or []):
        if ident.get("system") in INS_SYSTEMS:
            try:
                return parse_ins_identifier(ident["system"], ident.get("value") or "", f"{expression}[{i}]")
            except InvalidIdentifier as exc:
                raise unprocessable(exc.reason, exc.field) from exc
    raise unprocessable("An INS identifier (NIR or NIA) is required", expression, "required")


def ins_value(system: str, value: str, expression: str) -> str:
    """The normalised INS of a ``system|value`` search or reference, or a 422 naming ``expression``."""
    try:
        return parse_ins_identifier(system, value, expression)[1]
    except InvalidIdentifier as exc:
        raise unprocessable(exc.reason, expression) from exc


def _birthplace(res: dict[str, Any]) -> str:
    for ext in res.get("extension") or []:
        if ext.get("url") == BIRTHPLACE_EXT:
            addr = ext.get("valueAddress") or {}
            for e in addr.get("extension") or []:
                if e.get("url") == INSEE_EXT and e.get("valueCoding", {}).get("code"):
                    return str(e["valueCoding"]["code"])[:5]
            if addr.get("postalCode"):
                return str(addr["postalCode"])[:5]
            if addr.get("country") and addr["country"].upper() not in ("FR", "FRA", "FRANCE"):
                return "99999"  # born abroad; the INSEE country code is not given
    raise unprocessable("The INSEE code of the birth place is required (patient-birthPlace extension)",
                        "Patient.extension", "required")


def traits(res: dict[str, Any]) -> dict[str, Any]:
    """The five INS traits: birth family name, birth first names, birth date, sex, birth place."""
    names = res.get("name") or []
    official = next((n for n in names if n.get("use") == "official"), names[0] if names else None)
    if not official or not official.get("family") or not official.get("given"):
        raise unprocessable("The birth name (family and given) is required", "Patient.name", "required")
    if not res.get("birthDate") or len(res["birthDate"]) != 10:
        raise unprocessable("A full birth date is required", "Patient.birthDate", "required")
    if res.get("gender") not in GENDERS:
        raise unprocessable("Administrative gender is required", "Patient.gender", "required")
    return {"family": official["family"], "given": " ".join(official["given"]),
            "birth_date": dt.date.fromisoformat(res["birthDate"]), "gender": res["gender"],
            "birthplace": _birthplace(res)}


def served_patient(res: dict[str, Any], key: uuid.UUID, version: int, now: dt.datetime) -> dict[str, Any]:
    out = {"resourceType": "Patient", "id": str(key),
           **{k: v for k, v in res.items() if k not in ("text", "resourceType", "id")}}
    out["meta"] = {**(res.get("meta") or {}), "versionId": str(version), "lastUpdated": fhir_instant(now)}
    out["extension"] = [e for e in res.get("extension") or [] if e.get("url") != EXT_CREATION_CONSENT]
    if not out["extension"]:
        del out["extension"]
    return out


BIRTH_GIVEN_LIST_EXT = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-birth-list-given-name"


def display_name(res: dict[str, Any], lang: str = "fr") -> str:
    """The patient's name as the DMP's identity banner shows it (issue 16 §2), from a FR Core Patient: the birth given
    names (the ``fr-core-patient-birth-list-given-name`` list when stated, else ``given``) once each, in order, then
    the family name in use (the ``usual`` name's, else the birth name); the birth name when it differs, and a used
    given name that is not a birth given name, in parentheses (:class:`carnet.documents.cda_names.PersonName`)."""
    names = [n for n in res.get("name") or [] if isinstance(n, dict)]
    official = next((n for n in names if n.get("use") == "official"), names[0] if names else {})
    usual = next((n for n in names if n.get("use") == "usual" and n is not official), {})
    listed = next((str(e.get("valueString") or "") for e in official.get("extension") or []
                   if isinstance(e, dict) and e.get("url") == BIRTH_GIVEN_LIST_EXT), "")
    given = once([*listed.split(), *(g for x in official.get("given") or [] for g in str(x).split())])
    birth = str(official.get("family") or "")
    used = str(usual.get("family") or "") or birth
    used_given = [g for x in usual.get("given") or [] for g in str(x).split()]
    extra = [u for u in once(used_given) if u.casefold() not in {g.casefold() for g in given}]
    name = PersonName(tuple(official.get("prefix") or ()), tuple(given), used,
                      birth if birth and birth.casefold() != used.casefold() else None, extra[0] if extra else None)
    return name.shown(lang) or str(official.get("text") or "")
