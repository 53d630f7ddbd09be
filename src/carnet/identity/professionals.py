"""Identifiers of health professionals (RPPS, ADELI) and of the organisations they act for (FINESS, SIREN, SIRET).

Sources, checked against the published ANS and HL7 France material:

- FR Core ``fr-core-practitioner``: the national professional id (IDNPS) has system ``urn:oid:1.2.250.1.71.4.2.1``;
  the RPPS number alone has system ``https://rpps.esante.gouv.fr``.
- ANS ``PSIdNat`` (idNat_PS in the MOS): IDNPS = ``0`` + ADELI, or ``8`` + RPPS. Other prefixes (1, 3, 4, 5, 6: an
  organisation's id + "/" + an internal id) exist for staff with no national number; Carnet refuses them.
- FR Core ``fr-core-organization``: the national structure id (IDNST) has system ``urn:oid:1.2.250.1.71.4.2.2`` and
  value ``1`` + FINESS, ``2`` + SIREN, ``3`` + SIRET (``0`` + ADELI rang and ``4`` + RPPS rang also exist; Carnet
  refuses them). FINESS alone: ``https://finess.esante.gouv.fr``; SIREN and SIRET alone: ``https://sirene.fr``
  (told apart by their identifier type, FR Core v2-0203 ``SIREN``/``SIRET``, and by their length).

Check digits: RPPS (11 digits) and ADELI (9 characters) end with a Luhn digit (DOMAIN.md); SIREN and SIRET end with a
Luhn digit (INSEE), except La Poste's establishments (SIREN 356000000), whose digit sum is a multiple of 5; FINESS ends
with a Luhn digit (checked against published FINESS numbers of public hospitals).

Errors raise :class:`~carnet.identity.ins.InvalidIdentifier` naming the field, never repeating the value.
"""

from __future__ import annotations

import re
from typing import Literal

from carnet.identity.ins import InvalidIdentifier

__all__ = [
    "FINESS_SYSTEM",
    "IDNPS_SYSTEM",
    "IDNST_SYSTEM",
    "RPPS_SYSTEM",
    "SIREN_SYSTEM",
    "SIRET_SYSTEM",
    "InvalidIdentifier",
    "fake_adeli",
    "fake_rpps",
    "luhn_check_digit",
    "luhn_valid",
    "national_id",
    "normalize_adeli",
    "normalize_finess",
    "normalize_rpps",
    "normalize_siren",
    "normalize_siret",
    "parse_national_id",
    "parse_structure_id",
    "structure_id",
]

#: Identifiant National de Professionnel de Santé: "8" + RPPS or "0" + ADELI.
IDNPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
#: The bare 11-digit RPPS number.
RPPS_SYSTEM = "https://rpps.esante.gouv.fr"
#: Identifiant National de STructure: "1" + FINESS, "2" + SIREN, "3" + SIRET.
IDNST_SYSTEM = "urn:oid:1.2.250.1.71.4.2.2"
#: The bare 9-digit FINESS number (entité juridique or géographique).
FINESS_SYSTEM = "https://finess.esante.gouv.fr"
#: The bare SIREN (9 digits) and SIRET (14 digits): FR Core gives both the same system.
SIREN_SYSTEM = "https://sirene.fr"
SIRET_SYSTEM = "https://sirene.fr"

ProfessionalKind = Literal["rpps", "adeli"]
StructureKind = Literal["finess", "siren", "siret"]

_PS_PREFIX: dict[str, str] = {"rpps": "8", "adeli": "0"}
_ST_PREFIX: dict[str, str] = {"finess": "1", "siren": "2", "siret": "3"}
_ST_KIND: dict[str, StructureKind] = {"1": "finess", "2": "siren", "3": "siret"}
_LA_POSTE_SIREN = "356000000"
_LA_POSTE_HEAD_OFFICE = "35600000000048"


def _digits(n: int) -> re.Pattern[str]:
    # ASCII only: str.isdigit() also accepts other scripts' digits.
    return re.compile(rf"[0-9]{{{n}}}")


_ALL_DIGITS = re.compile(r"[0-9]+")
_RPPS = _digits(11)
_NINE = _digits(9)
_SIRET = _digits(14)


def luhn_valid(digits: str) -> bool:
    """Whether ``digits`` (ASCII digits, at least two) ends with a correct Luhn check digit."""
    if not isinstance(digits, str) or len(digits) < 2 or not _ALL_DIGITS.fullmatch(digits):
        return False
    return _luhn_sum(digits, double_odd=True) % 10 == 0


def luhn_check_digit(body: str) -> str:
    """The Luhn check digit to append to ``body`` (ASCII digits)."""
    if not isinstance(body, str) or not _ALL_DIGITS.fullmatch(body):
        raise ValueError("body must be a non-empty string of digits")
    return str(-_luhn_sum(body, double_odd=False) % 10)


def _luhn_sum(digits: str, *, double_odd: bool) -> int:
    # Counting from the right, 0 being the last digit: with a check digit present the odd positions are doubled;
    # for a body still waiting for its check digit, the even ones are.
    total = 0
    for position, char in enumerate(reversed(digits)):
        d = ord(char) - 48
        if (position % 2 == 1) == double_odd:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total


def _compact(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidIdentifier(field, "must be a string")
    return "".join(value.split())


def _checked(value: object, field: str, pattern: re.Pattern[str], shape: str) -> str:
    number = _compact(value, field)
    if not pattern.fullmatch(number):
        raise InvalidIdentifier(field, f"must be {shape}")
    if not luhn_valid(number):
        raise InvalidIdentifier(field, "has a wrong check digit")
    return number


def normalize_rpps(value: str, field: str = "identifier") -> str:
    """Validate an RPPS number (11 digits, the last a Luhn check digit) and return it without spaces."""
    return _checked(value, field, _RPPS, "11 digits (RPPS)")


def normalize_adeli(value: str, field: str = "identifier") -> str:
    """Validate an ADELI number (9 digits, the last a Luhn check digit) and return it without spaces.

    Choice: digits only. ADELI numbers start with a département code, and no authoritative rule was found for how a
    Corsican number (2A/2B) would be written or keyed, so a letter is refused rather than guessed at.
    """
    return _checked(value, field, _NINE, "9 digits (ADELI)")


def normalize_finess(value: str, field: str = "identifier") -> str:
    """Validate a FINESS number (9 digits, the last a Luhn check digit) and return it without spaces.

    Choice: digits only. FINESS numbers start with a département code; Corsican ones (2A/2B) are refused because no
    authoritative rule was found for their check digit.
    """
    return _checked(value, field, _NINE, "9 digits (FINESS)")


def normalize_siren(value: str, field: str = "identifier") -> str:
    """Validate a SIREN number (9 digits, Luhn) and return it without spaces."""
    return _checked(value, field, _NINE, "9 digits (SIREN)")


def normalize_siret(value: str, field: str = "identifier") -> str:
    """Validate a SIRET number (14 digits: SIREN + NIC) and return it without spaces.

    The last digit is a Luhn check digit over all 14, and the SIREN part must itself be valid. Exception (INSEE):
    La Poste's establishments (SIREN 356000000, except the head office) are valid when their digit sum is a multiple
    of 5.
    """
    number = _compact(value, field)
    if not _SIRET.fullmatch(number):
        raise InvalidIdentifier(field, "must be 14 digits (SIRET)")
    if number.startswith(_LA_POSTE_SIREN) and number != _LA_POSTE_HEAD_OFFICE:
        valid = sum(ord(c) - 48 for c in number) % 5 == 0
    else:
        valid = luhn_valid(number) and luhn_valid(number[:9])
    if not valid:
        raise InvalidIdentifier(field, "has a wrong check digit")
    return number


_NORMALIZERS = {
    "rpps": normalize_rpps,
    "adeli": normalize_adeli,
    "finess": normalize_finess,
    "siren": normalize_siren,
    "siret": normalize_siret,
}


def national_id(kind: ProfessionalKind, value: str, field: str = "identifier") -> str:
    """The IDNPS (system :data:`IDNPS_SYSTEM`) of a professional: ``"8"`` + RPPS or ``"0"`` + ADELI."""
    if kind not in _PS_PREFIX:
        raise ValueError("kind must be 'rpps' or 'adeli'")
    return _PS_PREFIX[kind] + _NORMALIZERS[kind](value, field)


def parse_national_id(nid: str, field: str = "identifier") -> tuple[ProfessionalKind, str]:
    """Split and validate an IDNPS: ``"8"`` + RPPS → ``("rpps", rpps)``, ``"0"`` + ADELI → ``("adeli", adeli)``.

    Any other prefix is refused: those ids are built from an organisation's id and an internal one, and Carnet only
    accepts professionals who have a national number.
    """
    value = _compact(nid, field)
    if value[:1] == "8":
        return "rpps", _checked(value[1:], field, _RPPS, "8 followed by an 11-digit RPPS number")
    if value[:1] == "0":
        return "adeli", _checked(value[1:], field, _NINE, "0 followed by a 9-digit ADELI number")
    raise InvalidIdentifier(field, "must be 8 + RPPS or 0 + ADELI")


def structure_id(kind: StructureKind, value: str, field: str = "identifier") -> str:
    """The IDNST (system :data:`IDNST_SYSTEM`) of an organisation: ``"1"`` + FINESS, ``"2"`` + SIREN, ``"3"`` + SIRET.
    """
    if kind not in _ST_PREFIX:
        raise ValueError("kind must be 'finess', 'siren' or 'siret'")
    return _ST_PREFIX[kind] + _NORMALIZERS[kind](value, field)


def parse_structure_id(nid: str, field: str = "identifier") -> tuple[StructureKind, str]:
    """Split and validate an IDNST into ``(kind, value)``; prefixes other than 1, 2 and 3 are refused."""
    value = _compact(nid, field)
    kind = _ST_KIND.get(value[:1])
    if kind is None:
        raise InvalidIdentifier(field, "must be 1 + FINESS, 2 + SIREN or 3 + SIRET")
    return kind, _NORMALIZERS[kind](value[1:], field)


# ---------------------------------------------------------------------------------------------------------------
# Synthetic numbers
# ---------------------------------------------------------------------------------------------------------------

#: Synthetic RPPS numbers are "109" + 7 digits + check digit. Real RPPS numbers start with "10" too, but those in
#: published ANS examples start with 100 or 101, so this range looks fake (assumption: no published test range found).
FAKE_RPPS_PREFIX = "109"
FAKE_RPPS_CAPACITY = 10**7
#: Synthetic ADELI numbers are "99" + 6 digits + check digit: 99 is no département (assumption, as above).
FAKE_ADELI_PREFIX = "99"
FAKE_ADELI_CAPACITY = 10**6


def fake_rpps(index: int) -> str:
    """The synthetic RPPS number ``index`` (0 to 9,999,999): deterministic, unique, Luhn-valid."""
    if not 0 <= index < FAKE_RPPS_CAPACITY:
        raise ValueError(f"index must be between 0 and {FAKE_RPPS_CAPACITY - 1}")
    body = f"{FAKE_RPPS_PREFIX}{index:07d}"
    return body + luhn_check_digit(body)


def fake_adeli(index: int) -> str:
    """The synthetic ADELI number ``index`` (0 to 999,999): deterministic, unique, Luhn-valid."""
    if not 0 <= index < FAKE_ADELI_CAPACITY:
        raise ValueError(f"index must be between 0 and {FAKE_ADELI_CAPACITY - 1}")
    body = f"{FAKE_ADELI_PREFIX}{index:06d}"
    return body + luhn_check_digit(body)
