"""Blobs as files on a local disk: :class:`LocalBlobStore`, the embedded default (``var/blobs``).

Durability contract (see :mod:`carnet.blobs.base`), relied on by the document service ("contents reach disk before the
metadata commits"):

* ``put`` returns only once the blob is durable: written to a temp file in the final directory, flushed, fsync'd,
  atomically published under its final name, and the directory fsync'd.  A reader never sees a partial blob, and a
  ``put`` that fails leaves no file behind (neither the temp file nor a final one).
* ``put`` never replaces an existing blob with *different* bytes: that raises :class:`BlobConflict` (an acknowledged
  document must never be lost).  ``put`` of identical bytes under an existing key is a no-op (it only refreshes the
  file's modification time, so that the garbage collector's grace period counts from the latest put).
* ``delete`` is idempotent and durable (the directory is fsync'd), so that a refused document leaves nothing behind.
* ``put_stream`` and ``get_stream`` do the same a chunk at a time: the whole blob is never in memory.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from carnet.blobs.base import (
    CHUNK_SIZE,
    BlobConflict,
    BlobNotFound,
    BlobStore,
    BlobStoreError,
    check_key,
    is_key,
)
from carnet.fsutil import fsync_directory

__all__ = ["BlobConflict", "BlobNotFound", "BlobStore", "BlobStoreError", "LocalBlobStore"]

_TMP_PREFIX = ".tmp-"  # keys never contain '.', so temp names can never collide with a blob


def relative_path(key: str) -> str:
    """Where the blob ``key`` lives under the store's root: ``yz/wx/…wxyz``, fanned out on the key's **last** four
    characters. Keys are mostly UUIDv7s in hex, whose first twelve characters are the time in milliseconds: fanned out
    on its first four (``ab/cd/abcd…``, the layout before 2026-12), every blob written during the same 49 days went
    into one directory (10^6 files in a directory by the first million documents); the last four are random."""
    return f"{key[-2:]}/{key[-4:-2]}/{key}"


def legacy_relative_path(key: str) -> str:
    """Where earlier versions put the blob ``key`` (``ab/cd/abcd…``): still read, listed and deleted there."""
    return f"{key[0:2]}/{key[2:4]}/{key}"


class LocalBlobStore(BlobStore):
    """Blobs as files under ``root``, fanned out as ``root/yz/wx/…wxyz`` on the key's last four characters (mode
    0600, directories 0700); blobs in the earlier layout (:func:`legacy_relative_path`) are found there too."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    @property
    def url(self) -> str:
        return self.root.as_uri()

    def path_for(self, key: str) -> Path:
        check_key(key)
        return self.root / relative_path(key)

    def _paths(self, key: str) -> tuple[Path, ...]:
        """Where the blob may be: its place, then its place in the earlier layout (when that differs)."""
        final = self.path_for(key)
        legacy = self.root / legacy_relative_path(key)
        return (final,) if legacy == final else (final, legacy)

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
        if not isinstance(data, bytes | bytearray | memoryview):
            self.path_for(key)
            raise TypeError("blob data must be bytes")
        self._write(key, (data,))

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> int:
        return self._write(key, chunks)

    def _write(self, key: str, chunks: Iterable[bytes]) -> int:
        final = self.path_for(key)
        directory = final.parent
        self._ensure_dir(directory)
        tmp = directory / f"{_TMP_PREFIX}{key}-{os.getpid()}-{os.urandom(6).hex()}"
        size = 0
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o600)  # independent of the umask
                for chunk in chunks:
                    if not isinstance(chunk, bytes | bytearray | memoryview):
                        raise TypeError("blob data must be bytes")
                    f.write(chunk)
                    size += len(chunk)
                f.flush()
                os.fsync(f.fileno())
            self._publish(tmp, final, key)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        fsync_directory(directory)
        return size

    def _publish(self, tmp: Path, final: Path, key: str) -> None:
        """Give the fsync'd temp file its final name, without ever clobbering an existing blob (in either layout)."""
        for older in self._paths(key)[1:]:
            if older.is_file():
                _keep_existing(tmp, older, key)
                return
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
        _keep_existing(tmp, final, key)

    def _open(self, key: str) -> BinaryIO:
        for path in self._paths(key):
            try:
                return open(path, "rb")  # noqa: SIM115 - closed by the caller
            except (FileNotFoundError, NotADirectoryError):
                continue
        raise BlobNotFound(key)

    def get(self, key: str) -> bytes:
        with self._open(key) as f:
            return f.read()

    def get_stream(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        f = self._open(key)  # BlobNotFound now, not at the first chunk

        def chunks() -> Iterator[bytes]:
            with f:
                while chunk := f.read(chunk_size):
                    yield chunk
        return chunks()

    def delete(self, key: str) -> None:
        for path in self._paths(key):
            try:
                os.unlink(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            fsync_directory(path.parent)

    def exists(self, key: str) -> bool:
        return any(path.is_file() for path in self._paths(key))

    def iter_blobs(self) -> Iterator[tuple[str, dt.datetime]]:
        for first in _subdirs(self.root):
            for second in _subdirs(first):
                with os.scandir(second) as entries:
                    for e in entries:
                        name = e.name
                        if is_key(name) and f"{first.name}/{second.name}/{name}" in (
                                relative_path(name), legacy_relative_path(name)):
                            with contextlib.suppress(FileNotFoundError):
                                yield e.name, _mtime(e.stat(follow_symlinks=False).st_mtime)

    def leftover_temp_files(self) -> list[Path]:
        """Temp files left by a crash between write and publish (never by a failed put)."""
        return sorted(self.root.glob(f"*/*/{_TMP_PREFIX}*"))

    def remove_leftovers(self, older_than: dt.datetime, *, dry_run: bool = False) -> int:
        """Remove the temp files last written before ``older_than`` (a put in progress keeps writing to its own)."""
        removed = 0
        for path in self.leftover_temp_files():
            try:
                if _mtime(path.stat().st_mtime) >= older_than:
                    continue
                if not dry_run:
                    path.unlink()
            except FileNotFoundError:
                continue
            removed += 1
        return removed


def _subdirs(directory: Path) -> Iterator[Path]:
    with os.scandir(directory) as entries:
        names = sorted(e.name for e in entries if len(e.name) == 2 and e.is_dir(follow_symlinks=False))
    for name in names:
        yield directory / name


def _mtime(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _keep_existing(tmp: Path, existing: Path, key: str) -> None:
    """A put of a key already stored at ``existing``: the same bytes keep it (its mtime refreshed, since the grace
    period of the garbage collector counts from the latest put); other bytes are a :class:`BlobConflict`."""
    if not _same_contents(tmp, existing, key):
        raise BlobConflict(key)
    with contextlib.suppress(FileNotFoundError):
        os.utime(existing)


def _same_contents(a: Path, b: Path, key: str) -> bool:
    try:
        with open(a, "rb") as fa, open(b, "rb") as fb:
            while True:
                ca, cb = fa.read(CHUNK_SIZE), fb.read(CHUNK_SIZE)
                if ca != cb:
                    return False
                if not ca:
                    return True
    except (FileNotFoundError, NotADirectoryError):
        raise BlobNotFound(key) from None
