from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import Iterable, Iterator

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_wrap
from hypothesis import given, settings
from hypothesis import strategies as st

from carnet.blobs import crypto, stream
from carnet.blobs.crypto import IntegrityError, KeyRing, open_sealed, rewrap, seal
from carnet.blobs.stream import (
    FORMAT_STREAM,
    FORMAT_WHOLE,
    StreamSealer,
    ciphertext_length,
    open_any,
    open_stream,
    seal_stream,
)

AAD = b"dossier-123/doc-456"
SEG = 64  # small segments keep the tests fast; the format is the same at 1 MiB
TAG = crypto.TAG_BYTES
HEADER = stream.HEADER_BYTES

_RING = KeyRing.generate()  # hypothesis does not mix with function-scoped fixtures


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing.generate()


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def sealed_stream(ring: KeyRing, plaintext: bytes, aad: bytes = AAD, *, segment_size: int = SEG,
                  chunk: int = 7) -> tuple[bytes, StreamSealer]:
    sealer = seal_stream(ring, pieces(plaintext, chunk), aad, segment_size=segment_size)
    return b"".join(sealer), sealer


def opened(ring: KeyRing, blob: bytes | Iterable[bytes], sealer: StreamSealer, aad: bytes = AAD,
           chunk: int = 5) -> bytes:
    chunks = pieces(blob, chunk) if isinstance(blob, bytes) else blob
    return b"".join(open_stream(ring, chunks, sealer.wrapped_key, sealer.key_id, aad))


def segments(blob: bytes, segment_size: int = SEG) -> list[bytes]:
    """The blob's segments (the header excluded), cut as a reader cuts them."""
    return pieces(blob[HEADER:], segment_size + TAG)


# -- round trips ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, SEG - 1, SEG, SEG + 1, 2 * SEG, 5 * SEG + 3])
def test_a_sealed_stream_opens_to_the_same_bytes(ring: KeyRing, size: int) -> None:
    plaintext = os.urandom(size)
    blob, sealer = sealed_stream(ring, plaintext)
    assert opened(ring, blob, sealer) == plaintext
    assert len(blob) == ciphertext_length(size, SEG) == sealer.ciphertext_size


@given(plaintext=st.binary(max_size=1000), aad=st.binary(max_size=64), segment_size=st.integers(16, 100),
       data=st.data())
@settings(max_examples=150, deadline=None)
def test_any_chunking_of_the_input_and_of_the_blob_gives_back_the_plaintext(
        plaintext: bytes, aad: bytes, segment_size: int, data: st.DataObject) -> None:
    cuts_in = sorted(data.draw(st.lists(st.integers(0, len(plaintext)), max_size=12)))
    chunks_in = [plaintext[a:b] for a, b in zip([0, *cuts_in], [*cuts_in, len(plaintext)], strict=True)]
    sealer = seal_stream(_RING, chunks_in, aad, segment_size=segment_size)
    blob = b"".join(sealer)
    cuts_out = sorted(data.draw(st.lists(st.integers(0, len(blob)), max_size=12)))
    chunks_out = [blob[a:b] for a, b in zip([0, *cuts_out], [*cuts_out, len(blob)], strict=True)]
    assert b"".join(open_stream(_RING, chunks_out, sealer.wrapped_key, sealer.key_id, aad)) == plaintext
    assert b"".join(open_any(_RING, iter(chunks_out), sealer.wrapped_key, sealer.key_id, aad)) == plaintext
    assert len(blob) == ciphertext_length(len(plaintext), segment_size)


def test_the_default_segment_is_one_mebibyte(ring: KeyRing) -> None:
    plaintext = os.urandom(2 * stream.DEFAULT_SEGMENT_SIZE + 1)
    sealer = seal_stream(ring, [plaintext], AAD)
    out = list(sealer)
    assert [len(c) for c in out] == [HEADER, 2 ** 20 + TAG, 2 ** 20 + TAG, 1 + TAG]
    assert b"".join(open_stream(ring, out, sealer.wrapped_key, sealer.key_id, AAD)) == plaintext


def test_the_sealer_reports_sizes_and_hashes_once_done(ring: KeyRing) -> None:
    plaintext = os.urandom(3 * SEG + 10)
    sealer = seal_stream(ring, pieces(plaintext, 50), AAD, segment_size=SEG)
    assert sealer.key_id == ring.current_id and len(sealer.wrapped_key) == crypto.WRAPPED_KEY_BYTES
    with pytest.raises(RuntimeError):
        _ = sealer.plaintext_sha256
    blob = b"".join(sealer)
    assert sealer.finished
    assert sealer.plaintext_size == len(plaintext)
    assert sealer.plaintext_sha256 == hashlib.sha256(plaintext).hexdigest()
    assert sealer.ciphertext_size == len(blob)
    assert sealer.ciphertext_sha256 == hashlib.sha256(blob).hexdigest()
    with pytest.raises(RuntimeError):
        iter(sealer)  # one use only


def test_a_sealer_stopped_half_way_reports_nothing_and_closes_its_source(ring: KeyRing) -> None:
    closed = []

    def source() -> Iterator[bytes]:
        try:
            while True:
                yield b"x" * SEG
        finally:
            closed.append(True)

    sealer = seal_stream(ring, source(), AAD, segment_size=SEG)
    out = iter(sealer)
    next(out), next(out)
    out.close()  # type: ignore[attr-defined]
    assert closed == [True]
    with pytest.raises(RuntimeError):
        _ = sealer.plaintext_size


def test_a_producer_may_reuse_its_buffer_between_chunks(ring: KeyRing) -> None:
    plaintext = os.urandom(10 * SEG + 17)

    def readinto_style() -> Iterator[bytearray]:
        buf = bytearray(37)
        for piece in pieces(plaintext, 37):
            buf[:] = piece  # resizes the buffer: fails if the sealer still holds a view of it
            yield buf

    sealer = seal_stream(ring, readinto_style(), AAD, segment_size=SEG)
    blob = b"".join(sealer)
    assert opened(ring, blob, sealer) == plaintext


def test_each_stream_has_its_own_data_key_and_salt(ring: KeyRing) -> None:
    blobs = [sealed_stream(ring, b"same contents") for _ in range(10)]
    assert len({b[:HEADER] for b, _ in blobs}) == 10
    assert len({s.wrapped_key for _, s in blobs}) == 10
    assert all(b"same contents" not in b for b, _ in blobs)


def test_the_header_reads_as_documented(ring: KeyRing) -> None:
    blob, _ = sealed_stream(ring, b"hello", segment_size=4096)
    assert blob[:8] == b"CARNETS\x01"
    assert int.from_bytes(blob[8:12], "big") == 4096
    assert len(blob) == HEADER + 5 + TAG


@pytest.mark.parametrize("size", [0, 15, 2 ** 24 + 1, -1])
def test_segment_sizes_out_of_range_are_refused(ring: KeyRing, size: int) -> None:
    with pytest.raises(ValueError):
        seal_stream(ring, [b"x"], AAD, segment_size=size)


# -- what the format detects ----------------------------------------------------------------------------------------

PLAIN = bytes(range(256)) * 2  # 512 bytes: 8 full segments of 64


@pytest.fixture
def sealed(ring: KeyRing) -> tuple[bytes, StreamSealer]:
    return sealed_stream(ring, PLAIN)


def refused(ring: KeyRing, blob: bytes, sealer: StreamSealer, aad: bytes = AAD) -> None:
    with pytest.raises(IntegrityError):
        opened(ring, blob, sealer, aad)
    with pytest.raises(IntegrityError):
        b"".join(open_any(ring, pieces(blob, 5), sealer.wrapped_key, sealer.key_id, aad))


def test_every_single_byte_altered_is_detected(ring: KeyRing) -> None:
    blob, sealer = sealed_stream(ring, os.urandom(3 * SEG + 5))
    for i in range(len(blob)):
        altered = bytearray(blob)
        altered[i] ^= 0x01
        refused(ring, bytes(altered), sealer)


def test_reordered_segments_are_detected(ring: KeyRing, sealed: tuple[bytes, StreamSealer]) -> None:
    blob, sealer = sealed
    segs = segments(blob)
    segs[2], segs[3] = segs[3], segs[2]
    refused(ring, blob[:HEADER] + b"".join(segs), sealer)


def test_a_duplicated_or_dropped_middle_segment_is_detected(ring: KeyRing,
                                                            sealed: tuple[bytes, StreamSealer]) -> None:
    blob, sealer = sealed
    segs = segments(blob)
    refused(ring, blob[:HEADER] + b"".join(segs[:3] + segs[2:]), sealer)
    refused(ring, blob[:HEADER] + b"".join(segs[:3] + segs[4:]), sealer)


@pytest.mark.parametrize("keep", [0, 1, 7])
def test_truncation_at_a_segment_boundary_is_detected(ring: KeyRing, sealed: tuple[bytes, StreamSealer],
                                                      keep: int) -> None:
    blob, sealer = sealed
    refused(ring, blob[:HEADER] + b"".join(segments(blob)[:keep]), sealer)


@pytest.mark.parametrize("cut", [1, TAG - 1, TAG, TAG + 1, SEG + TAG - 1])
def test_truncation_inside_a_segment_is_detected(ring: KeyRing, sealed: tuple[bytes, StreamSealer],
                                                 cut: int) -> None:
    blob, sealer = sealed
    refused(ring, blob[:-cut], sealer)


@pytest.mark.parametrize("cut", [0, 1, HEADER - 1, HEADER])
def test_a_missing_or_partial_header_is_detected(ring: KeyRing, sealed: tuple[bytes, StreamSealer], cut: int) -> None:
    blob, sealer = sealed
    refused(ring, blob[:cut], sealer)


def test_extension_is_detected(ring: KeyRing, sealed: tuple[bytes, StreamSealer]) -> None:
    blob, sealer = sealed
    other, _ = sealed_stream(ring, PLAIN)
    refused(ring, blob + b"\x00", sealer)
    refused(ring, blob + segments(blob)[-1], sealer)  # its own last segment, again
    refused(ring, blob + segments(other)[0], sealer)
    refused(ring, blob + os.urandom(SEG + TAG), sealer)


def test_an_empty_document_cannot_be_extended_nor_emptied(ring: KeyRing) -> None:
    blob, sealer = sealed_stream(ring, b"")
    assert len(blob) == HEADER + TAG
    refused(ring, blob + blob[HEADER:], sealer)
    refused(ring, blob[:HEADER], sealer)
    full, full_sealer = sealed_stream(ring, b"x" * SEG)
    refused(ring, full + segments(blob)[0], full_sealer)  # an empty last segment after a full one


def test_a_segment_from_another_stream_is_detected(ring: KeyRing, sealed: tuple[bytes, StreamSealer]) -> None:
    """Even another sealing of the same plaintext for the same document: another salt, another segment key."""
    blob, sealer = sealed
    other, other_sealer = sealed_stream(ring, PLAIN)
    for i in (0, 3, 7):
        segs = segments(blob)
        segs[i] = segments(other)[i]
        refused(ring, blob[:HEADER] + b"".join(segs), sealer)
    refused(ring, other[:HEADER] + blob[HEADER:], sealer)  # another header
    refused(ring, blob[:HEADER] + other[HEADER:], sealer)
    refused(ring, blob, other_sealer)  # another data key


def test_the_wrong_associated_data_is_refused_before_anything_is_yielded(
        ring: KeyRing, sealed: tuple[bytes, StreamSealer]) -> None:
    blob, sealer = sealed
    with pytest.raises(IntegrityError):
        open_stream(ring, pieces(blob, 100), sealer.wrapped_key, sealer.key_id, b"dossier-123/doc-457")
    with pytest.raises(IntegrityError):
        open_any(ring, pieces(blob, 100), sealer.wrapped_key, sealer.key_id, b"dossier-123/doc-457")
    refused(ring, blob, sealer, aad=b"")


def test_a_wrong_or_unknown_master_key_is_refused(ring: KeyRing, sealed: tuple[bytes, StreamSealer]) -> None:
    blob, sealer = sealed
    with pytest.raises(IntegrityError):
        open_stream(ring, [blob], sealer.wrapped_key, "k9", AAD)
    with pytest.raises(IntegrityError):
        open_stream(KeyRing.generate(), [blob], sealer.wrapped_key, sealer.key_id, AAD)
    with pytest.raises(IntegrityError):
        open_stream(ring, [blob], sealer.wrapped_key[:-1], sealer.key_id, AAD)


def test_a_segment_is_yielded_only_once_verified_and_a_late_failure_raises_from_the_iterator(
        ring: KeyRing, sealed: tuple[bytes, StreamSealer]) -> None:
    blob, sealer = sealed
    altered = bytearray(blob)
    altered[HEADER + 4 * (SEG + TAG) + 3] ^= 0x80  # inside segment 4
    out = open_stream(ring, pieces(bytes(altered), 10), sealer.wrapped_key, sealer.key_id, AAD)  # starts fine
    got = []
    with pytest.raises(IntegrityError):
        for piece in out:
            got.append(piece)
    assert got == pieces(PLAIN, SEG)[:4]


def test_truncation_is_reported_at_the_end_after_the_verified_segments(
        ring: KeyRing, sealed: tuple[bytes, StreamSealer]) -> None:
    blob, sealer = sealed
    out = open_stream(ring, [blob[:HEADER + 5 * (SEG + TAG)]], sealer.wrapped_key, sealer.key_id, AAD)
    got = []
    with pytest.raises(IntegrityError):
        got.extend(out)
    assert got == pieces(PLAIN, SEG)[:4]  # segment 4 (read as the last one) fails: it was sealed as a middle one


def test_a_damaged_first_segment_raises_when_opening(ring: KeyRing, sealed: tuple[bytes, StreamSealer]) -> None:
    blob, sealer = sealed
    altered = bytearray(blob)
    altered[HEADER + 1] ^= 0x01
    with pytest.raises(IntegrityError):
        open_stream(ring, [bytes(altered)], sealer.wrapped_key, sealer.key_id, AAD)


def test_an_opener_stopped_half_way_closes_its_source(ring: KeyRing, sealed: tuple[bytes, StreamSealer]) -> None:
    blob, sealer = sealed
    closed = []

    def source() -> Iterator[bytes]:
        try:
            yield from pieces(blob, 30)
        finally:
            closed.append(True)

    out = open_stream(ring, source(), sealer.wrapped_key, sealer.key_id, AAD)
    next(out)
    out.close()  # type: ignore[attr-defined]
    assert closed == [True]


# -- whole-message blobs (carnet.blobs.crypto.seal) still open ---------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 1000])
@pytest.mark.parametrize("chunk", [1, 5, 16, 17, 4096])
def test_whole_message_blobs_open_through_open_any(ring: KeyRing, size: int, chunk: int) -> None:
    plaintext = os.urandom(size)
    old = seal(ring, plaintext, AAD)
    assert b"".join(open_any(ring, pieces(old.ciphertext, chunk), old.wrapped_key, old.key_id, AAD)) == plaintext
    assert b"".join(open_any(ring, pieces(old.ciphertext, chunk), old.wrapped_key, old.key_id, AAD,
                             fmt=FORMAT_WHOLE)) == plaintext


@given(plaintext=st.binary(max_size=500), data=st.data())
@settings(max_examples=60, deadline=None)
def test_whole_message_blobs_open_under_any_chunking(plaintext: bytes, data: st.DataObject) -> None:
    old = seal(_RING, plaintext, AAD)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(old.ciphertext)), max_size=10)))
    chunks = [old.ciphertext[a:b] for a, b in zip([0, *cuts], [*cuts, len(old.ciphertext)], strict=True)]
    assert b"".join(open_any(_RING, chunks, old.wrapped_key, old.key_id, AAD)) == plaintext


def test_a_whole_message_blob_is_verified_before_anything_is_returned(ring: KeyRing) -> None:
    old = seal(ring, os.urandom(300), AAD)
    for i in (0, 12, 200, len(old.ciphertext) - 1):
        altered = bytearray(old.ciphertext)
        altered[i] ^= 0x04
        with pytest.raises(IntegrityError):
            open_any(ring, pieces(bytes(altered), 7), old.wrapped_key, old.key_id, AAD)
    for cut in (0, 11, 12, 27, len(old.ciphertext) - 1):
        with pytest.raises(IntegrityError):
            open_any(ring, [old.ciphertext[:cut]], old.wrapped_key, old.key_id, AAD)
    with pytest.raises(IntegrityError):
        open_any(ring, [old.ciphertext], old.wrapped_key, old.key_id, b"other")


def test_a_whole_message_blob_that_happens_to_start_with_the_magic_still_opens(ring: KeyRing) -> None:
    """Its random nonce may begin with ``CARNETS\\x01`` (2**-64): its header tag fails, so it is read whole."""
    data_key = AESGCM.generate_key(bit_length=256)
    nonce = b"CARNETS\x01" + os.urandom(4)
    plaintext = os.urandom(200)
    ciphertext = nonce + AESGCM(data_key).encrypt(nonce, plaintext, AAD)
    wrapped = aes_key_wrap(ring._kek(ring.current_id), data_key)
    assert open_sealed(ring, crypto.Sealed(ciphertext, wrapped, ring.current_id), AAD) == plaintext
    assert b"".join(open_any(ring, pieces(ciphertext, 9), wrapped, ring.current_id, AAD)) == plaintext
    with pytest.raises(IntegrityError):
        open_stream(ring, [ciphertext], wrapped, ring.current_id, AAD)


def test_each_format_is_refused_when_the_other_is_stated(ring: KeyRing, sealed: tuple[bytes, StreamSealer]) -> None:
    blob, sealer = sealed
    old = seal(ring, PLAIN, AAD)
    with pytest.raises(IntegrityError):
        open_stream(ring, [old.ciphertext], old.wrapped_key, old.key_id, AAD)
    with pytest.raises(IntegrityError):
        open_any(ring, [old.ciphertext], old.wrapped_key, old.key_id, AAD, fmt=FORMAT_STREAM)
    with pytest.raises(IntegrityError):
        open_any(ring, [blob], sealer.wrapped_key, sealer.key_id, AAD, fmt=FORMAT_WHOLE)
    with pytest.raises(ValueError):
        open_any(ring, [blob], sealer.wrapped_key, sealer.key_id, AAD, fmt="zip")


# -- key rotation is independent of the format ------------------------------------------------------------------------

def test_rewrapping_the_data_key_keeps_a_stream_readable(ring: KeyRing) -> None:
    plaintext = os.urandom(5 * SEG)
    blob, sealer = sealed_stream(ring, plaintext)
    ring.add_new_key()
    wrapped, kid = rewrap(ring, sealer.wrapped_key, sealer.key_id)
    assert kid == "k2" != sealer.key_id
    ring.remove("k1")
    assert b"".join(open_stream(ring, [blob], wrapped, kid, AAD)) == plaintext
    with pytest.raises(IntegrityError):
        open_stream(ring, [blob], sealer.wrapped_key, sealer.key_id, AAD)


# -- memory ------------------------------------------------------------------------------------------------------------

MB = 1000 * 1000


def generated(total: int, chunk: int = 64 * 1024) -> Iterator[bytes]:
    """``total`` bytes of varying contents, made chunk by chunk (never held whole)."""
    block = os.urandom(chunk)
    sent = 0
    while sent < total:
        n = min(chunk, total - sent)
        yield block[:n] if n < chunk else bytes(block)
        sent += n


def test_tracemalloc_sees_what_the_cipher_allocates(ring: KeyRing) -> None:
    """The memory test below means something only if the AEAD's output buffers are traced: check that they are."""
    plaintext = os.urandom(8 * 2 ** 20)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        sealed = seal(ring, plaintext, AAD)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak >= len(sealed.ciphertext)


def test_a_100_mb_document_is_sealed_and_opened_in_a_few_segments_of_memory(ring: KeyRing) -> None:
    """Sealing piped straight into opening: neither the plaintext nor the ciphertext is ever held whole."""
    total = 100 * MB
    segment = stream.DEFAULT_SEGMENT_SIZE
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        sealer = seal_stream(ring, generated(total), AAD)
        digest = hashlib.sha256()
        size = 0
        for piece in open_stream(ring, sealer, sealer.wrapped_key, sealer.key_id, AAD):
            digest.update(piece)
            size += len(piece)
            del piece
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size == total == sealer.plaintext_size
    assert digest.hexdigest() == sealer.plaintext_sha256
    assert sealer.ciphertext_size == ciphertext_length(total)
    print(f"\npeak traced memory sealing + opening 100 MB: {peak / 2 ** 20:.2f} MiB")
    assert peak < 5 * segment, f"peak {peak} bytes"


def file_chunks(path: os.PathLike[str], size: int = 64 * 1024) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(size):
            yield chunk


def test_a_100_mb_document_is_sealed_to_a_file_and_read_back_in_a_few_segments_of_memory(
        ring: KeyRing, tmp_path: os.PathLike[str]) -> None:
    """As with a blob store: the ciphertext written out segment by segment, read back in 64 KiB chunks."""
    total = 100 * MB
    segment = stream.DEFAULT_SEGMENT_SIZE
    path = os.path.join(tmp_path, "blob")
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        sealer = seal_stream(ring, generated(total), AAD)
        with open(path, "wb") as f:
            for piece in sealer:
                f.write(piece)
                del piece
        _, seal_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        digest = hashlib.sha256()
        for piece in open_any(ring, file_chunks(path), sealer.wrapped_key, sealer.key_id, AAD):
            digest.update(piece)
            del piece
        _, open_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert os.path.getsize(path) == sealer.ciphertext_size == ciphertext_length(total)
    assert digest.hexdigest() == sealer.plaintext_sha256
    print(f"\npeak traced memory for 100 MB: sealing {seal_peak / 2 ** 20:.2f} MiB, "
          f"opening {open_peak / 2 ** 20:.2f} MiB")
    assert seal_peak < 3 * segment, f"sealing peak {seal_peak} bytes"
    assert open_peak < 3 * segment, f"opening peak {open_peak} bytes"


def test_a_whole_message_blob_is_opened_holding_its_plaintext_once_and_never_its_whole_ciphertext(
        ring: KeyRing, tmp_path: os.PathLike[str]) -> None:
    size = 20 * 2 ** 20  # the default CARNET_MAX_DOCUMENT_BYTES
    path = os.path.join(tmp_path, "old")
    old = seal(ring, os.urandom(size), AAD)
    with open(path, "wb") as f:
        f.write(old.ciphertext)
    wrapped, kid = old.wrapped_key, old.key_id
    del old
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        total = sum(len(piece) for piece in open_any(ring, file_chunks(path), wrapped, kid, AAD))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == size
    print(f"\npeak traced memory opening a 20 MiB whole-message blob: {peak / 2 ** 20:.2f} MiB")
    assert peak < size * 1.1, f"peak {peak} bytes"
