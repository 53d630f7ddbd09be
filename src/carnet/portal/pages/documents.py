"""Documents: the dossier's documents by class, filters, a document's page with its preview, download, hide from
professionals / show again, delete from the dossier, and the patient's own documents and notes (class 90).

Every read and change goes through :mod:`carnet.documents.service` inside :meth:`Page.run`: the policy decides what
the patient sees (an ``INVISIBLE_PATIENT`` document is absent, as for a search), and the service writes the audit
record. A CDA document is shown readable by :func:`carnet.documents.cda.render_html` (escaped HTML from a short list
of tags, never an XSLT from the document); the PDF a CDA may carry is served decoded at ``/portal/documents/{id}/body``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import uuid
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup
from starlette.datastructures import UploadFile
from starlette.responses import Response

from carnet.context import Context
from carnet.documents import cda, codes
from carnet.documents import service as documents
from carnet.documents.content_types import sniff_content_type
from carnet.errors import FhirError
from carnet.identity.professions import PROFESSIONS
from carnet.portal.i18n import N_
from carnet.portal.web import Page, page

PAGE_SIZE = 20
PREVIEW_TEXT_LIMIT = 200_000  # characters of a text document shown in the page; the download has it all
TRE_A05 = "https://mos.esante.gouv.fr/NOS/TRE_A05-TypeDocComplementaire/FHIR/TRE-A05-TypeDocComplementaire"
IHE_FORMATS = "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode"
ANS_FORMATS = "https://mos.esante.gouv.fr/NOS/TRE_A06-FormatCodeComplementaire/FHIR/TRE-A06-FormatCodeComplementaire"
CDA_TYPES = tuple(sorted(cda.CONTENT_TYPES))  # every media type vendors send for a CDA R2 document

# DOMAIN.md's classes (TRE_A03): English message ids whose French translations are the labels of documents.codes.
CLASS_LABELS = {
    "10": N_("Reports"), "11": N_("Summaries"), "31": N_("Imaging"), "42": N_("Prescriptions"),
    "43": N_("Dispensations"), "44": N_("Care plans and protocols"), "45": N_("Treatments administered"),
    "52": N_("Certificates and declarations"), "60": N_("Reimbursement data"),
    "90": N_("Documents added by the patient"), "95": N_("Management documents"),
}
# Document types Carnet knows (DOMAIN.md); the French translations are the TRE_A05 / ANS displays.
TYPE_LABELS = {
    "11488-4": N_("Consultation report"), "11490-0": N_("Discharge letter"), "11502-2": N_("Laboratory report"),
    "11526-1": N_("Pathology report"), "34874-8": N_("Operative report"), "18748-4": N_("Imaging report"),
    "60591-5": N_("Patient summary (IPS)"), "SYNTH": N_("Medical summary (VSM)"),
    "34133-9": N_("Summary of an episode of care"),
    "68599-0": N_("Psychiatric summary"), "57833-6": N_("Prescription of health products"),
    "57832-8": N_("Prescription of care"), "60593-1": N_("Dispensed medicines"), "18776-5": N_("Care plan"),
    "80565-5": N_("Medicines administered"), "11369-6": N_("Vaccination history"), "87273-9": N_("Vaccination note"),
    "59284-0": N_("Consent form"), "REMB": N_("Reimbursement data"), "EXPPAT_3": N_("Advance directives"),
}
# What a patient may deposit (TRE_A05 DOCPAT01–09, class 90), with the French TRE_A05 display sent with the code.
PATIENT_TYPES = {
    "DOCPAT01": (N_("Summary"), "Synthèse déposée par le patient"),
    "DOCPAT02": (N_("Treatment or care document"), "Traitement ou document de soins déposé par le patient"),
    "DOCPAT03": (N_("Medical report"), "CR déposé par le patient"),
    "DOCPAT04": (N_("Imaging"), "Imagerie déposée par le patient"),
    "DOCPAT05": (N_("Laboratory results"), "CR de biologie déposé par le patient"),
    "DOCPAT06": (N_("Prevention report"), "CR de prévention déposé par le patient"),
    "DOCPAT07": (N_("Certificate"), "Certificat déposé par le patient"),
    "DOCPAT08": (N_("Medical profile"), "Profil médical Mon espace santé"),
    "DOCPAT09": (N_("Administrative document"), "Document administratif déposé par le patient"),
}
TYPE_LABELS.update({code: label for code, (label, _) in PATIENT_TYPES.items()})
# The files a patient may deposit: content type -> (format system, format code).
UPLOAD_FORMATS = {
    "application/pdf": (IHE_FORMATS, "urn:ihe:iti:xds-sd:pdf:2008"),
    "text/plain": (IHE_FORMATS, "urn:ihe:iti:xds-sd:text:2008"),
    "image/jpeg": (ANS_FORMATS, "urn:ihe:iti-fr:xds-sd:jpeg:2010"),
    "image/png": (IHE_FORMATS, "urn:ihe:iti:xds:2017:mimeTypeSufficient"),
}
DONE = {"hidden": N_("The document is now hidden from professionals. Your médecin traitant and its author still "
                     "see it."),
        "shown": N_("Professionals allowed to read your dossier can see this document again."),
        "unchanged": N_("Nothing changed: the document was already so."),
        "deleted": N_("The document is deleted from your dossier. The history keeps a trace of it."),
        "added": N_("Your document is added to your dossier.")}
UNTYPED = N_("Type not stated")  # a document published without a type (IHE MHD Minimal), filed in class 95
NOT_SHOWN = N_("This document does not exist, or is not shown to you.")


# --- labels ---------------------------------------------------------------------------------------------------------

def class_label(p: Page, code: str) -> str:
    return p._(CLASS_LABELS[code]) if code in CLASS_LABELS else codes.CLASSES.get(code, code)


def type_label(p: Page, code: str, display: str | None = None) -> str:
    """A document type as a reader names it, never its code (issue 16 §1): "Type not stated" for a document without
    a type, else the portal's translated label, else the display the source sent, else the French label of the ANS
    value set (:mod:`carnet.documents.codes`), else a plain "Document"."""
    if not code:
        return p._(UNTYPED)
    if code in TYPE_LABELS:
        return p._(TYPE_LABELS[code])
    if display and display.strip() and display.strip() != code:
        return display.strip()
    return codes.TYPE_LABELS.get(code) or p._("Document")


def profession_label(p: Page, code: str | None) -> str | None:
    if code is None:
        return None
    return PROFESSIONS[code][0 if p.lang.code == "fr" else 1] if code in PROFESSIONS else code


def author_label(p: Page, d: documents.Listed) -> str:
    if d.added_by == "you":
        return p._("you")
    if d.added_by == "patient_side":
        return p._("the patient or a legal representative")
    parts = [d.author_name or p._("unknown author")]
    profession = profession_label(p, d.author_profession)
    if profession:
        parts.append(profession)
    if d.author_organisation:
        parts.append(d.author_organisation)
    return ", ".join(parts)


def badges(p: Page, d: documents.Listed) -> list[tuple[str, bool]]:
    """(text, warn) of each badge: the text says it all, colour only repeats it."""
    out: list[tuple[str, bool]] = []
    if d.masked:
        out.append((p._("Hidden from professionals"), True))
    if d.status == "superseded":
        out.append((p._("Replaced by a newer version"), False))
    if d.status == "entered-in-error":
        out.append((p._("Withdrawn by its author"), True))
    if d.added_by == "you":
        out.append((p._("Added by you"), False))
    elif d.added_by == "patient_side":
        out.append((p._("Added by the patient or a legal representative"), False))
    return out


def view(p: Page, d: documents.Listed) -> dict[str, Any]:
    """What the templates show of one document."""
    tlabel = type_label(p, d.type_code, d.type_display)
    return {"id": str(d.id), "title": d.title.strip() or tlabel, "type": tlabel, "class": class_label(p, d.class_code),
            "class_code": d.class_code, "date": d.date.astimezone(p.zone),
            "creation": d.creation.astimezone(p.zone) if d.creation else None, "author": author_label(p, d),
            "badges": badges(p, d), "masked": d.masked, "status": d.status, "content_type": d.content_type,
            "size": d.size, "added_by": d.added_by}


# --- the list -------------------------------------------------------------------------------------------------------

def _day(p: Page, value: str, end: bool = False) -> dt.datetime | None:
    """A date typed in a filter as an instant (midnight in the display time zone; ``end``: the next midnight)."""
    day = dt.date.fromisoformat(value)
    return dt.datetime.combine(day + dt.timedelta(days=1 if end else 0), dt.time(), p.zone)


@page("GET", "/portal/documents")
async def document_list(p: Page) -> Response:
    q = p.request.query_params
    chosen = {k: str(q.get(k) or "").strip()[:64] for k in ("class", "type", "author", "from", "to")}
    error = ""
    since = until = None
    try:
        since = _day(p, chosen["from"]) if chosen["from"] else None
        until = _day(p, chosen["to"], end=True) if chosen["to"] else None
    except ValueError:
        error = p._("A date is not valid: write it as a day, month and year.")
    try:
        number = max(1, min(int(q.get("page") or 1), 10_000))
    except ValueError:
        number = 1
    f = documents.DocumentFilter(classes=(chosen["class"],) if chosen["class"] else (),
                                 types=(chosen["type"],) if chosen["type"] else (),
                                 author=chosen["author"] or None, since=since, until=until)
    key = p.dossier_key
    found = await p.run(lambda ctx: documents.browse(ctx, key, f, PAGE_SIZE, (number - 1) * PAGE_SIZE))
    docs = [view(p, d) for d in found.documents]
    groups = [(code, class_label(p, code), list(items))
              for code, items in itertools.groupby(docs, key=lambda d: str(d["class_code"]))]
    pages = max(1, (found.total + PAGE_SIZE - 1) // PAGE_SIZE)
    kept = {k: v for k, v in chosen.items() if v}

    def link(n: int) -> str:
        return "/portal/documents?" + urlencode({**kept, "page": n})

    values: dict[str, Any] = {
        "groups": groups, "total": found.total, "number": number, "pages": pages,
        "previous": link(number - 1) if number > 1 else None, "next": link(number + 1) if number < pages else None,
        "chosen": chosen, "filtered": bool(kept),
        "classes": [(c, class_label(p, c), n) for c, n in found.classes],
        "types": sorted(((t, type_label(p, t)) for t in found.types), key=lambda t: t[1].lower()),
        "authors": [(a, p._("you") if kind == "you" else name or p._("the patient or a legal representative")
                     if kind == "patient_side" else name or p._("unknown author")) for a, name, kind in found.authors],
        "error": error, "flash": p._(DONE[str(q.get("done"))]) if str(q.get("done")) in DONE else "",
    }
    if p.request.headers.get("hx-request") and p.request.headers.get("hx-target") == "document-list":
        return p.render("portal/documents/_list.html", **values)
    return p.render("portal/documents/list.html", title=p._("Documents"),
                    lead=p._("Every document in your dossier, by kind. Open one to read it, download it, hide it "
                             "from professionals or delete it."), **values)


# --- adding one's own documents and notes ---------------------------------------------------------------------------

def patient_docref(key: uuid.UUID, type_code: str, title: str, content_type: str, now: dt.datetime,
                   author: dict[str, Any]) -> dict[str, Any]:
    """The DocumentReference of a document the patient deposits, in the shape ITI-105 accepts (class 90, a TRE_A05
    DOCPAT type, no confidentiality label: "N")."""
    system, fmt = UPLOAD_FORMATS[content_type]
    instant = documents.fhir_instant(now)
    return {
        "resourceType": "DocumentReference", "status": "current",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "type": {"coding": [{"system": TRE_A05, "code": type_code, "display": PATIENT_TYPES[type_code][1]}]},
        "category": [{"coding": [{"system": codes.TRE_A03, "code": "90", "display": codes.CLASSES["90"]}]}],
        "subject": {"reference": f"Patient/{key}"}, "date": instant, "author": [author],
        "content": [{"attachment": {"contentType": content_type, "title": title, "creation": instant},
                     "format": {"system": system, "code": fmt}}],
    }


def _new_form(p: Page, status: int = 200, error: str = "", **form: str) -> Response:
    return p.render("portal/documents/new.html", status=status, title=p._("Add a document"),
                    lead=p._("Add a file (PDF, photo or scan, text) or write a note. Professionals allowed to read "
                             "your dossier will see it."),
                    types=[(c, p._(label)) for c, (label, _) in PATIENT_TYPES.items()], error=error,
                    max_mb=max(1, p.settings.max_document_bytes // (1024 * 1024)), form=form)


@page("GET", "/portal/documents/new")
async def new_form(p: Page) -> Response:
    return _new_form(p)


@page("POST", "/portal/documents/new")
async def add(p: Page) -> Response:
    form = await p.form()
    kind = "note" if form.get("kind") == "note" else "file"
    title = str(form.get("title") or "").strip()
    type_code = str(form.get("type") or "")
    note = str(form.get("note") or "") if kind == "note" else ""
    values = {"kind": kind, "title": title[:200], "type": type_code, "note": note}
    if not title or len(title) > 200:
        return _new_form(p, 400, p._("Give the document a title (200 characters at most)."), **values)
    if type_code not in PATIENT_TYPES:
        return _new_form(p, 400, p._("Choose what kind of document it is."), **values)
    limit = p.settings.max_document_bytes
    if kind == "note":
        if not note.strip():
            return _new_form(p, 400, p._("Write the text of your note."), **values)
        data, content_type = note.replace("\r\n", "\n").encode("utf-8"), "text/plain"
    else:
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return _new_form(p, 400, p._("Choose a file to add."), **values)
        data = await upload.read(limit + 1)
        if not data:
            return _new_form(p, 400, p._("This file is empty."), **values)
        sniffed = sniff_content_type(data, upload.filename or "", upload.content_type or "")
        if sniffed is None:
            return _new_form(p, 415, p._("This kind of file is not accepted. Choose a PDF, a JPEG or PNG image, or "
                                         "a text file."), **values)
        content_type = sniffed
    if len(data) > limit:
        return _new_form(p, 413, p._("This document is too large: {mb} MB at most.").format(
            mb=max(1, limit // (1024 * 1024))), **values)
    session = p.session
    assert session is not None
    key, now = p.dossier_key, p.services.clock()
    author: dict[str, Any] = {"reference": f"Patient/{key}"} if session.kind == "patient" else \
        {"display": session.display_name}
    body = patient_docref(key, type_code, title, content_type, now, author)

    def work(ctx: Context) -> uuid.UUID:
        from carnet.documents.metadata import read_metadata
        from carnet.documents.submission_sets import implicit_submission_set
        from carnet.documents.validate import validate

        validate(body, "DocumentReference")
        list_id = uuid.uuid4()
        pub = documents.publish(ctx, key, body, documents.Content(data, content_type), "ITI-105",
                                submission_set_id=list_id, meta=read_metadata(body))
        implicit_submission_set(ctx, key, pub.document_id, list_id)
        return pub.document_id

    try:
        doc_id = await p.run(work)
    except FhirError as err:
        if err.status == 413:
            return _new_form(p, 413, p._("This document is too large: {mb} MB at most.").format(
                mb=max(1, limit // (1024 * 1024))), **values)
        if err.status == 415:
            return _new_form(p, 415, p._("This kind of file is not accepted. Choose a PDF, a JPEG or PNG image, "
                                         "or a text file."), **values)
        if err.status == 422:  # the bytes contradict the kind of file, or carry a CDA document (issue 15 §7)
            return _new_form(p, 422, p._("This file's content does not match its kind. Choose a PDF, a JPEG or PNG "
                                         "image, or a text file."), **values)
        if err.status == 403:
            return _new_form(p, 403, p._("Documents cannot be added to this dossier while it is closed."), **values)
        raise
    return p.redirect(f"/portal/documents/{doc_id}?done=added")


# --- one document ---------------------------------------------------------------------------------------------------

def _doc_id(p: Page) -> str:
    value = str(p.request.path_params.get("id") or "")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise FhirError(404, "not-found", NOT_SHOWN) from None


def _utc(ts: Any) -> dt.datetime | None:
    if not ts:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@page("GET", "/portal/documents/{id}")
async def document_page(p: Page) -> Response:
    doc_id = _doc_id(p)

    def work(ctx: Context) -> tuple[documents.Listed, dict[str, Any], bytes | None]:
        listed, resource = documents.open_document(ctx, doc_id)
        data = None
        if listed.content_type in ("text/plain", "application/fhir+json", *CDA_TYPES):
            data, _, _ = documents.retrieve(ctx, doc_id)  # shown in the page: audited as a retrieval
        return listed, resource, data

    try:
        listed, resource, data = await p.run(work)
    except FhirError as err:
        if err.status == 404:
            raise FhirError(404, "not-found", NOT_SHOWN) from None
        raise
    doc = view(p, listed)
    period = ((resource.get("context") or {}).get("period") or {})
    preview: dict[str, Any] = {"kind": "none"}
    ctype = listed.content_type
    if ctype == "application/pdf":
        preview = {"kind": "pdf"}
    elif ctype in ("image/jpeg", "image/png"):
        preview = {"kind": "image"}
    elif data is not None and ctype in CDA_TYPES:
        rendered = cda_html(data, f"/portal/documents/{doc_id}/body", p.lang.code)
        preview = {"kind": "cda", "html": rendered} if rendered is not None else {"kind": "text", "text": _text(data)}
    elif data is not None and ctype == "application/fhir+json":
        try:
            preview = {"kind": "text", "text": json.dumps(json.loads(data), ensure_ascii=False, indent=2)}
        except ValueError:
            preview = {"kind": "text", "text": _text(data)}
    elif data is not None:
        preview = {"kind": "text", "text": _text(data)}
    if preview.get("kind") == "text" and len(preview["text"]) > PREVIEW_TEXT_LIMIT:
        preview.update(text=preview["text"][:PREVIEW_TEXT_LIMIT], shortened=True)
    done = str(p.request.query_params.get("done"))
    return p.render("portal/documents/document.html", title=doc["title"], doc=doc, preview=preview,
                    lead=p._("Read the document here, download it, or choose who sees it."),
                    period_start=_utc(period.get("start")), period_end=_utc(period.get("end")),
                    patient_side_added=listed.added_by in ("you", "patient_side"),
                    flash=p._(DONE[done]) if done in DONE else "")


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


@page("GET", "/portal/documents/{id}/file")
async def document_file(p: Page) -> Response:
    """The exact bytes, through ``documents.service.retrieve`` (audited, SHA-256 checked): inline for the preview
    (PDF, images, text), as an attachment otherwise or when asked (``?download=1``)."""
    doc_id = _doc_id(p)
    data, ctype, row = await p.run(lambda ctx: documents.retrieve(ctx, doc_id))
    inline = ctype in ("application/pdf", "image/jpeg", "image/png", "text/plain") and \
        not p.request.query_params.get("download")
    name = f"{doc_id}.{_extension(ctype)}"
    media = f"{ctype}; charset=utf-8" if ctype.startswith("text/") else ctype
    response = Response(data, media_type=media, headers={
        "Content-Disposition": f'{"inline" if inline else "attachment"}; filename="{name}"',
        "ETag": f'"{row.sha256}"'})
    return p.finish(response)


def _extension(ctype: str) -> str:
    return {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png", "text/plain": "txt",
            "application/fhir+json": "json", "application/fhir+xml": "xml"}.get(ctype, "xml" if "xml" in ctype
                                                                                else "bin")


async def _mask(p: Page, masked: bool) -> Response:
    doc_id = _doc_id(p)
    changed = await p.run(lambda ctx: documents.set_masked(ctx, doc_id, masked))
    done = ("hidden" if masked else "shown") if changed else "unchanged"
    return p.redirect(f"/portal/documents/{doc_id}?done={done}")


@page("POST", "/portal/documents/{id}/hide")
async def hide(p: Page) -> Response:
    return await _mask(p, True)


@page("POST", "/portal/documents/{id}/show")
async def show(p: Page) -> Response:
    return await _mask(p, False)


@page("POST", "/portal/documents/{id}/delete")
async def delete(p: Page) -> Response:
    doc_id = _doc_id(p)
    form = await p.form()
    if form.get("confirm") != "yes":
        return p.redirect(f"/portal/documents/{doc_id}")
    await p.run(lambda ctx: documents.delete_from_dossier(ctx, doc_id))
    return p.redirect("/portal/documents?done=deleted")


# --- CDA, shown readable (carnet.documents.cda) ---------------------------------------------------------------------

def cda_html(data: bytes, pdf_url: str | None = None, lang: str = "fr") -> Markup | None:
    """A CDA document as safe HTML (:func:`carnet.documents.cda.render_html`), or None when it is not one."""
    try:
        return cda.render_html(data, pdf_url=pdf_url, lang=lang)
    except cda.CdaError:
        return None


def cda_pdf(data: bytes, ctype: str, doc_id: str, query: Any) -> Response:
    """A PDF a CDA document carries (``?part=n``: its nonXMLBody is part 0, then each PDF embedded in its structured
    body, :func:`carnet.documents.cda.pdf_part`), served only when its bytes are a PDF: inline, or as an attachment
    with ``?download=1``. 404 when there is no such part. Both portals answer with this."""
    raw = str(query.get("part") or "0")
    n = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 6 else -1
    pdf = cda.pdf_part(data, n) if ctype in CDA_TYPES and n >= 0 else None
    if pdf is None:
        raise FhirError(404, "not-found", NOT_SHOWN)
    name = f"{doc_id}{f'-{n}' if n else ''}.pdf"
    disposition = "attachment" if query.get("download") else "inline"
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'{disposition}; filename="{name}"',
                             "X-Content-Type-Options": "nosniff"})


@page("GET", "/portal/documents/{id}/body")
async def document_body(p: Page) -> Response:
    """A PDF the CDA document carries (:func:`cda_pdf`); retrieved (audited, SHA-256 checked) like the file
    itself."""
    doc_id = _doc_id(p)
    data, ctype, _ = await p.run(lambda ctx: documents.retrieve(ctx, doc_id))
    return p.finish(cda_pdf(data, ctype, doc_id, p.request.query_params))
