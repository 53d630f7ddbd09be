"""The audit checkpoint signing key (Ed25519), kept outside the database like the master key ring.

Where it lives (``docs/AUDIT.md``): ``CARNET_CHECKPOINT_KEY`` (the 32-byte private seed in base64, e.g. from a secret
store), else the file ``CARNET_CHECKPOINT_KEY_FILE`` (default ``var/checkpoint-key.pem``: PKCS#8 PEM, mode 0600,
created on first use, never overwritten; a file that group or others may read is refused, as for the master key).
Every node of a deployment must read the same key. Verifiers need only its public part
(:attr:`SigningKey.public_raw`, printed by ``carnet audit public-key``).
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from carnet.blobs.crypto import _write_private_file

__all__ = ["SigningKey"]


class SigningKey:
    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public_raw = private.public_key().public_bytes(serialization.Encoding.Raw,
                                                            serialization.PublicFormat.Raw)

    def __repr__(self) -> str:
        return f"SigningKey(public={self.public_b64})"  # never the private part

    @property
    def public_b64(self) -> str:
        return base64.b64encode(self.public_raw).decode("ascii")

    def public_pem(self) -> str:
        return self._private.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(data)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed_b64(cls, text: str) -> SigningKey:
        try:
            seed = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("CARNET_CHECKPOINT_KEY is not valid base64") from None
        if len(seed) != 32:
            raise ValueError("CARNET_CHECKPOINT_KEY must be a 32-byte Ed25519 seed in base64")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        """Read the PEM key file, refusing one that group or others may access (any of mode bits 0o077)."""
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0))
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise PermissionError(f"key file {path} is not a regular file")
            if st.st_mode & 0o077:
                raise PermissionError(f"key file {path} has mode {stat.S_IMODE(st.st_mode):04o}; it must not be "
                                      f"accessible to group or others (chmod 600 {path})")
            data = b""
            while chunk := os.read(fd, 65536):
                data += chunk
        finally:
            os.close(fd)
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise ValueError(f"key file {path} is not a PEM private key") from None  # never its contents
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"key file {path} is not an Ed25519 key")
        return cls(key)

    @classmethod
    def load_or_create(cls, path: Path) -> SigningKey:
        """Load the key file; on first use create it (mode 0600, atomically, never replacing an existing file: when
        several processes start together, one file wins and every process uses it)."""
        path = Path(path)
        if not path.exists():
            key = cls.generate()
            pem = key._private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption())
            if _write_private_file(path, pem, overwrite=False):
                return key
        return cls.load(path)
