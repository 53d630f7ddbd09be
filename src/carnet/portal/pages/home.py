"""Home: the emergency essentials first, then what is new since the last visit.

The essentials are the emergency summary's structured lists (allergies, treatments, health problems, blood group,
vaccinations: :func:`carnet.clinical.summary.summary_view`, each item with "dispute this item" and "hide from
professionals" / "stop hiding", issue 13 §3), the latest
summaries (class 11, e.g. the médecin traitant's VSM), the advance directives (type EXPPAT_3) and the emergency
contacts. "New since the last visit" compares with the session's
``previous_visit_at`` (the account's visit to this dossier before this session): documents added since then, and the
professionals who accessed the dossier since then, emergency and SAMU regulation accesses first and marked.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from carnet.clinical import hiding
from carnet.clinical import service as clinical
from carnet.clinical.summary import SummaryView, summary_view
from carnet.context import Context
from carnet.documents import service as documents
from carnet.dossier import contacts as contacts_service
from carnet.errors import FhirError
from carnet.history import audit_events as audit_fhir
from carnet.portal.i18n import N_
from carnet.portal.pages.documents import profession_label, view
from carnet.portal.web import Page, page
from carnet.tasks import service as tasks

MODES = {"normal": N_("normal access"), "emergency": N_("emergency access (break the glass)"),
         "regulation": N_("SAMU regulation access (centre 15)")}


@dataclass
class Visitor:
    """One professional's accesses since the last visit, in one mode."""

    actor_id: str | None
    name: str
    profession: str | None
    organisation: str | None
    mode: str
    reasons: list[str]
    count: int
    last: dt.datetime
    refused: int


def _visitors(entries: list[audit_fhir.HistoryEntry], since: dt.datetime | None) -> list[Visitor]:
    """The history entries grouped by professional and mode; emergency and regulation first, then the latest."""
    groups: dict[tuple[str, str], Visitor] = {}
    for e in entries:
        if since is not None and e.recorded < since:
            continue
        k = (e.actor_id or e.actor_name or "?", e.mode)
        v = groups.get(k)
        if v is None:
            v = groups[k] = Visitor(e.actor_id, e.actor_name or e.actor_id or "?", e.profession,
                                    e.organisation_name or e.organisation_id, e.mode, [], 0, e.recorded, 0)
        v.count += 1
        v.refused += 1 if e.refused else 0
        v.last = max(v.last, e.recorded)
        if e.reason and e.reason not in v.reasons:
            v.reasons.append(e.reason)
    return sorted(groups.values(), key=lambda v: (v.mode == "normal", -v.last.timestamp()))


@dataclass
class HomeData:
    docs: documents.HomeDocuments
    contacts: list[contacts_service.Contact]
    visitors: list[Visitor]
    pending_requests: int
    summary: SummaryView | None = None


@page("GET", "/portal/")
async def home(p: Page) -> Response:
    session = p.session
    assert session is not None
    key: uuid.UUID = p.dossier_key
    since = session.previous_visit_at

    def work(ctx: Context) -> HomeData:
        docs = documents.home_documents(ctx, key, since)
        contacts = contacts_service.list_contacts(ctx, key)
        f = audit_fhir.HistoryFilter(since=since.astimezone(dt.UTC).date() if since else None,
                                     actors="professionals")
        entries, _ = audit_fhir.history(ctx, key, f, limit=200)
        pending = tasks.list_for_dossier(ctx, key, [tasks.ACCESS], ["requested"])
        return HomeData(docs, contacts, _visitors(entries, since), len(pending), summary_view(ctx, key))

    data = await p.run(work)
    visitors: list[dict[str, Any]] = [
        {"name": v.name, "profession": profession_label(p, v.profession), "organisation": v.organisation,
         "mode": v.mode, "mode_label": p._(MODES.get(v.mode, MODES["normal"])), "reasons": v.reasons,
         "count": v.count, "refused": v.refused, "last": v.last.astimezone(p.zone)} for v in data.visitors]
    return p.render(
        "portal/home.html", title=p._("Home"),
        lead=p._("What matters in an emergency first, then what is new since your last visit."),
        summaries=[view(p, d) for d in data.docs.summaries], directives=[view(p, d) for d in data.docs.directives],
        new_documents=[view(p, d) for d in data.docs.new], contacts=data.contacts, visitors=visitors,
        emergencies=sum(1 for v in visitors if v["mode"] != "normal"), pending_requests=data.pending_requests,
        since=since.astimezone(p.zone) if since else None, clinical=_clinical_lists(p, data.summary),
        disputed=p.request.query_params.get("done") == "disputed",
        hidden_done=p.request.query_params.get("done") if p.request.query_params.get("done") in ("hidden", "shown")
        else None)


def _clinical_lists(p: Page, summary: SummaryView | None) -> list[dict[str, Any]]:
    """The emergency summary's structured lists for the home screen (issue 3 §3); empty when nothing is recorded."""
    if summary is None or not (summary.allergies or summary.medications or summary.problems or summary.blood_group
                               or summary.immunizations):
        return []
    lists = ((N_("Allergies"), summary.allergies), (N_("Treatments"), summary.medications),
             (N_("Health problems"), summary.problems), (N_("Blood group"), summary.blood_group),
             (N_("Vaccinations"), summary.immunizations))
    return [{"title": p._(title), "entries": [
        {"id": i.id, "type": i.resource_type, "display": item_text(i), "author": i.author_name,
         "source": i.source_label, "dispute": i.dispute, "masked": i.masked,
         "date": i.effective.astimezone(p.zone) if i.effective else None} for i in found]} for title, found in lists]


def item_text(item: Any) -> str:
    """What a screen shows of a structured item. Under its heading "Blood group", a blood group is its value
    ("O Rh+"), not the English name of its LOINC code ("ABO and Rh group: O Rh+")."""
    if item.category == "blood-group":
        value = (item.resource or {}).get("valueCodeableConcept") or {}
        coding: dict[str, Any] = next(iter(value.get("coding") or []), {})
        shown = value.get("text") or coding.get("display") or coding.get("code")
        if shown:
            return str(shown)
    return str(item.display)


@page("POST", "/portal/clinical/{rtype}/{item_id}/dispute")
async def dispute(p: Page) -> Response:
    """The patient side disputes a structured item (issue 3 §2): the note goes to the item, its author sees it."""
    rtype, item_id = p.request.path_params["rtype"], p.request.path_params["item_id"]
    text = str((await p.form()).get("text") or "")
    if rtype not in clinical.TYPES:
        return p.redirect("/portal/#clinical")
    try:
        await p.run(lambda ctx: clinical.dispute(ctx, rtype, item_id, text))
    except FhirError as exc:
        if exc.status != 422:
            raise
        return p.redirect("/portal/?done=dispute-empty#clinical")
    return p.redirect("/portal/?done=disputed#clinical")


async def _hide(p: Page, hidden: bool) -> Response:
    rtype, item_id = p.request.path_params["rtype"], p.request.path_params["item_id"]
    if rtype not in clinical.TYPES:
        return p.redirect("/portal/#clinical")
    await p.run(lambda ctx: hiding.set_hidden(ctx, rtype, item_id, hidden))
    return p.redirect(f"/portal/?done={'hidden' if hidden else 'shown'}#item-{item_id}")


@page("POST", "/portal/clinical/{rtype}/{item_id}/hide")
async def hide(p: Page) -> Response:
    """The patient side hides a structured item from professionals (issue 13 §3: as MASQUE_PS hides a document)."""
    return await _hide(p, True)


@page("POST", "/portal/clinical/{rtype}/{item_id}/show")
async def show(p: Page) -> Response:
    """The patient side shows a hidden item to professionals again."""
    return await _hide(p, False)
