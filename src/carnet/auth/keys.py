"""Carnet's access token signing key (:class:`ServerKey`): ES256 on P-256, kept in a file created once (mode 0600),
its public half published as a JWK Set (``jwks_uri``)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import ECKey
from joserfc.jws import JWSRegistry

from carnet.auth.errors import invalid_token
from carnet.auth.jwt import json_bytes

__all__ = ["AT_JWT_TYPE", "ServerKey"]

#: The ``typ`` header of an access token (RFC 9068 §2.1).
AT_JWT_TYPE = "at+jwt"
_SIGNING_ALG = "ES256"


class ServerKey:
    """Carnet's access token signing key: ECDSA P-256 (ES256). ``kid`` is its RFC 7638 thumbprint."""

    algorithm = _SIGNING_ALG

    def __init__(self, key: ECKey) -> None:
        if not isinstance(key, ECKey) or not key.is_private or key.curve_name != "P-256":
            raise ValueError("the server signing key must be a private EC key on P-256")
        self._key = key
        self._kid = key.thumbprint()

    @classmethod
    def generate(cls) -> ServerKey:
        return cls(ECKey.generate_key("P-256", private=True))

    @classmethod
    def from_bytes(cls, data: bytes) -> ServerKey:
        """Read a private key from an unencrypted PEM (PKCS#8 or SEC1) or a private JWK in JSON."""
        text = data.strip()
        try:
            if text.startswith(b"{"):
                jwk = json.loads(text)
                if not isinstance(jwk, dict) or "d" not in jwk:
                    raise ValueError("not a private JWK")
                key = ECKey.import_key({k: v for k, v in jwk.items() if k != "kid"})
            elif text.startswith(b"-----BEGIN"):
                key = ECKey.import_key(text)
            else:
                raise ValueError("neither PEM nor JWK")
        except (JoseError, ValueError, TypeError) as exc:
            # The message never includes the file's contents.
            raise ValueError("the server key file is not a private EC P-256 key in PEM or JWK form") from exc
        return cls(key)

    @classmethod
    def load_or_create(cls, path: Path) -> ServerKey:
        """Load the key at ``path``, or create it there (PEM, mode 0600, written atomically).

        When several processes start at once, exactly one file wins (a hard link cannot replace an existing file)
        and every process ends up with that key.
        """
        path = Path(path)
        try:
            return cls.from_bytes(path.read_bytes())
        except FileNotFoundError:
            pass
        key = cls.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # mode 0600
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(key.to_pem())
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(tmp_name, path)
            except FileExistsError:
                return cls.from_bytes(path.read_bytes())  # another process created it first: use theirs
            except OSError:
                os.replace(tmp_name, path)  # a file system without hard links
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
        _fsync_directory(path.parent)
        return key

    def to_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM."""
        return self._key.as_pem(private=True)

    @property
    def kid(self) -> str:
        return self._kid

    def public_jwk(self) -> dict[str, Any]:
        jwk = dict(self._key.as_dict(private=False))
        jwk.update({"kid": self._kid, "use": "sig", "alg": self.algorithm})
        return jwk

    def public_jwks(self) -> dict[str, Any]:
        """The JWK Set to publish (``jwks_uri``) so that resource servers can verify access tokens."""
        return {"keys": [self.public_jwk()]}

    def sign(self, claims: dict[str, Any], typ: str = AT_JWT_TYPE) -> str:
        header = {"alg": self.algorithm, "typ": typ, "kid": self._kid}
        return jws.serialize_compact(header, json_bytes(claims), self._key, algorithms=[self.algorithm])

    def verify_signature(self, token: str) -> bytes:
        """The payload of ``token`` when this key signed it; any refusal is ``invalid_token``."""
        registry = JWSRegistry(algorithms=[self.algorithm], strict_check_header=False)
        try:
            return jws.deserialize_compact(token, self._key, registry=registry).payload
        except BadSignatureError as exc:
            raise invalid_token("the access token's signature does not verify") from exc
        except (JoseError, ValueError, TypeError) as exc:
            raise invalid_token("the access token is not a well-formed JWS") from exc


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

