"""Données de remboursement (class 60): Assurance Maladie's care history for the last 24 months (issue 3 §5)."""

from __future__ import annotations

from starlette.responses import Response

from carnet.claims import service as claims
from carnet.portal.web import Page, offset_param, page

PAGE = 50


@page("GET", "/portal/care-history")
async def care_history(p: Page) -> Response:
    key = p.dossier_key
    offset = offset_param(p.request.query_params.get("offset"))
    lines, total = await p.run(lambda ctx: claims.search(ctx, key, PAGE, offset))
    more = f"/portal/care-history?offset={offset + PAGE}" if offset + PAGE < total else None
    return p.render("portal/care_history.html", title=p._("Reimbursement data"), lines=lines, total=total,
                    more_url=more,
                    lead=p._("The care Assurance Maladie reimbursed you in the last 24 months: visits, acts and "
                             "medicines."))
