"""Tests for carnet.auth.keys: the server's signing key, created once, reloaded, published."""

from __future__ import annotations

import json
import os
import stat

import pytest
from joserfc.jwk import ECKey

from carnet.auth.access_tokens import issue_access_token, verify_access_token
from carnet.auth.keys import ServerKey
from tests.auth.helpers import ISSUER, NOW

# --------------------------------------------------------------------------------------------------------------------
# The server key


def test_the_server_key_is_created_once_private_to_its_owner_and_reloaded(tmp_path):
    path = tmp_path / "keys" / "signing.pem"

    created = ServerKey.load_or_create(path)
    reloaded = ServerKey.load_or_create(path)

    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert reloaded.kid == created.kid
    assert [p.name for p in path.parent.iterdir()] == ["signing.pem"]  # no temporary file left behind


def test_a_token_signed_before_a_restart_verifies_after_it(tmp_path, dr_martin_claims):
    path = tmp_path / "signing.pem"
    token, _ = issue_access_token(ServerKey.load_or_create(path), dr_martin_claims, {"system/Patient.rs"}, NOW,
                                  issuer=ISSUER)

    assert verify_access_token(ServerKey.load_or_create(path), token, NOW, ISSUER)["client_id"] == "cabinet-dupont"


def test_the_server_key_can_be_a_jwk_file(tmp_path):
    key = ECKey.generate_key("P-256", private=True)
    path = tmp_path / "signing.jwk"
    path.write_text(json.dumps(key.as_dict(private=True)))

    assert ServerKey.load_or_create(path).kid == key.thumbprint()


@pytest.mark.parametrize("content", [b"not a key", b'{"kty": "EC"}', b"-----BEGIN PRIVATE KEY-----\nAAAA\n"])
def test_an_unreadable_server_key_file_is_an_error_that_does_not_quote_it(tmp_path, content):
    path = tmp_path / "signing.pem"
    path.write_bytes(content)

    with pytest.raises(ValueError) as caught:
        ServerKey.load_or_create(path)
    assert "AAAA" not in str(caught.value) and "not a key" not in str(caught.value)
    assert path.read_bytes() == content  # never overwritten


def test_the_server_key_must_be_p256():
    with pytest.raises(ValueError):
        ServerKey(ECKey.generate_key("P-384", private=True))
    with pytest.raises(ValueError):
        ServerKey(ECKey.generate_key("P-256", private=False))


def test_the_published_jwks_holds_only_the_public_key(server_key):
    jwks = server_key.public_jwks()

    assert len(jwks["keys"]) == 1
    jwk = jwks["keys"][0]
    assert "d" not in jwk
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"], jwk["kid"]) == ("EC", "P-256", "ES256", "sig",
                                                                            server_key.kid)
