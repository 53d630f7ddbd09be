"""E-prescriptions in the clinician portal (issue 12 §2, docs/PRESCRIPTIONS.md): the prescriber writes one from the
patient's dossier (up to :data:`FORM_LINES` lines, medicines or free text) and sees the dossier's prescriptions with
what was dispensed; the pharmacist finds one by number and INS, by the scanned 2D code, or in the list of those
sent to their pharmacy, and records what was dispensed. Pages decide nothing: :mod:`carnet.prescribing` and the
policy do, and audit."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import Response

from carnet import prescribing
from carnet.errors import FhirError
from carnet.pro.pages import teleconsult
from carnet.pro.web import ProPage, pro_page

# During a teleconsultation the prescription is written from the room's side panel (issue 12: "during or after a
# consultation"), linked to the visit's Encounter.
teleconsult.SIDE_PANELS.append("pro/teleconsult/_prescription_panel.html")

FORM_LINES = 3
FIELDS = ("kind", "medication", "strength", "form", "ucd", "dosage_text", "dose_value", "dose_unit", "frequency",
          "period_unit", "duration_days", "quantity", "unit", "repeats")


def _key(p: ProPage) -> uuid.UUID:
    try:
        return uuid.UUID(str(p.request.path_params.get("key")))
    except ValueError:
        raise FhirError(404, "not-found", "Patient not found") from None


def _number(value: str, field: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    if not value.isdigit():
        raise FhirError(422, "value", f"{field}: a whole number.", field)
    return int(value)


def _lines(form: FormData) -> tuple[list[prescribing.Line], list[dict[str, str]]]:
    rows = [{f: str(form.get(f"{f}-{i}") or "").strip() for f in FIELDS} for i in range(FORM_LINES)]
    lines = []
    for i, row in enumerate(rows):
        if not row["medication"]:
            continue
        try:
            dose = float(row["dose_value"].replace(",", ".")) if row["dose_value"] else None
        except ValueError:
            raise FhirError(422, "value", f"line {i + 1}: the dose is a number.", "dose_value") from None
        lines.append(prescribing.Line(
            kind="text" if row["kind"] == "text" else "medicine", medication=row["medication"],
            strength=row["strength"], form=row["form"], ucd=row["ucd"], dosage_text=row["dosage_text"],
            dose_value=dose, dose_unit=row["dose_unit"], frequency=_number(row["frequency"], "frequency"),
            period_unit=row["period_unit"] or "d", duration_days=_number(row["duration_days"], "duration"),
            quantity=_number(row["quantity"], "quantity") or 1, unit=row["unit"] or "boîte",
            repeats=_number(row["repeats"], "repeats") or 0))
    return lines, rows


def _form(p: ProPage, key: uuid.UUID, status: int = 200, error: str = "", rows: list[dict[str, str]] | None = None,
          note: str = "", encounter: str = "") -> Response:
    blank = {f: "" for f in FIELDS}
    return p.render("pro/prescribe.html", status=status, title=p._("Write a prescription"), key=key,
                    rows=rows or [dict(blank) for _ in range(FORM_LINES)], error=error, note=note,
                    encounter=encounter, periods=prescribing.PERIOD_UNITS)


@pro_page("GET", "/pro/dossier/{key}/prescribe")
async def prescribe_form(p: ProPage) -> Response:
    return _form(p, _key(p), encounter=str(p.request.query_params.get("encounter") or ""))


@pro_page("POST", "/pro/dossier/{key}/prescribe")
async def prescribe(p: ProPage) -> Response:
    key = _key(p)
    form = await p.form()
    note, encounter = str(form.get("note") or ""), str(form.get("encounter") or "").strip()
    rows: list[dict[str, str]] = []
    try:
        lines, rows = _lines(form)
        await p.run(lambda ctx: prescribing.write(ctx, key, lines, note, encounter or None))
    except FhirError as err:
        if err.status in (400, 422):
            return _form(p, key, 422, str(err), rows or None, note, encounter)
        raise
    return p.redirect(f"/pro/dossier/{key}/prescriptions?done=written")


@pro_page("GET", "/pro/dossier/{key}/prescriptions")
async def dossier_prescriptions(p: ProPage) -> Response:
    key = _key(p)
    found = await p.run(lambda ctx: prescribing.for_dossier(ctx, key))
    written = p.request.query_params.get("done") == "written"
    return p.render("pro/prescriptions.html", title=p._("Prescriptions in this dossier"), key=key, prescriptions=found,
                    flash=p._("The prescription is signed and filed in the dossier; the patient can see it.")
                    if written else "")


# --- the pharmacist -------------------------------------------------------------------------------------------------

def _presentation(form: Any) -> prescribing.Presentation:
    return prescribing.Presentation(number=str(form.get("number") or "").strip(),
                                    ins=str(form.get("ins") or "").strip(), scan=str(form.get("scan") or "").strip())


def _pharmacy(p: ProPage, status: int = 200, error: str = "", shown: prescribing.Presentation | None = None,
              found: prescribing.PrescriptionView | None = None, sent: list[prescribing.Sent] | None = None,
              done: str = "") -> Response:
    return p.render("pro/pharmacy.html", status=status, title=p._("Dispense a prescription"), error=error,
                    shown=shown or prescribing.Presentation(), found=found, sent=sent or [],
                    flash=p._("Recorded: the patient and the prescriber see what you dispensed.")
                    if done == "dispensed" else "")


async def _count(p: ProPage) -> None:
    if p.pro is not None:
        await run_in_threadpool(prescribing.check_rate, p.services, p.pro.national_id)


@pro_page("GET", "/pro/pharmacy")
async def pharmacy(p: ProPage) -> Response:
    sent = await p.run(prescribing.pharmacy_inbox)
    return _pharmacy(p, sent=sent)


@pro_page("POST", "/pro/pharmacy/find")
async def pharmacy_find(p: ProPage) -> Response:
    shown = _presentation(await p.form())
    await _count(p)
    try:
        found = await p.run(lambda ctx: prescribing.find(ctx, shown))
    except FhirError as err:
        if err.status == 404:
            return _pharmacy(p, 404, p._("No prescription with this number for this patient: check the number "
                                         "and the patient's INS."), shown)
        raise
    return _pharmacy(p, shown=shown, found=found)


@pro_page("POST", "/pro/pharmacy/dispense")
async def pharmacy_dispense(p: ProPage) -> Response:
    form = await p.form()
    shown = _presentation(form)
    items = []
    for name in form:
        if name.startswith("qty-") and str(form.get(name) or "").strip() not in ("", "0"):
            try:
                items.append((int(name[4:]), int(str(form.get(name)))))
            except ValueError:
                return _pharmacy(p, 422, p._("Quantities are whole numbers."), shown)
    await _count(p)
    try:
        found = await p.run(lambda ctx: prescribing.dispense(ctx, shown, items))
    except FhirError as err:
        if err.status in (404, 409, 422):
            again = None
            if err.status != 404:
                again = await p.run(lambda ctx: prescribing.find(ctx, shown))
            return _pharmacy(p, err.status, str(err), shown, again)
        raise
    return _pharmacy(p, shown=shown, found=found, done="dispensed")
