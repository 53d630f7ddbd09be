"""Finding a patient by INS, consent, creating a dossier, the dossier view (emergency summary, new since the last
access, documents), reading, adding, releasing, replacing and withdrawing documents."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from starlette.responses import Response

from carnet.clinical.pdf import render_summary_pdf
from carnet.clinical.summary import summary_view
from carnet.context import Context
from carnet.documents import codes, current
from carnet.documents import service as documents
from carnet.documents.content_types import sniff_content_type
from carnet.dossier import contacts
from carnet.dossier import service as dossiers
from carnet.errors import FhirError
from carnet.fhir.patch import PatchPlan
from carnet.history import accesses
from carnet.identity.ins import INS_SYSTEM_DEMO, INS_SYSTEM_NIA, INS_SYSTEM_NIR, INS_SYSTEM_TEST, format_nir
from carnet.ids import parse_id
from carnet.portal.i18n import N_
from carnet.portal.pages.documents import (
    CDA_TYPES,
    PREVIEW_TEXT_LIMIT,
    cda_html,
    cda_pdf,
    class_label,
    type_label,
)
from carnet.portal.pages.home import item_text
from carnet.portal.web import offset_param
from carnet.pro.web import ProPage, pro_page
from carnet.trends import charts

# What the header says after the INS when it is not a NIR (message ids; "" for a NIR).
INS_KINDS = {INS_SYSTEM_NIR: "", INS_SYSTEM_NIA: "NIA", INS_SYSTEM_TEST: N_("test identity"),
             INS_SYSTEM_DEMO: N_("demo identity")}
# What the find page says after an access code was refused (carnet.pro.pages.access_codes).
CODE_ERRORS = {"wrong": N_("This access code is not valid for this patient: check it with the patient (it may have "
                           "expired, or been used)."),
               "frozen": N_("Too many wrong access codes were entered for this dossier: its codes are paused for a "
                            "while, and the patient is told."),
               "missing": N_("Type the access code the patient gave you."),
               "needs-authorization": N_("This code is for the documents the patient hid: be authorized by the "
                                         "patient first, then enter it.")}
SYSTEMS = {"nir": INS_SYSTEM_NIR, "nia": INS_SYSTEM_NIA, "test": INS_SYSTEM_TEST, "demo": INS_SYSTEM_DEMO}
# Every type of the ANS value set a professional files (not class 60: Assurance Maladie's; not class 90 and EXPPAT_3,
# the advance directives: the patient's).
TYPES = {code: label for code, label in codes.TYPE_LABELS.items()
         if codes.TYPE_CLASS[code] not in ("60", "90") and code != "EXPPAT_3"}
UPLOADS = {"application/pdf": ("urn:ihe:iti:xds:2017:mimeTypeSufficient", "urn:ihe:iti:xds:2017:mimeTypeSufficient"),
           "text/plain": ("urn:ihe:iti:xds:2017:mimeTypeSufficient", "urn:ihe:iti:xds:2017:mimeTypeSufficient"),
           "image/jpeg": ("urn:ihe:iti:xds:2017:mimeTypeSufficient", "urn:ihe:iti:xds:2017:mimeTypeSufficient"),
           "image/png": ("urn:ihe:iti:xds:2017:mimeTypeSufficient", "urn:ihe:iti:xds:2017:mimeTypeSufficient")}


def _classes(p: ProPage) -> dict[str, str]:
    """The classes (TRE_A03) in the page's language."""
    return {c: class_label(p, c) for c in codes.CLASSES}


def _types(p: ProPage) -> dict[str, str]:
    """The types a professional files, in the page's language."""
    return {c: type_label(p, c, label) for c, label in TYPES.items()}


def _key(p: ProPage) -> uuid.UUID:
    try:
        return uuid.UUID(str(p.request.path_params.get("key")))
    except ValueError:
        raise FhirError(404, "not-found", "Patient not found") from None


def _doc_id(p: ProPage) -> str:
    try:
        return str(uuid.UUID(str(p.request.path_params.get("id"))))
    except ValueError:
        raise FhirError(404, "not-found", "This document does not exist, or is not shown to you.") from None


def _access(res: dict[str, Any]) -> dict[str, Any]:
    for e in res.get("extension") or []:
        if e.get("url") == dossiers.EXT_DOSSIER_ACCESS:
            return {x["url"]: next(v for k, v in x.items() if k.startswith("value")) for x in e["extension"]}
    return {}


def age_on(birth: dt.date, day: dt.date) -> int:
    """Age in whole years on ``day`` (a clinician reads "82 ans" faster than a birth date)."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def _ins(res: dict[str, Any]) -> dict[str, str] | None:
    """The patient's INS as the DMP shows it: the matricule in its usual groups with its key (``2 55 08 14 168 025
    38``), and its kind when it is not a NIR (NIA, a test or demo identity)."""
    for ident in res.get("identifier") or []:
        kind = INS_KINDS.get(str(ident.get("system") or ""))
        if kind is not None:
            try:
                return {"value": format_nir(str(ident.get("value") or "")), "kind": kind}
            except ValueError:
                return None
    return None


def _traits(res: dict[str, Any]) -> dict[str, Any]:
    t = dossiers.traits(res)
    return {"family": t["family"], "given": t["given"], "birth_date": t["birth_date"], "gender": t["gender"],
            "birthplace": t["birthplace"], "age": age_on(t["birth_date"], dt.datetime.now(dt.UTC).date()),
            "ins": _ins(res)}


@pro_page("GET", "/pro/")
async def find(p: ProPage) -> Response:
    q = p.request.query_params
    ins, system = str(q.get("ins") or "").replace(" ", ""), str(q.get("system") or "nir")
    result: dict[str, Any] | None = None
    if ins:
        sys_uri = SYSTEMS.get(system, INS_SYSTEM_NIR)
        found = await p.run(lambda ctx: dossiers.check_by_ins(ctx, sys_uri, ins, f"identifier={ins}"))
        if not found:
            result = {"exists": False}
        else:
            res = json.loads(found[0])
            access = _access(res)
            result = {"exists": True, "id": res["id"], "access": access,
                      "traits": _traits(res) if access.get("canRead") else None}
    code_error = CODE_ERRORS.get(str(q.get("code") or ""))
    return p.render("pro/find.html", title=p._("Find a patient"), ins=ins, system=system, result=result,
                    systems=list(SYSTEMS), error=p._(code_error) if code_error else "",
                    lead=p._("Type the patient's INS: you see at once whether a dossier exists and what you may do."))


@pro_page("POST", "/pro/consent")
async def consent(p: ProPage) -> Response:
    form = await p.form()
    key = parse_id(str(form.get("dossier") or ""))
    if key is None:
        raise FhirError(404, "not-found", "Patient not found")
    if not form.get("confirm"):
        raise FhirError(400, "required", "Confirm that the patient consents.")

    def work(ctx: Context) -> None:
        dossiers.change_access(ctx, key, "practitioner", ctx.actor.id or "", "authorized")
    await p.run(work)
    return p.redirect(f"/pro/dossier/{key}")


@pro_page("GET", "/pro/new")
async def new_form(p: ProPage) -> Response:
    q = p.request.query_params
    return p.render("pro/new_dossier.html", title=p._("Create the dossier"), form={
        "ins": str(q.get("ins") or ""), "system": str(q.get("system") or "nir")}, systems=list(SYSTEMS),
        lead=p._("For a patient present: check the identity traits against an identity document."))


@pro_page("POST", "/pro/new")
async def create(p: ProPage) -> Response:
    form = await p.form()
    values = {k: str(form.get(k) or "").strip() for k in ("ins", "system", "family", "given", "birth_date",
                                                         "gender", "birthplace")}
    res: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [{"system": SYSTEMS.get(values["system"], INS_SYSTEM_NIR), "value": values["ins"]}],
        "name": [{"use": "official", "family": values["family"], "given": [values["given"]]}],
        "birthDate": values["birth_date"], "gender": values["gender"],
        "extension": [{"url": dossiers.BIRTHPLACE_EXT, "valueAddress": {"extension": [
            {"url": dossiers.INSEE_EXT, "valueCoding": {"code": values["birthplace"]}}]}}]}
    if form.get("consent"):
        res["extension"].append({"url": dossiers.EXT_CREATION_CONSENT, "valueBoolean": True})
    try:
        key, _ = await p.run(lambda ctx: dossiers.create(ctx, res))
    except FhirError as err:
        if err.status in (400, 422, 409):
            return p.render("pro/new_dossier.html", status=err.status, title=p._("Create the dossier"), form=values,
                            systems=list(SYSTEMS), error=p._(str(err)))
        raise
    return p.redirect(f"/pro/dossier/{key}")


def _day(p: ProPage, value: str, end: bool = False) -> dt.datetime | None:
    """A day typed in a filter as an instant: midnight in the display time zone (``end``: the next midnight)."""
    try:
        d = dt.date.fromisoformat(value)
    except ValueError:
        return None
    return dt.datetime.combine(d + dt.timedelta(days=1 if end else 0), dt.time(), tzinfo=p.zone)


@pro_page("GET", "/pro/dossier/{key}")
async def dossier_view(p: ProPage) -> Response:
    assert p.pro is not None
    key, started = _key(p), p.pro.created_at
    q = p.request.query_params
    f = documents.DocumentFilter(
        classes=tuple(v for v in [str(q.get("class") or "")] if v), types=tuple(v for v in [str(q.get("type") or "")]
                                                                              if v),
        author=str(q.get("author") or "") or None, since=_day(p, str(q.get("since") or "")),
        until=_day(p, str(q.get("until") or ""), end=True))

    def work(ctx: Context) -> dict[str, Any]:
        patient = json.loads(dossiers.read(ctx, key))
        since = accesses.previous_access(ctx, key, started)
        summary = summary_view(ctx, key)  # the emergency summary first (issue 3 §3)
        people = contacts.list_contacts(ctx, key)  # the summary already holds the advance directives
        return {"patient": _traits(patient), "since": since, "new": current.new_since(ctx, key, since),
                "measures": charts.overview(ctx, key, since),  # changed since the last access first (issue 17 §2)
                "summary": summary, "contacts": people,
                "docs": current.dossier_documents(ctx, key, f), "me": ctx.actor.id}
    data = await p.run(work)
    return p.render("pro/dossier.html", title=p._("Dossier"), key=key, classes=_classes(p), types=_types(p),
                    type_label=lambda d: type_label(p, d.type_code, d.type_display), item_text=item_text,
                    entries=data["docs"].entries, totals=data["docs"].totals, per_class=data["docs"].limit,
                    authors=data["docs"].authors,
                    q={k: str(q.get(k) or "") for k in ("class", "type", "author", "since", "until")},
                    flash=p._(DONE.get(str(q.get("done")), "")) if q.get("done") in DONE else "", **data)


@pro_page("GET", "/pro/dossier/{key}/summary.pdf")
async def summary_pdf(p: ProPage) -> Response:
    """The emergency summary as a one-page PDF (the same content as the first screen and ``$summary-pdf``)."""
    key = _key(p)
    view = await p.run(lambda ctx: summary_view(ctx, key))
    return p.finish(Response(render_summary_pdf(view), media_type="application/pdf", headers={
        "Content-Disposition": 'inline; filename="patient-summary.pdf"'}))


@pro_page("GET", "/pro/dossier/{key}/care-history")
async def care_history(p: ProPage) -> Response:
    """Données de remboursement (class 60): for the professions the habilitation matrix lets read it."""
    from carnet.claims import service as claims

    key = _key(p)
    offset = offset_param(p.request.query_params.get("offset"))
    lines, total = await p.run(lambda ctx: claims.search(ctx, key, 50, offset))
    more = f"/pro/dossier/{key}/care-history?offset={offset + 50}" if offset + 50 < total else None
    return p.render("pro/care_history.html", title=p._("Reimbursement data"), key=key, lines=lines, total=total,
                    more_url=more, lead=p._("The care Assurance Maladie reimbursed in the last 24 months."))


DONE = {"added": "The document is added.", "released": "The document is now visible to the patient.",
        "withdrawn": "The document is withdrawn."}


@pro_page("GET", "/pro/dossier/{key}/documents/{id}")
async def document_page(p: ProPage) -> Response:
    key, doc_id = _key(p), _doc_id(p)

    def work(ctx: Context) -> tuple[documents.Listed, dict[str, Any], bytes | None]:
        listed, resource = documents.open_document(ctx, doc_id)
        data = None
        if listed.content_type in ("text/plain", *CDA_TYPES):
            data, _, _ = documents.retrieve(ctx, doc_id)
        return listed, resource, data
    listed, resource, data = await p.run(work)
    preview: dict[str, Any] = {"kind": "none"}
    if listed.content_type == "application/pdf":
        preview = {"kind": "pdf"}
    elif listed.content_type in ("image/jpeg", "image/png"):
        preview = {"kind": "image"}
    elif data is not None and listed.content_type in CDA_TYPES and (html := cda_html(
            data, f"/pro/dossier/{key}/documents/{doc_id}/body", p.lang.code)) is not None:
        preview = {"kind": "cda", "html": html}
    elif data is not None:
        preview = {"kind": "text", "text": data.decode("utf-8", errors="replace")[:PREVIEW_TEXT_LIMIT]}
    labels = {c.get("code") for s in resource.get("securityLabel") or [] for c in s.get("coding") or []}
    mine = p.pro is not None and listed.author_id == p.pro.national_id
    tlabel = type_label(p, listed.type_code, listed.type_display)
    return p.render("pro/document.html", title=listed.title or tlabel, key=key, doc=listed,
                    type_label=lambda d: tlabel,
                    preview=preview, hidden=codes.INVISIBLE_PATIENT in labels, mine=mine,
                    class_label=class_label(p, listed.class_code))


@pro_page("GET", "/pro/dossier/{key}/documents/{id}/file")
async def document_file(p: ProPage) -> Response:
    doc_id = _doc_id(p)
    data, ctype, row = await p.run(lambda ctx: documents.retrieve(ctx, doc_id))
    inline = ctype in ("application/pdf", "image/jpeg", "image/png", "text/plain")
    media = f"{ctype}; charset=utf-8" if ctype.startswith("text/") else ctype
    return p.finish(Response(data, media_type=media, headers={
        "Content-Disposition": f'{"inline" if inline else "attachment"}; filename="{doc_id}"'}))


@pro_page("GET", "/pro/dossier/{key}/documents/{id}/body")
async def document_body(p: ProPage) -> Response:
    """A PDF the CDA document carries, as the patient portal serves it (:func:`carnet.portal.pages.documents.
    cda_pdf`); retrieved (audited ITI-68, SHA-256 checked) like the file."""
    doc_id = _doc_id(p)
    data, ctype, _ = await p.run(lambda ctx: documents.retrieve(ctx, doc_id))
    return p.finish(cda_pdf(data, ctype, doc_id, p.request.query_params))


def _labels(resource: dict[str, Any], drop: str) -> list[dict[str, Any]]:
    out = []
    for concept in resource.get("securityLabel") or []:
        codings = [c for c in concept.get("coding") or [] if c.get("code") not in (drop, "N")]
        if codings:
            out.append({**concept, "coding": codings})
    return out or [{"coding": [{"system": codes.TRE_A07, "code": "N"}]}]


@pro_page("POST", "/pro/dossier/{key}/documents/{id}/release")
async def release(p: ProPage) -> Response:
    key, doc_id = _key(p), _doc_id(p)

    def work(ctx: Context) -> None:
        resource = json.loads(documents.read(ctx, doc_id))
        documents.patch(ctx, doc_id, PatchPlan(label_ops=[{"op": "replace", "path": "/securityLabel",
                                                           "value": _labels(resource, codes.INVISIBLE_PATIENT)}]))
    await p.run(work)
    return p.redirect(f"/pro/dossier/{key}?done=released")


@pro_page("POST", "/pro/dossier/{key}/documents/{id}/withdraw")
async def withdraw(p: ProPage) -> Response:
    key, doc_id = _key(p), _doc_id(p)
    await p.run(lambda ctx: documents.patch(ctx, doc_id, PatchPlan(status="entered-in-error")))
    return p.redirect(f"/pro/dossier/{key}?done=withdrawn")


def docref(key: uuid.UUID, type_code: str, title: str, content_type: str, now: dt.datetime, author: dict[str, Any],
           invisible: bool, replaces: str | None) -> dict[str, Any]:
    class_code = codes.TYPE_CLASS[type_code]  # the form offers only TYPES
    system, fmt = UPLOADS[content_type]
    instant = documents.fhir_instant(now)
    res: dict[str, Any] = {
        "resourceType": "DocumentReference", "status": "current",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "type": {"coding": [{"system": codes.type_system(type_code), "code": type_code,
                             "display": TYPES.get(type_code, type_code)}]},
        "category": [{"coding": [{"system": codes.TRE_A03, "code": class_code,
                                  "display": codes.CLASSES[class_code]}]}],
        "subject": {"reference": f"Patient/{key}"}, "date": instant, "author": [author],
        "content": [{"attachment": {"contentType": content_type, "title": title, "creation": instant},
                     "format": {"system": system, "code": fmt}}]}
    if invisible:
        res["securityLabel"] = [{"coding": [{"system": codes.TRE_A07, "code": codes.INVISIBLE_PATIENT}]}]
    if replaces:
        res["relatesTo"] = [{"code": "replaces", "target": {"reference": f"DocumentReference/{replaces}"}}]
    return res


def _add_form(p: ProPage, key: uuid.UUID, status: int = 200, error: str = "", **form: str) -> Response:
    return p.render("pro/add_document.html", status=status, title=p._("Add a document"), key=key, types=_types(p),
                    classes=_classes(p), type_class=codes.TYPE_CLASS, form=form, error=error)


@pro_page("GET", "/pro/dossier/{key}/add")
async def add_form(p: ProPage) -> Response:
    return _add_form(p, _key(p), replaces=str(p.request.query_params.get("replaces") or ""))


@pro_page("POST", "/pro/dossier/{key}/add")
async def add(p: ProPage) -> Response:
    key = _key(p)
    form = await p.form()
    values = {k: str(form.get(k) or "").strip() for k in ("type", "title", "replaces", "text")}
    upload = form.get("file")
    data, name, declared = b"", "", ""
    if upload is not None and not isinstance(upload, str):
        data, name, declared = await upload.read(), upload.filename or "", upload.content_type or ""
    if not data and values["text"]:
        data, declared, name = values["text"].encode(), "text/plain", "note.txt"
    ctype = sniff_content_type(data, name, declared) if data else None
    error = ""
    if values["type"] not in TYPES:
        error = p._("Choose the type of document.")
    elif not values["title"]:
        error = p._("Give the document a title.")
    elif ctype is None:
        error = p._("Add a PDF, a JPEG or PNG image, or a text.")
    replaces = values["replaces"] or None
    if replaces:
        try:
            replaces = str(uuid.UUID(replaces))
        except ValueError:
            error = p._("Choose the document this one replaces.")
    if error:
        return _add_form(p, key, 400, error, **values)
    assert ctype is not None
    now, invisible = p.services.clock(), bool(form.get("invisible"))
    author = {"reference": f"Practitioner/{p.pro.national_id}"} if p.pro else {}

    def work(ctx: Context) -> None:
        res = docref(key, values["type"], values["title"], ctype, now, author, invisible, replaces)
        documents.publish(ctx, key, res, documents.Content(data, ctype), "ITI-65")
    try:
        await p.run(work)
    except FhirError as err:
        if err.status in (400, 413, 415, 422, 409):
            return _add_form(p, key, err.status, p._(str(err)), **values)
        raise
    return p.redirect(f"/pro/dossier/{key}?done=added")
