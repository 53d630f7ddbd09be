"""QR codes: one helper (carnet.qr) for the emergency card's link and the prescription's code, pages and PDFs alike."""

from __future__ import annotations

import re
from pathlib import Path

from carnet.qr import qr_code, qr_svg

SRC = Path(__file__).resolve().parents[1] / "src" / "carnet"


def test_every_qr_code_is_made_by_the_one_helper() -> None:
    makers = {str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
              if re.search(r"^\s*(import segno|from segno)|segno\.make", p.read_text(encoding="utf-8"), re.M)}
    assert makers == {"qr.py"}


def test_a_code_is_level_m_never_micro() -> None:
    code = qr_code("CARNET-RX:0000000000000000:secret")
    assert (code.error, code.is_micro) == ("M", False)


def test_the_svg_has_no_style_and_no_fixed_size_so_it_fits_a_strict_csp() -> None:
    svg = qr_svg("https://carnet.example/shl#shlink:/abc")
    assert svg.startswith("<svg") and 'class="qr"' in svg
    assert "style" not in svg and "width=" not in svg and "<path" in svg
