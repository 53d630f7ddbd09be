"""What an uploaded file is, from its bytes: the browser's or the client's declared type is not enough. Used by
both portals when a person adds a document through a form."""

from __future__ import annotations


def sniff_content_type(data: bytes, filename: str, declared: str) -> str | None:
    """The content type of an uploaded file, from its first bytes (the browser's word is not enough), or None when
    it is not a kind Carnet accepts from a patient (PDF, JPEG, PNG, plain text)."""
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if declared.split(";")[0].strip().lower() == "text/plain" or filename.lower().endswith(".txt"):
        if b"\x00" in data:
            return None
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return "text/plain"
    return None
