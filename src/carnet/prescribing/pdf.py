"""The prescription as a one-page A4 PDF (reportlab, as the emergency card and the summary PDFs), then signed
(:mod:`carnet.prescribing.signature`): the prescriber (name, profession, RPPS and national id, organisation), the
patient (names, birth date, INS), the date, the lines, the renewals and the validity, and the number as text and as
a QR code (:func:`carnet.qr.qr_code`: segno, error correction M), which carries
``CARNET-RX:<number>:<secret>`` (:mod:`carnet.prescribing.numbers`)."""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from carnet.prescribing.numbers import format_number
from carnet.prescribing.resources import PERIOD_UNITS, Line
from carnet.qr import qr_code
from carnet.text import winansi


@dataclass(frozen=True)
class Sheet:
    number: str
    scan: str  # what the QR code carries
    authored: dt.date
    first_dispense_by: dt.date
    valid_until: dt.date
    prescriber_name: str
    prescriber_profession: str
    prescriber_id: str  # national id, 8 + RPPS
    organisation: str
    patient_name: str
    patient_birth: dt.date
    patient_ins: str  # formatted
    patient_ins_kind: str  # "INS-NIR", "INS (démo)"...
    lines: list[Line]
    note: str = ""


def _wrap(text: str, width: int) -> list[str]:
    words, lines, cur = winansi(text).split(), [], ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}" if cur else w
    return lines + ([cur] if cur else [])


def line_details(line: Line) -> list[str]:
    """The line's dosage, duration, quantity and renewals in words (French, as on a paper prescription)."""
    out = []
    if line.dosage_text:
        out.append(line.dosage_text)
    elif line.dose_value is not None and line.frequency:
        per = PERIOD_UNITS.get(line.period_unit, line.period_unit)
        out.append(f"{line.dose_value:g} {line.dose_unit} {line.frequency} fois par {per}")
    if line.duration_days:
        out.append(f"Durée : {line.duration_days} jours")
    qty = f"Quantité : {line.quantity} {line.unit}"
    if line.repeats:
        qty += f" · à renouveler {line.repeats} fois"
    out.append(qty)
    return out


def render(sheet: Sheet) -> bytes:
    out = io.BytesIO()
    c = Canvas(out, pagesize=A4, pageCompression=1, invariant=1)
    c.setTitle(winansi(f"Ordonnance {format_number(sheet.number)}"))
    c.setAuthor(winansi(sheet.prescriber_name))
    c.setSubject("Prescription de médicaments (e-prescription)")
    width, height = A4
    left, top = 18 * mm, height - 18 * mm
    c.setFont("Helvetica-Bold", 13)
    c.drawString(left, top, winansi(sheet.prescriber_name))
    c.setFont("Helvetica", 10)
    y = top - 5 * mm
    for text in (sheet.prescriber_profession, f"RPPS {sheet.prescriber_id[1:]} · Identifiant national "
                 f"{sheet.prescriber_id}", sheet.organisation):
        if text:
            c.drawString(left, y, winansi(text))
            y -= 4.5 * mm
    side = 38 * mm
    code = qr_code(sheet.scan)
    rows = list(code.matrix_iter(scale=1, border=2))
    cell = side / len(rows)
    x0, y0 = width - 18 * mm - side, top + 4 * mm
    for r, row in enumerate(rows):
        for col, dark in enumerate(row):
            if dark:
                c.rect(x0 + col * cell, y0 - (r + 1) * cell, cell, cell, stroke=0, fill=1)
    c.setFont("Helvetica-Bold", 10)
    c.drawCentredString(x0 + side / 2, y0 - side - 4 * mm, format_number(sheet.number))
    c.setFont("Helvetica", 7)
    c.drawCentredString(x0 + side / 2, y0 - side - 7.5 * mm, "Numéro de prescription")
    y = min(y, y0 - side - 14 * mm)
    c.setFont("Helvetica-Bold", 16)
    c.drawString(left, y, "ORDONNANCE")
    c.setFont("Helvetica", 10)
    c.drawRightString(width - 18 * mm, y, f"Le {sheet.authored.strftime('%d/%m/%Y')}")
    y -= 8 * mm
    c.setFont("Helvetica-Bold", 11)
    c.drawString(left, y, winansi(f"Patient : {sheet.patient_name}"))
    y -= 5 * mm
    c.setFont("Helvetica", 10)
    c.drawString(left, y, winansi(f"Né(e) le {sheet.patient_birth.strftime('%d/%m/%Y')} · {sheet.patient_ins_kind} "
                                f"{sheet.patient_ins}"))
    y -= 10 * mm
    for i, line in enumerate(sheet.lines, 1):
        if y < 45 * mm:
            c.setFont("Helvetica-Oblique", 9)
            c.drawString(left, y, winansi(f"… {len(sheet.lines) - i + 1} ligne(s) de plus : voir le dossier"))
            y -= 6 * mm
            break
        c.setFont("Helvetica-Bold", 11)
        for part in _wrap(f"{i}. {line.display}", 85):
            c.drawString(left, y, part)
            y -= 5 * mm
        c.setFont("Helvetica", 10)
        for detail in line_details(line):
            for part in _wrap(detail, 95):
                c.drawString(left + 6 * mm, y, part)
                y -= 4.5 * mm
        y -= 3 * mm
    if sheet.note:
        c.setFont("Helvetica-Oblique", 10)
        for part in _wrap(sheet.note, 95)[:4]:
            c.drawString(left, y, part)
            y -= 4.5 * mm
    c.setFont("Helvetica", 8)
    foot = 22 * mm
    c.drawString(left, foot, winansi(
        f"Première délivrance avant le {sheet.first_dispense_by.strftime('%d/%m/%Y')} ; renouvellements jusqu'au "
        f"{sheet.valid_until.strftime('%d/%m/%Y')}."))
    c.drawString(left, foot - 4 * mm, winansi(
        "Ordonnance signée électroniquement (PAdES) par le prescripteur. Le pharmacien la retrouve avec ce numéro et "
        "l'INS du patient, ou en scannant le code."))
    c.showPage()
    c.save()
    return out.getvalue()
