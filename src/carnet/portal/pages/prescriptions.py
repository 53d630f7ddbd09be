"""Prescriptions (issue 12 §2): the patient sees their prescriptions and what each pharmacy dispensed, opens the
signed PDF, shows the 2D code at any pharmacy, or sends a prescription to a pharmacy of the directory. Through
:mod:`carnet.prescribing` (the policy decides; every read and change is audited there)."""

from __future__ import annotations

import uuid

from starlette.responses import Response

from carnet import prescribing
from carnet.context import Context
from carnet.errors import FhirError
from carnet.portal.i18n import N_
from carnet.portal.web import Page, page
from carnet.qr import qr_svg

DONE = {"sent": N_("The prescription is sent: the pharmacy can prepare it."),
        "withdrawn": N_("The prescription is no longer sent to a pharmacy.")}


@page("GET", "/portal/prescriptions")
async def index(p: Page) -> Response:
    key = p.dossier_key
    shown = str(p.request.query_params.get("code") or "")

    def work(ctx: Context) -> tuple[list[prescribing.PrescriptionView], list[prescribing.Pharmacy], str]:
        found = prescribing.for_dossier(ctx, key)
        qr = ""
        if shown and any(str(rx.prescription_id) == shown for rx in found):
            qr = qr_svg(prescribing.scan_code(ctx, key, uuid.UUID(shown)))
        return found, prescribing.pharmacies(ctx), qr

    found, pharmacies, qr = await p.run(work)
    done = str(p.request.query_params.get("done") or "")
    return p.render("portal/prescriptions.html", title=p._("My prescriptions"), prescriptions=found,
                    pharmacies=pharmacies, qr=qr, shown=shown, flash=p._(DONE[done]) if done in DONE else "",
                    lead=p._("Your prescriptions, and what each pharmacy dispensed. Show the code at any pharmacy, "
                             "or send a prescription to yours so that it can be prepared."))


@page("POST", "/portal/prescriptions/send")
async def send(p: Page) -> Response:
    form = await p.form()
    key = p.dossier_key
    try:
        prescription_id = uuid.UUID(str(form.get("prescription") or ""))
    except ValueError:
        raise FhirError(404, "not-found", "Prescription not found") from None
    pharmacy = str(form.get("pharmacy") or "").strip() or None
    await p.run(lambda ctx: prescribing.send_to_pharmacy(ctx, key, prescription_id, pharmacy))
    return p.redirect(f"/portal/prescriptions?done={'sent' if pharmacy else 'withdrawn'}#rx-{prescription_id}")
