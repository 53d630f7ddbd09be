"""Blob storage for (encrypted) document contents, behind a small interface.

:class:`LocalBlobStore` keeps blobs as files; an S3-compatible store will implement the same :class:`BlobStore`
protocol later (``blobstore_from_url("s3://bucket/prefix")`` is reserved for it).

Durability contract, relied on by the document service ("contents reach disk before the metadata commits"):

* ``put`` returns only once the blob is durable: written to a temp file in the final directory, flushed, fsync'd,
  atomically published under its final name, and the directory fsync'd.  A reader never sees a partial blob, and a
  ``put`` that fails leaves no file behind (neither the temp file nor a final one).
* ``put`` never replaces an existing blob with *different* bytes: that raises :class:`BlobConflict` (an acknowledged
  document must never be lost).  ``put`` of identical bytes under an existing key is a no-op.
* ``delete`` is idempotent and durable (the directory is fsync'd), so that a refused document leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from carnet.fsutil import fsync_directory

__all__ = ["BlobConflict", "BlobNotFound", "BlobStore", "BlobStoreError", "LocalBlobStore", "blobstore_from_url"]

_KEY = re.compile(r"[0-9a-f-]{4,128}")
_TMP_PREFIX = ".tmp-"  # keys never contain '.', so temp names can never collide with a blob


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

    def get(self, key: str) -> bytes:
        """The bytes stored under ``key``; :class:`BlobNotFound` if none."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key`` if present (idempotent)."""
        ...

    def exists(self, key: str) -> bool:
        ...


class LocalBlobStore(BlobStore):
    """Blobs as files under ``root``, fanned out as ``root/ab/cd/abcd…`` (mode 0600, directories 0700)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    def path_for(self, key: str) -> Path:
        check_key(key)
        return self.root / key[0:2] / key[2:4] / key

    def _ensure_dir(self, directory: Path) -> None:
        """Create the fan-out directories, fsync'ing each parent whose entries changed so the new dirs are durable."""
        missing = []
        d = directory
        while d != self.root and not d.is_dir():
            missing.append(d)
            d = d.parent
        for d in reversed(missing):
            try:
                d.mkdir(mode=0o700)
            except FileExistsError:
                continue  # a concurrent put created it
            fsync_directory(d.parent)

    def put(self, key: str, data: bytes) -> None:
        final = self.path_for(key)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError("blob data must be bytes")
        directory = final.parent
        self._ensure_dir(directory)
        tmp = directory / f"{_TMP_PREFIX}{key}-{os.getpid()}-{os.urandom(6).hex()}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o600)  # independent of the umask
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            self._publish(tmp, final, key, data)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        fsync_directory(directory)

    def _publish(self, tmp: Path, final: Path, key: str, data: bytes) -> None:
        """Give the fsync'd temp file its final name, without ever clobbering an existing blob."""
        try:
            os.link(tmp, final)  # atomic and no-clobber (rename would silently replace)
            return
        except FileExistsError:
            pass
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            # the filesystem has no hard links: fall back to rename (racy only against a concurrent put of the key)
            if not final.exists():
                os.replace(tmp, final)
                return
        if self._read(final, key) != bytes(data):
            raise BlobConflict(key)

    def _read(self, path: Path, key: str) -> bytes:
        try:
            with open(path, "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError):
            raise BlobNotFound(key) from None

    def get(self, key: str) -> bytes:
        return self._read(self.path_for(key), key)

    def delete(self, key: str) -> None:
        path = self.path_for(key)
        try:
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError):
            return
        fsync_directory(path.parent)

    def exists(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def leftover_temp_files(self) -> list[Path]:
        """Temp files left by a crash between write and publish (never by a failed put); safe to remove at startup."""
        return sorted(self.root.glob(f"*/*/{_TMP_PREFIX}*"))


def blobstore_from_url(url: str) -> BlobStore:
    """``file:///abs/path`` or a plain filesystem path → :class:`LocalBlobStore`; ``s3://bucket/prefix`` is reserved."""
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
        raise NotImplementedError("S3-compatible blob storage (s3://bucket/prefix) is not implemented yet; "
                                  "use a local path or file:///absolute/path")
    if "://" in url:
        raise ValueError(f"unsupported blob store URL scheme {parts.scheme!r} (use file:// or a path)")
    return LocalBlobStore(url)
