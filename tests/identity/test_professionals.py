"""Tests for carnet.identity.professionals (RPPS, ADELI, FINESS, SIREN, SIRET) and carnet.identity.professions.

Apart from the DOMAIN.md RPPS example, every number here is built from made-up digits plus its check digit.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carnet.identity.ins import InvalidIdentifier
from carnet.identity.professionals import (
    FINESS_SYSTEM,
    IDNPS_SYSTEM,
    IDNST_SYSTEM,
    RPPS_SYSTEM,
    SIRET_SYSTEM,
    fake_adeli,
    fake_rpps,
    luhn_check_digit,
    luhn_valid,
    national_id,
    normalize_adeli,
    normalize_finess,
    normalize_rpps,
    normalize_siren,
    normalize_siret,
    parse_national_id,
    parse_structure_id,
    structure_id,
)
from carnet.identity.professions import (
    DOCTOR,
    PROFESSION_SYSTEM,
    PROFESSIONS,
    SPECIALTIES,
    SPECIALTY_SYSTEM,
    profession_label,
    specialty_label,
)

DOMAIN_RPPS = "10001045367"


def with_check(body: str) -> str:
    return body + luhn_check_digit(body)


def wrong_check(body: str) -> str:
    return body + str((int(luhn_check_digit(body)) + 1) % 10)


SIREN = with_check("12345678")
SIRET = with_check(SIREN + "0001")
FINESS = with_check("99000001")
ADELI = with_check("99123456")


# --- Luhn ----------------------------------------------------------------------------------------------------------


def test_the_domain_rpps_example_is_luhn_valid():
    assert luhn_valid(DOMAIN_RPPS)


def test_the_textbook_luhn_example_is_valid():
    assert luhn_valid("79927398713")
    assert luhn_check_digit("7992739871") == "3"


@pytest.mark.parametrize("digits", ["79927398710", "79927398719", "10001045368"])
def test_a_wrong_luhn_digit_is_detected(digits):
    assert not luhn_valid(digits)


@pytest.mark.parametrize("digits", ["", "0", "1000104536a", "١٠٠٠١٠٤٥٣٦٧", " 10001045367", None, 10001045367])
def test_luhn_valid_is_false_for_anything_but_two_or_more_ascii_digits(digits):
    assert not luhn_valid(digits)  # type: ignore[arg-type]


@pytest.mark.parametrize("body", ["", "12a", "١٢", None])
def test_luhn_check_digit_refuses_a_body_that_is_not_digits(body):
    with pytest.raises(ValueError):
        luhn_check_digit(body)  # type: ignore[arg-type]


@given(st.text(alphabet="0123456789", min_size=1, max_size=30))
def test_a_body_followed_by_its_check_digit_is_luhn_valid(body):
    assert luhn_valid(body + luhn_check_digit(body))


@given(st.text(alphabet="0123456789", min_size=1, max_size=30), st.data())
def test_changing_any_one_digit_breaks_the_luhn_check(body, data):
    number = body + luhn_check_digit(body)
    position = data.draw(st.integers(0, len(number) - 1))
    shift = data.draw(st.integers(1, 9))
    changed = number[:position] + str((int(number[position]) + shift) % 10) + number[position + 1 :]
    assert not luhn_valid(changed)


# --- RPPS ----------------------------------------------------------------------------------------------------------


def test_the_domain_rpps_example_is_accepted():
    assert normalize_rpps(DOMAIN_RPPS) == DOMAIN_RPPS


def test_an_rpps_number_written_with_spaces_is_compacted():
    assert normalize_rpps(" 100 010 453 67 ") == DOMAIN_RPPS


def test_an_rpps_number_with_a_wrong_check_digit_is_refused_and_names_the_field():
    with pytest.raises(InvalidIdentifier) as caught:
        normalize_rpps("10001045368", "Practitioner.identifier[0].value")
    assert caught.value.field == "Practitioner.identifier[0].value"
    assert caught.value.reason == "has a wrong check digit"


@pytest.mark.parametrize("value", ["1000104536", "100010453670", "", "1000104536A", "10001-045367", None, 10001045367])
def test_an_rpps_number_of_the_wrong_shape_is_refused(value):
    with pytest.raises(InvalidIdentifier):
        normalize_rpps(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["10001045368", "1000104536", "1000104536A"])
def test_the_error_never_contains_the_rpps_number(value):
    with pytest.raises(InvalidIdentifier) as caught:
        normalize_rpps(value)
    assert value not in str(caught.value) and value not in repr(caught.value)


# --- ADELI ---------------------------------------------------------------------------------------------------------


def test_a_luhn_valid_adeli_number_is_accepted():
    assert normalize_adeli(ADELI) == ADELI


def test_an_adeli_number_with_a_wrong_check_digit_is_refused():
    with pytest.raises(InvalidIdentifier) as caught:
        normalize_adeli(wrong_check("99123456"), "field")
    assert caught.value.reason == "has a wrong check digit"


@pytest.mark.parametrize("value", ["2A1234567", "2B1234567", "99123456", "9912345678"])
def test_an_adeli_number_with_letters_or_of_the_wrong_length_is_refused(value):
    with pytest.raises(InvalidIdentifier):
        normalize_adeli(value)


# --- national professional id (IDNPS) -------------------------------------------------------------------------


def test_the_national_id_of_an_rpps_number_is_8_then_the_number():
    assert national_id("rpps", DOMAIN_RPPS) == "8" + DOMAIN_RPPS


def test_the_national_id_of_an_adeli_number_is_0_then_the_number():
    assert national_id("adeli", ADELI) == "0" + ADELI


def test_a_national_id_is_parsed_back_into_its_kind_and_number():
    assert parse_national_id("8" + DOMAIN_RPPS) == ("rpps", DOMAIN_RPPS)
    assert parse_national_id("0" + ADELI) == ("adeli", ADELI)


def test_national_id_refuses_an_invalid_number():
    with pytest.raises(InvalidIdentifier):
        national_id("rpps", "10001045368")


def test_national_id_refuses_an_unknown_kind():
    with pytest.raises(ValueError):
        national_id("finess", FINESS)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "nid",
    [
        "",
        DOMAIN_RPPS,  # no prefix
        "0" + DOMAIN_RPPS,  # an RPPS number behind the ADELI prefix
        "8" + ADELI,  # an ADELI number behind the RPPS prefix
        "810001045368",  # wrong check digit
        "3" + FINESS + "/12345",  # FINESS + internal id: not accepted by Carnet
        "1" + ADELI + "/12345",
        "9" + DOMAIN_RPPS,
    ],
)
def test_a_national_id_that_is_not_8_rpps_or_0_adeli_is_refused(nid):
    with pytest.raises(InvalidIdentifier) as caught:
        parse_national_id(nid, "Practitioner.identifier[0].value")
    assert caught.value.field == "Practitioner.identifier[0].value"


def test_identifier_systems_are_those_of_fr_core():
    assert IDNPS_SYSTEM == "urn:oid:1.2.250.1.71.4.2.1"
    assert RPPS_SYSTEM == "https://rpps.esante.gouv.fr"
    assert IDNST_SYSTEM == "urn:oid:1.2.250.1.71.4.2.2"
    assert FINESS_SYSTEM == "https://finess.esante.gouv.fr"
    assert SIRET_SYSTEM == "https://sirene.fr"


# --- organisations -------------------------------------------------------------------------------------------------


def test_a_luhn_valid_finess_number_is_accepted():
    assert normalize_finess(" " + FINESS[:3] + " " + FINESS[3:]) == FINESS


@pytest.mark.parametrize("value", [wrong_check("99000001"), "2A0000001", "99000001", "9900000100"])
def test_a_finess_number_that_is_wrong_is_refused(value):
    with pytest.raises(InvalidIdentifier):
        normalize_finess(value)


def test_a_valid_siren_and_siret_are_accepted():
    assert normalize_siren(SIREN) == SIREN
    assert normalize_siret(SIRET) == SIRET


def test_a_siret_with_a_wrong_check_digit_is_refused():
    with pytest.raises(InvalidIdentifier) as caught:
        normalize_siret(wrong_check(SIREN + "0001"), "Organization.identifier[0].value")
    assert caught.value.field == "Organization.identifier[0].value"


def test_a_siret_whose_siren_part_is_invalid_is_refused_even_if_its_own_check_digit_is_right():
    bad_siren = wrong_check("12345678")
    siret = with_check(bad_siren + "0001")
    assert luhn_valid(siret)
    with pytest.raises(InvalidIdentifier):
        normalize_siret(siret)


def test_la_poste_establishments_are_checked_by_their_digit_sum():
    assert normalize_siret("35600000000010") == "35600000000010"  # digit sum 15
    with pytest.raises(InvalidIdentifier):
        normalize_siret("35600000000011")  # digit sum 16


@pytest.mark.parametrize("value", [SIRET[:-1], SIRET + "0", SIRET[:-1] + "A"])
def test_a_siret_of_the_wrong_shape_is_refused(value):
    with pytest.raises(InvalidIdentifier):
        normalize_siret(value)


@pytest.mark.parametrize(
    ("kind", "value", "prefix"), [("finess", FINESS, "1"), ("siren", SIREN, "2"), ("siret", SIRET, "3")]
)
def test_the_national_structure_id_is_a_prefix_then_the_number_and_parses_back(kind, value, prefix):
    nid = structure_id(kind, value)
    assert nid == prefix + value
    assert parse_structure_id(nid) == (kind, value)


@pytest.mark.parametrize(
    "nid", ["", "0" + ADELI + "01", "4" + DOMAIN_RPPS + "01", "1" + wrong_check("99000001"), "3" + SIREN]
)
def test_a_national_structure_id_that_is_not_finess_siren_or_siret_is_refused(nid):
    with pytest.raises(InvalidIdentifier):
        parse_structure_id(nid)


# --- synthetic numbers ---------------------------------------------------------------------------------------------


@given(st.integers(0, 9_999_999))
def test_every_fake_rpps_is_a_valid_rpps_starting_with_10(index):
    value = fake_rpps(index)
    assert normalize_rpps(value) == value
    assert value.startswith("10")
    assert parse_national_id(national_id("rpps", value)) == ("rpps", value)


@given(st.integers(0, 9_999_999), st.integers(0, 9_999_999))
def test_fake_rpps_gives_distinct_indexes_distinct_numbers(i, j):
    assert (fake_rpps(i) == fake_rpps(j)) == (i == j)


@given(st.integers(0, 999_999))
def test_every_fake_adeli_is_a_valid_adeli(index):
    value = fake_adeli(index)
    assert normalize_adeli(value) == value


@given(st.integers(0, 999_999), st.integers(0, 999_999))
def test_fake_adeli_gives_distinct_indexes_distinct_numbers(i, j):
    assert (fake_adeli(i) == fake_adeli(j)) == (i == j)


def test_fake_numbers_are_deterministic():
    assert fake_rpps(42) == fake_rpps(42)
    assert fake_adeli(42) == fake_adeli(42)


@pytest.mark.parametrize(
    ("make", "index"), [(fake_rpps, -1), (fake_rpps, 10_000_000), (fake_adeli, -1), (fake_adeli, 1_000_000)]
)
def test_fake_numbers_refuse_an_index_out_of_range(make, index):
    with pytest.raises(ValueError):
        make(index)


# --- professions and specialties -----------------------------------------------------------------------------------


def test_the_profession_system_is_tre_g15():
    assert PROFESSION_SYSTEM == "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"


@pytest.mark.parametrize(
    ("code", "label"),
    [
        ("10", "Médecin"),
        ("21", "Pharmacien"),
        ("40", "Chirurgien-Dentiste"),
        ("50", "Sage-Femme"),
        ("60", "Infirmier"),
        ("70", "Masseur-Kinésithérapeute"),
        ("80", "Pédicure-Podologue"),
        ("86", "Technicien de laboratoire médical"),
        ("91", "Orthophoniste"),
        ("98", "Manipulateur ERM"),
    ],
)
def test_professions_carry_the_ans_display_as_french_label(code, label):
    assert profession_label(code) == label


def test_every_profession_has_a_french_and_an_english_label():
    for code, (french, english) in PROFESSIONS.items():
        assert code.isdigit() and len(code) == 2
        assert french and english
        assert profession_label(code, "en") == english


def test_deprecated_profession_codes_are_not_offered():
    assert not {"35", "36", "37", "38", "39", "93"} & PROFESSIONS.keys()


def test_an_unknown_profession_code_raises_key_error():
    with pytest.raises(KeyError):
        profession_label("99")


def test_an_unknown_language_is_refused():
    with pytest.raises(ValueError):
        profession_label(DOCTOR, "de")  # type: ignore[arg-type]


def test_the_specialty_system_is_tre_r38():
    assert SPECIALTY_SYSTEM == "https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale"


@pytest.mark.parametrize(
    ("code", "english"),
    [
        ("SM54", "General practice"),
        ("SM04", "Cardiology and vascular diseases"),
        ("SM42", "Psychiatry"),
        ("SM40", "Paediatrics"),
        ("SM59", "Emergency medicine"),
    ],
)
def test_the_main_specialties_are_there(code, english):
    assert specialty_label(code, "en") == english
    assert specialty_label(code).endswith("(SM)")


def test_sm53_is_general_practice_not_paediatrics():
    assert specialty_label("SM53") == "Spécialiste en Médecine générale (SM)"


def test_every_specialty_is_a_doctors_specialty():
    assert all(code.startswith("SM") for code in SPECIALTIES)
