"""Text Carnet can hold: what XML 1.0 can carry and PostgreSQL can store (issue 15 §1).

NUL (PostgreSQL text cannot hold it), the other C0 controls but tab, line feed and carriage return, U+FFFE and U+FFFF
(XML 1.0 cannot carry them) and lone surrogates (no UTF-8 for them) are refused where input enters, with the field
named, never stored to fail later as a 500.
"""

from __future__ import annotations

import re
import unicodedata

_UNHOLDABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def holdable(text: str) -> bool:
    """Whether ``text`` holds no character Carnet could not store or serve back (one linear scan, no copy)."""
    return _UNHOLDABLE.search(text) is None


def winansi(value: object) -> str:
    """What the standard PDF fonts (WinAnsi) can show: other characters lose their accent, or become ``?`` (the
    emergency card's and the prescription's PDFs)."""
    out = []
    for ch in str(value):
        try:
            ch.encode("cp1252")
            out.append(ch)
        except UnicodeEncodeError:
            base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
            out.append(base if base and base.isascii() else "?")
    return "".join(out)
