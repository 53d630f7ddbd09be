"""The blob store contract, shared by every store: the protocol, its errors, and what a key may be.

Durability contract, relied on by the document service ("contents reach the store before the metadata commits"):

* ``put`` (and ``put_stream``) returns only once the blob is durable in the store (on disk and fsync'd for the local
  store; acknowledged by the object store for S3). A reader never sees a partial blob, and a ``put`` that fails
  leaves no blob behind under its key.
* ``put`` never replaces an existing blob with *different* bytes: that raises :class:`BlobConflict` (an acknowledged
  document must never be lost). ``put`` of identical bytes under an existing key is a no-op.
* ``delete`` is idempotent and durable, so that a refused document leaves nothing behind.
* The streaming calls keep memory bounded: ``put_stream`` holds at most one part of the object at a time,
  ``get_stream`` one chunk.
* A store that cannot be reached in time raises :class:`BlobStoreUnavailable` within a bounded time (the request
  becomes a ``503``, nothing is committed); the next call tries again, so the service recovers by itself.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from typing import Protocol, runtime_checkable

__all__ = ["CHUNK_SIZE", "BlobConflict", "BlobNotFound", "BlobStore", "BlobStoreError", "BlobStoreUnavailable",
           "check_key", "is_key"]

_KEY = re.compile(r"[0-9a-f-]{4,128}")
CHUNK_SIZE = 1024 * 1024  # get_stream's default chunk


class BlobStoreError(Exception):
    """Base class of blob store errors (messages carry keys, which are hashes or ids, never contents)."""


class BlobNotFound(BlobStoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"blob {key} not found")
        self.key = key


class BlobConflict(BlobStoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"blob {key} already exists with different contents")
        self.key = key


class BlobStoreUnavailable(BlobStoreError):
    """The store did not answer in time, or answered that it cannot serve now (5xx after the retries). Transient: the
    caller may try again later (:func:`carnet.context.run` makes it a ``503``). Deliberately not an ``OSError``: a
    reader that takes an ``OSError`` for a damaged blob must not take an outage for one."""


def is_key(name: str) -> bool:
    return bool(_KEY.fullmatch(name))


def check_key(key: str) -> str:
    """Validate a blob key: 4 to 128 characters among ``0-9 a-f -`` (hex hashes, UUIDs); ValueError otherwise."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValueError("blob key must be 4-128 characters among 0-9 a-f and '-'")
    return key


@runtime_checkable
class BlobStore(Protocol):
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``; durable when this returns. Identical re-put is a no-op; different bytes
        under an existing key raise :class:`BlobConflict`."""
        ...

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> int:
        """As :meth:`put`, from an iterable of byte chunks, holding at most one part in memory; returns the number of
        bytes stored. A failure midway leaves nothing under ``key``."""
        ...

    def get(self, key: str) -> bytes:
        """The bytes stored under ``key``; :class:`BlobNotFound` if none."""
        ...

    def get_stream(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The bytes stored under ``key``, in chunks of at most ``chunk_size``; :class:`BlobNotFound` (raised by
        this call, before any chunk) if none."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key`` if present (idempotent)."""
        ...

    def exists(self, key: str) -> bool:
        ...

    def iter_blobs(self) -> Iterator[tuple[str, dt.datetime]]:
        """Every blob as ``(key, last modified, UTC)``, in no particular order (for the garbage collector)."""
        ...

    def remove_leftovers(self, older_than: dt.datetime, *, dry_run: bool = False) -> int:
        """Remove what interrupted writes left behind before ``older_than`` (local temp files, S3 unfinished
        multipart uploads); returns how many (that would be) removed."""
        ...
