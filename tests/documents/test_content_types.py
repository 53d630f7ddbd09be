"""An uploaded file's type comes from its bytes, not from what the browser declares."""

from __future__ import annotations

import pytest

from carnet.documents.content_types import sniff_content_type


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
