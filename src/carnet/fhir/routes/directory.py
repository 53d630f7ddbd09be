"""Practitioner and PractitionerRole: the professionals' directory, read-only (:mod:`carnet.directory`)."""

from __future__ import annotations

from starlette.responses import Response

from carnet import directory
from carnet.fhir.http import FhirResponse
from carnet.fhir.routes.base import Call, Route


async def practitioner_read(call: Call, id: str) -> Response:
    return FhirResponse(await call.run(lambda ctx: directory.read(ctx, id, "Practitioner")))


async def practitioner_role_read(call: Call, id: str) -> Response:
    return FhirResponse(await call.run(lambda ctx: directory.read(ctx, id, "PractitionerRole")))


async def practitioner_search(call: Call) -> Response:
    params = call.params()
    count, offset = call.page()
    rows = await call.run(lambda ctx: directory.search(ctx, params, "Practitioner"))
    return call.searchset("Practitioner", rows[offset:offset + count], len(rows), params, count, offset)


async def practitioner_role_search(call: Call) -> Response:
    params = call.params()
    count, offset = call.page()
    rows = await call.run(lambda ctx: directory.search(ctx, params, "PractitionerRole"))
    return call.searchset("PractitionerRole", rows[offset:offset + count], len(rows), params, count, offset)


ROUTES: tuple[Route, ...] = (
    Route("Practitioner", "read", "GET", "/fhir/Practitioner/{id}", practitioner_read, ("Practitioner", "r")),
    Route("Practitioner", "search-type", "GET", "/fhir/Practitioner", practitioner_search, ("Practitioner", "s"),
          (("identifier", "token"), ("family", "string"), ("given", "string"), ("name", "string"))),
    Route("PractitionerRole", "read", "GET", "/fhir/PractitionerRole/{id}", practitioner_role_read,
          ("PractitionerRole", "r")),
    Route("PractitionerRole", "search-type", "GET", "/fhir/PractitionerRole", practitioner_role_search,
          ("PractitionerRole", "s"), (("practitioner", "reference"), ("organization", "reference"))),
)
