"""Tests for carnet.auth.access_tokens: access tokens issued and verified (RFC 9068)."""

from __future__ import annotations

import base64
import json

import pytest

from carnet.auth.access_tokens import issue_access_token, verify_access_token
from carnet.auth.claims import AssertionClaims
from carnet.auth.errors import TokenError
from carnet.auth.keys import ServerKey
from tests.auth.helpers import DR_MARTIN, ISSUER, MME_PETIT_INS, NOW, b64url, base_claims, signed

# --------------------------------------------------------------------------------------------------------------------
# Access tokens




def test_an_access_token_expires(server_key, dr_martin_claims):
    token, expires_in = issue_access_token(server_key, dr_martin_claims, {"system/Patient.rs"}, NOW, 60,
                                           issuer=ISSUER)

    assert expires_in == 60
    verify_access_token(server_key, token, NOW + 59, ISSUER)
    with pytest.raises(TokenError) as caught:
        verify_access_token(server_key, token, NOW + 60, ISSUER)
    assert (caught.value.error, caught.value.http_status) == ("invalid_token", 401)
    assert "expired" in caught.value.description


def test_an_access_token_from_another_issuer_is_refused(server_key, dr_martin_claims):
    token, _ = issue_access_token(server_key, dr_martin_claims, {"system/Patient.rs"}, NOW, issuer=ISSUER)

    with pytest.raises(TokenError) as caught:
        verify_access_token(server_key, token, NOW, "https://other.example")
    assert caught.value.error == "invalid_token"


def test_an_access_token_signed_by_another_server_is_refused(server_key, dr_martin_claims):
    token, _ = issue_access_token(ServerKey.generate(), dr_martin_claims, {"system/Patient.rs"}, NOW, issuer=ISSUER)

    with pytest.raises(TokenError) as caught:
        verify_access_token(server_key, token, NOW, ISSUER)
    assert caught.value.error == "invalid_token"


def test_an_access_token_with_a_forged_payload_is_refused(server_key, dr_martin_claims):
    token, _ = issue_access_token(server_key, dr_martin_claims, {"system/Patient.rs"}, NOW, issuer=ISSUER)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["scope"] = "system/*.cruds"

    with pytest.raises(TokenError) as caught:
        verify_access_token(server_key, f"{header}.{b64url(json.dumps(claims).encode())}.{signature}", NOW, ISSUER)
    assert "signature" in caught.value.description


def test_a_client_assertion_is_not_an_access_token(server_key, practice_key):
    with pytest.raises(TokenError) as caught:
        verify_access_token(server_key, signed(practice_key, base_claims(aud=ISSUER, iss=ISSUER)), NOW, ISSUER)
    assert caught.value.error == "invalid_token"


def test_an_unsigned_access_token_is_refused(server_key):
    header = b64url(json.dumps({"alg": "none", "typ": "at+jwt", "kid": server_key.kid}).encode())
    payload = b64url(json.dumps({"iss": ISSUER, "aud": ISSUER, "exp": NOW + 60}).encode())

    for token in (f"{header}.{payload}.", f"{header}.{payload}.AAAA", "", "Bearer"):
        with pytest.raises(TokenError) as caught:
            verify_access_token(server_key, token, NOW, ISSUER)
        assert caught.value.error == "invalid_token"


def test_a_token_can_never_carry_what_an_assertion_could_not(server_key):
    portal_claims = AssertionClaims(client_id="carnet-portal", jti="a", exp=NOW, patient_ins=MME_PETIT_INS,
                                    professional_id=DR_MARTIN, client_kind="patient_portal")
    no_reason = AssertionClaims(client_id="cabinet-dupont", jti="a", exp=NOW, professional_id=DR_MARTIN,
                                mode="emergency")

    for claims in (portal_claims, no_reason):
        with pytest.raises(TokenError):
            issue_access_token(server_key, claims, {"system/Patient.rs"}, NOW, issuer=ISSUER)


def test_a_token_needs_a_scope_and_a_sensible_lifetime(server_key, dr_martin_claims):
    with pytest.raises(TokenError) as caught:
        issue_access_token(server_key, dr_martin_claims, set(), NOW, issuer=ISSUER)
    assert caught.value.error == "invalid_scope"
    for lifetime in (0, -5, 86_400):
        with pytest.raises(ValueError):
            issue_access_token(server_key, dr_martin_claims, {"system/Patient.rs"}, NOW, lifetime, issuer=ISSUER)


def test_two_tokens_never_share_a_jti(server_key, dr_martin_claims):
    tokens = [issue_access_token(server_key, dr_martin_claims, {"system/Patient.rs"}, NOW, issuer=ISSUER)[0]
              for _ in range(3)]

    assert len({verify_access_token(server_key, t, NOW, ISSUER)["jti"] for t in tokens}) == 3
