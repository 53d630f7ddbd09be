"""QR codes, drawn by segno (pure Python, pinned): one set of parameters for every code Carnet prints or shows, the
emergency card's SMART Health Link and the prescription's ``CARNET-RX:`` code. Error correction level M (as the SMART
Health Links specification recommends), never a Micro QR, and no silent raise of the level (the size stays what the
content asks for).
"""

from __future__ import annotations

import segno


def qr_code(text: str) -> segno.QRCode:
    """The QR code of ``text``, for a PDF or an image to draw from its matrix."""
    return segno.make(text, error="m", micro=False, boost_error=False)


def qr_svg(text: str) -> str:
    """The QR code of ``text`` as an inline SVG for a page: presentation attributes only (no ``style``, so that it
    fits a strict Content-Security-Policy), class ``qr``, its size left to the page's CSS."""
    return str(qr_code(text).svg_inline(scale=4, border=4, svgclass="qr", lineclass=None, omitsize=True))
