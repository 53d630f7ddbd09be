"""A CDA patient's name as a person reads it (``carnet.documents.cda_names``, issue 16 §2): the CI-SIS header's
birth and used names, read part by part, show each given name once."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from carnet.documents.cda import render_html
from carnet.documents.cda_names import person_name

V3 = 'xmlns="urn:hl7-org:v3"'
SAMPLE = Path(__file__).parent / "cda_samples" / "letter_pdf_body.xml"


def shown(xml: str, lang: str = "fr") -> str:
    return person_name(etree.fromstring(f"<name {V3}>{xml}</name>")).shown(lang)


def test_a_ci_sis_ins_identity_shows_each_given_name_once_in_order() -> None:
    name = ('<family qualifier="BR">PAT-TROIS</family><given qualifier="BR">DOMINIQUE MARIE-LOUISE</given>'
            '<given>DOMINIQUE</given><family qualifier="SP">PAT-TROIS</family><given qualifier="CL">DOMINIQUE</given>')
    assert shown(name) == "DOMINIQUE MARIE-LOUISE PAT-TROIS"


def test_a_used_name_comes_with_the_birth_name_and_a_new_used_given_name_labelled() -> None:
    name = ('<family qualifier="BR">MARTIN</family><given qualifier="BR">JEANNE ALICE</given>'
            '<family qualifier="SP">DURAND</family><given qualifier="CL">Lili</given>')
    assert shown(name) == "JEANNE ALICE DURAND (nom de naissance : MARTIN, prénom utilisé : Lili)"
    assert shown(name, "en") == "JEANNE ALICE DURAND (birth name: MARTIN, given name in use: Lili)"


def test_simple_names_prefixes_and_plain_text_names_read_as_before() -> None:
    assert shown("<given>Jeanne</given><family qualifier='BR'>Essai</family>") == "Jeanne Essai"
    assert shown("<prefix>Dr</prefix><given>Paul</given><family>Exemple</family>") == "Dr Paul Exemple"
    assert shown("Jean Dupont") == "Jean Dupont"
    assert shown("") == ""


def test_the_rendered_header_shows_the_patient_line_once() -> None:
    data = SAMPLE.read_bytes().replace(
        b"<name><given>Jeanne</given><family>Essai</family></name>",
        b'<name><family qualifier="BR">PAT-TROIS</family><given qualifier="BR">DOMINIQUE MARIE-LOUISE</given>'
        b'<given>DOMINIQUE</given><family qualifier="SP">PAT-TROIS</family><given qualifier="CL">DOMINIQUE</given>'
        b"</name>", 1)
    html = str(render_html(data))
    assert "<dt>Patient</dt><dd>DOMINIQUE MARIE-LOUISE PAT-TROIS</dd>" in html


def test_a_fr_core_patient_shows_its_birth_given_names_once_and_its_birth_name_beside_the_used_one() -> None:
    from carnet.dossier.patient import BIRTH_GIVEN_LIST_EXT, display_name

    res = {"name": [
        {"use": "official", "family": "MARTIN", "given": ["JEANNE"],
         "extension": [{"url": BIRTH_GIVEN_LIST_EXT, "valueString": "JEANNE ALICE"}]},
        {"use": "usual", "family": "DURAND", "given": ["JEANNE"]}]}
    assert display_name(res) == "JEANNE ALICE DURAND (nom de naissance : MARTIN)"
    assert display_name(res, "en") == "JEANNE ALICE DURAND (birth name: MARTIN)"
    assert display_name({"name": [{"use": "official", "family": "Testé", "given": ["Alix"]}]}) == "Alix Testé"
