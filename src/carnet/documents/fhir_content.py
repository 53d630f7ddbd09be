"""A FHIR content (a FHIR document ``Bundle``, MHD "FHIR Document Publish", or any FHIR resource deposited as
``application/fhir+json`` / ``application/fhir+xml``) must not be another patient's (issue 15 §7, as CDA headers are
checked by :mod:`carnet.documents.cda`).

:func:`check_patient` refuses (422, ``DocumentReference.subject``) a content whose ``Patient`` resources state an INS
(identifier systems of the INS OIDs) none of which is the dossier's matricule. What states no INS contradicts nothing
(the IHE examples' patients carry local identifiers). XML is parsed as CDA is (entities unresolved, no DTD, no
network); a DOCTYPE is refused on ``DocumentReference.content[0].attachment``.
"""

from __future__ import annotations

import json
from typing import Any

from lxml import etree

from carnet.documents import content_types
from carnet.errors import unprocessable
from carnet.identity.ins import INS_SYSTEMS

FHIR = "{http://hl7.org/fhir}"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                          huge_tree=False, remove_comments=True, remove_pis=True)
CONTENT = "DocumentReference.content[0].attachment"


def _json_patients(value: Any) -> list[dict[str, Any]]:
    """The Patient resources of a FHIR JSON resource: itself, its contained resources, a Bundle's entries."""
    if not isinstance(value, dict):
        return []
    found = [value] if value.get("resourceType") == "Patient" else []
    for c in value.get("contained") or []:
        found += _json_patients(c)
    if value.get("resourceType") == "Bundle":
        for e in value.get("entry") or []:
            found += _json_patients(e.get("resource") if isinstance(e, dict) else None)
    return found


def _json_ins(data: bytes | bytearray) -> set[str]:
    try:
        patients = _json_patients(json.loads(data))
    except (ValueError, RecursionError):
        raise unprocessable("The content is not valid JSON (or nests too deeply)", CONTENT, "invalid") from None
    stated = set()
    for patient in patients:
        for ident in patient.get("identifier") or []:
            if isinstance(ident, dict) and ident.get("system") in INS_SYSTEMS and isinstance(ident.get("value"), str):
                stated.add(ident["value"])
    return stated


def _xml_ins(data: bytes | bytearray) -> set[str]:
    try:
        root = etree.fromstring(data, parser=_PARSER)
    except (etree.XMLSyntaxError, ValueError):
        raise unprocessable("The content is not well-formed XML", CONTENT, "invalid") from None
    if root is None or root.getroottree().docinfo.doctype:
        raise unprocessable("A FHIR XML content may not carry a DOCTYPE", CONTENT, "invalid")
    stated = set()
    for patient in root.iter(f"{FHIR}Patient"):
        for ident in patient.findall(f"{FHIR}identifier"):
            system, value = ident.find(f"{FHIR}system"), ident.find(f"{FHIR}value")
            if system is not None and value is not None and system.get("value") in INS_SYSTEMS and value.get("value"):
                stated.add(str(value.get("value")))
    return stated


def check_patient(data: bytes | bytearray, kind: str, dossier_ins: str) -> None:
    """Refuse a FHIR content (``kind`` as :func:`content_types.sniff` names it) whose patients state INS matricules
    none of which is ``dossier_ins``."""
    if kind == content_types.JSON:
        stated = _json_ins(data)
    elif kind == content_types.FHIR_XML:
        stated = _xml_ins(data)
    else:
        return
    normalised = {"".join(v.split()).upper() for v in stated}
    if normalised and dossier_ins.upper() not in normalised:
        raise unprocessable("The content's Patient (INS identifier) contradicts DocumentReference.subject",
                            "DocumentReference.subject", "business-rule")
