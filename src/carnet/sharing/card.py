"""The emergency card (issue 13 §2): a one-page printable PDF (reportlab) and a phone-sized PNG (Pillow, a lock
screen's 1080 × 1920), each with the patient's emergency essentials (allergies, treatments, health problems, blood
group, advance directives, emergency contacts) and a QR code to the live emergency summary: the card's SMART Health
Link (:func:`carnet.sharing.links.card_link`), which the patient revokes like any link.

QR codes are drawn by :mod:`carnet.qr` (segno, error correction level M, as the SMART Health Links specification
recommends). Headings
are French and English, as a card shown to a doctor abroad needs; the patient's data is as written.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from pathlib import Path

import reportlab
from PIL import Image, ImageDraw, ImageFont
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from carnet.clinical.summary import SummaryView, summary_view
from carnet.context import Context
from carnet.dossier import contacts as contacts_service
from carnet.dossier.contacts import Contact
from carnet.qr import qr_code
from carnet.sharing.links import LinkView, card_link
from carnet.text import winansi

TITLE = "Carte d'urgence · Emergency card"
SECTIONS = (  # (heading, attribute of the summary)
    ("Allergies · Allergies", "allergies"),
    ("Traitements · Medications", "medications"),
    ("Problèmes de santé · Health problems", "problems"),
    ("Groupe sanguin · Blood group", "blood_group"),
)
SCAN = ("Scannez pour la synthèse d'urgence à jour · Scan for the live emergency summary (SMART Health Link)")
NOTHING = "—"


@dataclass(frozen=True)
class Card:
    summary: SummaryView
    contacts: list[Contact]
    link: LinkView


def emergency_card(ctx: Context, key: uuid.UUID, label: str) -> Card:
    """The card's content for the patient side: the emergency summary and contacts as the patient sees them (each
    read audited), and the card's live link (created on first use, audited ``share.create``)."""
    link = card_link(ctx, key, label)
    return Card(summary_view(ctx, key), contacts_service.list_contacts(ctx, key), link)


def _lines(card: Card) -> list[tuple[str, list[str]]]:
    s = card.summary
    out: list[tuple[str, list[str]]] = []
    for heading, attr in SECTIONS:
        out.append((heading, [it.display for it in getattr(s, attr)] or [NOTHING]))
    out.append(("Directives anticipées · Advance directives",
                [f"{d.title} ({d.date[:10]})" if d.date else d.title for d in s.directives] or [NOTHING]))
    out.append(("Personnes à prévenir · Emergency contacts",
                [" · ".join(x for x in (c.name, c.relationship or "", c.phone or "") if x) for c in card.contacts]
                or [NOTHING]))
    return out


def _identity(card: Card) -> str:
    s = card.summary
    born = f"né(e) le · born {s.birth_date}" if s.birth_date else ""
    return " — ".join(x for x in (s.patient_name, born) if x)


def card_pdf(card: Card) -> bytes:
    """One A4 page: title, identity, the QR code (6 cm), then each section; long sections are cut with "…"."""
    out = io.BytesIO()
    c = Canvas(out, pagesize=A4, pageCompression=1)
    c.setTitle("Emergency card")
    c.setAuthor("Carnet")
    width, height = A4
    left, y = 15 * mm, height - 20 * mm
    c.setFont("Helvetica-Bold", 18)
    c.drawString(left, y, winansi(TITLE))
    y -= 9 * mm
    c.setFont("Helvetica", 12)
    c.drawString(left, y, winansi(_identity(card)))
    code = qr_code(card.link.shlink)
    side = 60 * mm
    rows = list(code.matrix_iter(scale=1, border=4))
    cell = side / len(rows)
    top = y - 6 * mm
    x0 = width - 15 * mm - side
    for r, row in enumerate(rows):
        for col, dark in enumerate(row):
            if dark:
                c.rect(x0 + col * cell, top - (r + 1) * cell, cell, cell, stroke=0, fill=1)
    c.setFont("Helvetica", 7)
    text = c.beginText(x0, top - side - 4 * mm)
    for part in winansi(SCAN).split(" · "):
        text.textLine(part)
    c.drawText(text)
    y = top - 4 * mm
    text_right = x0 - 6 * mm
    for heading, lines in _lines(card):
        if y < 25 * mm:
            break
        c.setFont("Helvetica-Bold", 11)
        c.drawString(left, y, winansi(heading))
        y -= 5.5 * mm
        c.setFont("Helvetica", 10)
        for line in lines[:8]:
            limit = int((text_right - left if y > top - side - 12 * mm else width - 30 * mm) / (2 * mm))
            shown = winansi(line)
            c.drawString(left + 3 * mm, y, "• " + (shown if len(shown) <= limit else shown[:limit - 1] + "…"))
            y -= 5 * mm
        if len(lines) > 8:
            c.drawString(left + 3 * mm, y, f"… +{len(lines) - 8}")
            y -= 5 * mm
        y -= 2 * mm
    c.setFont("Helvetica-Oblique", 8)
    c.drawString(left, 12 * mm, winansi(f"Carnet · {card.summary.generated_at:%Y-%m-%d %H:%M} UTC"
                                       if card.summary.generated_at else "Carnet"))
    c.showPage()
    c.save()
    return out.getvalue()


PHONE = (1080, 1920)
FONTS = Path(reportlab.__file__).parent / "fonts"  # Bitstream Vera, shipped with reportlab: French accents, •, —


def _font(bold: bool, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONTS / ("VeraBd.ttf" if bold else "Vera.ttf")), size)


def card_png(card: Card) -> bytes:
    """A phone-sized image (1080 × 1920 PNG): the same essentials, large, and the QR code at the bottom."""
    img = Image.new("RGB", PHONE, "white")
    draw = ImageDraw.Draw(img)
    big, mid, small = _font(True, 46), _font(True, 36), _font(False, 30)
    draw.rectangle((0, 0, PHONE[0], 150), fill="#b00020")
    draw.text((50, 45), TITLE, font=big, fill="white")
    y = 180
    draw.text((50, y), _identity(card), font=mid, fill="black")
    y += 70
    qr_side = 640
    qr_top = PHONE[1] - qr_side - 110
    for heading, lines in _lines(card):
        if y > qr_top - 90:
            break
        draw.text((50, y), heading, font=mid, fill="#b00020")
        y += 50
        for line in lines[:4]:
            if y > qr_top - 50:
                break
            draw.text((80, y), ("• " + line)[:52], font=small, fill="black")
            y += 42
        y += 14
    matrix = [list(row) for row in qr_code(card.link.shlink).matrix_iter(scale=1, border=4)]
    cell = qr_side // len(matrix)
    x0 = (PHONE[0] - cell * len(matrix)) // 2
    for r, row in enumerate(matrix):
        for col, dark in enumerate(row):
            if dark:
                draw.rectangle((x0 + col * cell, qr_top + r * cell, x0 + (col + 1) * cell - 1,
                                qr_top + (r + 1) * cell - 1), fill="black")
    draw.text((50, PHONE[1] - 90), SCAN.split(" · ")[1], font=small, fill="black")
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()


