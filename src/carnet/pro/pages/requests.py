"""Requests (``/pro/requests``, issue 4 §3): the corrections patients ask of this professional's documents, and the
access requests this professional sent to patients.

- A rectification is answered by filing a corrected version (the add form with ``replaces``: the replacement
  completes the request) or by a reasoned refusal (``POST /pro/requests/{task}/refuse``).
- An access request is sent from the find result (``POST /pro/request-access``); the patient answers in their
  portal. A request shows the patient's name only while the policy lets this professional read the dossier (after
  the patient accepted): before that, "a patient", the date and the status, nothing of the dossier.

Everything goes through :mod:`carnet.tasks.service` (policy, audit); the names come from the policy's decision on
each dossier (``ctx.dossier``), each dossier shown audited once (``patient.read``), as the inbox does. In emergency or
regulation mode the page is refused: reading there would itself be an emergency access to every dossier listed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from carnet.access.actors import Mode
from carnet.context import Context
from carnet.errors import FhirError
from carnet.portal.i18n import N_
from carnet.pro.web import ProPage, pro_page
from carnet.tasks import service as tasks

DONE = {
    "pending": N_("You already asked this patient: your request is still waiting for their answer."),
    "refused": N_("Your request was refused at once: this patient refuses every access request."),
    "answered": N_("Your refusal is recorded: the patient sees it with your reason."),
}


@dataclass(frozen=True)
class Requests:
    corrections: list[tasks.TaskView]  # addressed to me: pending first, then answered, newest first in each
    asked: list[tasks.TaskView]  # my access requests, newest first
    names: dict[uuid.UUID, str]  # dossier key -> the patient's name, for the dossiers the policy lets me read


def _normal_mode(p: ProPage) -> None:
    if p.pro is not None and p.pro.mode != Mode.NORMAL.value:
        raise FhirError(403, "forbidden", "Your requests are shown in normal mode only: sign out of emergency mode.")


def _names(ctx: Context, keys: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The patient's name for each dossier the policy lets the caller read now; each one shown is audited once."""
    out: dict[uuid.UUID, str] = {}
    for key in sorted(keys):
        try:
            row, decision = ctx.dossier(key)
        except FhirError:
            continue
        if not decision.read:
            continue
        out[key] = f"{row.given} {row.family}"
        ctx.audit(key, "R", "patient.read", entity_type="Patient", entity_id=str(key),
                  detail={"query": "pro-requests"})
    return out


def _load(ctx: Context) -> Requests:
    mine = tasks.list_addressed_to_me(ctx, kinds=[tasks.RECTIFICATION])
    corrections = [v for v in mine if v.status == "requested"] + [v for v in mine if v.status != "requested"]
    asked = tasks.list_addressed_to_me(ctx, kinds=[tasks.ACCESS], as_owner=False)
    return Requests(corrections, asked, _names(ctx, {v.dossier_key for v in corrections + asked}))


async def _page(p: ProPage, status: int = 200, error: str = "", drafts: dict[str, str] | None = None) -> Response:
    _normal_mode(p)
    data = await p.run(_load)
    done = str(p.request.query_params.get("done") or "")
    flash = ""
    if done == "sent":
        flash = p._("Your request is sent. The patient is told and answers in their portal; without an answer, it "
                    "expires after {hours} hours.").format(hours=p.services.settings.access_request_hours)
    elif done in DONE:
        flash = p._(DONE[done])
    return p.render("pro/requests.html", status=status, title=p._("Requests"), corrections=data.corrections,
                    asked=data.asked, names=data.names, drafts=drafts or {}, max_text=tasks.MAX_TEXT,
                    flash="" if error else flash, error=error, doc_id=_doc_id,
                    lead=p._("The corrections patients ask of your documents, and the access requests you sent "
                             "to patients."))


def _doc_id(reference: str | None) -> str:
    """``DocumentReference/{id}`` → ``{id}``."""
    return (reference or "").rsplit("/", 1)[-1]


@pro_page("GET", "/pro/requests")
async def requests(p: ProPage) -> Response:
    return await _page(p)


def _uuid(value: Any, message: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value or ""))
    except ValueError:
        raise FhirError(404, "not-found", message) from None


@pro_page("POST", "/pro/request-access")
async def request_access(p: ProPage) -> Response:
    """From the find result: ask the patient for access. The tasks service decides (409 already authorized, 403
    blocked, emergency mode…) and audits; asking twice gives the pending request back."""
    form = await p.form()
    key = _uuid(form.get("dossier"), "Patient not found")
    reason = str(form.get("reason") or "").strip() or None
    view, created = await p.run(lambda ctx: tasks.open_access_request(ctx, key, reason))
    if not created:
        done = "pending"
    elif view.status == "rejected":
        done = "refused"
    else:
        done = "sent"
    return p.redirect(f"/pro/requests?done={done}#asked")


@pro_page("POST", "/pro/requests/{task}/refuse")
async def refuse(p: ProPage) -> Response:
    """The author refuses a correction, with a reason (required: the page says so and nothing changes)."""
    tid = _uuid(p.request.path_params.get("task"), "This request was not found.")
    form = await p.form()
    reason = str(form.get("reason") or "").strip()
    if not reason:
        return await _page(p, 422, p._("Give the reason why you refuse the correction."))
    try:
        await p.run(lambda ctx: tasks.answer_rectification(ctx, tid, reason))
    except FhirError as exc:
        if exc.status not in (409, 422):
            raise
        return await _page(p, exc.status, p._(str(exc)), {str(tid): reason})
    return p.redirect("/pro/requests?done=answered")
