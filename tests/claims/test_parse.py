"""Parsing one claims line with the per-ingest caches: the same verdicts, hashes and reasons as checking each value
afresh, and no value of one line leaking into another."""

from __future__ import annotations

import datetime as dt
from hashlib import sha256

import pytest

from carnet.claims.ingest import BadLine, Caches, ClaimLine, parse_fields
from carnet.identity.ins import fake_nir_for
from tests.claims.helpers import PRESCRIBER, cip13, line

DAY = dt.date(2026, 3, 14)


def _parse(text: str, caches: Caches | None = None) -> ClaimLine:
    return parse_fields(text.split(";"), caches)


def _reason(text: str, caches: Caches | None = None) -> str:
    with pytest.raises(BadLine) as exc:
        _parse(text, caches)
    return str(exc.value)


def test_the_line_hash_is_the_sha256_of_the_normalised_line() -> None:
    nir = fake_nir_for(1)
    got = _parse(line(nir, DAY, kind=" Consultation", system="ngap", code=" ami  1.5", label="  Soins   infirmiers ",
                      prescriber=PRESCRIBER, amount="3,1"))
    norm = f"{nir};{DAY.isoformat()};consultation;NGAP;AMI 1.5;Soins infirmiers;8{PRESCRIBER};310"
    assert got.line_hash == sha256(norm.encode()).hexdigest()
    assert (got.code, got.label, got.prescriber, got.amount_cents) == ("AMI 1.5", "Soins infirmiers",
                                                                      "8" + PRESCRIBER, 310)
    blank = _parse(line(nir, DAY, amount="", prescriber=None))
    assert blank.line_hash == sha256(f"{nir};{DAY.isoformat()};act;CCAM;QZFA001;Exérèse de lésion;;".encode()) \
        .hexdigest()
    assert (blank.prescriber, blank.amount_cents) == (None, None)


def test_a_shared_cache_gives_each_line_its_own_nir_date_code_and_amount() -> None:
    caches = Caches()
    a, b = fake_nir_for(10), fake_nir_for(11)
    first = _parse(line(a, DAY, amount="1.00"), caches)
    second = _parse(line(b, DAY - dt.timedelta(days=1), system="CIP13", kind="drug", code=cip13("12345678"),
                         amount="2.00", prescriber=PRESCRIBER), caches)
    again = _parse(line(a, DAY, amount="1.00"), caches)
    assert (first.nir, first.care_date, first.code, first.amount_cents, first.prescriber) == \
        (a, DAY, "QZFA001", 100, None)
    assert (second.nir, second.care_date, second.code, second.amount_cents, second.prescriber) == \
        (b, DAY - dt.timedelta(days=1), cip13("12345678"), 200, "8" + PRESCRIBER)
    assert again.line_hash == first.line_hash != second.line_hash
    assert first.line_hash == _parse(line(a, DAY, amount="1.00")).line_hash  # cached or not, the same hash


def test_a_bad_value_met_again_gives_the_same_reason_and_never_poisons_a_good_one() -> None:
    caches = Caches()
    nir = fake_nir_for(12)
    cases = [
        (line(nir, DAY).replace(DAY.isoformat(), "2026-02-30"), "care_date"),
        (line(nir, DAY, kind="surgery"), "kind"),
        (line(nir, DAY, system="LOINC"), "code_system"),
        (line(nir, DAY, code="QZF001"), "code"),
        (line(nir, DAY, system="CIP13", code=cip13("12345678")[:-1] + "0"), "code"),
        (line(nir, DAY, label=" "), "label"),
        (line(nir, DAY, prescriber="123"), "prescriber"),
        (line(nir, DAY, amount="1.234"), "amount"),
    ]
    for text, column in cases:
        fresh = _reason(text)
        assert fresh.startswith(column)
        assert _reason(text, caches) == fresh
        assert _reason(text, caches) == fresh  # second time from the cache
    assert _parse(line(nir, DAY), caches).nir == nir


def test_the_first_column_at_fault_is_reported_when_several_are() -> None:
    caches = Caches()
    text = line(fake_nir_for(13), DAY, kind="surgery", system="LOINC", code="?", amount="x")
    assert _reason(text, caches).startswith("kind")
    assert _reason(text, caches).startswith("kind")
    assert _reason(line(fake_nir_for(13), DAY, system="LOINC", code="?"), caches).startswith("code_system")


def test_values_past_the_cache_limit_are_still_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Caches, "LIMIT", 0)
    monkeypatch.setattr(Caches, "SMALL_LIMIT", 0)
    caches = Caches()
    nir = fake_nir_for(14)
    assert _parse(line(nir, DAY), caches).nir == nir
    assert _reason(line(nir, DAY, amount="1.234"), caches).startswith("amount")
    assert caches.nir == {} and caches.amount == {}
