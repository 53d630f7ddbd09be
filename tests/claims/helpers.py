"""Building synthetic claims files for the tests (fake NIRs, fake RPPS, codes with valid check digits)."""

from __future__ import annotations

import datetime as dt

from carnet.claims.ingest import HEADER
from carnet.identity.professionals import fake_rpps


def cip13(body9: str) -> str:
    """A CIP13 code ``3400`` + 8 digits + its EAN-13 check digit."""
    base = "3400" + body9[:8]
    total = sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(base))
    return base + str((10 - total % 10) % 10)


def line(nir: str, day: dt.date, *, kind: str = "act", system: str = "CCAM", code: str = "QZFA001",
         label: str = "Exérèse de lésion", prescriber: str | None = None, amount: str = "41,80") -> str:
    return ";".join([nir, day.isoformat(), kind, system, code, label, prescriber or "", amount])


def claims_file(lines: list[str]) -> bytes:
    return ("\n".join([";".join(HEADER), *lines]) + "\n").encode()


def byte_lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


PRESCRIBER = fake_rpps(4242)


def sample(nir: str, today: dt.date) -> list[str]:
    return [
        line(nir, today - dt.timedelta(days=3)),
        line(nir, today - dt.timedelta(days=10), kind="consultation", system="NGAP", code="c", amount="26.50",
             prescriber=PRESCRIBER),
        line(nir, today - dt.timedelta(days=20), kind="drug", system="CIP13", code=cip13("12345678"),
             label="Paracétamol 500 mg", amount="2.18"),
        line(nir, today - dt.timedelta(days=30), kind="consultation", system="NGAP", code="AMI 1.5", amount=""),
    ]

