"""Task: access requests and rectification requests (issue 4 §3), their ``$accept`` and ``$reject``, and the
patient's setting for access requests (``Patient/$access-requests``).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from carnet.context import Context
from carnet.dossier import service as dossiers
from carnet.errors import FhirError, invalid, not_found, unprocessable
from carnet.fhir.http import FhirResponse, json_body
from carnet.fhir.routes.base import Call, Route, optional_parameters, uuid_or_404
from carnet.fhir.transaction import resolve_patient
from carnet.tasks import fhir as task_fhir
from carnet.tasks import service as tasks


def _task_response(view: tasks.TaskView, status: int = 200) -> FhirResponse:
    headers = {"ETag": f'W/"{view.version}"'}
    return FhirResponse(task_fhir.to_json(view), status, headers=headers)


async def task_create(call: Call) -> Response:
    """A professional asks for access (code ``access-request``), or the patient asks for a rectification (code
    ``rectification``). 201 for a new request; 200 with the pending one when a professional asks again."""
    kind, fields = task_fhir.read_request(await json_body(call.request, 64 * 1024))

    def work(ctx: Context) -> tuple[tasks.TaskView, bool]:
        if kind == tasks.RECTIFICATION:
            return tasks.request_rectification(ctx, fields["document_id"], fields["text"]), True
        target = fields["for"]
        if target.get("reference"):
            key = resolve_patient(ctx, target["reference"], {}, call.base, "Task.for")
        else:
            ident = target["identifier"]
            found = dossiers.lookup(ctx, dossiers.ins_value(str(ident.get("system") or ""),
                                                            str(ident.get("value") or ""), "Task.for.identifier"))
            if found is None:
                raise not_found("Patient")
            key = found
        return tasks.open_access_request(ctx, key, fields["reason"])

    view, new = await call.run(work)
    response = _task_response(view, 201 if new else 200)
    response.headers["Location"] = f"{call.base}/Task/{view.id}/_history/{view.version}"
    return response


async def task_read(call: Call, id: str) -> Response:
    return _task_response(await call.run(lambda ctx: tasks.get(ctx, id)))


def _practitioner_param(value: str) -> str:
    return value.rsplit("/", 1)[-1] if value.startswith("Practitioner/") or "/Practitioner/" in value else value


async def task_search(call: Call) -> Response:
    """By ``patient`` (a dossier's Tasks that the caller sees), or, without it, by ``owner`` or ``requester`` naming
    the calling professional: their work list across dossiers (a reporting path, see docs/REQUESTS.md)."""
    params = call.params()
    count, offset = call.page()
    known = {"patient", "status", "code", "owner", "requester", "_count", "_offset", "_format"}
    for name, _ in params:
        if name.split(":")[0] not in known:
            raise FhirError(400, "not-supported", "Unknown search parameter", name)
    q = dict(params)
    kinds = None
    if "code" in q:
        kinds = []
        for v in q["code"].split(","):
            system, _, code = v.rpartition("|")
            if (system and system != task_fhir.CODE_SYSTEM) or code not in task_fhir.CODES:
                raise invalid("Unknown Task code", "code")
            kinds.append(task_fhir.CODES[code])
    statuses = None
    if "status" in q:
        statuses = []
        for v in q["status"].split(","):
            if v not in task_fhir.CARNET_STATUSES:
                raise invalid("Unknown Task status", "status")
            statuses += task_fhir.CARNET_STATUSES[v]
    owner = _practitioner_param(q["owner"]) if "owner" in q else None
    requester = _practitioner_param(q["requester"]) if "requester" in q else None

    def work(ctx: Context) -> list[tasks.TaskView]:
        if "patient" in q:
            ref = q["patient"] if "/" in q["patient"] else f"Patient/{q['patient']}"
            key = resolve_patient(ctx, ref, {}, call.base, "patient")
            return tasks.list_for_dossier(ctx, key, kinds, statuses, owner=owner, requester=requester)
        me = ctx.actor.id
        if owner is not None and owner == me:
            found = tasks.list_addressed_to_me(ctx, kinds, statuses, as_owner=True)
            return [t for t in found if requester is None or t.requester_id == requester]
        if requester is not None and requester == me:
            return tasks.list_addressed_to_me(ctx, kinds, statuses, as_owner=False)
        raise FhirError(400, "required", "Task search requires patient, or owner or requester naming the caller",
                        "patient")

    views = await call.run(work)
    page = [task_fhir.to_json(v) for v in views[offset:offset + count]]
    return call.searchset("Task", page, len(views), params, count, offset)


def _reason(params: dict[str, Any]) -> str | None:
    reason = params.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise unprocessable("reason must be a string", "Parameters.parameter[reason]")
    return reason


async def task_accept(call: Call, id: str) -> Response:
    """``$accept``: the patient accepts an access request (optional ``reason``: a note to the professional)."""
    note = _reason(await optional_parameters(call))
    return _task_response(await call.run(lambda ctx: tasks.accept(ctx, id, note)))


async def task_reject(call: Call, id: str) -> Response:
    """``$reject``: the patient refuses an access request (``reason`` optional), or the author refuses a
    rectification (``reason`` required, 422 otherwise)."""
    reason = _reason(await optional_parameters(call))
    return _task_response(await call.run(lambda ctx: tasks.reject(ctx, id, reason)))


async def patient_access_requests(call: Call, id: str) -> Response:
    """``$access-requests``: the patient's setting for professionals' access requests, ``policy`` = ``ask`` (be
    prompted) or ``refuse`` (never ask me, refuse)."""
    key = uuid_or_404(id)
    policy = (await optional_parameters(call)).get("policy")
    if not isinstance(policy, str):
        raise unprocessable("policy (ask or refuse) is required", "Parameters.parameter[policy]", "required")
    await call.run(lambda ctx: tasks.set_access_request_policy(ctx, key, policy))
    return FhirResponse({"resourceType": "Parameters", "parameter": [{"name": "policy", "valueCode": policy}]})


TASK_PARAMS = (("patient", "reference"), ("status", "token"), ("code", "token"), ("owner", "reference"),
               ("requester", "reference"))


ROUTES: tuple[Route, ...] = (
    Route("Task", "create", "POST", "/fhir/Task", task_create, ("Task", "c"),
          spec="access request / rectification request (issue 4 §3)", statuses=(201, 200)),
    Route("Task", "read", "GET", "/fhir/Task/{id}", task_read, ("Task", "r")),
    Route("Task", "search-type", "GET", "/fhir/Task", task_search, ("Task", "s"), TASK_PARAMS),
    Route("Task", "operation", "POST", "/fhir/Task/{id}/$accept", task_accept, ("Task", "u"),
          spec="the patient accepts an access request", operation="accept"),
    Route("Task", "operation", "POST", "/fhir/Task/{id}/$reject", task_reject, ("Task", "u"),
          spec="the patient refuses an access request; the author refuses a rectification", operation="reject"),
    Route("Patient", "operation", "POST", "/fhir/Patient/{id}/$access-requests", patient_access_requests,
          ("Patient", "u"), spec="ask or refuse professionals' access requests", operation="access-requests"),
)
