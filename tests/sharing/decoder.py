"""An independent SMART Health Links receiver, written from the specification alone (HL7 SMART Health Cards and
Links IG 1.0.0, "SMART Health Links Receiving Application processes a SMART Health Link" and "Encrypting and
Decrypting Files"), with nothing of Carnet's and not joserfc: the standard library and AES-GCM from ``cryptography``.
The tests open Carnet's links with it, so that Carnet's encoder is checked against the text, not against itself."""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_shlink(link: str) -> dict[str, Any]:
    """The payload of ``[viewer#]shlink:/<base64url(JSON)>``."""
    bare = link.split("#", 1)[1] if "#" in link else link
    assert bare.startswith("shlink:/"), link
    payload: dict[str, Any] = json.loads(b64url_decode(bare[len("shlink:/"):]))
    return payload


def decrypt_jwe(token: str, key_b64url: str) -> tuple[dict[str, Any], bytes]:
    """Compact JWE (RFC 7516 §7.1): header.encrypted_key.iv.ciphertext.tag; ``dir`` means an empty encrypted key;
    A256GCM's additional data is the ASCII of the encoded protected header (RFC 7516 §5.2, step 14)."""
    header_b64, encrypted_key, iv, ciphertext, tag = token.strip().split(".")
    header = json.loads(b64url_decode(header_b64))
    assert header["alg"] == "dir" and header["enc"] == "A256GCM", header
    assert encrypted_key == ""
    key = b64url_decode(key_b64url)
    assert len(key) == 32
    plaintext = AESGCM(key).decrypt(b64url_decode(iv), b64url_decode(ciphertext) + b64url_decode(tag),
                                    header_b64.encode("ascii"))
    if header.get("zip") == "DEF":
        plaintext = zlib.decompress(plaintext, -15)
    return header, plaintext
