"""Share (issue 13 §2): the patient's SMART Health Links and emergency card.

The patient chooses what a link shares (the emergency summary, documents not hidden from professionals), for how
long, with or without a passcode, for how many openings; sees each link's QR code and state; revokes a link at once.
The emergency card (PDF to print, PNG for a phone) carries a QR code to the live emergency summary. Every action goes
through :mod:`carnet.sharing` (the policy's ``share_links``, audited there); every opening is in the History.
"""

from __future__ import annotations

import datetime as dt

from starlette.responses import Response

from carnet import sharing
from carnet.context import Context
from carnet.errors import FhirError
from carnet.ids import parse_id
from carnet.portal.i18n import N_
from carnet.portal.web import Page, page
from carnet.qr import qr_svg

DURATIONS = {"1": N_("1 day"), "7": N_("7 days"), "30": N_("30 days"), "365": N_("1 year")}
STATES = {"live": N_("active link"), "revoked": N_("revoked link"), "expired": N_("expired link"),
          "used-up": N_("every opening used"), "locked": N_("locked after wrong passcodes")}
DONE = {"created": N_("Your link is ready: show its QR code or send the link."),
        "revoked": N_("The link is revoked: it no longer opens.")}
CARD_LABEL = N_("Emergency summary")
MESSAGES = {  # the services' refusals, as the patient reads them
    "Give the link a label of 1 to 80 characters.": N_("Give the link a label of 1 to 80 characters."),
    "A passcode has 4 to 100 characters.": N_("A passcode has 4 to 100 characters."),
    "The number of openings must be between 1 and 1000.": N_("The number of openings must be between 1 and 1000."),
    "Choose at most 20 documents.": N_("Choose at most 20 documents."),
    "Choose what to share: the emergency summary, documents, or both.":
        N_("Choose what to share: the emergency summary, documents, or both."),
}


async def _show(p: Page, *, error: str = "", status: int = 200, values: dict[str, str] | None = None,
                chosen: tuple[str, ...] = ()) -> Response:
    key = p.dossier_key

    def work(ctx: Context) -> tuple[list[sharing.LinkView], list[tuple[str, str, str | None]], dict[str, str]]:
        found = sharing.links(ctx, key)
        docs = sharing.shareable_documents(ctx, key)
        return found, docs, {str(v.link_id): qr_svg(v.shlink) for v in found if v.state == "live"}

    found, docs, qrs = await p.run(work)
    done = str(p.request.query_params.get("done") or "")
    return p.render("portal/sharing/index.html", status=status, title=p._("Share"), links=found, documents=docs,
                    qrs=qrs, states=STATES, attempts=p.settings.shl_passcode_attempts, durations=DURATIONS,
                    error=error, values=values or {}, chosen=chosen,
                    new=str(p.request.query_params.get("new") or ""), flash=p._(DONE[done]) if done in DONE else "",
                    lead=p._("Share your emergency summary or chosen documents with anyone, for example a doctor "
                             "abroad: a link and a QR code that you control. You see every opening in your "
                             "history and can revoke a link at any time."))


@page("GET", "/portal/sharing")
async def index(p: Page) -> Response:
    return await _show(p)


def _int(value: object) -> int | None:
    text = str(value or "").strip()
    return int(text) if text.isdigit() else None


@page("POST", "/portal/sharing")
async def create(p: Page) -> Response:
    form = await p.form()
    values = {k: str(v) for k, v in form.items() if isinstance(v, str) and k not in ("csrf", "passcode")}
    days = str(form.get("days") or "7")
    if days not in DURATIONS:
        days = "7"
    passcode = str(form.get("passcode") or "") or None
    typed = str(form.get("max_opens") or "").strip()
    max_opens = (_int(typed) or 0) if typed else None  # 0 (refused) when what was typed is not a number
    spec = sharing.LinkSpec(label=str(form.get("label") or ""), summary=form.get("summary") == "yes",
                            documents=tuple(str(d) for d in form.getlist("document")),
                            expires_at=p.services.clock() + dt.timedelta(days=int(days)), passcode=passcode,
                            max_opens=max_opens)
    key = p.dossier_key
    try:
        view = await p.run(lambda ctx: sharing.create(ctx, key, spec))
    except FhirError as exc:
        if exc.status != 422:
            raise
        message = str(exc)
        return await _show(p, error=p._(MESSAGES[message]) if message in MESSAGES else
                           p._("This link could not be made: check what you chose."), status=400, values=values,
                           chosen=spec.documents)
    return p.redirect(f"/portal/sharing?done=created&new={view.link_id}#link-{view.link_id}")


@page("POST", "/portal/sharing/revoke")
async def revoke(p: Page) -> Response:
    form = await p.form()
    link_id = parse_id(str(form.get("link") or ""))
    if link_id is None:
        raise FhirError(404, "not-found", "No such active link.")
    key = p.dossier_key
    await p.run(lambda ctx: sharing.revoke(ctx, key, link_id))
    return p.redirect("/portal/sharing?done=revoked")


@page("GET", "/portal/sharing/card.pdf")
async def card_pdf(p: Page) -> Response:
    key, label = p.dossier_key, p._(CARD_LABEL)
    data = await p.run(lambda ctx: sharing.card_pdf(sharing.emergency_card(ctx, key, label)))
    return p.finish(Response(data, media_type="application/pdf",
                             headers={"Content-Disposition": 'attachment; filename="emergency-card.pdf"'}))


@page("GET", "/portal/sharing/card.png")
async def card_png(p: Page) -> Response:
    key, label = p.dossier_key, p._(CARD_LABEL)
    data = await p.run(lambda ctx: sharing.card_png(sharing.emergency_card(ctx, key, label)))
    return p.finish(Response(data, media_type="image/png",
                             headers={"Content-Disposition": 'attachment; filename="emergency-card.png"'}))
