"""Validation of incoming resources with ``fhir.resources.R4B`` (structure, cardinality, formats).

Carnet stores the JSON it accepted, not a re-serialisation; the model is only the gate. Errors become a 400/422
OperationOutcome naming the FHIRPath of each field at fault, never its value. The faces check what they receive with
it, and the services check the resources they build from a person's input (an advance directive) before storing them.
"""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import ValidationError

from carnet.errors import FhirError, Issue

MODELS = {
    "Patient": "patient", "DocumentReference": "documentreference", "List": "list", "Binary": "binary",
    "Bundle": "bundle", "Parameters": "parameters", "Consent": "consent",
}


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
    try:
        # strict: JSON types as R4 defines them (lax mode would coerce false into a url, 0 into a date)
        _model(rtype).model_validate(resource, strict=True)
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
