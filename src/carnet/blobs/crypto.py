"""Envelope encryption of document contents at rest.

Every document is encrypted with its own fresh 256-bit *data key* (AES-256-GCM, 96-bit random nonce, caller-supplied
associated data).  The data key is then *wrapped* by a *master key* (a key-encryption key, KEK) held in a
:class:`KeyRing`; the wrapped data key and the id of the master key that wrapped it are stored next to the document's
metadata.  Rotating master keys (``carnet keys rotate``) therefore only re-wraps 40-byte data keys (:func:`rewrap`); the
contents themselves are never re-encrypted.

Choices, recorded here because they are part of the on-disk format:

* ``Sealed.ciphertext`` is ``nonce (12 bytes) || AES-GCM ciphertext || tag (16 bytes)``.
* Data keys are wrapped with AES Key Wrap (RFC 3394, :func:`cryptography.hazmat.primitives.keywrap.aes_key_wrap`):
  a standard, deterministic, nonce-free construction made for wrapping keys, with its own integrity check (a wrapped
  key that was altered, or is unwrapped with any other master key, fails with ``InvalidUnwrap``).  The key id is not
  bound into the wrap; it does not need to be, since a wrong or swapped key id selects another master key, which then
  fails the RFC 3394 integrity check.  A wrapped 32-byte data key is 40 bytes.
* The associated data (``aad``) is chosen by the caller (e.g. dossier key + document id) so that a blob cannot be
  moved from one document to another without detection.

Any authentication failure, and an unknown key id, raise :class:`IntegrityError`: content that fails its checks is an
error, never served.  Error messages never contain key material nor contents.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import re
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from carnet.fsutil import fsync_directory

__all__ = ["IntegrityError", "KeyRing", "Sealed", "open_sealed", "rewrap", "seal"]

KEY_BYTES = 32  # AES-256, for master keys and data keys alike
NONCE_BYTES = 12  # 96-bit GCM nonce
TAG_BYTES = 16
WRAPPED_KEY_BYTES = KEY_BYTES + 8  # RFC 3394 adds one 64-bit block

_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_GENERATED_KEY_ID = re.compile(r"k([0-9]+)")


class IntegrityError(Exception):
    """Sealed content failed authentication (tampered, wrong associated data, wrong or unknown master key)."""


@dataclass(frozen=True)
class Sealed:
    """The result of :func:`seal`: what is stored (ciphertext in the blob store, the rest in the metadata)."""

    ciphertext: bytes  # nonce || ct || tag
    wrapped_key: bytes  # the data key, wrapped (RFC 3394) by the master key ``key_id``
    key_id: str

    def __repr__(self) -> str:  # never print contents, even encrypted ones, into logs
        return f"Sealed(ciphertext=<{len(self.ciphertext)} bytes>, wrapped_key=<{len(self.wrapped_key)} bytes>, " \
               f"key_id={self.key_id!r})"


def _check_key_id(kid: str) -> str:
    if not isinstance(kid, str) or not _KEY_ID.fullmatch(kid):
        raise ValueError("key id must be 1-32 characters among A-Z a-z 0-9 _ . -")
    return kid


def _check_key(kid: str, key: bytes) -> bytes:
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
        raise ValueError(f"master key {kid!r} must be {KEY_BYTES} bytes")
    return bytes(key)


def _b64decode_key(kid: str, text: object) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"master key {kid!r} must be a base64 string")
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"master key {kid!r} is not valid base64") from None
    return _check_key(kid, raw)


def _write_private_file(path: Path, data: bytes, *, overwrite: bool) -> bool:
    """Atomically write ``data`` to ``path`` with mode 0600: temp file, fsync, rename (or link), fsync the directory.

    With ``overwrite=False`` an existing ``path`` is left untouched and ``False`` is returned (no-clobber, so that two
    processes starting together cannot each create a key file and lose the first one's key).
    """
    directory = path.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = directory / f".{path.name}.tmp-{os.getpid()}-{os.urandom(6).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # independent of the umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_directory(directory)
    return True


class KeyRing:
    """Master keys (32-byte key-encryption keys) by key id, and which one is current (used to wrap new data keys).

    Older keys stay in the ring so that documents wrapped under them can still be opened until they are re-wrapped
    (:func:`rewrap`); after that they can be :meth:`remove`\\ d.

    A ring read from a file (:meth:`load`) follows the file while the process runs: ``carnet keys rotate`` run on
    another process (or another node sharing the file) adds a key and re-wraps documents under it, and this ring
    re-reads the file when it meets a key id it does not hold, and at most every :attr:`REFRESH_SECONDS` when asked
    for the current key (so that new documents are soon wrapped under the new key). A ring from a spec
    (``CARNET_MASTER_KEY``) has no file to follow: rotating it means restarting every node with the new spec.
    """

    __slots__ = ("_checked", "_current", "_keys", "_source", "_stamp")
    REFRESH_SECONDS = 1.0

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if not keys:
            raise ValueError("a key ring needs at least one master key")
        checked = {_check_key_id(kid): _check_key(kid, key) for kid, key in keys.items()}
        if current not in checked:
            raise ValueError(f"current key id {current!r} is not in the key ring")
        self._keys: dict[str, bytes] = checked
        self._current = current
        self._source: Path | None = None
        self._stamp: tuple[int, int, int] | None = None
        self._checked = 0.0

    # -- construction ---------------------------------------------------------------------------------------------

    @classmethod
    def generate(cls, key_id: str = "k1") -> KeyRing:
        """A ring with one fresh random master key."""
        return cls({key_id: AESGCM.generate_key(bit_length=256)}, key_id)

    @classmethod
    def from_spec(cls, spec: str) -> KeyRing:
        """Parse ``"kid1:base64key,kid2:base64key"``; the last key is current (e.g. from an environment variable)."""
        keys: dict[str, bytes] = {}
        last = None
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            kid, sep, b64 = part.partition(":")
            kid = kid.strip()
            if not sep:
                raise ValueError("key spec entries must read 'kid:base64key'")
            _check_key_id(kid)
            if kid in keys:
                raise ValueError(f"key id {kid!r} appears twice in the key spec")
            keys[kid] = _b64decode_key(kid, b64)
            last = kid
        if last is None:
            raise ValueError("the key spec holds no key")
        return cls(keys, last)

    @classmethod
    def from_json(cls, text: str | bytes) -> KeyRing:
        """Parse ``{"current": kid, "keys": {kid: base64}}`` (the format of :meth:`to_json`)."""
        try:
            doc = json.loads(text)
        except ValueError:
            raise ValueError("the key file is not valid JSON") from None
        if not (isinstance(doc, dict) and isinstance(doc.get("keys"), dict) and isinstance(doc.get("current"), str)):
            raise ValueError('the key file must read {"current": kid, "keys": {kid: base64key}}')
        keys = {_check_key_id(kid): _b64decode_key(kid, b64) for kid, b64 in doc["keys"].items()}
        return cls(keys, doc["current"])

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        """Read a key file, refusing one that group or others may access (any of mode bits 0o077)."""
        path = Path(path)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0))
        try:
            st = os.fstat(fd)  # checked on the open file itself: no race between check and read
            if not stat.S_ISREG(st.st_mode):
                raise PermissionError(f"key file {path} is not a regular file")
            if st.st_mode & 0o077:
                raise PermissionError(f"key file {path} has mode {stat.S_IMODE(st.st_mode):04o}; it must not be "
                                      f"accessible to group or others (chmod 600 {path})")
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
        finally:
            os.close(fd)
        ring = cls.from_json(b"".join(chunks))
        ring._source, ring._stamp, ring._checked = path, _stamp(st), time.monotonic()
        return ring

    def refresh(self, *, force: bool = False) -> bool:
        """Re-read the key file if it changed since it was read (checked at most every :attr:`REFRESH_SECONDS`
        unless ``force``); True if the ring changed. A file that cannot be read now leaves the ring as it is."""
        if self._source is None or (not force and time.monotonic() - self._checked < self.REFRESH_SECONDS):
            return False
        self._checked = time.monotonic()
        try:
            if _stamp(os.stat(self._source)) == self._stamp:
                return False
            fresh = KeyRing.load(self._source)
        except (OSError, ValueError):
            return False
        self._keys, self._current, self._stamp = fresh._keys, fresh._current, fresh._stamp
        return True

    def fingerprint(self, key_id: str) -> str:
        """A check value of master key ``key_id`` (HMAC-SHA256 of a constant under the key, 128 bits in hex): equal
        for equal keys, and it tells nothing of the key. Stored in the database to catch a node started with
        another key (:func:`carnet.admin.check_master_keys`)."""
        return hmac.new(self._kek(key_id), b"carnet/master-key-check/v1", hashlib.sha256).hexdigest()[:32]

    @classmethod
    def load_or_create(cls, path: Path) -> KeyRing:
        """Load the key file at ``path``; on first run create it (mode 0600, atomically) with one fresh key ``k1``.

        An existing file is never overwritten, even if unreadable or invalid: that raises instead.
        """
        path = Path(path)
        if not path.exists():
            # written without clobbering: if another process created it first, theirs is the one read below
            _write_private_file(path, cls.generate().to_json().encode(), overwrite=False)
        return cls.load(path)  # read back, so that the ring follows the file (refresh)

    # -- persistence ----------------------------------------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps({"current": self._current,
                           "keys": {kid: base64.b64encode(key).decode("ascii") for kid, key in self._keys.items()}},
                          indent=2) + "\n"

    def save(self, path: Path) -> None:
        """Atomically (re)write the key file with mode 0600."""
        _write_private_file(Path(path), self.to_json().encode(), overwrite=True)

    def add_new_key(self, path: Path | None = None) -> str:
        """Generate a new master key with a fresh id (``k<n+1>``), make it current, persist to ``path``; return the id.

        The file is written before the ring changes in memory, so a failed write never leaves new data keys wrapped
        under a master key that is not on disk.
        """
        kid = self._next_key_id()
        keys = {**self._keys, kid: AESGCM.generate_key(bit_length=256)}
        candidate = KeyRing(keys, kid)
        if path is not None:
            candidate.save(path)
            if self._source is not None and Path(path) == self._source:
                self._stamp = _stamp(os.stat(path))
        self._keys, self._current = candidate._keys, candidate._current
        return kid

    def remove(self, key_id: str, path: Path | None = None) -> None:
        """Drop a (no longer used) master key; the current key cannot be removed. Persist to ``path`` if given."""
        if key_id == self._current:
            raise ValueError("the current master key cannot be removed")
        if key_id not in self._keys:
            raise KeyError(key_id)
        keys = {kid: key for kid, key in self._keys.items() if kid != key_id}
        candidate = KeyRing(keys, self._current)
        if path is not None:
            candidate.save(path)
        self._keys = candidate._keys

    def _next_key_id(self) -> str:
        numbers = [int(m.group(1)) for kid in self._keys if (m := _GENERATED_KEY_ID.fullmatch(kid))]
        n = max(numbers, default=0) + 1
        while f"k{n}" in self._keys:
            n += 1
        return f"k{n}"

    # -- access ---------------------------------------------------------------------------------------------------

    @property
    def current_id(self) -> str:
        self.refresh()
        return self._current

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def derive(self, purpose: str) -> bytes:
        """A 32-byte key for another use than wrapping (HKDF-SHA256, RFC 5869, with ``purpose`` as its info), from
        the oldest master key in the ring: every node holding the same ring derives the same key, and rotating
        (which adds a key at the end) does not change it."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        first = next(iter(self._keys.values()))
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                    info=f"carnet/{purpose}".encode()).derive(first)

    def _kek(self, key_id: str) -> bytes:
        key = self._keys.get(key_id) if isinstance(key_id, str) else None
        if key is None and self.refresh(force=True):  # rotated since this ring was read
            key = self._keys.get(key_id)
        if key is None:
            raise IntegrityError(f"unknown master key id {key_id!r}")
        return key

    def __repr__(self) -> str:  # never the keys themselves
        return f"KeyRing(key_ids={list(self._keys)!r}, current={self._current!r})"


def _stamp(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_ino, st.st_size, st.st_mtime_ns


def _unwrap(keyring: KeyRing, wrapped_key: bytes, key_id: str) -> bytes:
    kek = keyring._kek(key_id)
    if len(wrapped_key) != WRAPPED_KEY_BYTES:
        raise IntegrityError("wrapped data key has the wrong length")
    try:
        return aes_key_unwrap(kek, bytes(wrapped_key))
    except (InvalidUnwrap, ValueError):
        raise IntegrityError(f"data key does not unwrap under master key {key_id!r}") from None


def seal(keyring: KeyRing, plaintext: bytes, aad: bytes) -> Sealed:
    """Encrypt ``plaintext`` under a fresh data key bound to ``aad``; wrap the data key with the current master key."""
    data_key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = nonce + AESGCM(data_key).encrypt(nonce, bytes(plaintext), bytes(aad))
    kid = keyring.current_id
    return Sealed(ciphertext=ciphertext, wrapped_key=aes_key_wrap(keyring._kek(kid), data_key), key_id=kid)


def open_sealed(keyring: KeyRing, sealed: Sealed, aad: bytes) -> bytes:
    """Decrypt and authenticate; raise :class:`IntegrityError` on any failure (nothing unauthenticated is returned)."""
    data_key = _unwrap(keyring, sealed.wrapped_key, sealed.key_id)
    ct = bytes(sealed.ciphertext)
    if len(ct) < NONCE_BYTES + TAG_BYTES:
        raise IntegrityError("ciphertext is truncated")
    try:
        return AESGCM(data_key).decrypt(ct[:NONCE_BYTES], ct[NONCE_BYTES:], bytes(aad))
    except InvalidTag:
        raise IntegrityError("content failed authentication") from None


def rewrap(keyring: KeyRing, wrapped_key: bytes, key_id: str) -> tuple[bytes, str]:
    """Unwrap a data key with master key ``key_id`` and wrap it with the current one: ``(new_wrapped_key, new_key_id)``.

    The content is not touched. Raises :class:`IntegrityError` if the wrapped key does not unwrap.
    """
    data_key = _unwrap(keyring, wrapped_key, key_id)
    kid = keyring.current_id
    if kid == key_id:
        return bytes(wrapped_key), kid
    return aes_key_wrap(keyring._kek(kid), data_key), kid

