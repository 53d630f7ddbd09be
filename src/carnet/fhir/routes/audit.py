"""AuditEvent (IHE BALP): the dossier's access history."""

from __future__ import annotations

from starlette.responses import Response

from carnet.context import Context
from carnet.errors import FhirError
from carnet.fhir.routes.base import Call, Route
from carnet.fhir.transaction import resolve_patient
from carnet.history import audit_events as audit_fhir


async def audit_search(call: Call) -> Response:
    params = call.params()
    count, offset = call.page()
    conds = audit_fhir.search_conditions(params)
    q = dict(params)
    if "patient" not in q:
        raise FhirError(400, "required", "AuditEvent search requires patient", "patient")

    def work(ctx: Context) -> tuple[list[str], int]:
        ref = q["patient"] if "/" in q["patient"] else f"Patient/{q['patient']}"
        key = resolve_patient(ctx, ref, {}, call.base, "patient")
        return audit_fhir.search(ctx, key, count, offset, call.base, conds)

    rows, total = await call.run(work)
    return call.searchset("AuditEvent", rows, total, params, count, offset)


ROUTES: tuple[Route, ...] = (
    Route("AuditEvent", "search-type", "GET", "/fhir/AuditEvent", audit_search, ("AuditEvent", "s"),
          (("patient", "reference"), ("date", "date"), ("entity", "reference")), spec="IHE BALP"),
)
