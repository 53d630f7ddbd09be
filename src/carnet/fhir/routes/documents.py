"""Documents: IHE MHD Document Recipient (ITI-65 transaction, ITI-105 Simplified Publish) and Document Responder
(ITI-67 DocumentReference search and read, ITI-68 Binary, ITI-66 List), ANS PDSm PATCH, the patient's deletion.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from carnet import directory
from carnet.auth.scopes import scope_allows
from carnet.context import Context
from carnet.documents import service as documents
from carnet.documents.metadata import read_metadata
from carnet.documents.search_params import document_conditions
from carnet.documents.submission_sets import implicit_submission_set, list_conditions
from carnet.documents.validate import validate
from carnet.dossier import service as dossiers
from carnet.errors import FhirError, invalid, unprocessable
from carnet.fhir.http import FHIR_JSON, FhirResponse, json_body
from carnet.fhir.patch import parse as patch_plan
from carnet.fhir.routes.base import Call, Route, created
from carnet.fhir.transaction import provide_bundle, resolve_patient
from carnet.ids import SYSTEM_CHAIN, new_id
from carnet.measures import phd


async def transaction(call: Call) -> Response:
    body = await json_body(call.request, call.services.settings.max_document_bytes * 4 // 3 * 10 + 1024 * 1024)
    if not isinstance(body, dict):
        raise invalid("A Bundle is expected", "Bundle")
    if body.get("resourceType") == "Bundle" and phd.is_measures_bundle(body):
        return await measure_upload(call, body)
    if not scope_allows(call.scopes, "DocumentReference", "c"):
        raise FhirError(403, "forbidden", "The access token's scopes do not cover this interaction",
                        headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'})
    result = await call.run(lambda ctx: provide_bundle(ctx, body), caller_with_dossier=True)
    return FhirResponse(result, 200)


async def measure_upload(call: Call, body: dict[str, Any]) -> Response:
    """A Personal Health Device upload (HL7 PHD IG 2.0.0): Devices and Observations of the token's patient, stored
    by :mod:`carnet.measures.phd` (all or nothing); the transaction-response Bundle."""
    if body.get("type") != "transaction":
        raise invalid("A measurements upload is a Bundle of type transaction", "Bundle.type")

    def work(ctx: Context) -> dict[str, Any]:
        key = phd_patient(ctx)
        return phd.upload(ctx, key, body, call.scopes, call.claims.client_id, call.base,
                          lambda rtype: scope_allows(call.scopes, rtype, "c"))

    return FhirResponse(await call.run(work), 200)


def phd_patient(ctx: Context) -> uuid.UUID:
    """The dossier of the patient the token was granted for (a patient, or the person a representative acts for)."""
    ins = ctx.actor.acting_for or ctx.actor.id
    key = dossiers.lookup(ctx, ins) if ins and ctx.actor.kind.value in ("patient", "representative") else None
    if key is None:
        raise FhirError(403, "forbidden", "Measurements are uploaded with a patient's token (SMART patient scopes "
                        "patient/Observation.c and patient/Device.c)")
    return key


def _patient_key(ctx: Context, call: Call, params: list[tuple[str, str]]) -> uuid.UUID | None:
    q = {k: v for k, v in params}
    if "patient" in q or "subject" in q:
        ref = q.get("patient") or q.get("subject") or ""
        ref = ref if "/" in ref else f"Patient/{ref}"
        return resolve_patient(ctx, ref, {}, call.base, "patient")
    if "patient.identifier" in q:
        system, _, value = q["patient.identifier"].partition("|")
        key = dossiers.lookup(ctx, dossiers.ins_value(system, value, "patient.identifier"))
        if key is None:
            ctx.audit(SYSTEM_CHAIN, "E", "ITI-67", detail={"query": "patient.identifier", "returned": 0})
        return key
    raise FhirError(400, "required", "ITI-67 requires patient or patient.identifier", "patient")


async def _document_search(call: Call, params: list[tuple[str, str]]) -> Response:
    count, offset = call.page(params)
    conds = document_conditions(params)
    sort = dict(params).get("_sort", "-date")
    if sort not in ("-date", "date"):
        raise FhirError(400, "not-supported", "Only _sort=date and _sort=-date are supported", "_sort")
    text = "&".join(sorted({k for k, _ in params}))

    _check_include_scopes(call)
    # _total=none: the searchset shows no total, so none is counted (the page says whether another follows)
    counted = call.modes.get("_total") != "none" or call.modes.get("_summary") == "count"

    def work(ctx: Context) -> tuple[list[str], int, list[tuple[str, str]]]:
        key = _patient_key(ctx, call, params)
        if key is None:
            return [], 0, []
        q = documents.DocumentQuery(key, conds, count, offset, sort_desc=sort == "-date", total=counted)
        rows, total = documents.search(ctx, q, "ITI-67", text)
        return rows, total, _included(ctx, call, key, rows)

    rows, total, included = await call.run(work, caller_with_dossier=True)
    return call.searchset("DocumentReference", rows, total, params, count, offset, included)


#: ``_include`` on ITI-67 (FHIR R4 §3.1.1.5.4): the dossier's Patient, and the authors found in the directory.
INCLUDES = ("DocumentReference:subject", "DocumentReference:patient", "DocumentReference:author")


def _check_include_scopes(call: Call) -> None:
    """An included resource is read like any other: the token's scopes must allow reading its type (403 naming
    ``_include`` otherwise), before anything is searched."""
    needed = {"Patient"} if {"DocumentReference:subject", "DocumentReference:patient"} & set(call.include) else set()
    if "DocumentReference:author" in call.include:
        needed |= {"Practitioner", "PractitionerRole"}
    for rtype in sorted(needed):
        if not scope_allows(call.scopes, rtype, "r"):
            raise FhirError(403, "forbidden", f"The access token's scopes do not allow reading {rtype}: it cannot "
                            "be included", "_include")


def _included(ctx: Context, call: Call, key: uuid.UUID, rows: list[str]) -> list[tuple[str, str]]:
    """The resources ``_include`` asks for, each read through its own door in the search's transaction: the Patient
    through the dossier service (the policy decides and the read is audited, as ``GET /Patient/{id}``), authors
    from the directory (reference data). Authors that are contained, or not in the directory, are not added."""
    if not rows or not call.include:
        return []
    out: list[tuple[str, str]] = []
    if {"DocumentReference:subject", "DocumentReference:patient"} & set(call.include):
        out.append(("Patient", dossiers.read(ctx, key)))
    if "DocumentReference:author" in call.include:
        seen: set[tuple[str, str]] = set()
        for text in rows:
            for a in json.loads(text).get("author") or []:
                ref = str((a or {}).get("reference") or "").removeprefix(call.base + "/")
                rtype, _, rid = ref.partition("/")
                if rtype in ("Practitioner", "PractitionerRole") and rid and (rtype, rid) not in seen:
                    seen.add((rtype, rid))
                    try:
                        out.append((rtype, directory.read(ctx, rid, rtype)))
                    except FhirError as exc:
                        if exc.status != 404:
                            raise
    return out


async def docref_search(call: Call) -> Response:
    return await _document_search(call, call.params())


async def docref_search_post(call: Call) -> Response:
    form = await call.request.form()
    raw = [(k, str(v)) for k, v in form.multi_items()] + list(call.request.query_params.multi_items())
    return await _document_search(call, call.params(raw))


async def docref_read(call: Call, id: str) -> Response:
    text = await call.run(lambda ctx: documents.read(ctx, id), caller_with_dossier=True)
    version = json.loads(text)["meta"]["versionId"]
    return FhirResponse(text, headers={"ETag": f'W/"{version}"'})


async def docref_create(call: Call) -> Response:
    """ITI-105 Simplified Publish: a DocumentReference with its content inline (``attachment.data``)."""
    body = await json_body(call.request, call.services.settings.max_document_bytes * 4 // 3 + 1024 * 1024)
    validate(body, "DocumentReference")
    meta = read_metadata(body)
    att = body["content"][0]["attachment"]
    if not att.get("data"):
        raise unprocessable("ITI-105 carries the document in attachment.data",
                            "DocumentReference.content[0].attachment.data", "required")
    try:
        data = decode_base64(att["data"])
    except (binascii.Error, ValueError, TypeError):
        raise unprocessable("attachment.data is not valid base64",
                            "DocumentReference.content[0].attachment.data") from None
    del att["data"]  # decoded: the text (a third larger) need not stay in memory beside the bytes
    content = documents.Content(data, att.get("contentType") or "")

    def work(ctx: Context) -> documents.Published:
        key = resolve_patient(ctx, (body.get("subject") or {}).get("reference"), {}, call.base,
                              "DocumentReference.subject")
        list_id = new_id()
        pub = documents.publish(ctx, key, body, content, "ITI-105", submission_set_id=list_id, meta=meta,
                                locate=(list_id,))
        implicit_submission_set(ctx, key, pub.document_id, list_id, located=True)
        return pub

    pub = await call.run(work, caller_with_dossier=True)
    return created(pub.resource, f"{call.base}/DocumentReference/{pub.document_id}/_history/1")


async def docref_patch(call: Call, id: str) -> Response:
    """PDSm TD3.2/TD3.3: JSON Patch (or FHIRPath Patch Parameters) of ``status`` and ``securityLabel`` only."""
    body = await json_body(call.request, 1024 * 1024)
    plan = patch_plan(body)
    return FhirResponse(await call.run(lambda ctx: documents.patch(ctx, id, plan)))


async def docref_delete(call: Call, id: str) -> Response:
    """The patient deletes a document from the dossier (the audit keeps the trace)."""
    await call.run(lambda ctx: documents.delete_from_dossier(ctx, id))
    return Response(status_code=204)


DECODE_CHUNK = 4 * 1024 * 1024  # characters of base64 decoded at a time (a multiple of 4)


def decode_base64(text: str) -> bytes | bytearray:
    """Strict base64 (as ``b64decode(validate=True)``), decoded in slices into one buffer: a large document is never
    held as its text, an ASCII copy of it and its bytes at once."""
    if not isinstance(text, str):
        raise TypeError("base64 text expected")
    if len(text) <= DECODE_CHUNK:
        return base64.b64decode(text, validate=True)
    if len(text) % 4:
        raise binascii.Error("base64 text of a length that is not a multiple of 4")
    out = bytearray(len(text) // 4 * 3 - (2 if text.endswith("==") else 1 if text.endswith("=") else 0))
    view, at = memoryview(out), 0
    for start in range(0, len(text), DECODE_CHUNK):
        part = binascii.a2b_base64(text[start:start + DECODE_CHUNK].encode("ascii"), strict_mode=True)
        if start + DECODE_CHUNK < len(text) and len(part) != DECODE_CHUNK // 4 * 3:
            raise binascii.Error("padding inside base64 text")
        view[at:at + len(part)] = part
        at += len(part)
    if at != len(out):
        raise binascii.Error("base64 text of an unexpected length")
    return out


STREAM_ABOVE = 4 * 1024 * 1024  # ITI-68 streams a document larger than this (4 MiB) instead of opening it whole


async def binary_read(call: Call, id: str) -> Response:
    """ITI-68: the exact bytes with their Content-Type; a Binary resource if the client asks for FHIR JSON."""
    accept = call.request.headers.get("accept", "")
    as_fhir = FHIR_JSON in accept or "application/json" in accept.split(",")[0]
    if as_fhir:  # base64 inside JSON: the whole document in any case
        data, ctype, row = await call.run(lambda ctx: documents.retrieve(ctx, id), caller_with_dossier=True)
    else:
        data, ctype, row = await call.run(lambda ctx: documents.retrieve_or_stream(ctx, id, STREAM_ABOVE),
                                          caller_with_dossier=True)
    headers = {"ETag": f'"{row.sha256}"', "Content-Disposition": "inline", "Cache-Control": "no-store"}
    if data is None:  # a large document: decided and audited above, streamed now, never whole in memory
        body = await run_in_threadpool(documents.content_stream, call.services, row)
        return StreamingResponse(body, media_type=ctype, headers={**headers, "Content-Length": str(row.size)})
    if as_fhir:
        return FhirResponse({"resourceType": "Binary", "id": id, "contentType": ctype,
                             "data": base64.b64encode(data).decode()})
    return Response(data, media_type=ctype, headers=headers)


async def list_search(call: Call) -> Response:
    params = call.params()  # only the parameters of LIST_PARAMS (the route's), :meth:`Call.params`
    count, offset = call.page()
    conds = list_conditions(params)
    text = "&".join(sorted(k for k, _ in params))

    def work(ctx: Context) -> tuple[list[str], int]:
        key = _patient_key(ctx, call, params)
        if key is None:
            return [], 0
        return documents.search_lists(ctx, key, conds, count, offset, text)

    rows, total = await call.run(work)
    return call.searchset("List", rows, total, params, count, offset)


DOCREF_PARAMS = (
    ("patient", "reference"), ("subject", "reference"), ("patient.identifier", "token"), ("status", "token"),
    ("_id", "token"),
    ("_lastUpdated", "date"), ("author.given", "string"), ("author.family", "string"), ("category", "token"),
    ("creation", "date"), ("date", "date"), ("event", "token"), ("facility", "token"), ("format", "token"),
    ("identifier", "token"), ("period", "date"), ("related", "reference"), ("security-label", "token"),
    ("setting", "token"), ("type", "token"),
)


#: ITI-66 (MHD 4.2 §2:3.66.4.1.2.1): the SubmissionSets and folders of a patient.
LIST_PARAMS = (
    ("patient", "reference"), ("patient.identifier", "token"), ("subject", "reference"), ("code", "token"),
    ("status", "token"), ("identifier", "token"), ("designationType", "token"), ("sourceId", "token"),
    ("date", "date"),
)


ROUTES: tuple[Route, ...] = (
    # the scope depends on the Bundle (documents: DocumentReference.c; a PHD upload: Observation.c, Device.c): checked
    # by the handler
    Route(None, "transaction", "POST", "/fhir", transaction, None, spec="IHE ITI-65; HL7 PHD IG 2.0.0"),
    Route("DocumentReference", "search-type", "GET", "/fhir/DocumentReference", docref_search,
          ("DocumentReference", "s"), DOCREF_PARAMS, spec="IHE ITI-67", accepts=("_sort",), includes=INCLUDES),
    Route("DocumentReference", "search-type", "POST", "/fhir/DocumentReference/_search", docref_search_post,
          ("DocumentReference", "s"), DOCREF_PARAMS, spec="IHE ITI-67", accepts=("_sort",), includes=INCLUDES),
    Route("DocumentReference", "read", "GET", "/fhir/DocumentReference/{id}", docref_read,
          ("DocumentReference", "r"), spec="IHE ITI-67"),
    Route("DocumentReference", "create", "POST", "/fhir/DocumentReference", docref_create,
          ("DocumentReference", "c"), spec="IHE ITI-105"),
    Route("DocumentReference", "patch", "PATCH", "/fhir/DocumentReference/{id}", docref_patch,
          ("DocumentReference", "u"), spec="ANS PDSm TD3.2/TD3.3"),
    Route("DocumentReference", "delete", "DELETE", "/fhir/DocumentReference/{id}", docref_delete,
          ("DocumentReference", "d"), spec="the patient deletes a document from the dossier"),
    Route("Binary", "read", "GET", "/fhir/Binary/{id}", binary_read, ("Binary", "r"), spec="IHE ITI-68",
          produces="*/*"),
    Route("List", "search-type", "GET", "/fhir/List", list_search, ("List", "s"), LIST_PARAMS, spec="IHE ITI-66"),
)
