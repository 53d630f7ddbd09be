"""My dossier (issue 4 §2, "The dossier itself"): its state, the complete copy, close, reopen, object to it.

Every action goes through :mod:`carnet.dossier.service` (the policy's ``close_or_reopen``, audited there) or
:func:`carnet.export.copy.build_copy` (the policy's ``copy``, audited there). Closing and objecting take a
confirmation step that explains what follows; reopening does not (it gives access back to no one but the patient:
the authorizations kept while closed apply again).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import IO

from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from carnet.dossier import service as dossiers
from carnet.portal.i18n import N_
from carnet.portal.web import Page, page

DONE = {
    "closed": N_("Your dossier is closed. Professionals no longer have access to it."),
    "reopened": N_("Your dossier is open again."),
    "objected": N_("Your objection is recorded and your dossier is closed."),
}
CHANNELS = {
    "professional": N_("by a health professional, with your consent"),
    "counter": N_("at an Assurance Maladie counter"),
    "patient": N_("by yourself, online"),
}
REASONS = {
    "patient": N_("closed at your request"),
    "objection": N_("closed because you objected to it"),
    "death": N_("closed after a death"),
}
SPOOL_BYTES = 8 * 1024 * 1024  # a copy larger than this is spooled to a temporary file, not held in memory
CHUNK = 64 * 1024


def _done(p: Page) -> str:
    key = str(p.request.query_params.get("done") or "")
    return p._(DONE[key]) if key in DONE else ""


@page("GET", "/portal/dossier")
async def dossier(p: Page) -> Response:
    key = p.dossier_key
    state = await p.run(lambda ctx: dossiers.state(ctx, key))
    return p.render("portal/dossier/index.html", title=p._("My dossier"), state=state, flash=_done(p),
                    channel=p._(CHANNELS[state.creation_channel]) if state.creation_channel in CHANNELS else "",
                    reason=p._(REASONS[state.close_reason]) if state.close_reason in REASONS else "",
                    retention_years=p.settings.retention_years,
                    lead=p._("Your dossier itself: download a complete copy, close it, reopen it, or object to it."))


# --- the complete copy ---------------------------------------------------------------------------------------

def _stream(out: IO[bytes]) -> Iterator[bytes]:
    out.seek(0)
    while chunk := out.read(CHUNK):
        yield chunk


@page("GET", "/portal/dossier/copy")
async def copy(p: Page) -> Response:
    """The zip of :func:`carnet.export.copy.build_copy`, built in the transaction (audited ``dossier.copy``), then
    streamed as an attachment."""
    from carnet.export.copy import build_copy

    key = p.dossier_key
    out = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # closed once streamed
    try:
        summary = await p.run(lambda ctx: build_copy(ctx, key, out))
    except BaseException:
        out.close()
        raise
    name = f"carnet-{summary.created.date().isoformat()}.zip"
    response = StreamingResponse(_stream(out), media_type="application/zip", background=BackgroundTask(out.close),
                                 headers={"Content-Disposition": f'attachment; filename="{name}"'})
    return p.finish(response)


# --- close, reopen, object -----------------------------------------------------------------------------------

def _confirm(p: Page, what: str) -> Response:
    titles = {"close": p._("Close my dossier"), "object": p._("Object to my dossier")}
    return p.render("portal/dossier/confirm.html", title=titles[what], what=what,
                    retention_years=p.settings.retention_years,
                    lead=p._("Read what follows, then confirm, or go back: nothing changes until you confirm."))


@page("GET", "/portal/dossier/close")
async def close_form(p: Page) -> Response:
    return _confirm(p, "close")


@page("POST", "/portal/dossier/close")
async def close(p: Page) -> Response:
    form = await p.form()
    if form.get("confirm") != "yes":
        return p.redirect("/portal/dossier/close")
    key = p.dossier_key
    await p.run(lambda ctx: dossiers.close(ctx, key, reason="patient"))
    return p.redirect("/portal/dossier?done=closed")


@page("POST", "/portal/dossier/reopen")
async def reopen(p: Page) -> Response:
    key = p.dossier_key
    await p.run(lambda ctx: dossiers.reopen(ctx, key))
    return p.redirect("/portal/dossier?done=reopened")


@page("GET", "/portal/dossier/object")
async def object_form(p: Page) -> Response:
    return _confirm(p, "object")


@page("POST", "/portal/dossier/object")
async def object_(p: Page) -> Response:
    form = await p.form()
    if form.get("confirm") != "yes":
        return p.redirect("/portal/dossier/object")
    key = p.dossier_key
    await p.run(lambda ctx: dossiers.object_to_dossier(ctx, key))
    return p.redirect("/portal/dossier?done=objected")
