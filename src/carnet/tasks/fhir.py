"""Access and rectification requests as FHIR R4 ``Task`` (https://hl7.org/fhir/R4/task.html).

:func:`to_fhir` renders a :class:`~carnet.tasks.service.TaskView`; :func:`read_request` reads what a client posts.
Carnet's own codes (system :data:`CODE_SYSTEM`): ``access-request`` and ``rectification``.

Mapping (Carnet status → Task.status): ``requested`` → requested; ``completed`` → completed (access granted, or the
document replaced: ``output`` names the replacement); ``rejected`` → rejected (``statusReason.text``: the refusal's
reason, or that the patient refuses every request); ``expired`` → **cancelled** with ``statusReason.text``
"expired" and ``businessStatus`` ``expired``, since R4 has no expired status. The requester and the owner are
``Practitioner/{national id}``, ``Patient/{id}`` or ``RelatedPerson/{id}``; an access request's owner is the patient.
"""

from __future__ import annotations

import json
from typing import Any

from fhir.resources.R4B.task import Task
from pydantic import ValidationError

from carnet.documents.service import fhir_instant
from carnet.dossier.service import CANONICAL
from carnet.errors import FhirError, invalid, unprocessable
from carnet.tasks.service import ACCESS, RECTIFICATION, TaskView

CODE_SYSTEM = f"{CANONICAL}/CodeSystem/task-code"
CODES = {"access-request": ACCESS, "rectification": RECTIFICATION}
FHIR_CODE = {v: k for k, v in CODES.items()}
FHIR_STATUS = {"requested": "requested", "completed": "completed", "rejected": "rejected", "expired": "cancelled"}
# FHIR status search values -> Carnet statuses
CARNET_STATUSES = {"requested": ["requested"], "completed": ["completed"], "rejected": ["rejected"],
                   "cancelled": ["expired"], "accepted": [], "draft": [], "received": [], "ready": [],
                   "in-progress": [], "on-hold": [], "failed": [], "entered-in-error": []}


def _party(kind: str, ident: str, view: TaskView, name: str | None = None) -> dict[str, Any]:
    if kind == "practitioner":
        out: dict[str, Any] = {"reference": f"Practitioner/{ident}"}
        if name:
            out["display"] = name
        return out
    if kind == "representative":
        return {"reference": f"RelatedPerson/{ident}"}
    return {"reference": f"Patient/{view.dossier_key}"}


def to_fhir(view: TaskView) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Task", "id": str(view.id),
        "meta": {"versionId": str(view.version), "lastUpdated": fhir_instant(view.last_updated)},
        "status": FHIR_STATUS[view.status],
        "intent": "proposal" if view.kind == ACCESS else "order",
        "code": {"coding": [{"system": CODE_SYSTEM, "code": FHIR_CODE[view.kind]}]},
        "for": {"reference": f"Patient/{view.dossier_key}"},
        "authoredOn": fhir_instant(view.created_at), "lastModified": fhir_instant(view.last_updated),
        "requester": _party(view.requester_kind, view.requester_id, view, view.requester_name),
    }
    if view.status == "expired":
        res["businessStatus"] = {"coding": [{"system": CODE_SYSTEM, "code": "expired"}], "text": "expired"}
    if view.status_reason:
        res["statusReason"] = {"text": view.status_reason}
    if view.focus:
        res["focus"] = {"reference": view.focus}
    if view.kind == ACCESS:
        res["owner"] = {"reference": f"Patient/{view.dossier_key}"}
        if view.reason:
            res["reasonCode"] = {"text": view.reason}
        if view.expires_at:
            res["restriction"] = {"period": {"end": fhir_instant(view.expires_at)}}
        if view.answer and view.status != "rejected":
            res["note"] = [{"text": view.answer}]
    else:
        if view.owner_id:
            res["owner"] = _party("practitioner", view.owner_id, view, view.owner_name)
        if view.reason:
            res["description"] = view.reason
    if view.answered_at:
        res["executionPeriod"] = {"start": fhir_instant(view.created_at), "end": fhir_instant(view.answered_at)}
    if view.result:
        res["output"] = [{"type": {"coding": [{"system": CODE_SYSTEM, "code": "replacement"}]},
                          "valueReference": {"reference": view.result}}]
    return res


def to_json(view: TaskView) -> str:
    return json.dumps(to_fhir(view), ensure_ascii=False, separators=(",", ":"))


def read_request(body: Any) -> tuple[str, dict[str, Any]]:
    """Check a posted Task and return (kind, fields). Access: ``for`` (a Patient reference or an INS identifier)
    and an optional ``reasonCode.text`` (or ``description``). Rectification: ``focus`` (a DocumentReference) and
    ``description`` (the correction asked for). ``requester``, ``owner`` and ``status`` are the server's: a
    requester is who the token says; the owner is the document's author."""
    if not isinstance(body, dict):
        raise FhirError(400, "structure", "A resource must be a JSON object", "Task")
    if body.get("resourceType") != "Task":
        raise invalid("Expected resourceType Task", "resourceType")
    try:
        Task.model_validate(body, strict=True)
    except ValidationError as exc:
        paths = [".".join(str(p) for p in e.get("loc", ()) if p != "__root__") for e in exc.errors()[:20]]
        raise FhirError(422, "invalid", "Invalid resource", [f"Task.{p}" if p else "Task" for p in paths]) from None
    except Exception:  # noqa: BLE001 - some model validators fail with other errors on ill-typed input
        raise FhirError(422, "invalid", "Invalid resource", "Task") from None
    codes = [c.get("code") for c in (body.get("code") or {}).get("coding") or [] if c.get("system") == CODE_SYSTEM]
    kind = CODES.get(codes[0]) if codes else None
    if kind is None:
        raise unprocessable(f"Task.code must be access-request or rectification ({CODE_SYSTEM})", "Task.code",
                            "required" if not codes else "value")
    if kind == ACCESS:
        target = body.get("for") or {}
        if not target.get("reference") and not target.get("identifier"):
            raise unprocessable("Task.for must name the patient (a reference or an INS identifier)", "Task.for",
                                "required")
        reason = (body.get("reasonCode") or {}).get("text") or body.get("description")
        return kind, {"for": target, "reason": reason}
    ref = str((body.get("focus") or {}).get("reference") or "")
    if not ref.startswith("DocumentReference/") and "/DocumentReference/" not in ref:
        raise unprocessable("Task.focus must reference the DocumentReference to rectify", "Task.focus", "required")
    return kind, {"document_id": ref.rsplit("/", 1)[-1], "text": body.get("description")}
