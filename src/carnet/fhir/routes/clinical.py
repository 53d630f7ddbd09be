"""Structured data and the emergency summary (issue 3 §2, §3): the FHIR interactions this family declares in the
route table (so the CapabilityStatement lists them). Handlers parse, call a service with the caller's context, and
shape the answer; they never decide access.

- ``POST /fhir/{type}``, ``GET /fhir/{type}/{id}``, ``GET /fhir/{type}?patient=``, for the five types of
  :data:`carnet.clinical.service.TYPES`;
- ``POST /fhir/{type}/{id}/$entered-in-error`` (the author withdraws) and ``POST /fhir/{type}/{id}/$dispute``
  (Parameters ``text``: the patient's dispute note);
- ``POST /fhir/{type}/{id}/$meta-add`` and ``$meta-delete`` (FHIR R4 §2.38.0.7, Parameters ``meta`` with a
  ``meta.security`` ``MASQUE_PS`` coding, nothing else): the patient side hides the item from professionals or shows
  it again (issue 13 §3, :mod:`carnet.clinical.hiding`);
- ``GET /fhir/Patient/{id}/$summary`` (IPS document Bundle) and ``GET /fhir/Patient/{id}/$summary-pdf`` (the same as a
  one-page PDF, ``application/pdf``).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from carnet.clinical import hiding, service
from carnet.clinical.pdf import render_summary_pdf
from carnet.clinical.summary import build_bundle, summary_view
from carnet.context import Context
from carnet.errors import FhirError, invalid, unprocessable
from carnet.fhir.http import FhirResponse, json_body
from carnet.fhir.routes import measures as measurements
from carnet.fhir.routes.base import Call, Handler, Route, parameters, uuid_or_404
from carnet.fhir.transaction import resolve_patient

PARAMS = (("patient", "reference"), ("subject", "reference"), ("code", "token"), ("category", "token"),
          ("status", "token"), ("clinical-status", "token"))
_KNOWN = {name for name, _ in PARAMS} | {"_count", "_offset", "_format"}


def _subject(body: dict[str, Any], rtype: str) -> str | None:
    field = "patient" if rtype in ("AllergyIntolerance", "Immunization") else "subject"
    return (body.get(field) or {}).get("reference")


def _handlers(rtype: str) -> dict[str, Handler]:
    async def create(call: Call) -> Response:
        body = await json_body(call.request, 256 * 1024)
        service.check(body, rtype)

        def work(ctx: Context) -> str:
            key = resolve_patient(ctx, _subject(body, rtype), {}, call.base, f"{rtype}.subject")
            return service.create(ctx, key, body)

        served = await call.run(work)
        rid = json.loads(served)["id"]
        return FhirResponse(served, 201, headers={"Location": f"{call.base}/{rtype}/{rid}/_history/1",
                                                  "ETag": 'W/"1"'})

    async def read(call: Call, id: str) -> Response:
        measured = measurements.parsed_id(id) if rtype == "Observation" else None
        if measured is not None:
            return await measurements.read(call, measured)
        text = await call.run(lambda ctx: service.read(ctx, rtype, id))
        return FhirResponse(text, headers={"ETag": f'W/"{json.loads(text)["meta"]["versionId"]}"'})

    async def search(call: Call) -> Response:
        params = call.params()
        count, offset = call.page()
        asked = measurements.wanted(params) if rtype == "Observation" else None
        if asked is not None:
            return await measurements.search(call, params, asked, count, offset)
        for name, _ in params:
            if rtype == "Observation" and name.split(":")[0] == "date":
                raise FhirError(400, "not-supported", "date is supported on a search of measurements: add a code "
                                "naming a measure (e.g. http://loinc.org|29463-7)", name)
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
        return call.searchset(rtype, rows, total, params, count, offset)

    async def withdraw(call: Call, id: str) -> Response:
        return FhirResponse(await call.run(lambda ctx: service.withdraw(ctx, rtype, id)))

    async def dispute(call: Call, id: str) -> Response:
        body = await json_body(call.request, 64 * 1024)
        if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
            raise invalid("A Parameters resource is expected", "Parameters")
        text = parameters(body).get("text")  # a valid Parameters (a 422 otherwise), never a 500 on a stray shape
        if not isinstance(text, str):
            raise unprocessable("text (valueString) is required", "Parameters.parameter[text]", "required")
        return FhirResponse(await call.run(lambda ctx: service.dispute(ctx, rtype, id, text)))

    async def meta_add(call: Call, id: str) -> Response:
        return await _meta(call, rtype, id, True)

    async def meta_delete(call: Call, id: str) -> Response:
        return await _meta(call, rtype, id, False)

    return {"create": create, "read": read, "search": search, "withdraw": withdraw, "dispute": dispute,
            "meta-add": meta_add, "meta-delete": meta_delete}


def _mask_in(body: Any) -> None:
    """Check that a ``$meta-add``/``$meta-delete`` body names exactly the ``MASQUE_PS`` security label (the one meta
    change Carnet makes on an item); anything else is refused (422, naming the element), never silently ignored."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise invalid("A Parameters resource is expected", "Parameters")
    params = body.get("parameter")
    if not isinstance(params, list) or len(params) != 1 or not isinstance(params[0], dict) \
            or params[0].get("name") != "meta" or not isinstance(params[0].get("valueMeta"), dict):
        raise unprocessable("One parameter meta (valueMeta) is expected", "Parameters.parameter[meta]", "required")
    meta = params[0]["valueMeta"]
    where = "Parameters.parameter[meta].valueMeta"
    other = sorted(k for k in meta if k != "security")
    if other:
        raise unprocessable("Only meta.security (MASQUE_PS) may be changed on an item", f"{where}.{other[0]}",
                            "not-supported")
    security = meta.get("security")
    if not isinstance(security, list) or len(security) != 1 or not isinstance(security[0], dict) \
            or not hiding.is_mask(security[0]):
        raise unprocessable("meta.security must be the one coding MASQUE_PS of the French confidentiality code "
                            "system (TRE_A07)", f"{where}.security", "code-invalid")


async def _meta(call: Call, rtype: str, id: str, hidden: bool) -> Response:
    """``$meta-add`` / ``$meta-delete`` with the ``MASQUE_PS`` label: answers Parameters ``return`` (valueMeta), the
    item's meta after the change, as FHIR R4 defines the operations."""
    _mask_in(await json_body(call.request, 16 * 1024))
    _, served = await call.run(lambda ctx: hiding.set_hidden(ctx, rtype, id, hidden))
    meta = json.loads(served).get("meta") or {}
    return FhirResponse(json.dumps({"resourceType": "Parameters", "parameter": [{"name": "return", "valueMeta": meta}]},
                                   ensure_ascii=False, separators=(",", ":")))


async def patient_summary(call: Call, id: str) -> Response:
    """``$summary`` (IPS): the emergency summary as a document Bundle."""
    key = uuid_or_404(id)
    return FhirResponse(await call.run(lambda ctx: build_bundle(ctx, key)))


async def patient_summary_pdf(call: Call, id: str) -> Response:
    """``$summary-pdf``: the emergency summary as a one-page PDF."""
    key = uuid_or_404(id)
    view = await call.run(lambda ctx: summary_view(ctx, key))
    return Response(render_summary_pdf(view), media_type="application/pdf", headers={
        "Content-Disposition": 'inline; filename="patient-summary.pdf"', "Cache-Control": "no-store"})


def _routes() -> tuple[Route, ...]:
    """One route per interaction: five for each of the five types, then the two summary operations."""
    out: list[Route] = []
    for rtype in service.TYPES:
        h = _handlers(rtype)
        spec = "structured data (issue 3 §2)"
        out += [
            Route(rtype, "create", "POST", f"/fhir/{rtype}", h["create"], (rtype, "c"), spec=spec),
            Route(rtype, "read", "GET", f"/fhir/{rtype}/{{id}}", h["read"], (rtype, "r"), spec=spec),
            Route(rtype, "search-type", "GET", f"/fhir/{rtype}", h["search"], (rtype, "s"),
                  PARAMS + ((measurements.DATE,) if rtype == "Observation" else ()),
                  spec=spec + ("; measurements (issue 17): code naming a measure, date" if rtype == "Observation"
                               else "")),
            Route(rtype, "operation", "POST", f"/fhir/{rtype}/{{id}}/$entered-in-error", h["withdraw"], (rtype, "u"),
                  spec="the author withdraws their item", operation="entered-in-error"),
            Route(rtype, "operation", "POST", f"/fhir/{rtype}/{{id}}/$dispute", h["dispute"], (rtype, "u"),
                  spec="the patient disputes an item (a note)", operation="dispute"),
            Route(rtype, "operation", "POST", f"/fhir/{rtype}/{{id}}/$meta-add", h["meta-add"], (rtype, "u"),
                  spec="the patient hides the item from professionals (meta.security MASQUE_PS; FHIR R4 $meta-add)",
                  operation="meta-add"),
            Route(rtype, "operation", "POST", f"/fhir/{rtype}/{{id}}/$meta-delete", h["meta-delete"], (rtype, "u"),
                  spec="the patient shows a hidden item to professionals again (FHIR R4 $meta-delete)",
                  operation="meta-delete"),
        ]
    out += [
        Route("Patient", "operation", "GET", "/fhir/Patient/{id}/$summary", patient_summary, ("Patient", "r"),
              spec="International Patient Summary (https://hl7.org/fhir/uv/ips/)", operation="summary"),
        Route("Patient", "operation", "GET", "/fhir/Patient/{id}/$summary-pdf", patient_summary_pdf,
              ("Patient", "r"), spec="the emergency summary as a one-page PDF", operation="summary-pdf",
              produces="application/pdf"),
    ]
    return tuple(out)


ROUTES: tuple[Route, ...] = _routes()
