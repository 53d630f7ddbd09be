"""Tests for carnet.identity.ins: NIR validation, INS systems and synthetic NIRs.

Every NIR here is either a DOMAIN.md example or synthetic; none is a real person's.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carnet.identity.ins import (
    FAKE_NIR_CAPACITY,
    INS_SYSTEMS,
    OID_DEMO,
    OID_NIA,
    OID_NIR,
    OID_TEST,
    SEX_DIGITS,
    SYNTHETIC_INS_SYSTEMS,
    InvalidIdentifier,
    fake_nir,
    fake_nir_for,
    format_nir,
    is_fake_nir,
    nir_key,
    normalize_nir,
    parse_ins_identifier,
)

DOMAIN_EXAMPLE = "255081416802538"  # 2 55 08 14 168 025, key 38
CORSICAN_EXAMPLE = "284052A32102552"  # 2 84 05 2A 321 025, key 52


def nir(body: str) -> str:
    """A NIR with the right key for a 13-character body."""
    return body + nir_key(body)


def refusal(value: object, field: str = "identifier") -> InvalidIdentifier:
    with pytest.raises(InvalidIdentifier) as caught:
        normalize_nir(value, field)  # type: ignore[arg-type]
    return caught.value


# --- the DOMAIN.md examples ------------------------------------------------------------------------------------


def test_the_domain_example_gets_key_38():
    assert nir_key("2550814168025") == "38"


def test_the_corsican_domain_example_gets_key_52():
    assert nir_key("284052A321025") == "52"


def test_the_domain_example_written_with_spaces_is_normalized():
    assert normalize_nir("2 55 08 14 168 025 38") == DOMAIN_EXAMPLE


def test_the_corsican_domain_example_is_accepted():
    assert normalize_nir("2 84 05 2A 321 025 52") == CORSICAN_EXAMPLE


# --- Corsica -------------------------------------------------------------------------------------------------------


def test_2a_counts_as_19_in_the_key():
    assert nir_key("2840519321025") == nir_key("284052A321025")


def test_2b_counts_as_18_in_the_key():
    assert nir_key("1750318123456") == nir_key("175032B123456")


def test_a_2b_number_is_accepted():
    assert normalize_nir(nir("175032B123456")) == nir("175032B123456")


def test_2a_and_2b_in_lower_case_are_accepted_and_upper_cased():
    assert normalize_nir(CORSICAN_EXAMPLE.lower()) == CORSICAN_EXAMPLE


def test_a_2a_number_with_the_key_of_the_plain_digits_20_is_refused():
    wrong = "2840520321025" + nir_key("2840520321025")
    assert refusal(wrong[:5] + "2A" + wrong[7:]).reason == "has a wrong key"


@pytest.mark.parametrize("departement", ["2C", "3A", "A2", "AA", "1A"])
def test_other_letters_in_the_departement_are_refused(departement):
    body = "28405" + departement + "321025"
    assert "only digits" in refusal(body + "00").reason


@pytest.mark.parametrize("position", [0, 1, 3, 7, 10, 13, 14])
def test_a_letter_outside_the_departement_is_refused(position):
    value = DOMAIN_EXAMPLE[:position] + "A" + DOMAIN_EXAMPLE[position + 1 :]
    assert "only digits" in refusal(value).reason


# --- months --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("month", [1, 6, 12, 20, 30, 42, 50, 63, 99])
def test_calendar_months_and_pseudo_months_are_accepted(month):
    value = nir(f"255{month:02d}14168025")
    assert normalize_nir(value) == value


@pytest.mark.parametrize("month", [0, 13, 15, 19, 43, 46, 49])
def test_impossible_months_are_refused(month):
    assert refusal(nir(f"255{month:02d}14168025")).reason == "has an invalid birth month"


# --- sex digit -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sex", sorted(SEX_DIGITS))
def test_every_first_digit_in_use_is_accepted(sex):
    value = nir(f"{sex}550814168025")
    assert normalize_nir(value) == value


@pytest.mark.parametrize("sex", [0, 5, 6, 9])
def test_other_first_digits_are_refused(sex):
    assert refusal(nir(f"{sex}550814168025")).reason == "has an invalid first digit (sex)"


# --- key and shape -------------------------------------------------------------------------------------------------


def test_a_wrong_key_is_refused_and_names_the_field():
    error = refusal("255081416802539", field="Patient.identifier[0].value")
    assert error.field == "Patient.identifier[0].value"
    assert error.reason == "has a wrong key"
    assert str(error).startswith("Patient.identifier[0].value")


def test_a_wrong_key_is_never_corrected():
    with pytest.raises(InvalidIdentifier):
        normalize_nir(DOMAIN_EXAMPLE[:13] + "00")


def test_key_97_is_used_when_the_body_is_a_multiple_of_97():
    body = next(f"1550814168{n:03d}" for n in range(1000) if int(f"1550814168{n:03d}") % 97 == 0)
    assert nir_key(body) == "97"
    assert normalize_nir(body + "97") == body + "97"


@pytest.mark.parametrize(
    "value",
    ["", "2", "25508141680253", "2550814168025380", "2 55 08 14 168 025", DOMAIN_EXAMPLE + DOMAIN_EXAMPLE],
)
def test_values_of_the_wrong_length_are_refused(value):
    assert refusal(value).reason.startswith("must be 15 characters")


@pytest.mark.parametrize(
    "value",
    [
        "2-55-08-14-168-025-38",  # separators other than spaces are not removed
        "2.55.08.14.168.025.38",
        "２５５０８１４１６８０２５３８",  # full-width digits
        "٢٥٥٠٨١٤١٦٨٠٢٥٣٨",  # Arabic-Indic digits
        "25508141680253²",
    ],
)
def test_anything_but_ascii_digits_and_spaces_is_refused(value):
    with pytest.raises(InvalidIdentifier):
        normalize_nir(value)


def test_tabs_newlines_and_non_breaking_spaces_are_removed():
    assert normalize_nir("\t2\u00a055 08\u202f14 168\n025 38 ") == DOMAIN_EXAMPLE


@pytest.mark.parametrize("value", [None, 255081416802538, b"255081416802538", ["255081416802538"]])
def test_a_value_that_is_not_a_string_is_refused(value):
    assert refusal(value).reason == "must be a string"


def test_nir_key_refuses_a_body_of_the_wrong_shape():
    for body in ["255081416802", "25508141680253", "255082C168025", "x550814168025"]:
        with pytest.raises(InvalidIdentifier):
            nir_key(body)


def test_format_nir_groups_the_parts_with_spaces():
    assert format_nir(DOMAIN_EXAMPLE) == "2 55 08 14 168 025 38"
    assert format_nir(CORSICAN_EXAMPLE) == "2 84 05 2A 321 025 52"


# --- errors never carry the value ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["255081416802539", "295081416802538", "255001416802538", "25508141680253", "2550814168025A8", "000000000000000"],
)
def test_the_error_never_contains_the_value(value):
    error = refusal(value)
    for text in (str(error), repr(error), error.reason, error.field, *map(str, error.args)):
        assert value not in text
        assert value[:7] not in text


@given(st.text(alphabet="0123456789 AB", min_size=5, max_size=20))
def test_no_refused_string_of_digits_appears_in_its_error(value):
    try:
        normalize_nir(value)
    except InvalidIdentifier as error:
        compact = "".join(value.split())
        if len(compact) >= 5:  # shorter strings, such as "15", may occur in the fixed wording
            assert compact not in str(error) and compact not in repr(error)


# --- INS identifiers -----------------------------------------------------------------------------------------------


def test_the_four_ins_systems_are_the_urn_forms_of_the_four_oids():
    assert INS_SYSTEMS == {
        f"urn:oid:{OID_NIR}": "nir",
        f"urn:oid:{OID_NIA}": "nia",
        f"urn:oid:{OID_TEST}": "test",
        f"urn:oid:{OID_DEMO}": "demo",
    }
    assert OID_NIR == "1.2.250.1.213.1.4.8"
    assert OID_NIA == "1.2.250.1.213.1.4.9"
    assert OID_TEST == "1.2.250.1.213.1.4.10"
    assert OID_DEMO == "1.2.250.1.213.1.4.11"


def test_synthetic_data_systems_are_test_and_demo():
    assert SYNTHETIC_INS_SYSTEMS == {"urn:oid:1.2.250.1.213.1.4.10", "urn:oid:1.2.250.1.213.1.4.11"}


@pytest.mark.parametrize("system", sorted(INS_SYSTEMS))
def test_each_ins_system_is_accepted_and_the_value_normalized(system):
    assert parse_ins_identifier(system, "2 55 08 14 168 025 38") == (system, DOMAIN_EXAMPLE)


@pytest.mark.parametrize(
    "system",
    [
        "1.2.250.1.213.1.4.8",  # bare OID: FHIR wants the urn:oid: form
        "urn:oid:1.2.250.1.213.1.4.12",
        "URN:OID:1.2.250.1.213.1.4.8",
        "urn:oid:1.2.250.1.213.1.1.1",
        "http://hl7.org/fhir/sid/us-ssn",
        "",
        None,
    ],
)
def test_a_system_that_is_not_an_ins_system_is_refused_and_named(system):
    with pytest.raises(InvalidIdentifier) as caught:
        parse_ins_identifier(system, DOMAIN_EXAMPLE, "Patient.identifier[1]")  # type: ignore[arg-type]
    assert caught.value.field == "Patient.identifier[1].system"


def test_a_bad_value_under_an_ins_system_names_the_value():
    with pytest.raises(InvalidIdentifier) as caught:
        parse_ins_identifier(f"urn:oid:{OID_TEST}", "255081416802539", "Patient.identifier[1]")
    assert caught.value.field == "Patient.identifier[1].value"
    assert caught.value.reason == "has a wrong key"


# --- properties ----------------------------------------------------------------------------------------------------

departements = st.one_of(st.integers(0, 99).map(lambda d: f"{d:02d}"), st.sampled_from(["2A", "2B"]))
months = st.one_of(st.integers(1, 12), st.integers(20, 42), st.integers(50, 99))


@st.composite
def valid_nirs(draw: st.DrawFn) -> str:
    body = (
        f"{draw(st.sampled_from(sorted(SEX_DIGITS)))}{draw(st.integers(0, 99)):02d}{draw(months):02d}"
        f"{draw(departements)}{draw(st.integers(0, 999)):03d}{draw(st.integers(0, 999)):03d}"
    )
    return nir(body)


@given(valid_nirs())
def test_a_number_built_with_its_key_validates_and_normalizing_is_idempotent(value):
    assert normalize_nir(value) == value
    assert normalize_nir(format_nir(value)) == value


@given(valid_nirs(), st.integers(0, 14), st.integers(1, 9))
def test_changing_any_one_digit_of_a_valid_nir_makes_it_invalid(value, position, shift):
    # 97 is prime and 10 is invertible mod 97, so a change of one digit of the 13 always changes the key; a change of
    # a key digit changes the key. Either way the number can no longer validate (its shape may break first).
    if not value[position].isdigit():
        return
    changed = value[:position] + str((int(value[position]) + shift) % 10) + value[position + 1 :]
    with pytest.raises(InvalidIdentifier):
        normalize_nir(changed)


@given(valid_nirs(), st.integers(0, 11))
def test_swapping_two_different_adjacent_digits_of_the_first_13_is_detected(value, position):
    a, b = value[position], value[position + 1]
    if a == b or not (a.isdigit() and b.isdigit()):
        return
    swapped = value[:position] + b + a + value[position + 2 :]
    with pytest.raises(InvalidIdentifier):
        normalize_nir(swapped)


# --- synthetic NIRs ------------------------------------------------------------------------------------------------


@given(st.randoms(use_true_random=False))
def test_every_fake_nir_validates_and_is_recognised_as_fake(rng):
    value = fake_nir(rng)
    assert normalize_nir(value) == value
    assert is_fake_nir(value)
    assert value[0] in "12"


@given(
    st.randoms(use_true_random=False),
    st.sampled_from(sorted(SEX_DIGITS)),
    st.integers(1900, 2099),
    months,
)
def test_a_fake_nir_honours_the_sex_year_and_month_asked_for(rng, sex, year, month):
    value = fake_nir(rng, sex=sex, birth_year=year, birth_month=month)
    assert normalize_nir(value) == value
    assert value[0] == str(sex)
    assert value[1:3] == f"{year % 100:02d}"
    assert value[3:5] == f"{month:02d}"


def test_fake_nir_is_reproducible_from_the_seed():
    assert [fake_nir(random.Random(7)) for _ in range(3)] == [fake_nir(random.Random(7))] * 3


@pytest.mark.parametrize(
    "kwargs",
    [{"sex": 5}, {"sex": 0}, {"birth_month": 0}, {"birth_month": 13}, {"birth_month": 100}, {"birth_year": -1}],
)
def test_fake_nir_refuses_impossible_requests(kwargs):
    with pytest.raises(ValueError):
        fake_nir(random.Random(0), **kwargs)


def test_a_real_looking_order_number_is_not_taken_for_a_fake():
    assert not is_fake_nir(DOMAIN_EXAMPLE)
    assert not is_fake_nir("not a nir")


def test_fake_nir_for_is_deterministic():
    assert fake_nir_for(123_456) == fake_nir_for(123_456)


def test_fake_nir_for_gives_ten_million_indexes_room():
    assert FAKE_NIR_CAPACITY >= 10_000_000
    for index in (0, 1, 9_999_999, FAKE_NIR_CAPACITY - 1):
        value = fake_nir_for(index)
        assert normalize_nir(value) == value
        assert is_fake_nir(value)


def test_fake_nir_for_gives_distinct_numbers_to_fifty_thousand_consecutive_indexes():
    values = [fake_nir_for(i) for i in range(9_950_000, 10_000_000)]
    assert len(set(values)) == len(values)


@given(st.integers(0, FAKE_NIR_CAPACITY - 1), st.integers(0, FAKE_NIR_CAPACITY - 1))
def test_fake_nir_for_gives_distinct_indexes_distinct_numbers(i, j):
    assert (fake_nir_for(i) == fake_nir_for(j)) == (i == j)


@given(st.integers(0, FAKE_NIR_CAPACITY - 1))
def test_every_fake_nir_for_an_index_validates(index):
    value = fake_nir_for(index)
    assert normalize_nir(value) == value
    assert is_fake_nir(value)


@pytest.mark.parametrize("index", [-1, FAKE_NIR_CAPACITY])
def test_fake_nir_for_refuses_an_index_out_of_range(index):
    with pytest.raises(ValueError):
        fake_nir_for(index)
