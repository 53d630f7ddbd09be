"""Tests for carnet.auth.assertions: client assertions (SMART Backend Services, RFC 7523), from the client's
assertion to the actor the API reads back, and every refusal.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import warnings

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jws
from joserfc.jwk import RSAKey

from carnet.auth.access_tokens import access_token_actor, issue_access_token, verify_access_token
from carnet.auth.assertions import (
    MAX_ASSERTION_LIFETIME,
    ClientRecord,
    make_client_assertion,
    unverified_client_id,
    verify_client_assertion,
)
from carnet.auth.claims import ACT_REASON_SYSTEM, AssertionClaims
from carnet.auth.errors import TokenError
from carnet.auth.jwt import CLOCK_SKEW
from carnet.auth.scopes import negotiate_scopes, scope_allows
from tests.auth.helpers import (
    DR_MARTIN,
    HER_MOTHER,
    ISSUER,
    MME_PETIT_INS,
    NOW,
    NURSE_ADELI,
    TOKEN_ENDPOINT,
    b64url,
    base_claims,
    ec_key,
    jwks_of,
    refusal,
    signed,
)

# --------------------------------------------------------------------------------------------------------------------
# A full round trip


def test_a_professional_software_gets_a_token_and_the_api_reads_the_actor_back(practice, practice_key, jtis,
                                                                                 server_key):
    assertion = make_client_assertion(practice_key.as_dict(private=True), "cabinet-dupont", TOKEN_ENDPOINT, NOW,
                                      professional_id=DR_MARTIN, organisation_id="750712184",
                                      mode="emergency", reason="Patient inconscient aux urgences")
    assert unverified_client_id(assertion) == "cabinet-dupont"

    claims = verify_client_assertion(assertion, practice, TOKEN_ENDPOINT, NOW, jtis)
    scopes = negotiate_scopes("system/DocumentReference.rs system/Patient.read launch", practice.scopes)
    token, expires_in = issue_access_token(server_key, claims, scopes, NOW, issuer=ISSUER)

    assert expires_in == 300
    payload = verify_access_token(server_key, token, NOW + 299, ISSUER)
    assert payload["iss"] == payload["aud"] == ISSUER
    assert payload["sub"] == payload["client_id"] == "cabinet-dupont"
    assert payload["scope"] == "system/DocumentReference.rs system/Patient.rs"
    assert payload["iat"] == NOW and payload["exp"] == NOW + 300
    assert payload["extensions"]["ihe_iua"]["purpose_of_use"] == [{"system": ACT_REASON_SYSTEM, "code": "ETREAT"}]
    actor = access_token_actor(payload)
    assert actor == AssertionClaims(client_id="cabinet-dupont", jti=payload["jti"], exp=NOW + 300,
                                    professional_id=DR_MARTIN, organisation_id="750712184",
                                    mode="emergency", reason="Patient inconscient aux urgences",
                                    client_kind="professional")
    assert scope_allows(payload["scope"].split(), "DocumentReference", "s")
    assert not scope_allows(payload["scope"].split(), "DocumentReference", "c")


def test_the_verified_assertion_names_the_professional_in_normal_mode(practice, practice_key, jtis):
    assertion = make_client_assertion(practice_key, "cabinet-dupont", TOKEN_ENDPOINT, NOW, professional_id=DR_MARTIN)

    claims = verify_client_assertion(assertion, practice, TOKEN_ENDPOINT, NOW, jtis)

    assert (claims.client_id, claims.professional_id, claims.mode, claims.reason) == (
        "cabinet-dupont", DR_MARTIN, "normal", None)
    assert claims.client_kind == "professional"
    assert claims.exp == NOW + MAX_ASSERTION_LIFETIME
    assert jtis.seen == {claims.jti: claims.exp}


def test_a_nurse_with_an_adeli_number_is_accepted(practice, practice_key, jtis):
    assertion = make_client_assertion(practice_key, "cabinet-dupont", TOKEN_ENDPOINT, NOW, professional_id=NURSE_ADELI)

    assert verify_client_assertion(assertion, practice, TOKEN_ENDPOINT, NOW, jtis).professional_id == NURSE_ADELI


def test_a_samu_regulator_may_ask_for_the_regulation_mode_without_a_reason(practice, practice_key, jtis):
    assertion = make_client_assertion(practice_key, "cabinet-dupont", TOKEN_ENDPOINT, NOW, professional_id=DR_MARTIN,
                                      mode="regulation")

    assert verify_client_assertion(assertion, practice, TOKEN_ENDPOINT, NOW, jtis).mode == "regulation"


def test_the_patient_portal_acts_for_the_patient_or_her_representative(portal, portal_key, jtis, server_key):
    assertion = make_client_assertion(portal_key, "carnet-portal", TOKEN_ENDPOINT, NOW, patient_ins=MME_PETIT_INS,
                                      representative_id=HER_MOTHER)

    claims = verify_client_assertion(assertion, portal, TOKEN_ENDPOINT, NOW, jtis)
    token, _ = issue_access_token(server_key, claims, {"system/DocumentReference.rs"}, NOW, issuer=ISSUER)
    payload = verify_access_token(server_key, token, NOW, ISSUER)

    assert (claims.patient_ins, claims.representative_id, claims.professional_id) == (MME_PETIT_INS, HER_MOTHER,
                                                                                      None)
    assert payload["extensions"]["ihe_iua"]["person_id"] == MME_PETIT_INS
    assert payload["extensions"]["ihe_iua"]["purpose_of_use"][0]["code"] == "PATRQT"
    assert access_token_actor(payload).client_kind == "patient_portal"


def test_assurance_maladie_acts_without_a_person(cpam, cpam_key, jtis):
    assertion = make_client_assertion(cpam_key, "cpam-75", TOKEN_ENDPOINT, NOW, organisation_id="CPAM 75")

    claims = verify_client_assertion(assertion, cpam, TOKEN_ENDPOINT, NOW, jtis)

    assert (claims.professional_id, claims.patient_ins, claims.organisation_id) == (None, None, "CPAM 75")


def test_an_rs384_assertion_from_an_rsa_key_is_accepted(jtis):
    key = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"}, private=True)
    client = ClientRecord("hopital-nord", "professional", jwks_of(key), frozenset({"system/*.rs"}), True)
    assertion = make_client_assertion(key, "hopital-nord", TOKEN_ENDPOINT, NOW, professional_id=DR_MARTIN)

    assert jws.extract_compact(assertion.encode()).headers()["alg"] == "RS384"
    assert verify_client_assertion(assertion, client, TOKEN_ENDPOINT, NOW, jtis).client_id == "hopital-nord"


def test_an_es384_assertion_is_accepted(jtis):
    key = ec_key("p384", "P-384")
    client = ClientRecord("hopital-sud", "professional", jwks_of(key), frozenset({"system/*.rs"}), True)
    assertion = make_client_assertion(key, "hopital-sud", TOKEN_ENDPOINT, NOW, professional_id=DR_MARTIN)

    assert verify_client_assertion(assertion, client, TOKEN_ENDPOINT, NOW, jtis).client_id == "hopital-sud"


def test_an_audience_list_containing_the_token_endpoint_is_accepted(practice, practice_key, jtis):
    assertion = signed(practice_key, base_claims(aud=["https://elsewhere.example", TOKEN_ENDPOINT]))

    assert verify_client_assertion(assertion, practice, TOKEN_ENDPOINT, NOW, jtis).jti == "jti-0001"


def test_the_kid_may_be_left_out_when_the_client_has_a_single_key(practice, practice_key, jtis):
    assertion = signed(practice_key, base_claims(), kid=None)

    assert verify_client_assertion(assertion, practice, TOKEN_ENDPOINT, NOW, jtis).jti == "jti-0001"


def test_a_client_may_rotate_keys_and_sign_with_either(practice_key, jtis):
    new_key = ec_key("practice-2026")
    client = ClientRecord("cabinet-dupont", "professional", jwks_of(practice_key, new_key), frozenset(), True)

    for key, jti in ((practice_key, "a"), (new_key, "b")):
        assertion = signed(key, base_claims(jti=jti))
        assert verify_client_assertion(assertion, client, TOKEN_ENDPOINT, NOW, jtis).jti == jti


def test_an_assertion_living_exactly_five_minutes_is_accepted(practice, practice_key, jtis):
    assertion = signed(practice_key, base_claims(exp=NOW + 300))

    assert verify_client_assertion(assertion, practice, TOKEN_ENDPOINT, NOW, jtis).exp == NOW + 300


def test_a_client_clock_slightly_ahead_is_tolerated(practice, practice_key, jtis):
    assertion = signed(practice_key, base_claims(iat=NOW + 20, exp=NOW + 320))

    assert verify_client_assertion(assertion, practice, TOKEN_ENDPOINT, NOW, jtis).exp == NOW + 320


# --------------------------------------------------------------------------------------------------------------------
# Every refusal of a client assertion


def test_it_refuses_a_wrong_audience(practice, practice_key):
    error = refusal(signed(practice_key, base_claims(aud="https://other.example/oauth/token")), practice)

    assert (error.error, error.http_status) == ("invalid_client", 401)
    assert "aud" in error.description


def test_it_refuses_an_audience_list_without_the_token_endpoint(practice, practice_key):
    assert refusal(signed(practice_key, base_claims(aud=[ISSUER])), practice).error == "invalid_client"


def test_it_refuses_an_expired_assertion(practice, practice_key):
    error = refusal(signed(practice_key, base_claims(exp=NOW)), practice)

    assert error.error == "invalid_client" and "expired" in error.description


def test_it_refuses_an_assertion_without_exp(practice, practice_key):
    claims = base_claims()
    del claims["exp"]

    assert "exp" in refusal(signed(practice_key, claims), practice).description


def test_it_refuses_an_exp_that_is_not_a_number(practice, practice_key):
    assert refusal(signed(practice_key, base_claims(exp="soon")), practice).error == "invalid_client"


def test_it_refuses_a_too_long_lived_assertion(practice, practice_key):
    error = refusal(signed(practice_key, base_claims(exp=NOW + 3600)), practice)

    assert error.error == "invalid_client" and "exp" in error.description


def test_it_refuses_an_exp_just_past_the_five_minutes_and_the_skew(practice, practice_key):
    exp = NOW + MAX_ASSERTION_LIFETIME + CLOCK_SKEW + 1

    assert refusal(signed(practice_key, base_claims(exp=exp)), practice).error == "invalid_client"


def test_it_refuses_an_assertion_issued_in_the_future(practice, practice_key):
    assert "iat" in refusal(signed(practice_key, base_claims(iat=NOW + 200)), practice).description


def test_it_refuses_an_assertion_not_yet_valid(practice, practice_key):
    assert "nbf" in refusal(signed(practice_key, base_claims(nbf=NOW + 200)), practice).description


def test_it_refuses_a_replayed_jti(practice, practice_key, jtis):
    assertion = make_client_assertion(practice_key, "cabinet-dupont", TOKEN_ENDPOINT, NOW, professional_id=DR_MARTIN)
    verify_client_assertion(assertion, practice, TOKEN_ENDPOINT, NOW, jtis)

    error = refusal(assertion, practice, jtis, now=NOW + 10)

    assert error.error == "invalid_client" and "jti" in error.description


def test_it_refuses_a_new_assertion_reusing_a_jti(practice, practice_key, jtis):
    verify_client_assertion(signed(practice_key, base_claims()), practice, TOKEN_ENDPOINT, NOW, jtis)

    assert refusal(signed(practice_key, base_claims(exp=NOW + 200)), practice, jtis).error == "invalid_client"


def test_it_refuses_an_assertion_without_jti(practice, practice_key):
    claims = base_claims()
    del claims["jti"]

    assert "jti" in refusal(signed(practice_key, claims), practice).description


def test_it_refuses_an_unknown_kid(practice, practice_key):
    error = refusal(signed(practice_key, base_claims(), kid="not-registered"), practice)

    assert error.error == "invalid_client" and "kid" in error.description


def test_it_refuses_a_missing_kid_when_the_client_has_several_keys(practice_key):
    client = ClientRecord("cabinet-dupont", "professional", jwks_of(practice_key, ec_key("other")), frozenset(), True)

    assert "kid" in refusal(signed(practice_key, base_claims(), kid=None), client).description


def test_it_refuses_an_assertion_signed_with_another_key_under_the_registered_kid(practice):
    thief_key = ec_key("practice-2025")

    error = refusal(signed(thief_key, base_claims()), practice)

    assert error.error == "invalid_client" and "signature" in error.description


def test_it_refuses_a_tampered_payload(practice, practice_key):
    header, _, signature = signed(practice_key, base_claims()).split(".")
    forged = b64url(json.dumps(base_claims(extensions={"ihe_iua": {"national_provider_identifier": "899999999999"}},
                                           )).encode())

    assert refusal(f"{header}.{forged}.{signature}", practice).error == "invalid_client"


def test_it_refuses_alg_none(practice):
    header = b64url(json.dumps({"alg": "none", "kid": "practice-2025"}).encode())
    payload = b64url(json.dumps(base_claims()).encode())

    assert refusal(f"{header}.{payload}.", practice).error == "invalid_client"
    error = refusal(f"{header}.{payload}.AAAA", practice)
    assert error.error == "invalid_client" and "alg" in error.description


def test_it_refuses_hs256_signed_with_the_public_key_as_secret(practice, practice_key):
    header = b64url(json.dumps({"alg": "HS256", "kid": "practice-2025", "typ": "JWT"}).encode())
    payload = b64url(json.dumps(base_claims()).encode())
    for secret in (practice_key.as_pem(private=False), json.dumps(practice_key.as_dict(private=False)).encode()):
        mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()

        error = refusal(f"{header}.{payload}.{b64url(mac)}", practice)

        assert error.error == "invalid_client" and "alg" in error.description


def test_it_refuses_an_algorithm_that_does_not_fit_the_registered_key(practice, practice_key):
    p384_key = ec_key("practice-2025", "P-384")

    error = refusal(signed(p384_key, base_claims(), alg="ES384"), practice)

    assert "cannot verify ES384" in error.description


def test_it_refuses_iss_different_from_sub(practice, practice_key):
    error = refusal(signed(practice_key, base_claims(sub="someone-else")), practice)

    assert error.error == "invalid_client" and "iss" in error.description


def test_it_refuses_an_assertion_naming_another_client(practice, practice_key):
    claims = base_claims(client_id="hopital-nord")

    assert refusal(signed(practice_key, claims), practice).error == "invalid_client"


def test_it_refuses_a_disabled_client_without_spending_the_jti(practice, practice_key, jtis):
    practice.enabled = False

    error = refusal(signed(practice_key, base_claims()), practice, jtis)

    assert error.error == "invalid_client" and "disabled" in error.description
    assert jtis.calls == 0


def test_it_refuses_a_jku_header(practice, practice_key):
    assertion = signed(practice_key, base_claims(), jku="https://vendor.example/jwks.json")

    assert "jku" in refusal(assertion, practice).description


def test_it_refuses_a_crit_header(practice, practice_key):
    assertion = signed(practice_key, base_claims(), crit=["b64"], b64=True)

    assert refusal(assertion, practice).error == "invalid_client"


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "a.b", "e30.e30.e30.e30", "!!!.e30.AAAA"])
def test_it_refuses_what_is_not_a_jwt(practice, garbage):
    assert refusal(garbage, practice).error == "invalid_client"


def test_it_refuses_a_client_whose_registered_rsa_key_is_too_small(jtis):
    raw = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        key = RSAKey.import_key(raw, parameters={"kid": "weak"})
        assertion = signed(key, base_claims(), alg="RS384")
    client = ClientRecord("cabinet-dupont", "professional", jwks_of(key), frozenset(), True)

    assert "cannot verify" in refusal(assertion, client).description


def test_it_refuses_a_client_with_no_registered_key(practice, practice_key):
    practice.jwks = {"keys": []}

    assert "no registered key" in refusal(signed(practice_key, base_claims()), practice).description

def test_the_client_id_can_be_read_before_verification_to_find_the_record(practice_key):
    assert unverified_client_id(signed(practice_key, base_claims())) == "cabinet-dupont"
    for bad in ("", "x.y.z", signed(practice_key, base_claims(iss=None))):
        with pytest.raises(TokenError) as caught:
            unverified_client_id(bad)
        assert caught.value.error == "invalid_client"
