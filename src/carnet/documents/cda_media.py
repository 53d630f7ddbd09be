"""The PDFs a CDA document carries (issue 16 §2): its ``nonXMLBody``, and those embedded in a structured body.

ANS CI-SIS documents embed PDFs in several places: a level-1 document's ``component/nonXMLBody/text``; in a
structured body, an ``observationMedia`` whose ``value`` is ``mediaType="application/pdf"`` (shown in the narrative
by ``renderMultiMedia referencedObject="<its ID>"``: the CR-BIO "Copie du document" section, a second-line lab's
report), or an observation's ``value xsi:type="ED"`` of that media type. :func:`pdfs` finds every one of them, in
document order, and numbers those that are readable: part ``n`` is what the portals serve at ``…/body?part=n``
(part 0, the first, is a level-1 document's body).

Nothing is served as a PDF unless its bytes are one: base64 decoded, then sniffed (``%PDF-`` at the start, after
optional whitespace). A part labelled PDF that is not one is kept with ``index`` None, so that the rendering says it
cannot be shown rather than dropping it silently.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

V3 = "{urn:hl7-org:v3}"
PDF = "application/pdf"


@dataclass(frozen=True)
class Embedded:
    element: Any  # the element holding the base64 bytes (``text`` or ``value``)
    media_id: str | None  # the ``ID`` of its observationMedia, which renderMultiMedia references
    data: bytes
    index: int | None  # its part number when it is a readable PDF, else None


def is_pdf(data: bytes) -> bool:
    """Whether ``data`` starts as a PDF file does (``%PDF-``, after optional whitespace)."""
    return data[:1024].lstrip(b" \t\r\n\f\x00").startswith(b"%PDF-")


def _decode(el: Any) -> bytes | None:
    if el.find(f"{V3}reference") is not None or str(el.get("representation") or "TXT").upper() != "B64":
        return None
    try:
        return base64.b64decode("".join("".join(el.itertext()).split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def pdfs(root: Any) -> list[Embedded]:
    """Every element of ``root`` (a ClinicalDocument) that carries a PDF, in document order (see the module
    docstring)."""
    out: list[Embedded] = []
    n = 0
    for el in root.iter():
        if not isinstance(el.tag, str) or str(el.get("mediaType") or "").split(";")[0].strip().lower() != PDF:
            continue
        data = _decode(el)
        ok = data is not None and is_pdf(data)
        parent = el.getparent()
        media_id = parent.get("ID") if parent is not None and parent.tag == f"{V3}observationMedia" else None
        out.append(Embedded(el, media_id, data or b"", n if ok else None))
        n += 1 if ok else 0
    return out


def part(root: Any, n: int) -> bytes | None:
    """The bytes of readable PDF part ``n``, or None."""
    for e in pdfs(root):
        if e.index == n:
            return e.data
    return None
