"""SMART Health Links, the wire format (HL7 SMART Health Cards and Links IG 1.0.0, "SMART Health Links
Specification"): the ``shlink:/`` URI and the encrypted files. Nothing here knows a dossier or a database.

- The payload (§ "Construct a SMART Health Link Payload"): a JSON object ``{url, key, exp, flag, label, v}``,
  minified, base64url-encoded without padding, prefixed with ``shlink:/`` and optionally with a viewer URL ending in
  ``#`` (so that a browser never sends the key to a server). ``key``: 32 random bytes, base64url, 43 characters.
  ``flag``: single-character flags in alphabetical order (``L`` long-term, ``P`` passcode, ``U`` single direct file;
  ``U`` never with ``P``). ``label``: at most 80 characters. ``url``: at most 128 characters, 256 bits of entropy.
- Files (§ "Encrypting and Decrypting Files"): JWE compact serialization, ``alg: dir``, ``enc: A256GCM``, a ``cty``
  header naming the content type; a fresh random 96-bit nonce for every encryption (the same key serves every
  version of every file of a link). :func:`decrypt` also reads ``zip: DEF`` (raw DEFLATE) files from other servers.
"""

from __future__ import annotations

import base64
import json
import secrets
import zlib
from dataclasses import dataclass
from typing import Any

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

SCHEME = "shlink:/"
KEY_BYTES = 32
KEY_CHARS = 43
MAX_LABEL = 80
MAX_URL = 128
FLAGS = "LPU"
MAX_FILE_CHARS = 128 * 1024 * 1024  # an encrypted file's size bound (a 20 MB document, base64 in JSON, then JWE)


class _Registry(jwe.JWERegistry):
    max_ciphertext_length = MAX_FILE_CHARS  # joserfc's default (64 KB) is smaller than an IPS with documents


_REGISTRY = _Registry(algorithms=["dir", "A256GCM"])


class PayloadError(ValueError):
    """A ``shlink:/`` that does not follow the specification (the message names the field)."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    if not isinstance(text, str) or any(c not in _B64URL for c in text):
        raise PayloadError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def new_link_id() -> str:
    """A link's public id: 32 random bytes (256 bits), base64url, 43 characters (a path segment of the URL)."""
    return b64url(secrets.token_bytes(32))


@dataclass(frozen=True)
class Payload:
    url: str
    key: bytes
    exp: int | None = None  # epoch seconds
    flag: str = ""
    label: str | None = None
    v: int = 1

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"url": self.url, "key": b64url(self.key)}
        if self.exp is not None:
            out["exp"] = self.exp
        if self.flag:
            out["flag"] = self.flag
        if self.label:
            out["label"] = self.label
        out["v"] = self.v
        return out


def _check_flag(flag: str) -> str:
    if any(c not in FLAGS for c in flag) or "".join(sorted(set(flag))) != flag:
        raise PayloadError("flag: single characters among L, P, U, in alphabetical order")
    if "U" in flag and "P" in flag:
        raise PayloadError("flag: U cannot be used with P")
    return flag


def encode(payload: Payload, viewer: str | None = None) -> str:
    """The ``shlink:/`` URI (with ``viewer`` + ``#`` before it when given)."""
    if len(payload.key) != KEY_BYTES:
        raise PayloadError("key: 32 bytes")
    if len(payload.url) > MAX_URL:
        raise PayloadError("url: at most 128 characters")
    if payload.label is not None and len(payload.label) > MAX_LABEL:
        raise PayloadError("label: at most 80 characters")
    _check_flag(payload.flag)
    text = SCHEME + b64url(json.dumps(payload.as_json(), separators=(",", ":"), ensure_ascii=False).encode())
    return f"{viewer}#{text}" if viewer else text


def decode(text: str) -> Payload:
    """Read a ``shlink:/`` URI, bare or after a viewer URL's ``#``. Unknown properties are ignored (as the
    specification requires); a wrong ``key``, ``flag``, ``url``, ``exp`` or ``label`` is an error naming it."""
    if "#" in text:
        text = text.split("#", 1)[1]
    if not text.startswith(SCHEME):
        raise PayloadError("not a shlink:/ URI")
    try:
        data = json.loads(b64url_decode(text[len(SCHEME):]))
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError("payload: not base64url JSON") from exc
    if not isinstance(data, dict):
        raise PayloadError("payload: not a JSON object")
    url, key = data.get("url"), data.get("key")
    if not isinstance(url, str) or not url:
        raise PayloadError("url: required")
    if not isinstance(key, str) or len(key) != KEY_CHARS or len(b64url_decode(key)) != KEY_BYTES:
        raise PayloadError("key: 43 base64url characters (32 bytes)")
    exp = data.get("exp")
    if exp is not None and (isinstance(exp, bool) or not isinstance(exp, int | float)):
        raise PayloadError("exp: a number (epoch seconds)")
    flag = data.get("flag") or ""
    if not isinstance(flag, str):
        raise PayloadError("flag: a string")
    label = data.get("label")
    if label is not None and (not isinstance(label, str) or len(label) > MAX_LABEL):
        raise PayloadError("label: a string of at most 80 characters")
    v = data.get("v", 1)
    return Payload(url=url, key=b64url_decode(key), exp=None if exp is None else int(exp), flag=_check_flag(flag),
                   label=label, v=v if isinstance(v, int) else 1)


def encrypt(key: bytes, plaintext: bytes, content_type: str) -> str:
    """One file as the specification requires: compact JWE, ``dir`` + ``A256GCM``, ``cty`` = its content type.
    joserfc draws a fresh random nonce for every call."""
    header = {"alg": "dir", "enc": "A256GCM", "cty": content_type}
    return jwe.encrypt_compact(header, plaintext, OctKey.import_key(key), registry=_REGISTRY)


def decrypt(key: bytes, token: str) -> tuple[dict[str, Any], bytes]:
    """(protected header, plaintext) of a file; ``zip: DEF`` is inflated (raw DEFLATE). Any failure (tampered, wrong
    key, another algorithm) raises :class:`PayloadError`."""
    try:
        obj = jwe.decrypt_compact(token, OctKey.import_key(key), registry=_REGISTRY)
    except (JoseError, ValueError) as exc:
        raise PayloadError("file: not a JWE this key opens") from exc
    header = dict(obj.headers())
    plaintext = obj.plaintext or b""
    if header.get("zip") == "DEF":  # joserfc may already have inflated it
        try:
            plaintext = zlib.decompress(plaintext, -15)
        except zlib.error:
            pass
    return header, plaintext
