"""The FHIR R4 API at ``/fhir``: a table of routes, each naming the FHIR interaction it implements.

IHE MHD 4.2 Document Recipient (ITI-65, ITI-105) and Document Responder (ITI-66, ITI-67, ITI-68), PDQm Patient
Demographics Supplier (ITI-78), AuditEvent (BALP) for the access history, Consent for authorizations, and the
directory's Practitioner/PractitionerRole. The CapabilityStatement is generated from :data:`ROUTES`, so it lists
exactly what exists. Handlers never decide access: they parse, call a service with the caller's context, and shape
the answer.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from carnet.auth.tokens import AssertionClaims
from carnet.auth.web import resolve_actor
from carnet.clinical import api as clinical_api
from carnet.context import Context, Services, run
from carnet.documents import service as documents
from carnet.documents.metadata import read_metadata
from carnet.dossier import service as dossiers
from carnet.errors import FhirError, invalid, not_found, unprocessable
from carnet.fhir import directory
from carnet.fhir.http import FHIR_JSON, FhirResponse, json_body, searchset
from carnet.fhir.patch import parse as patch_plan
from carnet.fhir.search import document_conditions
from carnet.fhir.transaction import implicit_submission_set, provide_bundle, resolve_patient
from carnet.fhir.validate import validate
from carnet.history import audit_events as audit_fhir
from carnet.ids import SYSTEM_CHAIN, new_id
from carnet.tasks import fhir as task_fhir
from carnet.tasks import service as tasks

Handler = Callable[..., Awaitable[Response]]


@dataclass(frozen=True)
class Route:
    resource: str | None  # None: a whole-system interaction
    interaction: str  # FHIR: read, search-type, create, patch, transaction; or "operation"
    method: str
    path: str
    handler: Handler
    scope: tuple[str, str] | None  # (resource type, SMART permission letter) checked before the handler
    search_params: tuple[tuple[str, str], ...] = ()
    spec: str = ""  # the transaction or section implemented
    operation: str | None = None  # for interaction "operation": its name, e.g. "close"


@dataclass
class Call:
    request: Request
    services: Services
    claims: AssertionClaims  # who the token says is calling; resolved to an Actor inside each transaction

    @property
    def base(self) -> str:
        return f"{self.services.settings.base_url}/fhir"

    def run(self, work: Callable[[Context], Any]) -> Awaitable[Any]:
        claims = self.claims
        return run_in_threadpool(run, self.services, lambda conn: resolve_actor(conn, claims), work)

    def params(self) -> list[tuple[str, str]]:
        return list(self.request.query_params.multi_items())

    def page(self, params: list[tuple[str, str]] | None = None) -> tuple[int, int]:
        s = self.services.settings
        q = dict(params) if params is not None else self.request.query_params
        try:
            count = int(q.get("_count", s.page_size))
            offset = int(q.get("_offset", 0))
        except ValueError:
            raise invalid("_count and _offset must be integers", "_count") from None
        if count < 0 or offset < 0:
            raise invalid("_count and _offset must not be negative", "_count")
        return min(count, s.max_page_size), offset


def _created(body: str, location: str, version: int = 1) -> FhirResponse:
    return FhirResponse(body, 201, headers={"Location": location, "ETag": f'W/"{version}"'})


# --- Patient (PDQm ITI-78, TD0.2, creation) ---------------------------------------------------------------------

async def patient_create(call: Call) -> Response:
    body = await json_body(call.request, 1024 * 1024)
    validate(body, "Patient")
    key, served = await call.run(lambda ctx: dossiers.create(ctx, body))
    return _created(served, f"{call.base}/Patient/{key}/_history/1")


async def patient_read(call: Call, id: str) -> Response:
    key = _uuid(id)
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
        key = _uuid(q["_id"])
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
            ctx, q.get("family"), q.get("given"), birth, q.get("gender"), exact, offset + count, text))
    page = found[offset:offset + count]
    return FhirResponse(searchset(call.base, "Patient", page, len(found), params, count, offset))


def _read_or_empty(ctx: Context, key: uuid.UUID) -> list[str]:
    try:
        return [dossiers.read(ctx, key)]
    except FhirError as exc:
        if exc.status in (403, 404):
            ctx.refusals.clear()
            ctx.audit(SYSTEM_CHAIN, "E", "ITI-78", detail={"query": "_id", "returned": 0})
            return []
        raise


# --- DocumentReference (ITI-67, ITI-105, read, PATCH), Binary (ITI-68), List (ITI-66) ----------------------------

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

    def work(ctx: Context) -> tuple[list[str], int]:
        key = _patient_key(ctx, call, params)
        if key is None:
            return [], 0
        q = documents.DocumentQuery(key, conds, count, offset, sort_desc=sort == "-date")
        return documents.search(ctx, q, "ITI-67", text)

    rows, total = await call.run(work)
    return FhirResponse(searchset(call.base, "DocumentReference", rows, total, params, count, offset))


async def docref_search(call: Call) -> Response:
    return await _document_search(call, call.params())


async def docref_search_post(call: Call) -> Response:
    form = await call.request.form()
    params = [(k, str(v)) for k, v in form.multi_items()] + call.params()
    return await _document_search(call, params)


async def docref_read(call: Call, id: str) -> Response:
    text = await call.run(lambda ctx: documents.read(ctx, id))
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
        data = base64.b64decode(att["data"], validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise unprocessable("attachment.data is not valid base64",
                            "DocumentReference.content[0].attachment.data") from None
    content = documents.Content(data, att.get("contentType") or "")

    def work(ctx: Context) -> documents.Published:
        key = resolve_patient(ctx, (body.get("subject") or {}).get("reference"), {}, call.base,
                              "DocumentReference.subject")
        list_id = new_id()
        pub = documents.publish(ctx, key, body, content, "ITI-105", submission_set_id=list_id, meta=meta)
        implicit_submission_set(ctx, key, pub.document_id, list_id)
        return pub

    pub = await call.run(work)
    return _created(pub.resource, f"{call.base}/DocumentReference/{pub.document_id}/_history/1")


async def docref_patch(call: Call, id: str) -> Response:
    """PDSm TD3.2/TD3.3: JSON Patch (or FHIRPath Patch Parameters) of ``status`` and ``securityLabel`` only."""
    body = await json_body(call.request, 1024 * 1024)
    plan = patch_plan(body)
    return FhirResponse(await call.run(lambda ctx: documents.patch(ctx, id, plan)))


async def docref_delete(call: Call, id: str) -> Response:
    """The patient deletes a document from the dossier (the audit keeps the trace)."""
    await call.run(lambda ctx: documents.delete_from_dossier(ctx, id))
    return Response(status_code=204)


async def binary_read(call: Call, id: str) -> Response:
    """ITI-68: the exact bytes with their Content-Type; a Binary resource if the client asks for FHIR JSON."""
    data, ctype, row = await call.run(lambda ctx: documents.retrieve(ctx, id))
    accept = call.request.headers.get("accept", "")
    if FHIR_JSON in accept or "application/json" in accept.split(",")[0]:
        return FhirResponse({"resourceType": "Binary", "id": id, "contentType": ctype,
                             "data": base64.b64encode(data).decode()})
    return Response(data, media_type=ctype, headers={"ETag": f'"{row.sha256}"',
                                                     "Content-Disposition": "inline",
                                                     "Cache-Control": "no-store"})


async def list_search(call: Call) -> Response:
    params = call.params()
    count, offset = call.page()
    known = {"patient", "patient.identifier", "subject", "code", "status", "_count", "_offset", "_format",
             "designationType", "source.identifier", "sourceId", "identifier", "date"}
    for name, _ in params:
        if name.split(":")[0] not in known:
            raise FhirError(400, "not-supported", "Unknown search parameter", name)
    from carnet.db.tables import submission_set as ss

    conds: list[Any] = []
    q = dict(params)
    if "code" in q:
        conds.append(ss.c.code.in_([v.split("|")[-1] for v in q["code"].split(",")]))
    if "status" in q:
        conds.append(ss.c.status.in_(q["status"].split(",")))
    text = "&".join(sorted(k for k, _ in params))

    def work(ctx: Context) -> tuple[list[str], int]:
        key = _patient_key(ctx, call, params)
        if key is None:
            return [], 0
        return documents.search_lists(ctx, key, conds, count, offset, text)

    rows, total = await call.run(work)
    return FhirResponse(searchset(call.base, "List", rows, total, params, count, offset))


# --- Consent (authorizations, blocks, objections, médecin traitant) -----------------------------------------------

async def consent_create(call: Call) -> Response:
    body = await json_body(call.request, 256 * 1024)
    validate(body, "Consent")
    action = _consent_action(body)

    def work(ctx: Context) -> str:
        key = resolve_patient(ctx, (body.get("patient") or {}).get("reference"), {}, call.base, "Consent.patient")
        kind, subject, relation, extra = action
        if kind == "objection":
            dossiers.set_objections(ctx, key, **extra)
        elif kind == "treating_gp":
            dossiers.set_treating_gp(ctx, key, subject)
        else:
            dossiers.change_access(ctx, key, kind, subject or "", relation)
        return str(key)

    key = await call.run(work)
    served = {**body, "id": str(uuid.uuid4()), "patient": {"reference": f"Patient/{key}"}}
    return FhirResponse(served, 201)


CONSENT_ROLE = f"{dossiers.CANONICAL}/CodeSystem/access-role"


def _consent_action(body: dict[str, Any]) -> tuple[str, str | None, str | None, dict[str, Any]]:
    """Read a Consent (DOMAIN.md: authorizations, blocks and objections are Consent resources):
    permit + actor → authorization (role ``authorized``, ``gp_rights`` or ``treating_gp``);
    deny + actor → block; deny + purpose ETREAT / ``REGULATION`` → objection; ``inactive`` + actor → withdrawal."""
    prov = body.get("provision") or {}
    ptype = prov.get("type")
    actors = prov.get("actor") or []
    purposes = {c.get("code") for c in prov.get("purpose") or []}
    if ptype == "deny" and not actors and purposes & {"ETREAT", "REGULATION"}:
        on = body.get("status") == "active"
        extra: dict[str, Any] = {"break_glass": on if "ETREAT" in purposes else None,
                                 "regulation": on if "REGULATION" in purposes else None}
        return "objection", None, None, extra
    if len(actors) != 1:
        raise unprocessable("Consent.provision.actor must name one professional or organisation",
                            "Consent.provision.actor")
    ref = (actors[0].get("reference") or {}).get("reference") or ""
    role = next((c.get("code") for c in (actors[0].get("role") or {}).get("coding") or []), "authorized")
    if ref.startswith("Practitioner/"):
        kind, subject = "practitioner", ref.split("/", 1)[1]
    elif ref.startswith("Organization/"):
        kind, subject = "organisation", ref.split("/", 1)[1]
    else:
        raise unprocessable("actor must reference Practitioner/{national id} or Organization/{id}",
                            "Consent.provision.actor[0].reference")
    if body.get("status") == "inactive":
        return kind, subject, None, {}
    if ptype == "deny":
        return kind, subject, "blocked", {}
    if role == "treating_gp" and kind == "practitioner":
        return "treating_gp", subject, None, {}
    if role not in ("authorized", "gp_rights"):
        raise unprocessable("Unknown access role", "Consent.provision.actor[0].role")
    return kind, subject, role, {}


# --- the dossier's life: close, reopen, objection, legal representatives ----------------------------------------

def _parameters(body: Any) -> dict[str, Any]:
    validate(body, "Parameters")
    out: dict[str, Any] = {}
    for p in body.get("parameter") or []:
        value = next((v for k, v in p.items() if k.startswith("value")), None)
        out[p.get("name")] = value
    return out


async def patient_close(call: Call, id: str) -> Response:
    """``$close``: by the patient (reason ``patient``), or at death (reason ``death``, Assurance Maladie)."""
    import datetime as dt

    key = _uuid(id)
    params = _parameters(await json_body(call.request, 64 * 1024))
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
    key = _uuid(id)
    await call.run(lambda ctx: dossiers.reopen(ctx, key))
    return FhirResponse(await call.run(lambda ctx: dossiers.read(ctx, key)))


async def patient_copy(call: Call, id: str) -> Response:
    """``$copy``: the complete copy of the dossier as one zip (issue 4 §2, see :mod:`carnet.export.copy`), written to
    a spooled temporary file (in memory up to 8 MiB, then on disk) and streamed from it."""
    import tempfile
    from collections.abc import Iterator

    from starlette.responses import StreamingResponse

    from carnet.export.copy import build_copy

    key = _uuid(id)
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
    params = _parameters(await json_body(call.request, 64 * 1024))
    ident = params.get("identifier") or {}
    if not isinstance(ident, dict) or not ident.get("system") or not ident.get("value"):
        raise unprocessable("identifier (INS) is required", "Parameters.parameter[identifier]", "required")
    await call.run(lambda ctx: dossiers.record_objection(ctx, ident["system"], ident["value"]))
    return FhirResponse({"resourceType": "OperationOutcome", "issue": [
        {"severity": "information", "code": "informational", "diagnostics": "Objection recorded"}]}, 201)


MINOR_ROLES = {"MTH", "FTH", "PRN", "NMTH", "NFTH", "STPPRN"}
PROTECTED_ROLES = {"GUARD", "POWATT", "HPOWATT"}


async def related_person_create(call: Call) -> Response:
    """A legal representative: a parent of a minor (MTH, FTH, PRN…) or a protected adult's tutor (GUARD…)."""
    body = await json_body(call.request, 64 * 1024)
    from fhir.resources.R4B.relatedperson import RelatedPerson
    from pydantic import ValidationError

    if body.get("resourceType") != "RelatedPerson":
        raise invalid("Expected resourceType RelatedPerson", "resourceType")
    try:
        RelatedPerson.model_validate(body)
    except ValidationError:
        raise FhirError(422, "invalid", "Invalid resource", "RelatedPerson") from None
    codes = {c.get("code") for r in body.get("relationship") or [] for c in r.get("coding") or []}
    kind = "minor" if codes & MINOR_ROLES else "protected_adult" if codes & PROTECTED_ROLES else None
    if kind is None:
        raise unprocessable("relationship must name a parent (MTH, FTH, PRN) or a guardian (GUARD, POWATT)",
                            "RelatedPerson.relationship")
    name = (body.get("name") or [{}])[0]
    if not name.get("family") or not name.get("given"):
        raise unprocessable("name (family and given) is required", "RelatedPerson.name", "required")
    relationship = sorted(codes & (MINOR_ROLES | PROTECTED_ROLES))[0]

    def work(ctx: Context) -> tuple[uuid.UUID, uuid.UUID]:
        key = resolve_patient(ctx, (body.get("patient") or {}).get("reference"), {}, call.base,
                              "RelatedPerson.patient")
        return key, dossiers.add_representative(ctx, key, kind, name["family"], " ".join(name["given"]),
                                                relationship, body)

    key, rep_id = await call.run(work)
    served = {**body, "id": str(rep_id), "patient": {"reference": f"Patient/{key}"}}
    return _created(json.dumps(served, ensure_ascii=False), f"{call.base}/RelatedPerson/{rep_id}")


async def related_person_search(call: Call) -> Response:
    """The dossier's emergency contacts as ``RelatedPerson`` (relationship ``C``), for whoever may read the dossier,
    emergency modes included (issue 3 §2); the patient side changes them in the portal. ``patient`` is required;
    ``_id`` narrows to one contact. Legal representatives are not served here."""
    from carnet.dossier import contacts

    params = call.params()
    count, offset = call.page()
    for name, _ in params:
        if name not in ("patient", "_id", "_count", "_offset", "_format"):
            raise FhirError(400, "not-supported", "Unknown search parameter", name)
    given = dict(params)
    ref = given.get("patient")
    if not ref:
        raise FhirError(400, "required", "RelatedPerson search requires patient", "patient")
    ref = ref if "/" in ref else f"Patient/{ref}"
    wanted = {v.strip() for v in given["_id"].split(",")} if given.get("_id") else None

    def work(ctx: Context) -> tuple[list[str], int]:
        key = resolve_patient(ctx, ref, {}, call.base, "patient")
        found = [c for c in contacts.list_contacts(ctx, key) if wanted is None or str(c.contact_id) in wanted]
        page = found[offset:offset + count]
        return [json.dumps(contacts.as_related_person(key, c), ensure_ascii=False) for c in page], len(found)

    rows, total = await call.run(work)
    return FhirResponse(searchset(call.base, "RelatedPerson", rows, total, params, count, offset))


# --- AuditEvent (BALP), the dossier's access history -------------------------------------------------------------

async def audit_search(call: Call) -> Response:
    params = call.params()
    count, offset = call.page()
    for name, _ in params:
        if name.split(":")[0] not in ("patient", "entity", "date", "_count", "_offset", "_format"):
            raise FhirError(400, "not-supported", "Unknown search parameter", name)
    q = dict(params)
    if "patient" not in q:
        raise FhirError(400, "required", "AuditEvent search requires patient", "patient")

    def work(ctx: Context) -> tuple[list[str], int]:
        ref = q["patient"] if "/" in q["patient"] else f"Patient/{q['patient']}"
        key = resolve_patient(ctx, ref, {}, call.base, "patient")
        return audit_fhir.search(ctx, key, count, offset, call.base)

    rows, total = await call.run(work)
    return FhirResponse(searchset(call.base, "AuditEvent", rows, total, params, count, offset))


# --- Practitioner / PractitionerRole (the directory, read-only) ----------------------------------------------------

async def practitioner_read(call: Call, id: str) -> Response:
    return FhirResponse(await call.run(lambda ctx: directory.read(ctx, id, "Practitioner")))


async def practitioner_role_read(call: Call, id: str) -> Response:
    return FhirResponse(await call.run(lambda ctx: directory.read(ctx, id, "PractitionerRole")))


async def practitioner_search(call: Call) -> Response:
    count, offset = call.page()
    rows = await call.run(lambda ctx: directory.search(ctx, call.params(), "Practitioner"))
    return FhirResponse(searchset(call.base, "Practitioner", rows[offset:offset + count], len(rows), call.params(),
                                  count, offset))


async def practitioner_role_search(call: Call) -> Response:
    count, offset = call.page()
    rows = await call.run(lambda ctx: directory.search(ctx, call.params(), "PractitionerRole"))
    return FhirResponse(searchset(call.base, "PractitionerRole", rows[offset:offset + count], len(rows),
                                  call.params(), count, offset))


# --- Task: access requests and rectification requests (issue 4 §3) ------------------------------------------------

async def _optional_parameters(call: Call) -> dict[str, Any]:
    """An operation's Parameters; an empty body means none."""
    if not await call.request.body():
        return {}
    return _parameters(await json_body(call.request, 64 * 1024))


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
    return FhirResponse(searchset(call.base, "Task", page, len(views), params, count, offset))


def _reason(params: dict[str, Any]) -> str | None:
    reason = params.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise unprocessable("reason must be a string", "Parameters.parameter[reason]")
    return reason


async def task_accept(call: Call, id: str) -> Response:
    """``$accept``: the patient accepts an access request (optional ``reason``: a note to the professional)."""
    note = _reason(await _optional_parameters(call))
    return _task_response(await call.run(lambda ctx: tasks.accept(ctx, id, note)))


async def task_reject(call: Call, id: str) -> Response:
    """``$reject``: the patient refuses an access request (``reason`` optional), or the author refuses a
    rectification (``reason`` required, 422 otherwise)."""
    reason = _reason(await _optional_parameters(call))
    return _task_response(await call.run(lambda ctx: tasks.reject(ctx, id, reason)))


async def patient_access_requests(call: Call, id: str) -> Response:
    """``$access-requests``: the patient's setting for professionals' access requests, ``policy`` = ``ask`` (be
    prompted) or ``refuse`` (never ask me, refuse)."""
    key = _uuid(id)
    policy = (await _optional_parameters(call)).get("policy")
    if not isinstance(policy, str):
        raise unprocessable("policy (ask or refuse) is required", "Parameters.parameter[policy]", "required")
    await call.run(lambda ctx: tasks.set_access_request_policy(ctx, key, policy))
    return FhirResponse({"resourceType": "Parameters", "parameter": [{"name": "policy", "valueCode": policy}]})


# --- the system: transaction (ITI-65) ------------------------------------------------------------------------------

async def transaction(call: Call) -> Response:
    body = await json_body(call.request, call.services.settings.max_document_bytes * 4 // 3 * 10 + 1024 * 1024)
    if not isinstance(body, dict):
        raise invalid("A Bundle is expected", "Bundle")
    result = await call.run(lambda ctx: provide_bundle(ctx, body))
    return FhirResponse(result, 200)


# --- ExplanationOfBenefit: Assurance Maladie's care history (issue 3 §5), read-only ------------------------------

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
    return FhirResponse(searchset(call.base, "ExplanationOfBenefit", rows, total, params, count, offset))


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise not_found() from None


DOCREF_PARAMS = (
    ("patient", "reference"), ("patient.identifier", "token"), ("status", "token"), ("_id", "token"),
    ("_lastUpdated", "date"), ("author.given", "string"), ("author.family", "string"), ("category", "token"),
    ("creation", "date"), ("date", "date"), ("event", "token"), ("facility", "token"), ("format", "token"),
    ("identifier", "token"), ("period", "date"), ("related", "reference"), ("security-label", "token"),
    ("setting", "token"), ("type", "token"),
)
PATIENT_PARAMS = (("identifier", "token"), ("family", "string"), ("given", "string"), ("birthdate", "date"),
                  ("gender", "token"), ("_id", "token"))

TASK_PARAMS = (("patient", "reference"), ("status", "token"), ("code", "token"), ("owner", "reference"),
               ("requester", "reference"))

ROUTES: tuple[Route, ...] = (
    Route(None, "transaction", "POST", "/fhir", transaction, ("DocumentReference", "c"), spec="IHE ITI-65"),
    Route("Patient", "create", "POST", "/fhir/Patient", patient_create, ("Patient", "c"),
          spec="dossier creation (DMP TD1.1)"),
    Route("Patient", "read", "GET", "/fhir/Patient/{id}", patient_read, ("Patient", "r"), spec="IHE ITI-78"),
    Route("Patient", "search-type", "GET", "/fhir/Patient", patient_search, ("Patient", "s"), PATIENT_PARAMS,
          spec="IHE ITI-78, DMP TD0.2"),
    Route("DocumentReference", "search-type", "GET", "/fhir/DocumentReference", docref_search,
          ("DocumentReference", "s"), DOCREF_PARAMS, spec="IHE ITI-67"),
    Route("DocumentReference", "search-type", "POST", "/fhir/DocumentReference/_search", docref_search_post,
          ("DocumentReference", "s"), DOCREF_PARAMS, spec="IHE ITI-67"),
    Route("DocumentReference", "read", "GET", "/fhir/DocumentReference/{id}", docref_read,
          ("DocumentReference", "r"), spec="IHE ITI-67"),
    Route("DocumentReference", "create", "POST", "/fhir/DocumentReference", docref_create,
          ("DocumentReference", "c"), spec="IHE ITI-105"),
    Route("DocumentReference", "patch", "PATCH", "/fhir/DocumentReference/{id}", docref_patch,
          ("DocumentReference", "u"), spec="ANS PDSm TD3.2/TD3.3"),
    Route("DocumentReference", "delete", "DELETE", "/fhir/DocumentReference/{id}", docref_delete,
          ("DocumentReference", "d"), spec="the patient deletes a document from the dossier"),
    Route("Binary", "read", "GET", "/fhir/Binary/{id}", binary_read, ("Binary", "r"), spec="IHE ITI-68"),
    Route("List", "search-type", "GET", "/fhir/List", list_search, ("List", "s"),
          (("patient", "reference"), ("code", "token"), ("status", "token")), spec="IHE ITI-66"),
    Route("Consent", "create", "POST", "/fhir/Consent", consent_create, ("Consent", "c"),
          spec="authorizations, blocks, objections"),
    Route("Patient", "operation", "POST", "/fhir/Patient/{id}/$close", patient_close, ("Patient", "u"),
          spec="close the dossier (by the patient, or at death)", operation="close"),
    Route("Patient", "operation", "POST", "/fhir/Patient/{id}/$reopen", patient_reopen, ("Patient", "u"),
          spec="reopen within retention", operation="reopen"),
    Route("Patient", "operation", "GET", "/fhir/Patient/{id}/$copy", patient_copy, ("Patient", "r"),
          spec="the patient's complete copy of the dossier (zip: PDF booklet, FHIR Bundle, documents)",
          operation="copy"),
    Route("Patient", "operation", "POST", "/fhir/Patient/$object-creation", patient_objection, ("Patient", "c"),
          spec="objection to the creation of a dossier", operation="object-creation"),
    Route("RelatedPerson", "create", "POST", "/fhir/RelatedPerson", related_person_create,
          ("RelatedPerson", "c"), spec="legal representatives"),
    Route("RelatedPerson", "search-type", "GET", "/fhir/RelatedPerson", related_person_search,
          ("RelatedPerson", "s"), (("patient", "reference"), ("_id", "token")), spec="emergency contacts"),
    Route("AuditEvent", "search-type", "GET", "/fhir/AuditEvent", audit_search, ("AuditEvent", "s"),
          (("patient", "reference"),), spec="IHE BALP"),
    Route("Practitioner", "read", "GET", "/fhir/Practitioner/{id}", practitioner_read, ("Practitioner", "r")),
    Route("Practitioner", "search-type", "GET", "/fhir/Practitioner", practitioner_search, ("Practitioner", "s"),
          (("identifier", "token"), ("family", "string"))),
    Route("PractitionerRole", "read", "GET", "/fhir/PractitionerRole/{id}", practitioner_role_read,
          ("PractitionerRole", "r")),
    Route("PractitionerRole", "search-type", "GET", "/fhir/PractitionerRole", practitioner_role_search,
          ("PractitionerRole", "s"), (("practitioner", "reference"), ("organization", "reference"))),
    Route("Task", "create", "POST", "/fhir/Task", task_create, ("Task", "c"),
          spec="access request / rectification request (issue 4 §3)"),
    Route("Task", "read", "GET", "/fhir/Task/{id}", task_read, ("Task", "r")),
    Route("Task", "search-type", "GET", "/fhir/Task", task_search, ("Task", "s"), TASK_PARAMS),
    Route("Task", "operation", "POST", "/fhir/Task/{id}/$accept", task_accept, ("Task", "u"),
          spec="the patient accepts an access request", operation="accept"),
    Route("Task", "operation", "POST", "/fhir/Task/{id}/$reject", task_reject, ("Task", "u"),
          spec="the patient refuses an access request; the author refuses a rectification", operation="reject"),
    Route("Patient", "operation", "POST", "/fhir/Patient/{id}/$access-requests", patient_access_requests,
          ("Patient", "u"), spec="ask or refuse professionals' access requests", operation="access-requests"),
    Route("ExplanationOfBenefit", "search-type", "GET", "/fhir/ExplanationOfBenefit", eob_search,
          ("ExplanationOfBenefit", "s"), (("patient", "reference"),), spec="Assurance Maladie care history"),
    # structured data and the emergency summary (issue 3 §2, §3): see carnet.clinical.api
    *(Route(**spec) for spec in clinical_api.route_specs()),
)


def capability_statement(settings_base: str, software_version: str) -> dict[str, Any]:
    """Generated from :data:`ROUTES`: every interaction listed here is one that exists."""
    resources: dict[str, dict[str, Any]] = {}
    system_interactions = []
    for r in ROUTES:
        if r.resource is None:
            system_interactions.append({"code": r.interaction})
            continue
        res = resources.setdefault(r.resource, {"type": r.resource, "interaction": [], "searchParam": []})
        if r.interaction == "operation":
            res.setdefault("operation", []).append({"name": r.operation, "definition":
                                                    f"{dossiers.CANONICAL}/OperationDefinition/{r.resource}-"
                                                    f"{r.operation}"})
            continue
        if {"code": r.interaction} not in res["interaction"]:
            res["interaction"].append({"code": r.interaction})
        for name, ptype in r.search_params:
            if not any(p["name"] == name for p in res["searchParam"]):
                res["searchParam"].append({"name": name, "type": ptype})
    for res in resources.values():
        if not res["searchParam"]:
            del res["searchParam"]
        if res["type"] == "DocumentReference":
            res["supportedProfile"] = [
                "https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Comprehensive.DocumentReference",
                "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-comprehensive-document-reference"]
    return {
        "resourceType": "CapabilityStatement", "status": "active", "date": "2026-11-21", "kind": "instance",
        "fhirVersion": "4.0.1", "format": ["application/fhir+json", "application/fhir+xml", "json", "xml"],
        "software": {"name": "Carnet", "version": software_version},
        "implementation": {"description": "Carnet shared medical record server", "url": settings_base},
        "instantiates": [
            "https://profiles.ihe.net/ITI/MHD/CapabilityStatement/IHE.MHD.DocumentRecipient",
            "https://profiles.ihe.net/ITI/MHD/CapabilityStatement/IHE.MHD.DocumentResponder",
            "https://profiles.ihe.net/ITI/PDQm/CapabilityStatement/IHE.PDQm.Supplier",
        ],
        "rest": [{"mode": "server", "security": {
            "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                     "code": "SMART-on-FHIR"}]}],
            "extension": [{"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                           "extension": [{"url": "token", "valueUri": f"{settings_base}/oauth/token"}]}]},
            "resource": list(resources.values()), "interaction": system_interactions}],
    }


__all__ = ["ROUTES", "Call", "Route", "capability_statement"]
