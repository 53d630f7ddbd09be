"""Streaming envelope encryption: a document is sealed and opened segment by segment, in bounded memory.

:func:`carnet.blobs.crypto.seal` encrypts a whole document in one AES-256-GCM message, so sealing or opening it needs
the whole plaintext *and* the whole ciphertext in memory.  This module seals the same way (a fresh 256-bit data key
per document, wrapped by the master :class:`~carnet.blobs.crypto.KeyRing` exactly as before, so
:func:`~carnet.blobs.crypto.rewrap` and ``carnet keys rotate`` are unchanged) but cuts the plaintext into segments of
fixed size, each its own AES-256-GCM message: memory stays a few segments whatever the document size.  The construction
is the STREAM scheme of Hoang, Reyhanitabar, Rogaway and Vizár ("Online Authenticated-Encryption and its Nonce-Reuse
Misuse-Resistance", CRYPTO 2015), in the shape of Tink's AES-GCM-HKDF streaming AEAD, with an authenticated header.

Format, version 1 (all integers big-endian; ``||`` is concatenation)::

    blob    = header || segment_0 || segment_1 || ... || segment_n-1           (n >= 1)
    header  = magic "CARNETS" (7 bytes) || version 0x01 (1) || segment_size (4, u32) || salt (32) || header_tag (16)
    okm     = HKDF-SHA256(ikm = data key, salt = salt,
                          info = "carnet/blob-stream/v1" 0x00 || header[0:44] || aad, length = 64)
    K_seg   = okm[0:32]         the AES-256-GCM key of every segment of this stream
    K_hdr   = okm[32:64]
    header_tag  = HMAC-SHA256(K_hdr, header[0:44])[0:16]
    nonce_i     = 0x00 * 7 || u32(i) || (0x01 if segment i is the last one else 0x00)
    segment_i   = AES-256-GCM(K_seg, nonce_i, plaintext_i, associated data = empty)  = ciphertext_i || tag_i (16)

* Every segment but the last carries exactly ``segment_size`` plaintext bytes; the last carries 1 to
  ``segment_size`` bytes, or 0 bytes only when it is the only segment (the empty document).  A plaintext of ``L``
  bytes therefore has exactly one encoding length: ``60 + L + 16 * max(1, ceil(L / segment_size))``
  (:func:`ciphertext_length`).  ``16 <= segment_size <= 16 MiB``; at most ``2**32`` segments.
* The document's associated data (``aad``, e.g. dossier key + document id, as for :func:`~carnet.blobs.crypto.seal`)
  and the whole header enter the key derivation, so every segment tag and the header tag depend on them: a wrong
  ``aad``, another header, or a segment from another stream (another salt, hence another ``K_seg``) fails.
* The segment index in the nonce detects reordering, dropping or duplicating a segment; the last-segment flag detects
  truncation at a segment boundary (the new last segment was sealed with flag 0) and extension (the true last segment
  was sealed with flag 1, so it fails when read as a middle one).  A reader decides "last" only from the end of the
  byte stream, never from anything an attacker could set.
* The header tag is checked before any segment: it authenticates the segment size before it sizes any buffer, and it
  commits to the data key and ``aad`` (HMAC is key-committing, AES-GCM alone is not), which is what lets
  :func:`open_any` tell the two formats apart without a stored marker (below).
* The nonce has no random part: ``K_seg`` is unique per stream (a fresh data key and a fresh 256-bit salt each time),
  so the per-stream counter alone keeps nonces unique under one key.

Telling the formats apart: a blob sealed by :func:`~carnet.blobs.crypto.seal` is ``nonce (12 random bytes) ||
ciphertext || tag``, so its first bytes can be anything, including ``CARNETS\\x01`` (probability 2**-64).  A blob is
read as a stream only if it starts with the magic *and* its header tag verifies under the document's data key and
``aad``; otherwise it is read as a whole-message blob.  An old blob cannot pass the header check short of a 2**-128
HMAC forgery, and a stream blob whose header was tampered with fails as a whole-message blob as well, so no stored
format marker is needed.  A caller that stores one anyway passes it as ``fmt`` to skip the probe.

Opening verifies before it yields: a plaintext segment is released only once its tag verified, and the end of the
stream only once the last segment, flagged as such, verified.  :func:`open_stream` and :func:`open_any` check the key,
the header and the first segment when called, so a wrong key, a wrong ``aad`` or a damaged start raise before any
byte is served (before an HTTP response has begun); damage further on raises :class:`IntegrityError` from the
iterator, after the verified segments before it were yielded: a consumer must treat the output as void unless the
iterator ends normally.  Messages never contain key material nor contents.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Final, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import aes_key_wrap

from carnet.blobs.crypto import KEY_BYTES, NONCE_BYTES, TAG_BYTES, IntegrityError, KeyRing, _unwrap

__all__ = ["DEFAULT_SEGMENT_SIZE", "FORMAT_STREAM", "FORMAT_WHOLE", "StreamSealer", "ciphertext_length", "open_any",
           "open_stream", "seal_stream"]

MAGIC: Final = b"CARNETS"
VERSION: Final = 1
SALT_BYTES: Final = 32
HEADER_TAG_BYTES: Final = 16
_SIGNED_HEADER_BYTES: Final = len(MAGIC) + 1 + 4 + SALT_BYTES  # 44: what the header tag covers
HEADER_BYTES: Final = _SIGNED_HEADER_BYTES + HEADER_TAG_BYTES  # 60
DEFAULT_SEGMENT_SIZE: Final = 1024 * 1024  # 1 MiB of plaintext per segment
MIN_SEGMENT_SIZE: Final = 16
MAX_SEGMENT_SIZE: Final = 16 * 1024 * 1024  # bounds what a reader buffers
MAX_SEGMENTS: Final = 2 ** 32  # the segment index is a u32 in the nonce
_INFO_LABEL: Final = b"carnet/blob-stream/v1\x00"
_NONCE_ZEROS: Final = bytes(NONCE_BYTES - 5)
_T = TypeVar("_T")

# Format markers, for a caller that records which format a blob was sealed in (see the module docstring: optional).
FORMAT_WHOLE: Final = "gcm"  # carnet.blobs.crypto.seal: nonce || ciphertext || tag, one GCM message
FORMAT_STREAM: Final = "gcm-stream-1"  # this module, format version 1


def ciphertext_length(plaintext_length: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
    """The exact size of the stream blob of a ``plaintext_length``-byte document (e.g. to announce an upload)."""
    _check_segment_size(segment_size)
    if plaintext_length < 0:
        raise ValueError("plaintext length must not be negative")
    segments = max(1, -(-plaintext_length // segment_size))
    return HEADER_BYTES + plaintext_length + TAG_BYTES * segments


def _check_segment_size(segment_size: int) -> int:
    if isinstance(segment_size, bool) or not isinstance(segment_size, int) \
            or not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise ValueError(f"segment size must be an integer from {MIN_SEGMENT_SIZE} to {MAX_SEGMENT_SIZE}")
    return segment_size


def _derive(data_key: bytes, signed_header: bytes, aad: bytes) -> tuple[AESGCM, bytes]:
    """``(AES-GCM under K_seg, header_tag)`` for this data key, header and associated data."""
    salt = signed_header[len(MAGIC) + 5:]
    okm = HKDF(algorithm=hashes.SHA256(), length=2 * KEY_BYTES, salt=salt,
               info=_INFO_LABEL + signed_header + bytes(aad)).derive(data_key)
    tag = hmac.digest(okm[KEY_BYTES:], signed_header, "sha256")[:HEADER_TAG_BYTES]
    return AESGCM(okm[:KEY_BYTES]), tag


def _nonce(index: int, last: bool) -> bytes:
    if index >= MAX_SEGMENTS:
        raise IntegrityError("stream has too many segments")
    return _NONCE_ZEROS + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


# -- sealing --------------------------------------------------------------------------------------------------------


class StreamSealer:
    """Seals a stream of plaintext chunks; iterate over it (once) for the blob's bytes, header first.

    ``wrapped_key`` and ``key_id`` are known at once (store them in the document row, as with
    :class:`~carnet.blobs.crypto.Sealed`); ``plaintext_size``/``plaintext_sha256`` (hex, as the ``document.sha256``
    column) and ``ciphertext_size``/``ciphertext_sha256`` are computed on the fly and readable once the iteration has
    ended.  Input chunks may be any bytes-like objects of any sizes (a producer may reuse its buffer between chunks:
    nothing is kept from a chunk once the next one is asked for).  Memory: at most one segment of plaintext is
    buffered, plus the segment being encrypted.  Output: the 60-byte header, then one ``bytes`` per segment.
    """

    def __init__(self, keyring: KeyRing, chunks: Iterable[bytes | bytearray | memoryview], aad: bytes, *,
                 segment_size: int = DEFAULT_SEGMENT_SIZE) -> None:
        self.segment_size = _check_segment_size(segment_size)
        data_key = AESGCM.generate_key(bit_length=256)
        self.key_id = keyring.current_id
        self.wrapped_key = aes_key_wrap(keyring._kek(self.key_id), data_key)
        signed = MAGIC + bytes([VERSION]) + segment_size.to_bytes(4, "big") + os.urandom(SALT_BYTES)
        self._aead, tag = _derive(data_key, signed, aad)
        self.header = signed + tag
        self._chunks = chunks
        self._started = False
        self._finished = False
        self._pt_hash = hashlib.sha256()
        self._ct_hash = hashlib.sha256()
        self._pt_size = 0
        self._ct_size = 0

    def __repr__(self) -> str:  # never contents nor key material
        return f"StreamSealer(key_id={self.key_id!r}, segment_size={self.segment_size}, finished={self._finished})"

    def __iter__(self) -> Iterator[bytes]:
        if self._started:
            raise RuntimeError("a StreamSealer can be iterated only once")
        self._started = True
        return self._run()

    @property
    def finished(self) -> bool:
        return self._finished

    def _require_finished(self) -> None:
        if not self._finished:
            raise RuntimeError("the stream has not been sealed to its end yet")

    @property
    def plaintext_size(self) -> int:
        self._require_finished()
        return self._pt_size

    @property
    def plaintext_sha256(self) -> str:
        self._require_finished()
        return self._pt_hash.hexdigest()

    @property
    def ciphertext_size(self) -> int:
        self._require_finished()
        return self._ct_size

    @property
    def ciphertext_sha256(self) -> str:
        self._require_finished()
        return self._ct_hash.hexdigest()

    def _out(self, data: bytes) -> bytes:
        self._ct_hash.update(data)
        self._ct_size += len(data)
        return data

    def _seal(self, plaintext: bytes | bytearray | memoryview, index: int, last: bool) -> bytes:
        if index >= MAX_SEGMENTS:
            raise ValueError("document too large for this segment size")
        return self._out(self._aead.encrypt(_nonce(index, last), plaintext, b""))

    def _run(self) -> Iterator[bytes]:
        size = self.segment_size
        pending = bytearray()  # plaintext not sealed yet (at most one segment): sealed once we know if more follows
        index = 0
        source = iter(self._chunks)
        try:
            yield self._out(self.header)
            for chunk in source:
                with memoryview(chunk) as raw, raw.cast("B") as view:
                    # slices of ``view`` are only ever temporaries: once this block ends nothing refers to the
                    # caller's chunk, so its producer may reuse the buffer for the next one.
                    self._pt_hash.update(view)
                    end = len(view)
                    self._pt_size += end
                    start = 0
                    if pending and end:
                        start = min(size - len(pending), end)
                        pending += view[:start]
                        if start < end:  # more follows, so the (full) pending segment is not the last
                            yield self._seal(pending, index, last=False)
                            index += 1
                            pending = bytearray()
                    while end - start > size:  # sealed straight from the caller's chunk, no copy
                        yield self._seal(view[start:start + size], index, last=False)
                        index += 1
                        start += size
                    if start < end:  # 1 to ``size`` bytes, which may turn out to be the last segment
                        pending = bytearray(view[start:])
            yield self._seal(pending, index, last=True)
            self._finished = True
        finally:
            close = getattr(source, "close", None)
            if close is not None and not self._finished:
                close()


def seal_stream(keyring: KeyRing, chunks: Iterable[bytes | bytearray | memoryview], aad: bytes, *,
                segment_size: int = DEFAULT_SEGMENT_SIZE) -> StreamSealer:
    """Seal ``chunks`` under a fresh data key bound to ``aad``; iterate the result for the blob's bytes.

    Typical use::

        sealer = seal_stream(keyring, upload_chunks, aad)
        store.put_stream(blob_key, sealer)               # consumes the ciphertext as it is produced
        row = {..., "wrapped_key": sealer.wrapped_key, "key_id": sealer.key_id,
               "size": sealer.plaintext_size, "sha256": sealer.plaintext_sha256}
    """
    return StreamSealer(keyring, chunks, aad, segment_size=segment_size)


# -- opening --------------------------------------------------------------------------------------------------------


class _Reader:
    """Exact-size reads over an iterable of chunks, buffering at most one read plus one chunk.

    Chunks are kept as they come (a mutable buffer is copied first, since its producer may reuse it), so a read that
    one chunk covers is a view of it, not a copy.
    """

    def __init__(self, chunks: Iterable[bytes | bytearray | memoryview]) -> None:
        self._source = iter(chunks)
        self._chunks: deque[bytes] = deque()
        self._offset = 0  # bytes of self._chunks[0] already read
        self._buffered = 0  # unread bytes in self._chunks
        self._eof = False

    def _fill(self, n: int) -> None:
        while self._buffered < n and not self._eof:
            try:
                chunk = next(self._source)
            except StopIteration:
                self._eof = True
            else:
                chunk = chunk if type(chunk) is bytes else bytes(chunk)
                if chunk:
                    self._chunks.append(chunk)
                    self._buffered += len(chunk)

    def _head(self, n: int) -> bytes | memoryview:
        """The next ``n`` buffered bytes (fewer if fewer are buffered), not consumed: a view if one chunk holds them."""
        n = min(n, self._buffered)
        if n and len(self._chunks[0]) - self._offset >= n:
            return memoryview(self._chunks[0])[self._offset:self._offset + n]
        parts, offset = [], self._offset
        for chunk in self._chunks:
            if n <= 0:
                break
            parts.append(chunk[offset:offset + n])
            n -= len(parts[-1])
            offset = 0
        return b"".join(parts)

    def _consume(self, n: int) -> None:
        self._buffered -= n
        while n:
            left = len(self._chunks[0]) - self._offset
            if n < left:
                self._offset += n
                return
            self._chunks.popleft()
            self._offset = 0
            n -= left

    def peek(self, n: int) -> bytes:
        """Up to ``n`` bytes (fewer only at the end of the stream), not consumed."""
        self._fill(n)
        return bytes(self._head(n))

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes (fewer only at the end of the stream)."""
        out = self.peek(n)
        self._consume(len(out))
        return out

    def take(self, n: int, use: Callable[[bytes | bytearray | memoryview, bool], _T]) -> _T:
        """Consume the next ``n`` bytes (fewer at the end) and return ``use(those bytes, whether they end the stream)``.

        When one chunk holds them all (e.g. a segment as the sealer yields it) ``use`` gets a view of it; otherwise the
        chunks are released as they are copied into one buffer, so the bytes are never held twice.
        """
        self._fill(n + 1)
        at_end = self._buffered <= n
        n = min(n, self._buffered)
        head: bytearray | memoryview
        if not n or len(self._chunks[0]) - self._offset >= n:
            head = memoryview(self._chunks[0] if n else b"")[self._offset:self._offset + n]
            self._consume(n)
        else:
            head = bytearray(n)
            done = 0
            while done < n:
                piece = min(len(self._chunks[0]) - self._offset, n - done)
                head[done:done + piece] = memoryview(self._chunks[0])[self._offset:self._offset + piece]
                self._consume(piece)
                done += piece
        return use(head, at_end)

    def rest(self) -> Iterator[bytes | bytearray | memoryview]:
        """The unread bytes, as chunks."""
        while self._chunks:
            chunk = self._chunks.popleft()
            self._buffered -= len(chunk) - self._offset
            yield memoryview(chunk)[self._offset:] if self._offset else chunk
            self._offset = 0
        if not self._eof:
            yield from self._source
            self._eof = True

    def close(self) -> None:
        self._chunks.clear()
        self._buffered = self._offset = 0
        close = getattr(self._source, "close", None)
        if close is not None:
            close()


def _verified_header(reader: _Reader, data_key: bytes, aad: bytes) -> tuple[AESGCM, int] | None:
    """If the stream starts with a header that verifies: consume it, return ``(AES-GCM under K_seg, segment_size)``."""
    head = reader.peek(HEADER_BYTES)
    if len(head) < HEADER_BYTES or head[:len(MAGIC)] != MAGIC or head[len(MAGIC)] != VERSION:
        return None
    signed, tag = head[:_SIGNED_HEADER_BYTES], head[_SIGNED_HEADER_BYTES:]
    aead, expected = _derive(data_key, signed, aad)
    if not hmac.compare_digest(tag, expected):
        return None
    segment_size = int.from_bytes(signed[len(MAGIC) + 1:len(MAGIC) + 5], "big")
    if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:  # authenticated, so only a bad writer gets here
        return None
    reader.read(HEADER_BYTES)
    return aead, segment_size


def _open_segments(reader: _Reader, aead: AESGCM, segment_size: int) -> Iterator[bytes]:
    """Each segment's plaintext once its tag verified; the last one checked to be last. Always yields at least once."""
    full = segment_size + TAG_BYTES
    index = 0
    last = False

    def open_segment(segment: bytes | bytearray | memoryview, at_end: bool) -> bytes:
        nonlocal last
        last = at_end
        if len(segment) < TAG_BYTES or (len(segment) == TAG_BYTES and index > 0):
            raise IntegrityError("stream is truncated")
        try:
            return aead.decrypt(_nonce(index, last), segment, b"")
        except InvalidTag:
            raise IntegrityError("content failed authentication") from None

    try:
        while not last:
            yield reader.take(full, open_segment)
            index += 1
    finally:
        reader.close()


def _open_whole(reader: _Reader, data_key: bytes, aad: bytes) -> Iterator[bytes]:
    """Open a :func:`~carnet.blobs.crypto.seal` blob read as chunks, verifying it whole before returning.

    The ciphertext is decrypted as it arrives and never held whole; the plaintext is held (once) until the final tag
    verified, then handed out piece by piece, each piece released as it is taken.
    """
    try:
        nonce = reader.read(NONCE_BYTES)
        if len(nonce) < NONCE_BYTES:
            raise IntegrityError("ciphertext is truncated")
        decryptor = Cipher(algorithms.AES(data_key), modes.GCM(nonce)).decryptor()
        decryptor.authenticate_additional_data(bytes(aad))
        parts: list[bytes] = []
        tail = b""  # the last TAG_BYTES bytes seen so far: the tag, if nothing follows
        for chunk in reader.rest():
            if len(chunk) >= TAG_BYTES:
                with memoryview(chunk) as raw, raw.cast("B") as view:
                    parts.append(decryptor.update(tail))
                    parts.append(decryptor.update(view[:-TAG_BYTES]))
                    tail = bytes(view[-TAG_BYTES:])
            else:
                joined = tail + bytes(chunk)
                parts.append(decryptor.update(joined[:-TAG_BYTES]))
                tail = joined[-TAG_BYTES:]
        if len(tail) < TAG_BYTES:
            raise IntegrityError("ciphertext is truncated")
        try:
            decryptor.finalize_with_tag(tail)
        except InvalidTag:
            raise IntegrityError("content failed authentication") from None
    finally:
        reader.close()
    parts = [p for p in parts if p]
    parts.reverse()
    return _drain(parts)


def _drain(parts: list[bytes]) -> Iterator[bytes]:
    while parts:
        yield parts.pop()


def _primed(segments: Iterator[bytes]) -> Iterator[bytes]:
    """Run ``segments`` up to its first verified segment now (so that early failures raise here), then lazily."""
    first = next(segments)
    return _chain(first, segments)


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    del first  # not held while the next segment is produced
    for plaintext in rest:
        if plaintext:
            yield plaintext
        del plaintext


def open_stream(keyring: KeyRing, ciphertext_chunks: Iterable[bytes | bytearray | memoryview], wrapped_key: bytes,
                key_id: str, aad: bytes) -> Iterator[bytes]:
    """Open a blob sealed by :func:`seal_stream`: its plaintext, segment by segment, each verified before it is yielded.

    The key, the header and the first segment are checked before this returns; any later failure (tampering,
    reordering, truncation, extension) raises :class:`IntegrityError` from the iterator.  Memory: about one segment
    of ciphertext, one of plaintext and one input chunk.
    """
    return open_any(keyring, ciphertext_chunks, wrapped_key, key_id, aad, fmt=FORMAT_STREAM)


def open_any(keyring: KeyRing, ciphertext_chunks: Iterable[bytes | bytearray | memoryview], wrapped_key: bytes,
             key_id: str, aad: bytes, *, fmt: str | None = None) -> Iterator[bytes]:
    """Open a blob of either format: :func:`seal_stream`'s (streamed) or :func:`~carnet.blobs.crypto.seal`'s.

    ``fmt`` is :data:`FORMAT_STREAM`, :data:`FORMAT_WHOLE`, or ``None`` to recognise the format from the blob (a
    stream header that verifies; see the module docstring).  A whole-message blob is verified entirely before this
    returns (its ciphertext is never held whole, its plaintext once); a stream blob as in :func:`open_stream`.
    Raises :class:`IntegrityError` on any failure, an unknown key id included.
    """
    if fmt not in (None, FORMAT_STREAM, FORMAT_WHOLE):
        raise ValueError(f"unknown blob format {fmt!r}")
    data_key = _unwrap(keyring, wrapped_key, key_id)
    reader = _Reader(ciphertext_chunks)
    try:
        if fmt != FORMAT_WHOLE:
            found = _verified_header(reader, data_key, aad)
            if found is not None:
                aead, segment_size = found
                return _primed(_open_segments(reader, aead, segment_size))
            if fmt == FORMAT_STREAM:
                raise IntegrityError("stream header failed authentication")
        return _open_whole(reader, data_key, aad)
    except BaseException:
        reader.close()
        raise
