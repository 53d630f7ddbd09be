"""Requests: professionals asking for access, and the patient's own requests for a correction (issue 4 §3).

Pending access requests are answered in one step (accept, or refuse with an optional note); past requests show their
outcome. A correction (GDPR right of rectification) is asked from a document; its author answers by replacing the
document (the new version is linked) or by a reasoned refusal (shown). Everything goes through
:mod:`carnet.tasks.service`, which decides through the policy and audits.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.responses import Response

from carnet.context import Context
from carnet.documents import codes
from carnet.errors import FhirError
from carnet.identity.professions import profession_label
from carnet.portal.i18n import N_
from carnet.portal.web import Page, page
from carnet.tasks import service as tasks

DONE = {
    "accepted": N_("Request accepted: the professional can now read your dossier."),
    "refused": N_("Request refused: the professional has no access. They are told of your answer."),
    "correction": N_("Your request is sent to the author of the document. You will see their answer here."),
}
STATUSES = {"requested": N_("waiting for an answer"), "completed": N_("accepted"), "rejected": N_("refused"),
            "expired": N_("expired without an answer")}
CORRECTION_STATUSES = {"requested": N_("waiting for the author's answer"),
                       "completed": N_("corrected: a new version replaces the document"),
                       "rejected": N_("refused by the author"), "expired": N_("expired")}


def _lang(p: Page) -> Any:
    return "en" if p.lang.code == "en" else "fr"


def _document_label(resource: str) -> dict[str, str]:
    """What a patient recognises a document by: its title or type, its date, its author."""
    res = json.loads(resource)
    attachment = ((res.get("content") or [{}])[0] or {}).get("attachment") or {}
    coding = ((res.get("type") or {}).get("coding") or [{}])[0]
    title = attachment.get("title") or (res.get("type") or {}).get("text") or coding.get("display") or \
        codes.TYPE_LABELS.get(str(coding.get("code") or "")) or ""  # never the code: the page says "Document"
    authors = [str(a.get("display")) for a in res.get("author") or [] if isinstance(a, dict) and a.get("display")]
    return {"id": str(res.get("id") or ""), "title": str(title), "date": str(res.get("date") or ""),
            "author": ", ".join(authors)}


@page("GET", "/portal/requests")
async def requests(p: Page) -> Response:
    key = p.dossier_key
    views = await p.run(lambda ctx: tasks.list_for_dossier(ctx, key))
    access = [v for v in views if v.kind == tasks.ACCESS]
    lang = _lang(p)
    done = DONE.get(str(p.request.query_params.get("done") or ""), "")
    return p.render(
        "portal/requests/index.html", title=p._("Requests"),
        lead=p._("Professionals asking to read your dossier, and your requests for a correction."),
        pending=[v for v in access if v.status == "requested"], past=[v for v in access if v.status != "requested"],
        corrections=[v for v in views if v.kind == tasks.RECTIFICATION], statuses=STATUSES,
        correction_statuses=CORRECTION_STATUSES, flash=p._(done) if done else "",
        profession=lambda c: profession_label(c, lang) if c else "")


def _task_id(value: object) -> uuid.UUID:
    try:
        return uuid.UUID(str(value or ""))
    except ValueError:
        raise FhirError(404, "not-found", "This request was not found.") from None


async def _answer(p: Page, accept: bool) -> Response:
    form = await p.form()
    tid = _task_id(form.get("task"))
    note = str(form.get("note") or "").strip() or None
    await p.run(lambda ctx: tasks.answer_access(ctx, tid, accept, note))
    return p.redirect("/portal/requests?done=" + ("accepted" if accept else "refused"))


@page("POST", "/portal/requests/accept")
async def accept(p: Page) -> Response:
    return await _answer(p, True)


@page("POST", "/portal/requests/refuse")
async def refuse(p: Page) -> Response:
    return await _answer(p, False)


def _candidates(ctx: Context, key: uuid.UUID) -> list[dict[str, str]]:
    """The documents a correction may be asked for: current ones written by professionals (the patient replaces or
    deletes their own), as the documents service lists them for the patient (policy, audit)."""
    from carnet.documents import service as documents

    found = documents.browse(ctx, key, documents.DocumentFilter(), 100, 0)
    return [{"id": str(d.id), "title": d.title, "date": d.date.isoformat(), "author": d.author_name or ""}
            for d in found.documents if d.status == "current" and d.added_by == "professional"]


async def _correction_form(p: Page, document: str, *, text: str = "", error: str = "",
                           status: int = 200) -> Response:
    key = p.dossier_key

    def work(ctx: Context) -> tuple[dict[str, str] | None, list[dict[str, str]]]:
        from carnet.documents import service as documents

        if document:
            return _document_label(documents.read(ctx, document)), []
        return None, _candidates(ctx, key)

    chosen, candidates = await p.run(work)
    return p.render("portal/requests/correction.html", status=status, title=p._("Ask for a correction"),
                    lead=p._("If something in a document is wrong, ask its author to correct it. They answer by "
                             "replacing the document or by explaining why not."),
                    chosen=chosen, candidates=candidates, text=text, error=error)


def _document_param(value: object) -> str:
    text = str(value or "").strip()
    if not text:
        return ""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise FhirError(404, "not-found", "This document was not found.") from None


@page("GET", "/portal/requests/correction")
async def correction_form(p: Page) -> Response:
    return await _correction_form(p, _document_param(p.request.query_params.get("document")))


@page("POST", "/portal/requests/correction")
async def correction(p: Page) -> Response:
    form = await p.form()
    document = _document_param(form.get("document"))
    text = str(form.get("text") or "").strip()
    if not document:
        return await _correction_form(p, "", text=text, error=p._("Choose the document to correct."), status=400)
    if not text:
        return await _correction_form(p, document, error=p._("Say what is wrong in the document."), status=400)
    try:
        await p.run(lambda ctx: tasks.request_rectification(ctx, document, text))
    except FhirError as exc:
        if exc.status not in (409, 422):
            raise
        return await _correction_form(p, document, text=text, error=p._(str(exc)), status=exc.status)
    return p.redirect("/portal/requests?done=correction")
