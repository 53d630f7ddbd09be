"""The encrypted document store, Carnet's one door to document contents at rest.

Envelope encryption (:mod:`carnet.blobs.crypto`: AES-256-GCM, a data key per document wrapped by the master key ring)
and the blob stores behind one protocol (:mod:`carnet.blobs.local`: files on a local disk). Nothing here knows a
dossier, a document row or a caller: the document service decides, seals, and hands opaque ciphertext to the store.
"""

from carnet.blobs.crypto import IntegrityError, KeyRing, Sealed, open_sealed, rewrap, seal
from carnet.blobs.local import (
    BlobConflict,
    BlobNotFound,
    BlobStore,
    BlobStoreError,
    LocalBlobStore,
    blobstore_from_url,
    check_key,
)

__all__ = ["BlobConflict", "BlobNotFound", "BlobStore", "BlobStoreError", "IntegrityError", "KeyRing",
           "LocalBlobStore", "Sealed", "blobstore_from_url", "check_key", "open_sealed", "rewrap", "seal"]
