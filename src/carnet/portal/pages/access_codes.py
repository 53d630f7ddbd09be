"""Access codes (issue 13 §1): the patient gives a new professional a short code to read out on the phone.

The patient picks how long it is valid (24 hours by default) and may add a note for themselves; the code is shown
once, on the page that answers the form (never in a URL), and is then kept only as a keyed hash. The page lists the
codes with their state (waiting, used by whom, expired, revoked); a waiting code can be revoked. Every action goes
through :mod:`carnet.codes` (the policy's ``issue_codes``, audited there).
"""

from __future__ import annotations

from starlette.responses import Response

from carnet import codes
from carnet.context import Context
from carnet.errors import FhirError
from carnet.ids import parse_id
from carnet.portal.i18n import N_
from carnet.portal.web import Page, page

DURATIONS = {"1": N_("1 hour"), "4": N_("4 hours"), "24": N_("24 hours"), "72": N_("3 days"),
             "168": N_("7 days")}
STATES = {"live": N_("waiting to be used"), "used": N_("used"), "expired": N_("expired"), "revoked": N_("revoked")}
DONE = {"revoked": N_("The code is revoked: it can no longer be used."),
        "required": N_("From now on, a professional not yet authorized needs an access code from you."),
        "not-required": N_("A professional not yet authorized may again record your consent during a visit."),
        "stopped": N_("This professional no longer sees the documents you hid. Their access is otherwise unchanged.")}
KINDS = {"access": N_("access code (for a new professional)"),
         "hidden": N_("code for the hidden documents (for a professional you have authorized)")}


async def _show(p: Page, *, issued: codes.IssuedCode | None = None, error: str = "", status: int = 200) -> Response:
    key = p.dossier_key

    def work(ctx: Context) -> tuple[list[codes.CodeView], bool]:
        return codes.codes(ctx, key), codes.required(ctx, key)

    found, required = await p.run(work)
    done = str(p.request.query_params.get("done") or "")
    return p.render("portal/access/codes.html", status=status, title=p._("Access codes"), codes=found,
                    issued=issued, required=required, kinds=KINDS, states=STATES, durations=DURATIONS, error=error,
                    flash=p._(DONE[done]) if done in DONE else "",
                    lead=p._("Give a new professional access to your dossier from afar: create a code and read it "
                             "out to them, for example on the phone. It works once, for the time you choose; the "
                             "professional who enters it gets the same access as if you had authorized them on the "
                             "Access page, and you are told."))


@page("GET", "/portal/access-codes")
async def index(p: Page) -> Response:
    return await _show(p)


@page("POST", "/portal/access-codes")
async def create(p: Page) -> Response:
    form = await p.form()
    hours = str(form.get("hours") or "24")
    if hours not in DURATIONS:
        hours = "24"
    label = str(form.get("label") or "") or None
    kind = "hidden" if form.get("kind") == "hidden" else "access"
    key = p.dossier_key
    try:
        issued = await p.run(lambda ctx: codes.issue(ctx, key, int(hours), label, kind))
    except FhirError as exc:
        if exc.status not in (409, 422):
            raise
        return await _show(p, status=400, error=p._(
            "You already have 10 codes waiting to be used: revoke one first.") if exc.status == 409 else
            p._("A note has at most 80 characters."))
    return await _show(p, issued=issued)


@page("POST", "/portal/access-codes/revoke")
async def revoke(p: Page) -> Response:
    form = await p.form()
    code_id = parse_id(str(form.get("code") or ""))
    if code_id is None:
        raise FhirError(404, "not-found", "No such code waiting to be used.")
    key = p.dossier_key
    await p.run(lambda ctx: codes.revoke(ctx, key, code_id))
    return p.redirect("/portal/access-codes?done=revoked")


@page("POST", "/portal/access-codes/require")
async def require(p: Page) -> Response:
    form = await p.form()
    value = form.get("required") == "yes"
    key = p.dossier_key
    await p.run(lambda ctx: codes.set_required(ctx, key, value))
    return p.redirect(f"/portal/access-codes?done={'required' if value else 'not-required'}#require")


@page("POST", "/portal/access-codes/stop-hidden")
async def stop_hidden(p: Page) -> Response:
    """Stop showing the hidden documents to the professional who took up a code for them (their access stays)."""
    form = await p.form()
    who = str(form.get("professional") or "")
    key = p.dossier_key
    try:
        await p.run(lambda ctx: codes.stop_hidden(ctx, key, who))
    except FhirError as exc:
        if exc.status != 404:
            raise
    return p.redirect("/portal/access-codes?done=stopped#codes")
