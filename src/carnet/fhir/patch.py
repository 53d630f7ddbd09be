"""PATCH of a DocumentReference as PDSm allows it (TD3.2 withdraw, TD3.3 mask/unmask): ``status`` and
``securityLabel`` only, sent as a JSON Patch (RFC 6902, ``application/json-patch+json``) or a FHIRPath Patch
(``Parameters``). Parsing is separate from applying: the plan is applied to the document's current labels inside the
transaction, so an index in ``/securityLabel/0`` means the document's own first label, and ``test`` operations are
checked against what is stored."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from carnet.errors import conflict, invalid, unprocessable

LABELS = "/securityLabel"


@dataclass
class PatchPlan:
    status: str | None = None
    label_ops: list[dict[str, Any]] = field(default_factory=list)
    tests: list[dict[str, Any]] = field(default_factory=list)

    def check_tests(self, resource: dict[str, Any]) -> None:
        for i, op in enumerate(self.tests):
            if _pointer(resource, op["path"]) != op.get("value"):
                raise conflict("A JSON Patch test failed: the document has changed", f"[{i}].value")

    def new_labels(self, current: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        if not self.label_ops:
            return None
        out = list(current)
        for i, op in enumerate(self.label_ops):
            kind, path, value = op["op"], op["path"], op.get("value")
            if path == LABELS:
                if kind == "remove":
                    out = []
                elif isinstance(value, list) and all(isinstance(v, dict) for v in value):
                    out = list(value)
                else:
                    raise unprocessable("securityLabel must be a list of CodeableConcepts", f"[{i}].value")
                continue
            idx = path[len(LABELS) + 1:]
            if kind != "remove" and not isinstance(value, dict):
                raise unprocessable("A securityLabel must be a CodeableConcept", f"[{i}].value")
            if kind == "add" and idx == "-":
                out.append(value)  # type: ignore[arg-type]
            elif not idx.isdigit() or int(idx) > len(out) or (kind != "add" and int(idx) == len(out)):
                raise unprocessable("No securityLabel at this index", f"[{i}].path")
            elif kind == "remove":
                out.pop(int(idx))
            elif kind == "add":
                out.insert(int(idx), value)  # type: ignore[arg-type]
            else:
                out[int(idx)] = value  # type: ignore[assignment]
        return out


def _pointer(resource: dict[str, Any], path: str) -> Any:
    if path == "/status":
        return resource.get("status")
    labels = resource.get("securityLabel") or []
    if path == LABELS:
        return labels
    idx = path[len(LABELS) + 1:]
    return labels[int(idx)] if idx.isdigit() and int(idx) < len(labels) else None


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
