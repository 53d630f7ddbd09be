"""What a document's content is, from its bytes: a declared type is a claim, the bytes decide (issue 15 §7).

:func:`sniff` reads only the first :data:`SNIFF_BYTES` of a content (a large document is never read whole for this)
and says what kind of content they begin: a PDF, a JPEG or PNG image, an HL7 CDA R2 ``ClinicalDocument``, a FHIR
resource in XML or JSON, other XML, plain text, or bytes of none of these. :func:`require_declared` refuses (422,
``DocumentReference.content[0].attachment.contentType``) a declared media type that the bytes contradict; it is called
by :func:`carnet.documents.publishing.publish`, the one path every deposit takes (ITI-65, ITI-105, both portals'
forms, advance directives, the demo), after a content that looks like a CDA has been checked as a CDA against its
metadata, whatever its declared type. :func:`sniff_content_type` is the portals' upload forms' choice of a type for a
file a person picks.
"""

from __future__ import annotations

import codecs
import re

from lxml import etree

from carnet.errors import unprocessable

SNIFF_BYTES = 64 * 1024
CONTENT_TYPE = "DocumentReference.content[0].attachment.contentType"
V3_CLINICAL_DOCUMENT = "{urn:hl7-org:v3}ClinicalDocument"
FHIR_NS = "{http://hl7.org/fhir}"

PDF, JPEG, PNG, CDA, FHIR_XML, XML, JSON, TEXT, BINARY = (
    "pdf", "jpeg", "png", "cda", "fhir+xml", "xml", "json", "text", "binary")
# The media types Carnet stores (documents.codes.CONTENT_TYPES) -> the kinds of bytes each may carry.
ACCEPTS = {
    "application/pdf": {PDF}, "image/jpeg": {JPEG}, "image/png": {PNG},
    "text/plain": {TEXT, XML, JSON},  # text is text: XML or JSON typed as text is still readable text, not a CDA
    "text/xml": {CDA}, "application/xml": {CDA}, "application/hl7-v3+xml": {CDA}, "application/hl7-cda+xml": {CDA},
    "application/fhir+xml": {FHIR_XML}, "application/fhir+json": {JSON},
}
NAMES = {PDF: "a PDF", JPEG: "a JPEG image", PNG: "a PNG image", CDA: "an HL7 CDA document",
         FHIR_XML: "a FHIR resource in XML", XML: "XML", JSON: "JSON", TEXT: "plain text",
         BINARY: "binary data of no kind Carnet stores"}


def head(data: bytes | bytearray | memoryview) -> bytes:
    """The first bytes of a content, copied (at most :data:`SNIFF_BYTES`), never the whole of it."""
    return bytes(memoryview(data)[:SNIFF_BYTES])


def _root_tag(data: bytes | bytearray | memoryview) -> str | None:
    """The tag (``{namespace}name``) of the root element the bytes open, or None if they are not the start of XML.

    A pull parser is fed a slice at a time and stops at the first element: entities are not resolved, no DTD is
    loaded, nothing is fetched. Bytes that are not XML stop it at once; a prolog (whitespace, comments, a DOCTYPE)
    longer than :data:`SNIFF_BYTES` is read on, a slice at a time, so that it cannot hide a CDA from the sniffing."""
    parser = etree.XMLPullParser(events=("start",), resolve_entities=False, no_network=True, load_dtd=False,
                                 huge_tree=False, remove_comments=True, remove_pis=True)
    view = memoryview(data)
    try:
        for at in range(0, len(view), SNIFF_BYTES):
            parser.feed(bytes(view[at:at + SNIFF_BYTES]))
            for _, element in parser.read_events():
                return str(element.tag) if isinstance(element.tag, str) else None
    except (etree.XMLSyntaxError, ValueError):
        return None
    return None


_LOOKS_LIKE_CDA = re.compile(rb"<([A-Za-z_][\w.-]*:)?ClinicalDocument[\s>/]")


def _is_text(start: bytes, encoding: str = "utf-8") -> bool:
    """Text in ``encoding`` with no NUL byte (the head may end inside a character: an incremental decoder)."""
    if b"\x00" in start:
        return False
    try:
        codecs.getincrementaldecoder(encoding)().decode(start, final=False)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


def sniff(data: bytes | bytearray | memoryview, encoding: str = "utf-8") -> str:
    """The kind of content ``data`` holds (one of :data:`NAMES`), from its first bytes: the signature of a PDF,
    JPEG or PNG; the root element of XML (a long prolog is read on to it); a ``ClinicalDocument`` start tag and the
    HL7 v3 namespace in bytes that are not well-formed XML (a CDA all the same, to the eye); else text in
    ``encoding`` (no NUL byte), JSON when that text opens an object or array."""
    start = head(data)
    if start.startswith(b"%PDF-"):
        return PDF
    if start.startswith(b"\xff\xd8\xff"):
        return JPEG
    if start.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    tag = _root_tag(data)
    if tag == V3_CLINICAL_DOCUMENT:
        return CDA
    if tag is not None and tag.startswith(FHIR_NS):
        return FHIR_XML
    if tag is not None:
        return XML
    if _LOOKS_LIKE_CDA.search(start) and b"urn:hl7-org:v3" in start:
        return CDA  # not well-formed, yet a CDA to the eye: checked as one (and refused as not well-formed)
    if not _is_text(start, encoding):
        return BINARY
    if start.removeprefix(codecs.BOM_UTF8).lstrip()[:1] in (b"{", b"["):
        return JSON
    return TEXT


def charset(content_type: str) -> str:
    """The ``charset`` parameter of a media type (UTF-8 when it names none)."""
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return "utf-8"


def require_declared(declared: str, kind: str) -> None:
    """Refuse (422 naming ``attachment.contentType``) a declared media type that the sniffed ``kind`` contradicts:
    not a PDF declared ``application/pdf``, a CDA declared as anything but a CDA media type, and so on."""
    media = declared.split(";")[0].strip().lower()
    allowed = ACCEPTS.get(media)
    if allowed is None:  # documents.codes.CONTENT_TYPES refuses these first (415); fail closed all the same
        raise unprocessable("This document format is not accepted", CONTENT_TYPE, "not-supported")
    if kind not in allowed:
        raise unprocessable(f"The content is {NAMES[kind]}, which contradicts its declared contentType {media}",
                            CONTENT_TYPE, "business-rule")


def sniff_content_type(data: bytes, filename: str, declared: str) -> str | None:
    """The content type of a file a person uploads through a portal form, from its first bytes (the browser's word
    is not enough), or None when it is not a kind Carnet accepts from a form (PDF, JPEG, PNG, plain text)."""
    kind = sniff(data)
    if kind in (PDF, JPEG, PNG):
        return {PDF: "application/pdf", JPEG: "image/jpeg", PNG: "image/png"}[kind]
    is_text = declared.split(";")[0].strip().lower() == "text/plain" or filename.lower().endswith(".txt")
    if is_text and kind in (TEXT, XML, JSON):
        return "text/plain"
    return None
