"""What a PATCH of a DocumentReference may change (PDSm: TD3.2 withdraw, TD3.3 mask/unmask), as a plan the documents
service applies: a new ``status`` and/or operations on ``securityLabel``, and ``test`` operations. The plan is applied
to the document's current labels inside the transaction, so an index in ``/securityLabel/0`` means the document's own
first label, and ``test`` operations are checked against what is stored. The FHIR face parses the request into a plan
(:mod:`carnet.fhir.patch`); the portals build plans directly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from carnet.errors import conflict, unprocessable

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
