"""A content's kind comes from its bytes, not from what a browser or a client declares (issue 15 §7)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carnet.documents import codes, content_types
from carnet.documents.content_types import sniff_content_type
from carnet.errors import FhirError


@pytest.mark.parametrize(("data", "name", "declared", "expected"), [
    (b"%PDF-1.7\n...", "scan.bin", "application/octet-stream", "application/pdf"),
    (b"\xff\xd8\xff\xe0rest", "photo", "", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\nrest", "x.pdf", "application/pdf", "image/png"),  # the bytes win over the name and the type
    ("Tension 12/8, à revoir".encode(), "note.txt", "", "text/plain"),
    (b"plain words", "note", "text/plain; charset=utf-8", "text/plain"),
])
def test_known_kinds_are_recognised_by_their_bytes(data: bytes, name: str, declared: str, expected: str) -> None:
    assert sniff_content_type(data, name, declared) == expected


@pytest.mark.parametrize(("data", "name", "declared"), [
    (b"MZ\x90\x00executable", "report.pdf", "application/pdf"),  # a PDF by name and declared type only
    (b"<html><script>", "page.html", "text/html"),
    (b"text with a \x00 byte", "note.txt", "text/plain"),  # binary disguised as text
    (b"\xff\xfe not utf-8 \xc3", "note.txt", "text/plain"),
    (b"just words", "note.doc", "application/msword"),  # text, but neither declared nor named as text
])
def test_anything_else_is_refused(data: bytes, name: str, declared: str) -> None:
    assert sniff_content_type(data, name, declared) is None


# --- sniff: what the first bytes are (issue 15 §7) -----------------------------------------------------------------

CDA = b'<?xml version="1.0" encoding="UTF-8"?>\n<ClinicalDocument xmlns="urn:hl7-org:v3"><title>x</title>'


@pytest.mark.parametrize(("data", "kind"), [
    (b"%PDF-1.4\n...", content_types.PDF),
    (b"\xff\xd8\xff\xe0rest", content_types.JPEG),
    (b"\x89PNG\r\n\x1a\nrest", content_types.PNG),
    (CDA, content_types.CDA),
    (b"\xef\xbb\xbf  \n" + CDA, content_types.CDA),  # a BOM and blank lines before it
    (b'<v3:ClinicalDocument xmlns:v3="urn:hl7-org:v3"/>', content_types.CDA),  # any prefix: the namespace decides
    (CDA.replace(b"?>\n", b"?>\n<!-- " + b"x" * 200_000 + b" -->"), content_types.CDA),  # a long prolog...
    (CDA.replace(b"?>\n", b"?>" + b" " * 200_000), content_types.CDA),  # ...does not hide it
    (b'<!DOCTYPE x [<!ENTITY a "b">]>' + CDA, content_types.CDA),  # sniffed, entities unresolved (refused later)
    (CDA.decode().replace("UTF-8", "UTF-16").encode("utf-16"), content_types.CDA),
    (b'<ClinicalDocument/>', content_types.XML),  # no HL7 v3 namespace: not a CDA
    (b'<Bundle xmlns="http://hl7.org/fhir"><type value="document"/></Bundle>', content_types.FHIR_XML),
    (b'{"resourceType": "Bundle"}', content_types.JSON),
    ("Tension 12/8, à revoir".encode(), content_types.TEXT),
    (b"MZ\x90\x00\x03", content_types.BINARY),
    (b"text with a \x00 byte", content_types.BINARY),
])
def test_sniff_names_what_the_bytes_are(data: bytes, kind: str) -> None:
    assert content_types.sniff(data) == kind


def test_sniff_reads_only_the_head_of_a_large_content() -> None:
    big = bytearray(b"%PDF-1.7\n" + b"\x00" * (30 * 1024 * 1024))  # a large document, decoded in place
    assert content_types.head(big) == bytes(big[:content_types.SNIFF_BYTES])
    assert content_types.sniff(big) == content_types.PDF
    text = bytearray("é".encode() * (content_types.SNIFF_BYTES // 2 + 1))  # the head ends inside a character
    assert content_types.sniff(text[:content_types.SNIFF_BYTES + 1]) == content_types.TEXT


@pytest.mark.parametrize(("declared", "kind"), [
    ("application/pdf", content_types.PDF), ("image/png", content_types.PNG), ("image/jpeg", content_types.JPEG),
    ("text/plain; charset=utf-8", content_types.TEXT), ("text/xml", content_types.CDA),
    ("application/xml", content_types.CDA), ("application/hl7-v3+xml", content_types.CDA),
    ("application/hl7-cda+xml", content_types.CDA), ("application/fhir+xml", content_types.FHIR_XML),
    ("application/fhir+json", content_types.JSON),
])
def test_a_declared_type_that_the_bytes_bear_out_is_accepted(declared: str, kind: str) -> None:
    content_types.require_declared(declared, kind)


@pytest.mark.parametrize("declared", sorted(content_types.ACCEPTS))
def test_a_cda_declared_as_anything_but_a_cda_is_refused_naming_the_content_type(declared: str) -> None:
    if content_types.CDA in content_types.ACCEPTS[declared]:
        return
    with pytest.raises(FhirError) as caught:
        content_types.require_declared(declared, content_types.CDA)
    assert caught.value.status == 422
    assert caught.value.issues[0].expression == ["DocumentReference.content[0].attachment.contentType"]


def test_every_media_type_carnet_stores_says_what_bytes_it_accepts() -> None:
    assert set(content_types.ACCEPTS) == set(codes.CONTENT_TYPES)
    with pytest.raises(FhirError):
        content_types.require_declared("application/octet-stream", content_types.BINARY)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2048), declared=st.sampled_from(sorted(content_types.ACCEPTS)))
def test_any_bytes_are_named_and_either_borne_out_or_refused_with_422(data: bytes, declared: str) -> None:
    kind = content_types.sniff(data)
    assert kind in content_types.NAMES
    try:
        content_types.require_declared(declared, kind)
    except FhirError as exc:
        assert exc.status == 422
    else:
        assert kind in content_types.ACCEPTS[declared]
