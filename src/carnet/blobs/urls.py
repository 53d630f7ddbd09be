"""A blob store from its URL (``CARNET_BLOB_URL``): a path or ``file:///abs/path`` (local files) or
``s3://bucket/prefix`` (an S3-compatible object store, reached through the usual AWS settings)."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from carnet.blobs.base import BlobStore
from carnet.blobs.local import LocalBlobStore

__all__ = ["blobstore_from_url"]


def blobstore_from_url(url: str) -> BlobStore:
    """``file:///abs/path`` or a plain filesystem path → :class:`LocalBlobStore`; ``s3://bucket/prefix`` →
    :class:`~carnet.blobs.s3.S3BlobStore`."""
    if not url:
        raise ValueError("empty blob store URL")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError("file: blob store URLs must be local (file:///absolute/path)")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise ValueError("file: blob store URLs need an absolute path (file:///absolute/path)")
        return LocalBlobStore(path)
    if scheme == "s3":
        from carnet.blobs.s3 import S3BlobStore, parse_url  # boto3 is loaded only when S3 is used

        bucket, prefix = parse_url(url)
        return S3BlobStore(bucket, prefix)
    if "://" in url:
        raise ValueError(f"unsupported blob store URL scheme {parts.scheme!r} (use file://, s3:// or a path)")
    return LocalBlobStore(url)
