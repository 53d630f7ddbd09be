"""PATCH of a DocumentReference as PDSm allows it (TD3.2 withdraw, TD3.3 mask/unmask): ``status`` and
``securityLabel`` only, sent as a JSON Patch (RFC 6902, ``application/json-patch+json``) or a FHIRPath Patch
(``Parameters``). Parsing is separate from applying: parsing makes a :class:`~carnet.documents.patch_plan.PatchPlan`,
which the documents service applies to the document's current labels inside the transaction, so an index in
``/securityLabel/0`` means the document's own first label, and ``test`` operations are checked against what is
stored."""

from __future__ import annotations

from typing import Any

from carnet.documents.patch_plan import LABELS, PatchPlan
from carnet.documents.validate import validate
from carnet.errors import invalid, unprocessable

__all__ = ["PatchPlan", "parse"]  # PatchPlan lives in the documents package; the face's callers find it here too


def _allowed(path: str) -> bool:
    return path == "/status" or path == LABELS or path.startswith(LABELS + "/")


def parse(body: Any) -> PatchPlan:
    plan = PatchPlan()
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        return _parse_fhirpath(body)
    if not isinstance(body, list):
        raise invalid("PATCH takes a JSON Patch array (application/json-patch+json) or a Parameters resource")
    for i, op in enumerate(body):
        if not isinstance(op, dict) or op.get("op") not in ("replace", "add", "remove", "test"):
            raise unprocessable("Unsupported JSON Patch operation", f"[{i}].op")
        path = op.get("path")
        if not isinstance(path, str) or not _allowed(path):
            raise unprocessable("Only status and securityLabel may be patched", f"[{i}].path")
        if op["op"] == "test":
            plan.tests.append(op)
        elif path == "/status":
            if op["op"] == "remove" or not isinstance(op.get("value"), str):
                raise unprocessable("status must be replaced by a code", f"[{i}].value")
            plan.status = op["value"]
        else:
            plan.label_ops.append(op)
    return plan


def _parse_fhirpath(body: dict[str, Any]) -> PatchPlan:
    validate(body, "Parameters")  # the shape first (a 422 naming the element), never a 500 on a stray one
    plan = PatchPlan()
    for i, op in enumerate(body.get("parameter") or []):
        parts = {p.get("name"): p for p in (op.get("part") or []) if isinstance(p, dict)} if isinstance(op, dict) \
            else {}
        path = (parts.get("path") or {}).get("valueString")
        kind = (parts.get("type") or {}).get("valueCode")
        value = parts.get("value") or {}
        where = f"Parameters.parameter[{i}]"
        if path == "DocumentReference.status" and kind == "replace" and isinstance(value.get("valueCode"), str):
            plan.status = value["valueCode"]
        elif path == "DocumentReference.securityLabel" and kind in ("add", "replace", "delete"):
            concept = value.get("valueCodeableConcept")
            if kind == "delete":
                plan.label_ops.append({"op": "remove", "path": LABELS})
            elif not isinstance(concept, dict):
                raise unprocessable("securityLabel needs a valueCodeableConcept", where)
            elif kind == "add":
                plan.label_ops.append({"op": "add", "path": LABELS + "/-", "value": concept})
            else:
                plan.label_ops.append({"op": "replace", "path": LABELS, "value": [concept]})
        else:
            raise unprocessable("Only status (replace) and securityLabel may be patched", where)
    return plan
