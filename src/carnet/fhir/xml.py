"""FHIR XML (https://hl7.org/fhir/R4/xml.html) at the edges: the MHD Document Recipient and Responder
CapabilityStatements list both ``application/fhir+json`` and ``application/fhir+xml``.

Carnet works in JSON inside. A request asking for XML (``_format=xml`` or an ``Accept`` preferring
``application/fhir+xml``) gets its FHIR answer converted through the ``fhir.resources`` R4B models; a body sent as
``application/fhir+xml`` is parsed the same way into the JSON that the rest of Carnet handles.
"""

from __future__ import annotations

import json
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from lxml import etree
from pydantic import ValidationError
from starlette.requests import Request

from carnet.errors import FhirError

FHIR_XML = "application/fhir+xml"
XML_FORMATS = {"xml", "text/xml", "application/xml", FHIR_XML}
FHIR_NS = "{http://hl7.org/fhir}"


def wants_xml(request: Request) -> bool:
    fmt = request.query_params.get("_format")
    if fmt is not None:
        return fmt in XML_FORMATS
    accept = request.headers.get("accept", "")
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        if media in (FHIR_XML, "application/xml", "text/xml"):
            return True
        if media in ("application/fhir+json", "application/json"):
            return False
    return False


def to_xml(body: bytes | str) -> bytes:
    data = json.loads(body)
    model = get_fhir_model_class(data["resourceType"])
    out: bytes | str = model.model_validate(data).model_dump_xml()
    return out if isinstance(out, bytes) else out.encode()




def _depth(root: Any) -> int:
    """How deep the element tree goes, counted without recursion."""
    deepest, stack = 0, [(root, 1)]
    while stack:
        element, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in element)
    return deepest


MAX_DEPTH = 64  # one bound for XML and JSON bodies (carnet.fhir.http): a real resource nests a dozen or so levels


def from_xml(body: bytes) -> dict[str, Any]:
    try:
        root = etree.fromstring(body, parser=etree.XMLParser(resolve_entities=False, no_network=True))
        if _depth(root) > MAX_DEPTH:  # before any recursive walk of the tree (the models', here)
            raise FhirError(400, "structure", f"The body is nested deeper than {MAX_DEPTH} levels")
        rtype = root.tag.removeprefix(FHIR_NS)
        model = get_fhir_model_class(rtype)
        resource = model.model_validate_xml(body)
    except (etree.XMLSyntaxError, KeyError, ValueError, ValidationError, RecursionError):
        raise FhirError(400, "structure", "The body is not a valid FHIR XML resource") from None
    out: dict[str, Any] = json.loads(resource.model_dump_json(by_alias=True, exclude_none=True))
    return out
