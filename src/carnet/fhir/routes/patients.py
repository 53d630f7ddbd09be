"""Patient: PDQm Patient Demographics Supplier (ITI-78, DMP TD0.2), the dossier's creation, and its life:
``$close``, ``$reopen``, the complete copy (``$copy``), the objection to a dossier's creation (``$object-creation``).
"""

from __future__ import annotations

import uuid

from starlette.responses import Response

from carnet.context import Context
from carnet.documents.validate import validate
from carnet.dossier import service as dossiers
from carnet.errors import FhirError, invalid, unprocessable
from carnet.fhir.http import FhirResponse, json_body
from carnet.fhir.routes.base import Call, Route, created, parameters, uuid_or_404
from carnet.ids import SYSTEM_CHAIN


async def patient_create(call: Call) -> Response:
    body = await json_body(call.request, 1024 * 1024)
    validate(body, "Patient")
    key, served = await call.run(lambda ctx: dossiers.create(ctx, body))
    return created(served, f"{call.base}/Patient/{key}/_history/1")


async def patient_read(call: Call, id: str) -> Response:
    key = uuid_or_404(id)
    return FhirResponse(await call.run(lambda ctx: dossiers.read(ctx, key)))


async def patient_search(call: Call) -> Response:
    params = call.params()
    count, offset = call.page()
    known = {"identifier", "family", "given", "birthdate", "gender", "_id", "_count", "_offset", "_format"}
    for name, _ in params:
        if name.split(":")[0] not in known:
            raise FhirError(400, "not-supported", "Unknown search parameter", name)
    q = dict((k.split(":")[0], v) for k, v in params)
    exact = any(k.endswith(":exact") for k, _ in params)
    text = "&".join(sorted(k for k, _ in params))
    if "identifier" in q:
        system, _, value = q["identifier"].partition("|")
        if not value:
            raise invalid("identifier must be system|value", "identifier")
        found = await call.run(lambda ctx: dossiers.check_by_ins(ctx, system, value, text))
    elif "_id" in q:
        key = uuid_or_404(q["_id"])
        found = await call.run(lambda ctx: _read_or_empty(ctx, key))
    else:
        import datetime as dt

        birth = None
        if "birthdate" in q:
            try:
                birth = dt.date.fromisoformat(q["birthdate"].removeprefix("eq"))
            except ValueError:
                raise invalid("birthdate must be a full date", "birthdate") from None
        found = await call.run(lambda ctx: dossiers.search_demographics(
            ctx, q.get("family"), q.get("given"), birth, q.get("gender"), exact,
            offset + (count or call.services.settings.max_page_size), text))  # _summary=count: a page's worth
    page = found[offset:offset + count]
    return call.searchset("Patient", page, len(found), params, count, offset)


def _read_or_empty(ctx: Context, key: uuid.UUID) -> list[str]:
    try:
        return [dossiers.read(ctx, key)]
    except FhirError as exc:
        if exc.status in (403, 404):
            ctx.refusals.clear()
            ctx.audit(SYSTEM_CHAIN, "E", "ITI-78", detail={"query": "_id", "returned": 0})
            return []
        raise


async def patient_close(call: Call, id: str) -> Response:
    """``$close``: by the patient (reason ``patient``), or at death (reason ``death``, Assurance Maladie)."""
    import datetime as dt

    key = uuid_or_404(id)
    params = parameters(await json_body(call.request, 64 * 1024))
    reason = params.get("reason") or "patient"
    if reason not in ("patient", "death"):
        raise unprocessable("reason must be patient or death", "Parameters.parameter[reason]")
    death = None
    if params.get("deathDate"):
        try:
            death = dt.date.fromisoformat(str(params["deathDate"]))
        except ValueError:
            raise unprocessable("deathDate must be a date", "Parameters.parameter[deathDate]") from None
    await call.run(lambda ctx: dossiers.close(ctx, key, reason, death))
    return FhirResponse(await call.run(lambda ctx: dossiers.read(ctx, key)) if reason == "patient" else
                        {"resourceType": "OperationOutcome", "issue": [
                            {"severity": "information", "code": "informational", "diagnostics": "Dossier closed"}]})


async def patient_reopen(call: Call, id: str) -> Response:
    key = uuid_or_404(id)
    await call.run(lambda ctx: dossiers.reopen(ctx, key))
    return FhirResponse(await call.run(lambda ctx: dossiers.read(ctx, key)))


async def patient_copy(call: Call, id: str) -> Response:
    """``$copy``: the complete copy of the dossier as one zip (issue 4 §2, see :mod:`carnet.export.copy`), written to
    a spooled temporary file (in memory up to 8 MiB, then on disk) and streamed from it."""
    import tempfile
    from collections.abc import Iterator

    from starlette.responses import StreamingResponse

    from carnet.export.copy import build_copy

    key = uuid_or_404(id)
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
    try:
        summary = await call.run(lambda ctx: build_copy(ctx, key, spool))
        size = spool.tell()
        spool.seek(0)
    except BaseException:
        spool.close()
        raise

    def chunks() -> Iterator[bytes]:
        try:
            while block := spool.read(64 * 1024):
                yield block
        finally:
            spool.close()

    return StreamingResponse(chunks(), media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{summary.filename}"', "Content-Length": str(size),
        "Cache-Control": "no-store"})


async def patient_objection(call: Call) -> Response:
    """``$object-creation``: the person objects to the creation of a dossier (before one exists)."""
    params = parameters(await json_body(call.request, 64 * 1024))
    ident = params.get("identifier") or {}
    if not isinstance(ident, dict) or not ident.get("system") or not ident.get("value"):
        raise unprocessable("identifier (INS) is required", "Parameters.parameter[identifier]", "required")
    await call.run(lambda ctx: dossiers.record_objection(ctx, ident["system"], ident["value"]))
    return FhirResponse({"resourceType": "OperationOutcome", "issue": [
        {"severity": "information", "code": "informational", "diagnostics": "Objection recorded"}]}, 201)


PATIENT_PARAMS = (("identifier", "token"), ("family", "string"), ("given", "string"), ("birthdate", "date"),
                  ("gender", "token"), ("_id", "token"))


ROUTES: tuple[Route, ...] = (
    Route("Patient", "create", "POST", "/fhir/Patient", patient_create, ("Patient", "c"),
          spec="dossier creation (DMP TD1.1)"),
    Route("Patient", "read", "GET", "/fhir/Patient/{id}", patient_read, ("Patient", "r"), spec="IHE ITI-78"),
    Route("Patient", "search-type", "GET", "/fhir/Patient", patient_search, ("Patient", "s"), PATIENT_PARAMS,
          spec="IHE ITI-78, DMP TD0.2"),
    Route("Patient", "operation", "POST", "/fhir/Patient/{id}/$close", patient_close, ("Patient", "u"),
          spec="close the dossier (by the patient, or at death)", operation="close"),
    Route("Patient", "operation", "POST", "/fhir/Patient/{id}/$reopen", patient_reopen, ("Patient", "u"),
          spec="reopen within retention", operation="reopen"),
    Route("Patient", "operation", "GET", "/fhir/Patient/{id}/$copy", patient_copy, ("Patient", "r"),
          spec="the patient's complete copy of the dossier (zip: PDF booklet, FHIR Bundle, documents)",
          operation="copy", produces="application/zip"),
    Route("Patient", "operation", "POST", "/fhir/Patient/$object-creation", patient_objection, ("Patient", "c"),
          spec="objection to the creation of a dossier", operation="object-creation",
          statuses=(201,)),
)
