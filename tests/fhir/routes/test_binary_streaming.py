"""ITI-68 for large documents: sealed in segments, streamed back after the transaction that decided and audited the
reading, never served whole when a segment is damaged; documents sealed before streaming existed still open."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import func, select, update

from carnet.blobs import IntegrityError, seal
from carnet.blobs.stream import MAGIC
from carnet.db.tables import audit, document
from carnet.documents.stored import aad
from carnet.fhir.routes import documents as routes
from tests.conftest import World
from tests.fhir.routes.test_documents import publish


def pdf(size: int) -> bytes:
    head, tail = b"%PDF-1.4\n", b"\n%%EOF\n"
    return head + os.urandom(size - len(head) - len(tail)) + tail


def row_of(world: World, doc_id: str):  # type: ignore[no-untyped-def]
    with world.services.engine.connect() as conn:
        return conn.execute(select(document).where(document.c.document_id == uuid.UUID(doc_id))).one()


def retrievals(world: World, doc_id: str) -> int:
    with world.services.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(audit).where(
            audit.c.dossier_key == world.dossier, audit.c.event == "ITI-68", audit.c.entity_id == doc_id,
            audit.c.outcome == "0")).scalar_one())


@pytest.fixture
def streamed(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    """Documents over 1,000 bytes are streamed, and up to 3 MiB may be published (three 1 MiB segments)."""
    monkeypatch.setattr(routes, "STREAM_ABOVE", 1000)
    monkeypatch.setattr(world.services.settings, "max_document_bytes", 3 * 1024 * 1024)

    def opened_whole(*args: object) -> bytes:
        raise AssertionError("a large document must not be opened whole")

    monkeypatch.setattr("carnet.documents.reading.open_content", opened_whole)
    return world


def test_a_document_is_stored_in_the_streamed_format_under_its_own_id(world: World) -> None:
    doc_id = publish(world)
    row = row_of(world, doc_id)
    assert row.blob_key == uuid.UUID(doc_id).hex
    assert world.services.blobs.get(row.blob_key).startswith(MAGIC)


def test_a_large_document_is_streamed_byte_for_byte_and_its_reading_audited(streamed: World) -> None:
    data = pdf(2 * 1024 * 1024 + 12345)  # three segments, the last one short
    doc_id = publish(streamed, data=data)
    before = retrievals(streamed, doc_id)
    r = streamed.client.get(f"/fhir/Binary/{doc_id}", headers={**streamed.headers(), "Accept": "*/*"})
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["content-length"] == str(len(data))
    assert r.headers["content-type"].startswith("application/pdf")
    assert retrievals(streamed, doc_id) == before + 1


def test_a_large_document_is_refused_to_a_stranger_without_a_byte_read(streamed: World) -> None:
    doc_id = publish(streamed, data=pdf(5000))
    r = streamed.client.get(f"/fhir/Binary/{doc_id}", headers={**streamed.headers("stranger"), "Accept": "*/*"})
    assert r.status_code == 404
    assert retrievals(streamed, doc_id) == 0


def test_a_damaged_first_segment_is_a_500_before_any_byte_is_sent(streamed: World) -> None:
    doc_id = publish(streamed, data=pdf(5000))
    path = streamed.services.blobs.path_for(row_of(streamed, doc_id).blob_key)  # type: ignore[attr-defined]
    blob = bytearray(path.read_bytes())
    blob[100] ^= 1
    path.chmod(0o600)
    path.write_bytes(bytes(blob))
    r = streamed.client.get(f"/fhir/Binary/{doc_id}", headers={**streamed.headers(), "Accept": "*/*"})
    assert r.status_code == 500
    assert r.json()["resourceType"] == "OperationOutcome"
    assert b"%PDF" not in r.content


def test_a_damaged_later_segment_aborts_the_stream(streamed: World) -> None:
    doc_id = publish(streamed, data=pdf(2 * 1024 * 1024 + 10))
    path = streamed.services.blobs.path_for(row_of(streamed, doc_id).blob_key)  # type: ignore[attr-defined]
    blob = bytearray(path.read_bytes())
    blob[-5] ^= 1  # inside the last segment
    path.chmod(0o600)
    path.write_bytes(bytes(blob))
    with pytest.raises(IntegrityError):  # the server raises mid-body: the response is cut short, never completed
        streamed.client.get(f"/fhir/Binary/{doc_id}", headers={**streamed.headers(), "Accept": "*/*"})


@pytest.mark.parametrize("stream_above", [1000, 10_000])
def test_a_document_sealed_whole_before_streaming_existed_still_opens(world: World, stream_above: int,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Blobs written by earlier versions (one AES-GCM message, keyed by the ciphertext's hash) are read as before,
    whether the document is opened whole or streamed."""
    monkeypatch.setattr(routes, "STREAM_ABOVE", stream_above)
    streamed, size = world, 5000
    data = pdf(size)
    doc_id = publish(streamed, data=data)
    row = row_of(streamed, doc_id)
    sealed = seal(streamed.services.keyring, data, aad(row.dossier_key, row.document_id))
    import hashlib

    old_key = hashlib.sha256(sealed.ciphertext).hexdigest()
    streamed.services.blobs.put(old_key, sealed.ciphertext)
    with streamed.services.engine.begin() as conn:
        conn.execute(update(document).where(document.c.dossier_key == row.dossier_key,
                                            document.c.document_id == row.document_id)
                     .values(blob_key=old_key, wrapped_key=sealed.wrapped_key, key_id=sealed.key_id))
    r = streamed.client.get(f"/fhir/Binary/{doc_id}", headers={**streamed.headers(), "Accept": "*/*"})
    assert r.status_code == 200
    assert r.content == data


@pytest.mark.parametrize("size", [0, 1, 2, 3, 3 * 1024 * 1024 - 1, 3 * 1024 * 1024, 3 * 1024 * 1024 + 2,
                                  7 * 1024 * 1024 + 1])
def test_large_base64_is_decoded_in_slices_exactly_as_whole(size: int) -> None:
    import base64

    data = os.urandom(size)
    assert bytes(routes.decode_base64(base64.b64encode(data).decode())) == data


@pytest.mark.parametrize("damage", ["pad-inside", "bad-char", "short", "non-ascii"])
def test_large_base64_that_is_not_strict_is_refused(damage: str) -> None:
    import base64
    import binascii

    text = base64.b64encode(os.urandom(6 * 1024 * 1024 + 1)).decode()
    cut = routes.DECODE_CHUNK
    bad = {"pad-inside": text[:cut - 2] + "==" + text[cut:], "bad-char": text[:100] + "*" + text[101:],
           "short": text[:-1], "non-ascii": text[:100] + "é" + text[101:]}[damage]
    with pytest.raises((binascii.Error, ValueError)):
        routes.decode_base64(bad)
