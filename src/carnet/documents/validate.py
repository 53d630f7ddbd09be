"""Validation of incoming resources with ``fhir.resources.R4B`` (structure, cardinality, formats).

Carnet stores the JSON it accepted, not a re-serialisation; the model is only the gate. Errors become a 400/422
OperationOutcome naming the FHIRPath of each field at fault, never its value. The faces check what they receive with
it, and the services check the resources they build from a person's input (an advance directive) before storing them.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from pydantic import ValidationError

from carnet.errors import FhirError, Issue

MODELS = {
    "Patient": "patient", "DocumentReference": "documentreference", "List": "list", "Binary": "binary",
    "Bundle": "bundle", "Parameters": "parameters", "Consent": "consent",
}


BIG_INLINE = 64 * 1024  # inline content longer than this is checked apart, not copied through the model
_BASE64_BODY = re.compile(r"[A-Za-z0-9+/]*")  # one character class: matched in constant memory, unlike a group
_PLACEHOLDER = "AAAA"


def _inline_contents(resource: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """The places a document's content travels inline: ``Binary.data``, ``DocumentReference…attachment.data``."""
    if resource.get("resourceType") == "Binary":
        return [(resource, "Binary.data")]
    if resource.get("resourceType") != "DocumentReference" or not isinstance(resource.get("content"), list):
        return []
    found = []
    for i, c in enumerate(resource["content"]):
        if isinstance(c, dict) and isinstance(c.get("attachment"), dict):
            found.append((c["attachment"], f"DocumentReference.content[{i}].attachment.data"))
    return found


def _is_base64(text: str) -> bool:
    """Standard base64 with its padding, checked in one linear scan without copying ``text``."""
    end = _BASE64_BODY.match(text).end()  # type: ignore[union-attr]  # matches at least the empty string
    return len(text) % 4 == 0 and text[end:] in ("", "=", "==")


def _light(resource: dict[str, Any], base: str | None) -> dict[str, Any]:
    """``resource`` with each large inline content checked as base64 here (a linear scan, no copy) and replaced by a
    placeholder in a shallow copy, so that the model does not copy a document of many megabytes (issue 9)."""
    swaps = []
    for holder, where in _inline_contents(resource):
        data = holder.get("data")
        if isinstance(data, str) and len(data) > BIG_INLINE:
            if not _is_base64(data):
                raise FhirError(422, "invalid", "Invalid resource", issues=[Issue(
                    "invalid", "Invalid element (base64)", [f"{base}.{where.split('.', 1)[1]}" if base else where])])
            swaps.append(holder)
    if not swaps:
        return resource
    return _replaced(resource, {id(h) for h in swaps})


def _replaced(value: Any, swap: set[int]) -> Any:
    if isinstance(value, dict):
        copy = {k: _replaced(v, swap) for k, v in value.items()}
        if id(value) in swap:
            copy["data"] = _PLACEHOLDER
        return copy
    if isinstance(value, list):
        return [_replaced(v, swap) for v in value]
    return value


def _model(resource_type: str) -> Any:
    module = importlib.import_module(f"fhir.resources.R4B.{MODELS[resource_type]}")
    return getattr(module, resource_type)


def validate(resource: Any, expected: str | tuple[str, ...], base: str | None = None) -> dict[str, Any]:
    """Check ``resource`` is a valid R4 resource of the expected type; returns it unchanged."""
    expected_types = (expected,) if isinstance(expected, str) else expected
    prefix = base or expected_types[0]
    if not isinstance(resource, dict):
        raise FhirError(400, "structure", "A resource must be a JSON object", prefix)
    rtype = resource.get("resourceType")
    if rtype not in expected_types:
        raise FhirError(400, "invalid", f"Expected resourceType {' or '.join(expected_types)}",
                        f"{prefix}.resourceType" if base else "resourceType")
    light = _light(resource, base)
    try:
        # strict: JSON types as R4 defines them (lax mode would coerce false into a url, 0 into a date)
        _model(rtype).model_validate(light, strict=True)
    except ValidationError as exc:
        issues = []
        for err in exc.errors()[:20]:
            path = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
            where = f"{base or rtype}.{path}" if path else (base or rtype)
            issues.append(Issue("invalid", f"Invalid element ({err.get('type', 'value')})", [where]))
        raise FhirError(422, "invalid", "Invalid resource", issues=issues) from None
    except Exception:  # noqa: BLE001 - some model validators fail with other errors on ill-typed input
        raise FhirError(422, "invalid", "Invalid resource", base or rtype) from None
    return resource
