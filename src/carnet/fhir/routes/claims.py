"""ExplanationOfBenefit: Assurance Maladie's care history (issue 3 §5), read-only."""

from __future__ import annotations

from starlette.responses import Response

from carnet.context import Context
from carnet.errors import FhirError
from carnet.fhir.routes.base import Call, Route
from carnet.fhir.transaction import resolve_patient


async def eob_search(call: Call) -> Response:
    from carnet.claims import fhir as claims_fhir
    from carnet.claims import service as claims

    params = call.params()
    count, offset = call.page()
    for name, _ in params:
        if name not in ("patient", "_count", "_offset", "_format"):
            raise FhirError(400, "not-supported", "Unknown search parameter", name)
    ref = dict(params).get("patient")
    if not ref:
        raise FhirError(400, "required", "ExplanationOfBenefit search requires patient", "patient")
    ref = ref if "/" in ref else f"Patient/{ref}"

    def work(ctx: Context) -> tuple[list[str], int]:
        key = resolve_patient(ctx, ref, {}, call.base, "patient")
        views, total = claims.search(ctx, key, count, offset)
        return [claims_fhir.eob_json(v, key) for v in views], total

    rows, total = await call.run(work)
    return call.searchset("ExplanationOfBenefit", rows, total, params, count, offset)


ROUTES: tuple[Route, ...] = (
    Route("ExplanationOfBenefit", "search-type", "GET", "/fhir/ExplanationOfBenefit", eob_search,
          ("ExplanationOfBenefit", "s"), (("patient", "reference"),), spec="Assurance Maladie care history"),
)
