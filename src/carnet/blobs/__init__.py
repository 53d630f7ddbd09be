"""The encrypted document store, Carnet's one door to document contents at rest.

Envelope encryption (:mod:`carnet.blobs.crypto`: AES-256-GCM, a data key per document wrapped by the master key ring;
:mod:`carnet.blobs.stream`: the same in 1 MiB segments, so that a large document is never whole in memory twice)
and the blob stores behind one protocol (:mod:`carnet.blobs.base`): files on a local disk (:mod:`carnet.blobs.local`)
or objects in an S3-compatible store (:mod:`carnet.blobs.s3`), chosen by URL (:mod:`carnet.blobs.urls`); copying a
store into another (:mod:`carnet.blobs.migrate`). Nothing here knows a dossier, a document row or a caller: the
document service decides, seals, and hands opaque ciphertext to the store.
"""

from typing import TYPE_CHECKING, Any

from carnet.blobs.base import (
    BlobConflict,
    BlobNotFound,
    BlobStore,
    BlobStoreError,
    BlobStoreUnavailable,
    check_key,
)
from carnet.blobs.crypto import IntegrityError, KeyRing, Sealed, open_sealed, rewrap, seal
from carnet.blobs.local import LocalBlobStore
from carnet.blobs.stream import FORMAT_STREAM, FORMAT_WHOLE, StreamSealer, open_any, open_stream, seal_stream
from carnet.blobs.urls import blobstore_from_url

if TYPE_CHECKING:
    from carnet.blobs.s3 import S3BlobStore

__all__ = ["FORMAT_STREAM", "FORMAT_WHOLE", "BlobConflict", "BlobNotFound", "BlobStore", "BlobStoreError",
           "BlobStoreUnavailable", "IntegrityError", "KeyRing", "LocalBlobStore", "S3BlobStore", "Sealed",
           "StreamSealer", "blobstore_from_url", "check_key", "open_any", "open_sealed", "open_stream", "rewrap",
           "seal", "seal_stream"]


def __getattr__(name: str) -> Any:
    if name == "S3BlobStore":  # imported on first use: boto3 takes half a second to load
        from carnet.blobs.s3 import S3BlobStore

        return S3BlobStore
    raise AttributeError(f"module 'carnet.blobs' has no attribute {name!r}")
