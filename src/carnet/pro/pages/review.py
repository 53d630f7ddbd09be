"""The operators' review queue of emergency and regulation accesses (``/pro/review``): reviewers are the professionals
named in ``CARNET_REVIEWERS``; the queue shows no health content."""

from __future__ import annotations

import uuid

from starlette.responses import Response

from carnet.errors import FhirError
from carnet.history import accesses
from carnet.portal.web import offset_param
from carnet.pro.web import ProPage, pro_page

PAGE = 50


@pro_page("GET", "/pro/review")
async def queue(p: ProPage) -> Response:
    offset = offset_param(p.request.query_params.get("offset"))
    pending = p.request.query_params.get("pending") == "1"
    rows, total = await p.run(lambda ctx: accesses.review_queue(ctx, PAGE, offset, pending))
    return p.render("pro/review.html", title=p._("Emergency accesses to review"), rows=rows, total=total,
                    offset=offset, page=PAGE, pending=pending, outcomes=accesses.REVIEW_OUTCOMES,
                    flash=p._("Your review is recorded.") if p.request.query_params.get("done") else "",
                    lead=p._("Every emergency and regulation access, newest first. Mark each one justified, "
                             "questioned or referred."))


@pro_page("POST", "/pro/review")
async def review(p: ProPage) -> Response:
    form = await p.form()
    try:
        key, seq = uuid.UUID(str(form.get("dossier") or "")), int(str(form.get("seq") or ""))
    except ValueError:
        raise FhirError(404, "not-found", "This access is not in the review queue.") from None
    outcome, note = str(form.get("outcome") or ""), str(form.get("note") or "")
    await p.run(lambda ctx: accesses.record_review(ctx, key, seq, outcome, note))
    return p.redirect("/pro/review?done=1")
