"""FHIR interactions for structured data and the emergency summary; :mod:`carnet.fhir.routes` adds
:func:`route_specs` to its table (so the CapabilityStatement lists them). Handlers parse, call a service with the
caller's context, and shape the answer; they never decide access.

- ``POST /fhir/{type}``, ``GET /fhir/{type}/{id}``, ``GET /fhir/{type}?patient=``, for the five types of
  :data:`carnet.clinical.service.TYPES`;
- ``POST /fhir/{type}/{id}/$entered-in-error`` (the author withdraws) and ``POST /fhir/{type}/{id}/$dispute``
  (Parameters ``text``: the patient's dispute note);
- ``GET /fhir/Patient/{id}/$summary`` (IPS document Bundle) and ``GET /fhir/Patient/{id}/$summary-pdf`` (the same as a
  one-page PDF, ``application/pdf``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import Response

from carnet.clinical import service
from carnet.clinical.pdf import render_summary_pdf
from carnet.clinical.summary import build_bundle, summary_view
from carnet.context import Context
from carnet.errors import FhirError, invalid, not_found, unprocessable
from carnet.fhir.http import FhirResponse, json_body, searchset
from carnet.fhir.transaction import resolve_patient

PARAMS = (("patient", "reference"), ("code", "token"), ("category", "token"), ("status", "token"),
          ("clinical-status", "token"))
_KNOWN = {name for name, _ in PARAMS} | {"subject", "_count", "_offset", "_format"}


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise not_found() from None


def _subject(body: dict[str, Any], rtype: str) -> str | None:
    field = "patient" if rtype in ("AllergyIntolerance", "Immunization") else "subject"
    return (body.get(field) or {}).get("reference")


def _handlers(rtype: str) -> dict[str, Callable[..., Awaitable[Response]]]:
    async def create(call: Any) -> Response:
        body = await json_body(call.request, 256 * 1024)
        service.check(body, rtype)

        def work(ctx: Context) -> str:
            key = resolve_patient(ctx, _subject(body, rtype), {}, call.base, f"{rtype}.subject")
            return service.create(ctx, key, body)

        served = await call.run(work)
        rid = json.loads(served)["id"]
        return FhirResponse(served, 201, headers={"Location": f"{call.base}/{rtype}/{rid}/_history/1",
                                                  "ETag": 'W/"1"'})

    async def read(call: Any, id: str) -> Response:
        text = await call.run(lambda ctx: service.read(ctx, rtype, id))
        return FhirResponse(text, headers={"ETag": f'W/"{json.loads(text)["meta"]["versionId"]}"'})

    async def search(call: Any) -> Response:
        params = call.params()
        count, offset = call.page()
        for name, _ in params:
            if name.split(":")[0] not in _KNOWN:
                raise FhirError(400, "not-supported", "Unknown search parameter", name)
        q = dict(params)
        ref = q.get("patient") or q.get("subject")
        if not ref:
            raise FhirError(400, "required", "Search requires patient", "patient")
        ref = ref if "/" in ref else f"Patient/{ref}"
        conds = service.search_conditions(rtype, params)
        text = "&".join(sorted({k for k, _ in params}))

        def work(ctx: Context) -> tuple[list[str], int]:
            key = resolve_patient(ctx, ref, {}, call.base, "patient")
            return service.search(ctx, key, rtype, conds, count, offset, text)

        rows, total = await call.run(work)
        return FhirResponse(searchset(call.base, rtype, rows, total, params, count, offset))

    async def withdraw(call: Any, id: str) -> Response:
        return FhirResponse(await call.run(lambda ctx: service.withdraw(ctx, rtype, id)))

    async def dispute(call: Any, id: str) -> Response:
        body = await json_body(call.request, 64 * 1024)
        if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
            raise invalid("A Parameters resource is expected", "Parameters")
        text = next((p.get("valueString") for p in body.get("parameter") or [] if p.get("name") == "text"), None)
        if not isinstance(text, str):
            raise unprocessable("text (valueString) is required", "Parameters.parameter[text]", "required")
        return FhirResponse(await call.run(lambda ctx: service.dispute(ctx, rtype, id, text)))

    return {"create": create, "read": read, "search": search, "withdraw": withdraw, "dispute": dispute}


async def patient_summary(call: Any, id: str) -> Response:
    """``$summary`` (IPS): the emergency summary as a document Bundle."""
    key = _uuid(id)
    return FhirResponse(await call.run(lambda ctx: build_bundle(ctx, key)))


async def patient_summary_pdf(call: Any, id: str) -> Response:
    """``$summary-pdf``: the emergency summary as a one-page PDF."""
    key = _uuid(id)
    view = await call.run(lambda ctx: summary_view(ctx, key))
    return Response(render_summary_pdf(view), media_type="application/pdf", headers={
        "Content-Disposition": 'inline; filename="patient-summary.pdf"', "Cache-Control": "no-store"})


def route_specs() -> list[dict[str, Any]]:
    """Keyword arguments of :class:`carnet.fhir.routes.Route`, one per interaction."""
    out: list[dict[str, Any]] = []
    for rtype in service.TYPES:
        h = _handlers(rtype)
        spec = "structured data (issue 3 §2)"
        out += [
            dict(resource=rtype, interaction="create", method="POST", path=f"/fhir/{rtype}", handler=h["create"],
                 scope=(rtype, "c"), spec=spec),
            dict(resource=rtype, interaction="read", method="GET", path=f"/fhir/{rtype}/{{id}}", handler=h["read"],
                 scope=(rtype, "r"), spec=spec),
            dict(resource=rtype, interaction="search-type", method="GET", path=f"/fhir/{rtype}",
                 handler=h["search"], scope=(rtype, "s"), search_params=PARAMS, spec=spec),
            dict(resource=rtype, interaction="operation", method="POST", path=f"/fhir/{rtype}/{{id}}/$entered-in-error",
                 handler=h["withdraw"], scope=(rtype, "u"), spec="the author withdraws their item",
                 operation="entered-in-error"),
            dict(resource=rtype, interaction="operation", method="POST", path=f"/fhir/{rtype}/{{id}}/$dispute",
                 handler=h["dispute"], scope=(rtype, "u"), spec="the patient disputes an item (a note)",
                 operation="dispute"),
        ]
    out += [
        dict(resource="Patient", interaction="operation", method="GET", path="/fhir/Patient/{id}/$summary",
             handler=patient_summary, scope=("Patient", "r"),
             spec="International Patient Summary (https://hl7.org/fhir/uv/ips/)", operation="summary"),
        dict(resource="Patient", interaction="operation", method="GET", path="/fhir/Patient/{id}/$summary-pdf",
             handler=patient_summary_pdf, scope=("Patient", "r"), spec="the emergency summary as a one-page PDF",
             operation="summary-pdf"),
    ]
    return out
