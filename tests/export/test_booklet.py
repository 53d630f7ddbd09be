"""The booklet's text handling (``carnet.export.booklet``): what the standard PDF fonts cannot draw."""

from __future__ import annotations

from carnet.export.booklet import pdf_text, plain


def test_french_text_is_kept_as_it_is() -> None:
    assert plain("œdème, fièvre à 39 °C ; l’infirmière, 25 €, Ève, garçon") == \
        "œdème, fièvre à 39 °C ; l’infirmière, 25 €, Ève, garçon"


def test_a_letter_the_fonts_lack_loses_its_accent_rather_than_becoming_a_box() -> None:
    assert plain("Dvořák Łódź") == "Dvorák ?ódz"  # á and ó exist in WinAnsi; ř, ź do not
    assert plain("日本") == "??"


def test_paragraph_markup_in_data_is_escaped() -> None:
    assert pdf_text("<b>Dupont & fils</b>") == "&lt;b&gt;Dupont &amp; fils&lt;/b&gt;"
