"""ITI-65 Provide Document Bundle: one atomic transaction (IHE MHD 4.2, ITI-65 §2:3.65.4.1.3).

The bundle carries one SubmissionSet ``List``, DocumentReferences, their contents (``Binary``, or a FHIR document
``Bundle``), optionally a ``Patient`` entry that must match an existing dossier, and PATCHes of replaced documents.
All of it is stored or none of it; the response lists the entries in request order.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from typing import Any

from carnet.context import Context
from carnet.documents import service as documents
from carnet.documents.metadata import parse_datetime, read_metadata
from carnet.documents.submission_sets import MHD_LIST_TYPES, record_submission_set
from carnet.documents.validate import validate
from carnet.dossier import service as dossiers
from carnet.errors import FhirError, Issue, unprocessable
from carnet.fhir.http import MAX_DEPTH, loads_bounded
from carnet.fhir.patch import PatchPlan
from carnet.identity.ins import INS_SYSTEMS
from carnet.ids import new_id

#: What an integrator whose source sends its own patient identifier (an unchanged IHE example, a local id) must do
#: instead: Carnet files documents only in a dossier, found by the patient's INS (README, "Publishing an IHE example").
NOT_INS = ("Carnet files a document in a dossier found by the patient's INS: search the dossier with PDQm (ITI-78: "
           "GET /fhir/Patient?identifier=urn:oid:1.2.250.1.213.1.4.8|{INS}) and reference Patient/{id}, or give the "
           "INS as the Patient's identifier (system urn:oid:1.2.250.1.213.1.4.8, or .9 for an NIA)")


def resolve_patient(ctx: Context, ref: str | None, in_bundle: dict[str, dict[str, Any]], base: str,
                    expression: str) -> uuid.UUID:
    """A subject reference -> dossier key: ``Patient/{id}``, an absolute URL to it, ``Patient?identifier=s|v``, or
    the fullUrl of a Patient entry of the bundle (matched to an existing dossier by its INS). A patient named any
    other way (no INS, a source's own id) is refused with :data:`NOT_INS`, which says what to do."""
    if not ref:
        raise unprocessable("subject is required", expression, "required")
    if ref in in_bundle:
        if not any(isinstance(i, dict) and i.get("system") in INS_SYSTEMS
                   for i in in_bundle[ref].get("identifier") or []):
            raise unprocessable(f"This Patient has no INS identifier. {NOT_INS}", expression, "required")
        _, ins = dossiers.ins_of(in_bundle[ref], expression)
        key = dossiers.lookup(ctx, ins)
        if key is None:
            raise unprocessable("No dossier exists for this patient", expression, "not-found")
        return key
    if ref.startswith("Patient?identifier="):
        system, _, value = ref[len("Patient?identifier="):].partition("|")
        if system not in INS_SYSTEMS:
            raise unprocessable(f"This Patient identifier is not an INS. {NOT_INS}", expression, "not-found")
        key = dossiers.lookup(ctx, dossiers.ins_value(system, value, expression))
        if key is None:
            raise unprocessable("No dossier exists for this patient", expression, "not-found")
        return key
    if ref.startswith(base + "/"):
        ref = ref[len(base) + 1:]
    if ref.startswith("Patient/"):
        try:
            return uuid.UUID(ref[len("Patient/"):].split("/")[0])
        except ValueError:
            pass
    raise unprocessable(f"subject does not reference a dossier of this server. {NOT_INS}", expression, "not-found")


def _content_of(entry: dict[str, Any], i: int) -> documents.Content:
    res = entry["resource"]
    if res["resourceType"] == "Binary":
        try:
            data = base64.b64decode(res.get("data") or "", validate=True)
        except (binascii.Error, ValueError):
            raise unprocessable("Binary.data is not valid base64", f"Bundle.entry[{i}].resource.data") from None
        return documents.Content(data, res.get("contentType") or "")
    # A FHIR document (MHD "FHIR Document Publish" option): the Bundle's JSON is the content.
    text = json.dumps(res, ensure_ascii=False, separators=(",", ":")).encode()
    return documents.Content(text, "application/fhir+json")


def _entries(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """The bundle's entries, each checked for the shape the rest of this module relies on (400 otherwise)."""
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise FhirError(400, "structure", "Bundle.entry must be a list", "Bundle.entry")
    for i, e in enumerate(entries):
        where = f"Bundle.entry[{i}]"
        if not isinstance(e, dict):
            raise FhirError(400, "structure", "An entry must be an object", where)
        if not isinstance(e.get("request"), dict) or not isinstance(e["request"].get("method"), str):
            raise FhirError(400, "structure", "An entry needs request.method", where + ".request")
        if "fullUrl" in e and not isinstance(e["fullUrl"], str):
            raise FhirError(400, "structure", "fullUrl must be a string", where + ".fullUrl")
        if not isinstance(e.get("resource"), dict):
            raise FhirError(400, "structure", "An entry needs a resource", where + ".resource")
    return entries


def provide_bundle(ctx: Context, bundle: dict[str, Any]) -> dict[str, Any]:
    base = f"{ctx.settings.base_url}/fhir"
    if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction":
        raise FhirError(400, "invalid", "ITI-65 expects a Bundle of type transaction", "Bundle.type")
    entries = _entries(bundle)
    by_url: dict[str, tuple[int, dict[str, Any]]] = {}
    patients: dict[str, dict[str, Any]] = {}
    lists, docrefs, patches = [], [], []
    for i, e in enumerate(entries):
        res = e.get("resource")
        method = (e.get("request") or {}).get("method")
        rtype = (res or {}).get("resourceType")
        where = f"Bundle.entry[{i}].resource"
        if method == "PATCH":
            patches.append((i, e))
            continue
        if method != "POST":
            raise FhirError(400, "invalid", "Entries of a Provide Document Bundle are POST (or PATCH)",
                            f"Bundle.entry[{i}].request.method")
        validate(res, ("List", "DocumentReference", "Binary", "Bundle", "Patient"), where)
        if e.get("fullUrl"):
            by_url[e["fullUrl"]] = (i, e)
        if rtype == "List":
            lists.append((i, e))
        elif rtype == "DocumentReference":
            docrefs.append((i, e))
        elif rtype == "Patient":
            patients[e.get("fullUrl") or ""] = e["resource"]
    if len(lists) != 1:
        raise unprocessable("Exactly one SubmissionSet List is required", "Bundle.entry", "required")
    if not docrefs:
        raise unprocessable("At least one DocumentReference is required", "Bundle.entry", "required")

    li, lentry = lists[0]
    slist = lentry["resource"]
    key = resolve_patient(ctx, (slist.get("subject") or {}).get("reference"), patients, base,
                          f"Bundle.entry[{li}].resource.subject")
    _, decision = ctx.dossier(key)
    responses: dict[int, dict[str, Any]] = {}
    warnings: list[Issue] = []
    list_id = new_id()
    ids: dict[str, str] = {}
    for i, e in docrefs:
        res = e["resource"]
        where = f"Bundle.entry[{i}].resource"
        if resolve_patient(ctx, (res.get("subject") or {}).get("reference"), patients, base,
                           where + ".subject") != key:
            raise unprocessable("Every document of a submission must concern the same patient", where + ".subject")
        try:
            meta = read_metadata(res)
        except FhirError as exc:
            for issue in exc.issues:
                issue.expression = [x.replace("DocumentReference", where, 1) for x in issue.expression]
            raise
        url = res["content"][0]["attachment"].get("url")
        if url not in by_url:
            raise unprocessable("attachment.url must reference a Binary entry of the bundle",
                                where + ".content[0].attachment.url")
        ci, centry = by_url[url]
        if centry["resource"]["resourceType"] not in ("Binary", "Bundle"):
            raise unprocessable("attachment.url must reference a Binary entry", where + ".content[0].attachment.url")
        content = _content_of(centry, ci)
        replaced = [ids.get(r, r) for r in meta.replaces]
        meta.replaces = replaced
        pub = documents.publish(ctx, key, res, content, "ITI-65", submission_set_id=list_id, decision=decision,
                                meta=meta, locate=() if ids else (list_id,))  # the first enters the List's id
        for w in pub.warnings:
            w.expression = [x.replace("DocumentReference", where, 1) for x in w.expression]
        warnings.extend(pub.warnings)
        ids[e.get("fullUrl") or ""] = f"DocumentReference/{pub.document_id}"
        responses[i] = {"status": "201 Created", "location": f"DocumentReference/{pub.document_id}/_history/1",
                        "lastModified": documents.fhir_instant(pub.last_updated)}
        responses[ci] = {"status": "201 Created", "location": f"Binary/{pub.document_id}"}
    for i, e in patches:
        url = (e.get("request") or {}).get("url") or ""
        target = url.split("/", 1)[1] if url.startswith("DocumentReference/") else ""
        status = _patch_status(e.get("resource"), i)
        documents.patch(ctx, target, PatchPlan(status=status))
        responses[i] = {"status": "200 OK", "location": f"DocumentReference/{target}"}
    for url in patients:
        if url in by_url:
            responses[by_url[url][0]] = {"status": "200 OK", "location": f"Patient/{key}"}

    served = {"resourceType": "List", "id": str(list_id),
              **{k: v for k, v in slist.items() if k not in ("resourceType", "id")}}
    served["subject"] = {"reference": f"Patient/{key}"}
    served["entry"] = [{**ent, "item": {"reference": ids.get((ent.get("item") or {}).get("reference") or "",
                                                              (ent.get("item") or {}).get("reference"))}}
                       for ent in slist.get("entry") or []]
    served["meta"] = {**(slist.get("meta") or {}), "versionId": "1", "lastUpdated": documents.fhir_instant(ctx.now)}
    code = next((c.get("code") for c in (slist.get("code") or {}).get("coding") or []
                 if c.get("system") == MHD_LIST_TYPES), "submissionset")
    source_id = next((x.get("valueIdentifier", {}).get("value") for x in slist.get("extension") or []
                      if x.get("url", "").endswith("ihe-sourceId")), None)
    doc_ids = [v.split("/", 1)[1] for v in ids.values()]
    record_submission_set(ctx, key, list_id, served, code=code, source_id=source_id,
                          identifiers=[i.get("value") for i in slist.get("identifier") or [] if i.get("value")],
                          date=parse_datetime(slist.get("date"), f"Bundle.entry[{li}].resource.date") or ctx.now,
                          document_ids=doc_ids, located=bool(doc_ids))
    responses[li] = {"status": "201 Created", "location": f"List/{list_id}/_history/1"}
    ctx.audit(key, "C", "ITI-65", entity_type="List", entity_id=str(list_id), detail={"documents": len(doc_ids)})

    out_entries = []
    for i in range(len(entries)):
        resp = responses.get(i, {"status": "200 OK"})
        if i == li and warnings:
            resp = {**resp, "outcome": {"resourceType": "OperationOutcome",
                                        "issue": [w.to_fhir() for w in warnings]}}
        out_entries.append({"response": resp})
    return {"resourceType": "Bundle", "id": str(new_id()), "type": "transaction-response", "entry": out_entries}


def _patch_status(resource: Any, i: int) -> str:
    """A replaced document's PATCH in ITI-65 (FHIRPath Patch ``Parameters`` or a JSON Patch ``Binary``): only
    ``status`` may change here."""
    where = f"Bundle.entry[{i}].resource"
    if isinstance(resource, dict) and resource.get("resourceType") == "Parameters":
        validate(resource, "Parameters", where)
        for op in resource.get("parameter") or []:
            parts = {p.get("name"): p for p in op.get("part") or []}
            path = (parts.get("path") or {}).get("valueString")
            if path == "DocumentReference.status" and (parts.get("type") or {}).get("valueCode") == "replace":
                value = parts.get("value") or {}
                status = value.get("valueCode") or value.get("valueString")
                if status:
                    return str(status)
    elif isinstance(resource, dict) and resource.get("resourceType") == "Binary":
        try:
            ops = loads_bounded(base64.b64decode(resource.get("data") or ""))
        except FhirError:
            raise unprocessable(f"The JSON Patch is nested deeper than {MAX_DEPTH} levels", where) from None
        except (ValueError, binascii.Error):
            ops = []
        for op in ops if isinstance(ops, list) else []:
            if isinstance(op, dict) and op.get("op") == "replace" and op.get("path") == "/status":
                return str(op.get("value"))
    raise unprocessable("A PATCH in ITI-65 may only replace DocumentReference.status", where)
