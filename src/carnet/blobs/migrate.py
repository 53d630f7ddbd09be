"""Copying every blob of one store into another (``carnet blobs migrate --to s3://…``): a deployment's local files
into object storage.

Resumable and verified: a blob already in the target whose bytes hash to the same SHA-256 as the source's is skipped
(a run that was interrupted starts again where it stopped); every blob copied is read back from the target and its
SHA-256 compared with the source's before it counts as done. The source is never modified: once the copy is complete
and Carnet serves from the target (``CARNET_BLOB_URL``), the operator removes the old files. A blob's bytes stream
through in chunks (never a whole blob in memory).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from carnet.blobs.base import BlobConflict, BlobStore, BlobStoreError

__all__ = ["MigrationReport", "migrate"]


@dataclass
class MigrationReport:
    total: int = 0
    copied: int = 0
    skipped: int = 0  # already in the target with the same bytes
    bytes_copied: int = 0
    failed: list[str] = field(default_factory=list)  # keys that did not verify (or conflicted)


def _hashing(chunks: Iterator[bytes], h: hashlib._Hash, counter: list[int]) -> Iterator[bytes]:
    for chunk in chunks:
        h.update(chunk)
        counter[0] += len(chunk)
        yield chunk


def _digest(store: BlobStore, key: str) -> bytes:
    h = hashlib.sha256()
    for chunk in store.get_stream(key):
        h.update(chunk)
    return h.digest()


def migrate(source: BlobStore, target: BlobStore, *,
            on_blob: Callable[[str, MigrationReport], None] | None = None) -> MigrationReport:
    """Copy every blob of ``source`` into ``target`` (see the module docstring); ``on_blob`` is called after each."""
    keys = sorted(k for k, _ in source.iter_blobs())
    report = MigrationReport(total=len(keys))
    for key in keys:
        try:
            if target.exists(key) and _digest(target, key) == _digest(source, key):
                report.skipped += 1
            else:
                h, size = hashlib.sha256(), [0]
                target.put_stream(key, _hashing(source.get_stream(key), h, size))
                if _digest(target, key) != h.digest():
                    report.failed.append(key)
                else:
                    report.copied += 1
                    report.bytes_copied += size[0]
        except BlobConflict:
            report.failed.append(key)
        except BlobStoreError:
            raise
        if on_blob:
            on_blob(key, report)
    return report
