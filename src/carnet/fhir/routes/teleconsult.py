"""Teleconsultations (issue 12 §1, docs/TELECONSULTATION.md) as FHIR: ``Appointment`` (the booking) and
``Encounter`` of class ``VR`` (the visit), read by id and searched by patient. Booking is done in the clinician
portal (the visit needs a signed-in professional to join it); the API reads."""

from __future__ import annotations

from starlette.responses import Response

from carnet.context import Context
from carnet.errors import FhirError
from carnet.fhir.http import FhirResponse
from carnet.fhir.routes.base import Call, Route
from carnet.fhir.transaction import resolve_patient


def _read(resource_type: str):  # noqa: ANN202 - a handler factory
    async def read(call: Call, id: str) -> Response:
        from carnet import teleconsult

        body = await call.run(lambda ctx: teleconsult.read_resource(ctx, resource_type, id))
        return FhirResponse(body)
    return read


def _search(resource_type: str):  # noqa: ANN202 - a handler factory
    async def search(call: Call) -> Response:
        from carnet import teleconsult

        params = call.params()
        count, offset = call.page()
        ref = dict(params).get("patient")
        if not ref:
            raise FhirError(400, "required", f"{resource_type} search requires patient", "patient")
        ref = ref if "/" in ref else f"Patient/{ref}"

        def work(ctx: Context) -> list[str]:
            key = resolve_patient(ctx, ref, {}, call.base, "patient")
            return teleconsult.search_resources(ctx, resource_type, key)

        rows = await call.run(work)
        return call.searchset(resource_type, rows[offset:offset + count], len(rows), params, count, offset)
    return search


ROUTES: tuple[Route, ...] = tuple(
    route for rtype in ("Appointment", "Encounter") for route in (
        Route(rtype, "read", "GET", f"/fhir/{rtype}/{{id}}", _read(rtype), (rtype, "r"),
              spec="Teleconsultation (issue 12 §1)"),
        Route(rtype, "search-type", "GET", f"/fhir/{rtype}", _search(rtype), (rtype, "s"),
              (("patient", "reference"),), spec="Teleconsultation (issue 12 §1)")))
