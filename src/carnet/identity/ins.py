"""The INS matricule: NIR and NIA numbers, their OIDs, and synthetic numbers for demos and tests.

An INS (Identité Nationale de Santé) is a matricule plus the OID saying what kind of matricule it is, plus five identity
traits (see ``/work/shared/DOMAIN.md``, section "Identities"). This module only handles the matricule and its OID.

A NIR (and a NIA, which has the same shape) is 15 characters::

    sex(1) year(2) month(2) département(2) commune(3) order(3) key(2)
    2      55      08       14             168        025      38

- sex: 1 or 2; 3, 4, 7 and 8 also occur for NIA and provisional numbers.
- month: 01–12, or a "pseudo-month" 20–42 or 50–99 used when the civil record is incomplete. 00, 13–19 and 43–49
  are refused.
- département: two digits, or ``2A``/``2B`` for Corsica. Overseas numbers use a 3-digit département and a 2-digit
  commune, which are still five digits, so they need no special case.
- key: ``97 − (first 13 digits mod 97)``, after replacing ``2A`` by ``19`` and ``2B`` by ``18``.

A value with the wrong shape or key is refused with :class:`InvalidIdentifier`. It is never "corrected". Error messages
name the field and never repeat the value: a NIR is personal data.

FHIR identifier systems (FR Core ``fr-core-patient-ins``): ``urn:oid:1.2.250.1.213.1.4.8`` (INS-NIR), ``.9`` (INS-NIA),
``.10`` (test), ``.11`` (demo). Synthetic data must use the test or demo OIDs.
"""

from __future__ import annotations

import random
import re

__all__ = [
    "FAKE_NIR_CAPACITY",
    "FAKE_ORDER",
    "INS_SYSTEMS",
    "INS_SYSTEM_DEMO",
    "INS_SYSTEM_NIA",
    "INS_SYSTEM_NIR",
    "INS_SYSTEM_TEST",
    "OID_DEMO",
    "OID_NIA",
    "OID_NIR",
    "OID_TEST",
    "SEX_DIGITS",
    "SYNTHETIC_INS_SYSTEMS",
    "InvalidIdentifier",
    "fake_nir",
    "fake_nir_for",
    "format_nir",
    "is_fake_nir",
    "nir_key",
    "normalize_nir",
    "parse_ins_identifier",
]


class InvalidIdentifier(ValueError):
    """An identifier was refused.

    ``field`` names the element at fault (a FHIRPath expression where there is one, e.g.
    ``Patient.identifier[0].value``). ``reason`` is an English sentence fragment. Neither ever contains the
    identifier's value, so the exception may be logged or returned in an ``OperationOutcome`` as is.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


OID_NIR = "1.2.250.1.213.1.4.8"
OID_NIA = "1.2.250.1.213.1.4.9"
OID_TEST = "1.2.250.1.213.1.4.10"
OID_DEMO = "1.2.250.1.213.1.4.11"

INS_SYSTEM_NIR = f"urn:oid:{OID_NIR}"
INS_SYSTEM_NIA = f"urn:oid:{OID_NIA}"
INS_SYSTEM_TEST = f"urn:oid:{OID_TEST}"
INS_SYSTEM_DEMO = f"urn:oid:{OID_DEMO}"

#: FHIR ``Identifier.system`` of each kind of INS matricule → its kind.
INS_SYSTEMS: dict[str, str] = {
    INS_SYSTEM_NIR: "nir",
    INS_SYSTEM_NIA: "nia",
    INS_SYSTEM_TEST: "test",
    INS_SYSTEM_DEMO: "demo",
}

#: The systems that synthetic data must use.
SYNTHETIC_INS_SYSTEMS: frozenset[str] = frozenset({INS_SYSTEM_TEST, INS_SYSTEM_DEMO})

#: First digit of a NIR: 1/2 (men/women), 3/4 and 7/8 for NIA and provisional numbers.
SEX_DIGITS: frozenset[int] = frozenset({1, 2, 3, 4, 7, 8})

# ASCII digits only: str.isdigit() and int() also accept other scripts' digits and superscripts.
_BODY = re.compile(r"[0-9]{5}(?:[0-9]{2}|2A|2B)[0-9]{6}")
_NIR = re.compile(r"[0-9]{5}(?:[0-9]{2}|2A|2B)[0-9]{8}")
_CORSICA = {"2A": "19", "2B": "18"}


def _compact(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidIdentifier(field, "must be a string")
    # split() with no argument also removes non-breaking and narrow no-break spaces, common in French formatting.
    return "".join(value.split()).upper()


def _month_is_valid(month: int) -> bool:
    return 1 <= month <= 12 or 20 <= month <= 42 or month >= 50


def _key(body: str) -> str:
    digits = body[:5] + _CORSICA.get(body[5:7], body[5:7]) + body[7:]
    return f"{97 - int(digits) % 97:02d}"


def nir_key(first13: str, field: str = "identifier") -> str:
    """The two-digit key of a NIR's first 13 characters (``2A``/``2B`` allowed as the département).

    >>> nir_key("2550814168025")
    '38'
    """
    body = _compact(first13, field)
    if not _BODY.fullmatch(body):
        raise InvalidIdentifier(field, "must be 13 digits, with 2A or 2B allowed as the département")
    return _key(body)


def normalize_nir(value: str, field: str = "identifier") -> str:
    """Validate a NIR or NIA and return it as 15 characters, without spaces, upper case.

    Raises :class:`InvalidIdentifier` naming ``field`` when the shape, the sex digit, the month or the key is wrong.

    >>> normalize_nir("2 55 08 14 168 025 38")
    '255081416802538'
    """
    nir = _compact(value, field)
    if len(nir) != 15:
        raise InvalidIdentifier(field, "must be 15 characters: sex, year, month, département, commune, order, key")
    if not _NIR.fullmatch(nir):
        raise InvalidIdentifier(field, "must contain only digits, except 2A or 2B as the département")
    if int(nir[0]) not in SEX_DIGITS:
        raise InvalidIdentifier(field, "has an invalid first digit (sex)")
    if not _month_is_valid(int(nir[3:5])):
        raise InvalidIdentifier(field, "has an invalid birth month")
    if _key(nir[:13]) != nir[13:]:
        raise InvalidIdentifier(field, "has a wrong key")
    return nir


def parse_ins_identifier(system: str, value: str, field: str = "identifier") -> tuple[str, str]:
    """Validate an INS as a FHIR ``Identifier`` (``system``, ``value``) and return ``(system, normalized value)``.

    ``field`` is the path of the Identifier element; errors name ``{field}.system`` or ``{field}.value``. The system
    must be one of :data:`INS_SYSTEMS`, written exactly (``urn:oid:`` form). The same rules apply to every kind:
    a NIA, a test and a demo matricule have the shape and key of a NIR.
    """
    if not isinstance(system, str) or system not in INS_SYSTEMS:
        raise InvalidIdentifier(f"{field}.system", "is not an INS system (INS-NIR, INS-NIA, test or demo OID)")
    return system, normalize_nir(value, f"{field}.value")


def format_nir(nir: str, field: str = "identifier") -> str:
    """The usual display form, ``2 55 08 14 168 025 38``, of a valid NIR."""
    n = normalize_nir(nir, field)
    return " ".join((n[0], n[1:3], n[3:5], n[5:7], n[7:10], n[10:13], n[13:]))


# ---------------------------------------------------------------------------------------------------------------
# Synthetic numbers
# ---------------------------------------------------------------------------------------------------------------

#: Order number of every synthetic NIR. INSEE numbers the births of a month in a commune from 001, so a fake cannot
#: be the number of a real person (assumption: no authoritative INSEE text was found stating that 000 is never used).
FAKE_ORDER = "000"

# Metropolitan départements, Corsica as 2A/2B (20 exists only before 1976).
_DEPARTEMENTS: tuple[str, ...] = tuple(
    [f"{d:02d}" for d in range(1, 20)] + ["2A", "2B"] + [f"{d:02d}" for d in range(21, 96)]
)
_COMMUNES = 999  # 001 to 999
_MONTHS = 12
_YEARS = 100
_SEXES = (1, 2)

#: How many distinct NIRs :func:`fake_nir_for` can produce (indexes 0 to FAKE_NIR_CAPACITY - 1).
FAKE_NIR_CAPACITY = _COMMUNES * len(_DEPARTEMENTS) * _MONTHS * _YEARS * len(_SEXES)


def _assemble(sex: int, yy: int, month: int, departement: str, commune: int) -> str:
    body = f"{sex}{yy:02d}{month:02d}{departement}{commune:03d}{FAKE_ORDER}"
    return body + _key(body)


def fake_nir(
    rng: random.Random,
    sex: int | None = None,
    birth_year: int | None = None,
    birth_month: int | None = None,
) -> str:
    """A synthetic NIR with a valid key, for demo data, tests and benchmarks.

    Its order number is ``000`` (see :data:`FAKE_ORDER`), so :func:`is_fake_nir` recognises it. Store it under the
    test or demo OID, never under INS-NIR. ``birth_year`` is a full year (only its last two digits are kept);
    ``birth_month`` may be a pseudo-month. Anything left out is drawn from ``rng``.
    """
    if sex is None:
        sex = rng.choice(_SEXES)
    elif sex not in SEX_DIGITS:
        raise ValueError("sex must be one of 1, 2, 3, 4, 7, 8")
    if birth_year is None:
        birth_year = rng.randint(1920, 2025)
    elif birth_year < 0:
        raise ValueError("birth_year must not be negative")
    if birth_month is None:
        birth_month = rng.randint(1, 12)
    elif not (0 < birth_month < 100 and _month_is_valid(birth_month)):
        raise ValueError("birth_month must be 1-12, 20-42 or 50-99")
    return _assemble(sex, birth_year % 100, birth_month, rng.choice(_DEPARTEMENTS), rng.randint(1, _COMMUNES))


def fake_nir_for(index: int) -> str:
    """The synthetic NIR number ``index``: deterministic, and different for every index below
    :data:`FAKE_NIR_CAPACITY` (about 230 million).

    The index is written in mixed radix over commune, département, month, year and sex, so consecutive indexes differ
    in their commune first. The order number is always ``000``, as in :func:`fake_nir`.
    """
    if not 0 <= index < FAKE_NIR_CAPACITY:
        raise ValueError(f"index must be between 0 and {FAKE_NIR_CAPACITY - 1}")
    rest, commune = divmod(index, _COMMUNES)
    rest, departement = divmod(rest, len(_DEPARTEMENTS))
    rest, month = divmod(rest, _MONTHS)
    sex, yy = divmod(rest, _YEARS)
    return _assemble(_SEXES[sex], yy, month + 1, _DEPARTEMENTS[departement], commune + 1)


def is_fake_nir(nir: str) -> bool:
    """Whether a valid NIR carries the synthetic order number ``000`` used by :func:`fake_nir`."""
    try:
        return normalize_nir(nir)[10:13] == FAKE_ORDER
    except InvalidIdentifier:
        return False
