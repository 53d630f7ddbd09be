"""Measurements (issue 17 §1 and §4): the patient types a weight, a blood pressure, a glucose or a temperature;
imports an Apple Health export (uploaded with a progress bar, then imported by a job whose progress the page polls);
sees which devices and apps feed the dossier and stops one at once; hides a measure from professionals (the médecin
traitant still sees it); deletes a series after confirming. Everything goes through :mod:`carnet.measures` (the
policy's ``record_measures``, audited there).

The import runs in a thread of the node that received the upload (the file is a temporary file of that node); its
progress is a row of ``measure_import`` (:mod:`carnet.measures.imports`), so the page's poll may reach any node.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.responses import JSONResponse, Response

from carnet.accounts import sessions
from carnet.context import Context, run
from carnet.errors import FhirError
from carnet.measures import apple, imports
from carnet.measures import service as measures
from carnet.measures.catalogue import BY_NAME, Measure, Spec
from carnet.portal.i18n import N_
from carnet.portal.web import Page, page

BY_HAND = ("weight", "blood-pressure", "glucose", "temperature")
UNITS = {"weight": [("kg", "kg"), ("[lb_av]", "lb")], "blood-pressure": [("mm[Hg]", "mmHg")],
         "glucose": [("mg/dL", "mg/dL"), ("mmol/L", "mmol/L")], "temperature": [("Cel", "°C"), ("[degF]", "°F")]}
DONE = {"added": N_("Your measurement is saved."), "stopped": N_("This device or app can no longer add measurements."),
        "resumed": N_("This device or app may add measurements again."),
        "hidden": N_("Professionals no longer see this measure, except your médecin traitant."),
        "shown": N_("Professionals who may read measurements see this measure again."),
        "deleted": N_("The measurements are deleted.")}
KINDS = {"device": N_("device"), "app": N_("app"), "apple_health": N_("import"), "manual": N_("typed by you")}
FAILED = {"not-export": N_("This file is not an Apple Health export: choose the export.zip file exported from the "
                            "Health app."),
          "refused": N_("The import was refused; nothing was saved."),
          "failed": N_("The import failed; nothing was saved. Please try again."),
          "stopped": N_("The import stopped; nothing was stored; start it again.")}
logger = logging.getLogger(__name__)


def label(p: Page, spec: Spec) -> str:
    return spec.label_fr if p.lang.code == "fr" else spec.label_en


async def _show(p: Page, *, error: str = "", status: int = 200, values: dict[str, str] | None = None) -> Response:
    key = p.dossier_key

    def work(ctx: Context) -> tuple[list[measures.Series], list[measures.Source]]:
        return measures.visible_series(ctx, key), measures.sources(ctx, key)

    series, sources = await p.run(work)
    done = str(p.request.query_params.get("done") or "")
    now = p.services.clock().astimezone(p.zone).strftime("%Y-%m-%dT%H:%M")
    return p.render("portal/measures/index.html", status=status, title=p._("Measurements"), series=series,
                    sources=sources, forms=[BY_NAME[n] for n in BY_HAND], units=UNITS, kinds=KINDS, label=label,
                    p=p, error=error, values=values or {}, default_when=now,
                    flash=p._(DONE[done]) if done in DONE else "",
                    lead=p._("Your weight, blood pressure, glucose and other measurements: typed by you, sent by "
                             "your devices and apps, or imported from Apple Health. You choose who sees them."))


@page("GET", "/portal/measures")
async def index(p: Page) -> Response:
    return await _show(p)


def _number(text: str) -> float | None:
    try:
        return float(text.strip().replace(",", ".").replace("\u202f", "").replace(" ", ""))
    except ValueError:
        return None


@page("POST", "/portal/measures")
async def add(p: Page) -> Response:
    """A measurement typed by the patient: checked against the measure's bounds, errors in plain words."""
    form = await p.form()
    spec = BY_NAME.get(str(form.get("measure") or ""))
    if spec is None or spec.name not in BY_HAND:
        raise FhirError(404, "not-found", "No such measure.")
    values = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    unit = str(form.get("unit") or spec.unit)
    value, value2 = _number(str(form.get("value") or "")), _number(str(form.get("value2") or ""))
    try:
        when = dt.datetime.fromisoformat(str(form.get("when") or "")).replace(tzinfo=p.zone) \
            if form.get("when") else p.services.clock()
    except ValueError:
        return await _show(p, status=400, values=values, error=p._("Give the date and time of the measurement."))
    if when > p.services.clock() + dt.timedelta(minutes=5):
        return await _show(p, status=400, values=values, error=p._("The date of a measurement cannot be in the "
                                                                   "future."))
    if value is None or (spec.components is not None and value2 is None):
        return await _show(p, status=400, values=values, error=p._(
            "Type the systolic (high) and diastolic (low) numbers, for example 128 and 82.")
            if spec.components is not None else p._("Type a number, for example 72.5."))
    try:
        reading = measures.reading(spec.measure, when, value, unit, value2)
    except measures.BadReading:
        return await _show(p, status=400, values=values, error=_bounds_message(p, spec, unit))
    key = p.dossier_key
    source = measures.SourceRef(measures.MANUAL, "manual", "Carnet")
    await p.run(lambda ctx: measures.record(ctx, key, source, [reading], event="measures.record"))
    return p.redirect("/portal/measures?done=added")


def _bounds_message(p: Page, spec: Spec, unit: str) -> str:
    if spec.components is not None:
        return p._("A blood pressure is between {low} and {high} mmHg for the systolic (high) number and between "
                   "{low2} and {high2} mmHg for the diastolic (low) one, which is lower than the systolic.").format(
            low=f"{spec.low:g}", high=f"{spec.high:g}", low2=f"{spec.low2:g}", high2=f"{spec.high2:g}")
    names = dict(UNITS.get(spec.name, []))
    factor = spec.to_canonical(1.0, unit) if unit in spec.units else 1.0
    if spec.measure is Measure.TEMPERATURE and unit == "[degF]":
        low, high = spec.low * 9 / 5 + 32, spec.high * 9 / 5 + 32
    else:
        low, high = spec.low / factor, spec.high / factor
    return p._("{measure} must be between {low} and {high} {unit}: check the number and the unit.").format(
        measure=label(p, spec), low=p.lang.format.decimal(round(low, 2)), high=p.lang.format.decimal(round(high, 2)),
        unit=names.get(unit, spec.unit_label))


@page("POST", "/portal/measures/source")
async def stop(p: Page) -> Response:
    form = await p.form()
    try:
        number = int(str(form.get("source") or ""))
    except ValueError:
        raise FhirError(404, "not-found", "No such device or app.") from None
    halt = form.get("action") != "resume"
    key = p.dossier_key
    await p.run(lambda ctx: measures.stop_source(ctx, key, number, stop=halt))
    return p.redirect(f"/portal/measures?done={'stopped' if halt else 'resumed'}#sources")


@page("POST", "/portal/measures/hide")
async def hide(p: Page) -> Response:
    form = await p.form()
    spec = BY_NAME.get(str(form.get("measure") or ""))
    if spec is None:
        raise FhirError(404, "not-found", "No such measure.")
    hidden = form.get("hidden") == "yes"
    key = p.dossier_key
    await p.run(lambda ctx: measures.set_hidden(ctx, key, spec.measure, hidden))
    return p.redirect(f"/portal/measures?done={'hidden' if hidden else 'shown'}#series")


@page("POST", "/portal/measures/delete")
async def delete(p: Page) -> Response:
    """Deleting a series asks first (a confirmation page); the confirmed form deletes."""
    form = await p.form()
    spec = BY_NAME.get(str(form.get("measure") or ""))
    if spec is None:
        raise FhirError(404, "not-found", "No such measure.")
    if form.get("confirm") != "yes":
        return p.render("portal/measures/confirm.html", title=p._("Delete measurements"), spec=spec,
                        name=label(p, spec))
    key = p.dossier_key
    await p.run(lambda ctx: measures.delete_series(ctx, key, spec.measure))
    return p.redirect("/portal/measures?done=deleted#series")


# --- the Apple Health import -------------------------------------------------------------------------------------

@page("POST", "/portal/measures/import")
async def start_import(p: Page) -> Response:
    """The export arrived (Starlette spooled it to disk while the browser showed the upload's progress): copy it to a
    temporary file of this node, note the import in the database (any node answers its progress) and import it in a
    thread of this node; answer the import's id (JSON for the page's script, else its page)."""
    form = await p.form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return await _show(p, status=400, error=p._("Choose the export.zip file exported from the Health app."))
    current = p.session
    assert current is not None
    tmp = tempfile.NamedTemporaryFile(prefix="carnet-apple-", suffix=".zip", delete=False)  # noqa: SIM115

    def copy() -> None:
        with tmp:
            shutil.copyfileobj(upload.file, tmp, 1024 * 1024)

    try:
        await run_in_threadpool(copy)
        size = Path(tmp.name).stat().st_size
        key = p.dossier_key
        job_id = await p.run(lambda ctx: imports.start(ctx, key, size))
    except BaseException:
        Path(tmp.name).unlink(missing_ok=True)
        raise
    services = p.services

    def actor(conn: Any) -> Any:
        return sessions.actor(conn, current)

    def go() -> None:
        def work(ctx: Context) -> None:
            report = apple.import_export(ctx, key, tmp.name, imports.heartbeat(services, key, job_id))
            imports.finish(ctx, key, job_id, report)

        error = ""
        try:
            run(services, actor, work)
        except apple.NotAnExport:
            error = "not-export"
        except FhirError:
            error = "refused"
        except Exception:  # noqa: BLE001 - reported to the person; no detail (it could hold health data)
            error = "failed"
        finally:
            Path(tmp.name).unlink(missing_ok=True)
        if error:
            try:
                run(services, actor, lambda ctx: imports.fail(ctx, key, job_id, error))
            except Exception:  # noqa: BLE001 - the row stays running: the page shows it stopped after a while
                logger.warning("measures.import.fail_not_noted")

    threading.Thread(target=go, name="apple-import", daemon=True).start()
    if "application/json" in p.request.headers.get("accept", ""):
        return p.finish(JSONResponse({"job": job_id}))
    return p.redirect(f"/portal/measures/import/{job_id}")


async def _job(p: Page) -> imports.ImportState:
    key, job_id = p.dossier_key, str(p.request.path_params.get("job") or "")
    return await p.run(lambda ctx: imports.status(ctx, key, job_id))


def _summary(p: Page, job: imports.ImportState) -> str:
    if job.status == "done":
        text = p._("{stored} new measurements saved, {duplicates} already there, {bad} records not readable.").format(
            stored=job.stored, duplicates=job.duplicates, bad=job.bad)
        return text + (" " + "; ".join(job.reasons[:3]) if job.reasons else "")
    if job.status == "running":
        return ""
    return p._(FAILED.get(job.error or "", FAILED["failed"]))


@page("GET", "/portal/measures/import/{job}")
async def job_page(p: Page) -> Response:
    job = await _job(p)
    return p.render("portal/measures/job.html", title=p._("Import from Apple Health"), job=job,
                    percent=job.percent, summary=_summary(p, job), job_id=job.import_id)


@page("GET", "/portal/measures/import/{job}/progress")
async def job_progress(p: Page) -> Response:
    job = await _job(p)
    return p.finish(JSONResponse({"state": job.status, "percent": job.percent, "records": job.records,
                                  "stored": job.stored, "duplicates": job.duplicates, "bad": job.bad,
                                  "summary": _summary(p, job)}))


__all__: list[Any] = []
