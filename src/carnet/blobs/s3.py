"""Blobs as objects in an S3-compatible object store: :class:`S3BlobStore` (``CARNET_BLOB_URL=s3://bucket/prefix``).

The client is boto3 (botocore underneath), AWS's reference SDK: it speaks every S3 dialect the health-data hosts sell
(AWS, Ceph RGW, MinIO, Scality, OVH, Outscale), reads the usual AWS settings (``AWS_ENDPOINT_URL_S3`` or
``AWS_ENDPOINT_URL``, ``AWS_REGION`` or ``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
profiles, instance roles), and has conditional writes, multipart uploads and the "standard" retry mode.

The contract is the local store's (:mod:`carnet.blobs.base`):

* ``put`` returns once the object store has acknowledged the object (``PutObject``, or ``CompleteMultipartUpload``
  for ``put_stream``; parts of :data:`PART_SIZE`, the upload aborted on any failure, so nothing is left under the
  key).
* It never replaces an object with different bytes. Where the store honours ``If-None-Match: *`` (AWS since 2024,
  MinIO, moto; Ceph RGW 16 on PutObject only), the write is conditional: a ``412 Precondition Failed`` means the key
  exists, and the existing object is then compared with the new bytes (identical: a no-op; different:
  :class:`BlobConflict`). Whether it does is probed once per process, for PutObject and for CompleteMultipartUpload
  separately, on a probe object under ``prefix/.carnet-probe-…``. Where it does not, the store checks then writes;
  that is racy only against a concurrent put of the same key, and a key is a document's own id (or, for blobs
  written before streaming, the SHA-256 of the ciphertext), so two puts of one key carry the same bytes.
* Timeouts are short and the retries few (``CARNET_BLOB_TIMEOUT`` seconds to connect and per read,
  ``CARNET_BLOB_ATTEMPTS`` attempts, botocore's "standard" mode: exponential back-off with jitter, on throttling,
  5xx and connection errors only), so a store that is down or slow raises :class:`BlobStoreUnavailable` within about
  ``attempts × 2 × timeout`` plus a few seconds of back-off. No state survives a failure: the connection pool drops
  a broken connection and the next call connects anew, so Carnet recovers by itself when the store is back.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

from carnet.blobs.base import (
    CHUNK_SIZE,
    BlobConflict,
    BlobNotFound,
    BlobStore,
    BlobStoreError,
    BlobStoreUnavailable,
    check_key,
    is_key,
)

__all__ = ["PART_SIZE", "S3BlobStore"]

PART_SIZE = 8 * 1024 * 1024  # multipart part size (S3's minimum is 5 MiB, but for the last part)
T = TypeVar("T")
_TRANSIENT_STATUS = {500, 502, 503, 504}
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


class S3BlobStore(BlobStore):
    """Blobs as objects ``prefix/key`` in ``bucket``. ``client`` is a boto3 S3 client (built from the AWS settings
    when not given, ``client_options`` passed on to it); ``timeout`` and ``attempts`` bound every call (see the
    module docstring)."""

    def __init__(self, bucket: str, prefix: str = "", *, client: Any = None, endpoint_url: str | None = None,
                 timeout: float | None = None, attempts: int | None = None, part_size: int = PART_SIZE,
                 conditional_writes: bool | None = None, client_options: dict[str, Any] | None = None) -> None:
        if not bucket:
            raise ValueError("s3: blob store URLs need a bucket (s3://bucket/prefix)")
        if part_size < 5 * 1024 * 1024:
            raise ValueError("S3 multipart parts are at least 5 MiB")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.part_size = part_size
        self.timeout = timeout if timeout is not None else _env_float("CARNET_BLOB_TIMEOUT", 5.0)
        self.attempts = attempts if attempts is not None else int(_env_float("CARNET_BLOB_ATTEMPTS", 3))
        self.client = client or self._make_client(endpoint_url, **(client_options or {}))
        # does the store honour If-None-Match on PutObject, on CompleteMultipartUpload? None: probed on first write
        self._conditional: tuple[bool, bool] | None = None if conditional_writes is None else \
            (conditional_writes, conditional_writes)

    def __repr__(self) -> str:
        return f"S3BlobStore({self.url!r})"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def _make_client(self, endpoint_url: str | None, **options: Any) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(connect_timeout=self.timeout, read_timeout=self.timeout,
                        retries={"mode": "standard", "max_attempts": max(1, self.attempts)},
                        # S3-compatible stores (Ceph RGW among them) do not all know the CRC trailers that botocore
                        # sends by default since 1.36: send checksums only where S3 requires one (Content-MD5 below)
                        request_checksum_calculation="when_required", response_checksum_validation="when_required")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
        options.setdefault("region_name", region)
        return boto3.session.Session().client("s3", endpoint_url=endpoint, config=config, **options)

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    # --- calls, with their errors mapped ---------------------------------------------------------------------
    def _call(self, what: Callable[..., T], key: str | None = None, **kwargs: Any) -> T:
        from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
        from botocore.exceptions import ConnectionError as BotoConnectionError

        try:
            return what(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            raise _mapped(exc, key) from exc
        except (HTTPClientError, BotoConnectionError) as exc:  # timeouts, refused or closed, after the retries
            raise BlobStoreUnavailable(f"object store unreachable: {type(exc).__name__}") from exc
        except BotoCoreError as exc:
            raise BlobStoreError(f"object store error: {type(exc).__name__}") from exc

    def _read_body(self, body: Any, chunk_size: int) -> Iterator[bytes]:
        from botocore.exceptions import BotoCoreError
        from urllib3.exceptions import HTTPError

        try:
            yield from body.iter_chunks(chunk_size)
        except (BotoCoreError, HTTPError, OSError) as exc:
            raise BlobStoreUnavailable(f"object store read interrupted: {type(exc).__name__}") from exc
        finally:
            body.close()

    # --- the protocol ------------------------------------------------------------------------------------------
    def put(self, key: str, data: bytes) -> None:
        name = self._name(key)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError("blob data must be bytes")
        data = bytes(data)
        if self._conditional_writes()[0]:
            if self._put_if_absent(name, key, data):
                return
        elif not self.exists(key):
            self._call(self.client.put_object, key, Key=name, Body=data, ContentMD5=_md5(data))
            return
        if self._digest(key) != hashlib.sha256(data).digest():
            raise BlobConflict(key)

    def _put_if_absent(self, name: str, key: str, data: bytes) -> bool:
        """PutObject with If-None-Match: True if written, False if the key already existed."""
        try:
            self._call(self.client.put_object, key, Key=name, Body=data, ContentMD5=_md5(data), IfNoneMatch="*")
            return True
        except _Exists:
            return False

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> int:
        name = self._name(key)
        parts = _parts(chunks, self.part_size)
        head = [next(parts, b"")]
        if len(head[0]) < self.part_size:  # the only part: one PutObject
            data = head.pop()
            self.put(key, data)
            return len(data)
        conditional = self._conditional_writes()[1]
        if not conditional and self.exists(key):
            digest, size = _sha256_of(_chain(head, parts))
            if digest != self._digest(key):
                raise BlobConflict(key)
            return size
        upload = self._call(self.client.create_multipart_upload, key, Key=name)["UploadId"]
        try:
            sha, size, done = hashlib.sha256(), 0, []
            for number, part in enumerate(_chain(head, parts), start=1):
                sha.update(part)
                size += len(part)
                r = self._call(self.client.upload_part, key, Key=name, UploadId=upload, PartNumber=number,
                               Body=part, ContentMD5=_md5(part))
                done.append({"ETag": r["ETag"], "PartNumber": number})
                del part
            extra = {"IfNoneMatch": "*"} if conditional else {}
            try:
                self._call(self.client.complete_multipart_upload, key, Key=name, UploadId=upload,
                           MultipartUpload={"Parts": done}, **extra)
                return size
            except _Exists:
                pass
        except BaseException:
            self._abort(name, upload)
            raise
        self._abort(name, upload)
        if self._digest(key) != sha.digest():
            raise BlobConflict(key)
        return size

    def _abort(self, name: str, upload: str) -> None:
        try:
            self._call(self.client.abort_multipart_upload, Key=name, UploadId=upload)
        except BlobStoreError:
            pass  # the garbage collector aborts unfinished uploads older than its grace period

    def get(self, key: str) -> bytes:
        return b"".join(self.get_stream(key))

    def get_stream(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        r = self._call(self.client.get_object, key, Key=self._name(key))
        return self._read_body(r["Body"], chunk_size)

    def delete(self, key: str) -> None:
        self._call(self.client.delete_object, key, Key=self._name(key))  # S3 answers 204 for a missing key too

    def exists(self, key: str) -> bool:
        try:
            self._call(self.client.head_object, key, Key=self._name(key))
            return True
        except BlobNotFound:
            return False

    def iter_blobs(self) -> Iterator[tuple[str, dt.datetime]]:
        start = f"{self.prefix}/" if self.prefix else ""
        token: str | None = None
        while True:
            page = self._call(self.client.list_objects_v2, Prefix=start, MaxKeys=1000,
                              **({"ContinuationToken": token} if token else {}))
            for obj in page.get("Contents", ()):
                key = obj["Key"][len(start):]
                if is_key(key):
                    yield key, obj["LastModified"].astimezone(dt.UTC)
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def remove_leftovers(self, older_than: dt.datetime, *, dry_run: bool = False) -> int:
        """Abort the multipart uploads under the prefix started before ``older_than`` (a crash in ``put_stream``)."""
        start = f"{self.prefix}/" if self.prefix else ""
        removed = 0
        markers: dict[str, str] = {}
        while True:
            page = self._call(self.client.list_multipart_uploads, Prefix=start, **markers)
            for upload in page.get("Uploads", ()):
                if upload["Initiated"].astimezone(dt.UTC) < older_than:
                    if not dry_run:
                        self._call(self.client.abort_multipart_upload, Key=upload["Key"],
                                   UploadId=upload["UploadId"])
                    removed += 1
            if not page.get("IsTruncated"):
                return removed
            markers = {"KeyMarker": page.get("NextKeyMarker", ""),
                       "UploadIdMarker": page.get("NextUploadIdMarker", "")}

    # --- helpers -----------------------------------------------------------------------------------------------
    def _digest(self, key: str) -> bytes:
        return _sha256_of(self.get_stream(key))[0]

    def _conditional_writes(self) -> tuple[bool, bool]:
        """Does the store honour ``If-None-Match: *`` on PutObject, and on CompleteMultipartUpload? Probed once, on
        a probe object that is written, then rewritten both ways, then deleted (Ceph RGW 16 honours the first and
        ignores the second)."""
        if self._conditional is None:
            probe = f"{self.prefix}/.carnet-probe-{uuid.uuid4().hex}" if self.prefix else \
                f".carnet-probe-{uuid.uuid4().hex}"
            self._call(self.client.put_object, Key=probe, Body=b"1")
            try:
                put = self._refused(lambda: self._call(self.client.put_object, Key=probe, Body=b"2",
                                                       IfNoneMatch="*"))
                upload = self._call(self.client.create_multipart_upload, Key=probe)["UploadId"]
                try:
                    etag = self._call(self.client.upload_part, Key=probe, UploadId=upload, PartNumber=1,
                                      Body=b"3")["ETag"]
                    complete = self._refused(lambda: self._call(
                        self.client.complete_multipart_upload, Key=probe, UploadId=upload, IfNoneMatch="*",
                        MultipartUpload={"Parts": [{"ETag": etag, "PartNumber": 1}]}))
                finally:
                    self._abort(probe, upload)
            finally:
                self._call(self.client.delete_object, Key=probe)
            self._conditional = (put, complete)
        return self._conditional

    @staticmethod
    def _refused(write: Callable[[], object]) -> bool:
        """True if the conditional ``write`` was refused with 412 (the condition is honoured)."""
        try:
            write()
            return False
        except _Exists:
            return True
        except BlobStoreUnavailable:
            raise
        except BlobStoreError:  # 400 or 501: the header is not understood
            return False


class _Exists(BlobStoreError):
    """412 Precondition Failed on a conditional write: the key exists."""


def _mapped(exc: Any, key: str | None) -> BlobStoreError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code == "PreconditionFailed" or status == 412:
        return _Exists(f"blob {key} exists")
    if code == "ConditionalRequestConflict":  # 409: a concurrent conditional write of the key is in flight
        return BlobStoreUnavailable(f"concurrent write of blob {key}")
    if key is not None and (code in _NOT_FOUND or (status == 404 and code != "NoSuchBucket")):
        return BlobNotFound(key)
    if status in _TRANSIENT_STATUS or code in ("SlowDown", "ServiceUnavailable", "RequestTimeout"):
        return BlobStoreUnavailable(f"object store unavailable: {code or status}")
    return BlobStoreError(f"object store refused the request: {code or status}")


def _md5(data: bytes) -> str:
    """Content-MD5, the transfer check every S3 dialect knows (the ciphertext is also authenticated by AES-GCM)."""
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def _parts(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Regroup ``chunks`` into parts of at least ``size`` bytes (the last may be shorter; S3 parts need not be of one
    size), one part in memory at a time: the chunks of a part, then their join."""
    pending: list[bytes] = []
    total = 0
    for chunk in chunks:
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise TypeError("blob data must be bytes")
        pending.append(bytes(chunk))
        total += len(chunk)
        if total >= size:
            part = b"".join(pending)
            pending.clear()
            total = 0
            yield part
            del part
    if pending:
        yield b"".join(pending)


def _chain(head: list[bytes], rest: Iterator[bytes]) -> Iterator[bytes]:
    """``head`` then ``rest``, holding no reference to a part already handed out."""
    while head:
        yield head.pop(0)
    yield from rest


def _sha256_of(chunks: Iterable[bytes]) -> tuple[bytes, int]:
    h, size = hashlib.sha256(), 0
    for chunk in chunks:
        h.update(chunk)
        size += len(chunk)
    return h.digest(), size


def parse_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` → ``(bucket, prefix)``."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "s3" or not parts.netloc:
        raise ValueError("S3 blob store URLs look like s3://bucket/prefix")
    if parts.query or parts.fragment:
        raise ValueError("S3 blob store URLs take no query (endpoint and region come from the AWS settings)")
    return parts.netloc, parts.path.strip("/")
