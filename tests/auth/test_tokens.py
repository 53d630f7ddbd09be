"""Tests for carnet.auth.tokens: client assertions (SMART Backend Services, RFC 7523), access tokens, scopes.

Personas: the Dupont practice's software (a professional client, acting for Dr Martin), Carnet's patient portal
(acting for Mme Petit, or her mother as legal representative), and a CPAM system (Assurance Maladie).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import warnings

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey

from carnet.auth.tokens import (
    ACT_REASON_SYSTEM,
    CLOCK_SKEW,
    MAX_ASSERTION_LIFETIME,
    AssertionClaims,
    ClientRecord,
    ServerKey,
    TokenError,
    access_token_actor,
    issue_access_token,
    make_client_assertion,
    negotiate_scopes,
    scope_allows,
    unverified_client_id,
    verify_access_token,
    verify_client_assertion,
)

NOW = 1_750_000_000
ISSUER = "https://carnet.example"
TOKEN_ENDPOINT = "https://carnet.example/oauth/token"
DR_MARTIN = "810001045367"  # "8" + RPPS 10001045367
NURSE_ADELI = "0751234567"  # "0" + ADELI
MME_PETIT_INS = "255081416802538"
HER_MOTHER = "rep-4f1c"


class Jtis:
    """An in-memory replay cache: records every jti, says whether it was seen before."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}
        self.calls = 0

    def __call__(self, jti: str, exp: int) -> bool:
        self.calls += 1
        if jti in self.seen:
            return True
        self.seen[jti] = exp
        return False


def ec_key(kid: str = "k1", crv: str = "P-256") -> ECKey:
    return ECKey.generate_key(crv, parameters={"kid": kid}, private=True)


def jwks_of(*keys: ECKey | RSAKey) -> dict:
    return {"keys": [key.as_dict(private=False) for key in keys]}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(key: ECKey | RSAKey, claims: dict, **header: object) -> str:
    """A JWS over ``claims`` with the given header (``alg`` defaults to ES256, ``kid`` to the key's)."""
    full_header = {"alg": "ES256", "kid": key.kid, **header}
    full_header = {name: value for name, value in full_header.items() if value is not None}
    return jws.serialize_compact(full_header, json.dumps(claims).encode(), key, algorithms=[full_header["alg"]])


def base_claims(client_id: str = "cabinet-dupont", **overrides: object) -> dict:
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_ENDPOINT,
        "exp": NOW + 240,
        "iat": NOW,
        "jti": "jti-0001",
        "extensions": {"ihe_iua": {"national_provider_identifier": DR_MARTIN}},
    }
    claims.update(overrides)
    return claims


@pytest.fixture
def practice_key() -> ECKey:
    return ec_key("practice-2025")


@pytest.fixture
def practice(practice_key: ECKey) -> ClientRecord:
    return ClientRecord(client_id="cabinet-dupont", kind="professional", jwks=jwks_of(practice_key),
                        scopes=frozenset({"system/DocumentReference.cruds", "system/Patient.rs", "system/List.rs",
                                          "system/Binary.r"}), enabled=True)


@pytest.fixture
def portal_key() -> ECKey:
    return ec_key("portal-1")


@pytest.fixture
def portal(portal_key: ECKey) -> ClientRecord:
    return ClientRecord(client_id="carnet-portal", kind="patient_portal", jwks=jwks_of(portal_key),
                        scopes=frozenset({"system/*.cruds"}), enabled=True)


@pytest.fixture
def cpam_key() -> ECKey:
    return ec_key("cpam-1")


@pytest.fixture
def cpam(cpam_key: ECKey) -> ClientRecord:
    return ClientRecord(client_id="cpam-75", kind="assurance_maladie", jwks=jwks_of(cpam_key),
                        scopes=frozenset({"system/DocumentReference.c", "system/Patient.rs"}), enabled=True)


@pytest.fixture
def jtis() -> Jtis:
    return Jtis()


@pytest.fixture
def server_key() -> ServerKey:
    return ServerKey.generate()


def refusal(assertion: str, client: ClientRecord, jtis: Jtis | None = None, now: int = NOW) -> TokenError:
    with pytest.raises(TokenError) as caught:
        verify_client_assertion(assertion, client, TOKEN_ENDPOINT, now, jtis or Jtis())
    return caught.value


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


# --------------------------------------------------------------------------------------------------------------------
# Actor claims


def actor_refusal(client: ClientRecord, key: ECKey, **actor: object) -> TokenError:
    return refusal(make_client_assertion(key, client.client_id, TOKEN_ENDPOINT, NOW, **actor), client)


def test_it_refuses_emergency_access_without_a_reason(practice, practice_key):
    for reason in (None, "", "   "):
        error = actor_refusal(practice, practice_key, professional_id=DR_MARTIN, mode="emergency", reason=reason)

        assert error.error == "invalid_request" and "mode_reason" in error.description


def test_it_refuses_an_emergency_reason_longer_than_500_characters(practice, practice_key, jtis):
    long_reason = "Détresse respiratoire " * 30

    error = actor_refusal(practice, practice_key, professional_id=DR_MARTIN, mode="emergency", reason=long_reason)

    assert error.error == "invalid_request"
    assert "Détresse" not in error.description  # never echo what the client wrote
    ok = make_client_assertion(practice_key, "cabinet-dupont", TOKEN_ENDPOINT, NOW, professional_id=DR_MARTIN,
                               mode="emergency", reason="x" * 500)
    assert verify_client_assertion(ok, practice, TOKEN_ENDPOINT, NOW, jtis).reason == "x" * 500


def test_it_refuses_a_reason_in_normal_mode(practice, practice_key):
    error = actor_refusal(practice, practice_key, professional_id=DR_MARTIN, reason="just because")

    assert error.error == "invalid_request"


def test_it_refuses_an_unknown_mode(practice, practice_key):
    error = actor_refusal(practice, practice_key, professional_id=DR_MARTIN, mode="admin")

    assert error.error == "invalid_request" and "mode" in error.description


def test_it_refuses_a_professional_client_that_names_no_professional(practice, practice_key):
    error = actor_refusal(practice, practice_key)

    assert error.error == "invalid_request" and "national_provider_identifier" in error.description


@pytest.mark.parametrize("national_id", ["10001045367", "81000104536", "8100010453671", "9123456789", "0ABC",
                                         "8abcdefghijk"])
def test_it_refuses_a_malformed_professional_id(practice, practice_key, national_id):
    error = actor_refusal(practice, practice_key, professional_id=national_id)

    assert error.error == "invalid_request"
    assert national_id not in error.description


def test_it_refuses_a_professional_client_acting_as_a_patient(practice, practice_key):
    error = actor_refusal(practice, practice_key, professional_id=DR_MARTIN, patient_ins=MME_PETIT_INS)

    assert error.error == "unauthorized_client"


def test_it_refuses_the_patient_portal_claiming_a_professional(portal, portal_key):
    error = actor_refusal(portal, portal_key, patient_ins=MME_PETIT_INS, professional_id=DR_MARTIN)

    assert error.error == "unauthorized_client" and "professional" in error.description


def test_it_refuses_the_patient_portal_breaking_the_glass(portal, portal_key):
    error = actor_refusal(portal, portal_key, patient_ins=MME_PETIT_INS, mode="emergency", reason="curious")

    assert error.error == "unauthorized_client"


def test_it_refuses_the_patient_portal_without_a_patient(portal, portal_key):
    error = actor_refusal(portal, portal_key, representative_id=HER_MOTHER)

    assert error.error == "invalid_request" and "person_id" in error.description


@pytest.mark.parametrize("ins", ["25508141680253", "2550814168025380", "2550X1416802538", "255082a16802538"])
def test_it_refuses_a_malformed_ins(portal, portal_key, ins):
    assert actor_refusal(portal, portal_key, patient_ins=ins).error == "invalid_request"


def test_it_accepts_a_corsican_ins(portal, portal_key, jtis):
    assertion = make_client_assertion(portal_key, "carnet-portal", TOKEN_ENDPOINT, NOW, patient_ins="284052A32102552")

    assert verify_client_assertion(assertion, portal, TOKEN_ENDPOINT, NOW, jtis).patient_ins == "284052A32102552"


def test_it_refuses_assurance_maladie_naming_a_professional(cpam, cpam_key):
    assert actor_refusal(cpam, cpam_key, professional_id=DR_MARTIN).error == "unauthorized_client"


def test_it_refuses_assurance_maladie_naming_a_patient(cpam, cpam_key):
    assert actor_refusal(cpam, cpam_key, patient_ins=MME_PETIT_INS).error == "unauthorized_client"


def test_it_refuses_assurance_maladie_in_emergency_mode(cpam, cpam_key):
    assert actor_refusal(cpam, cpam_key, mode="emergency", reason="x").error == "unauthorized_client"


def test_it_refuses_a_client_of_an_unknown_kind(practice, practice_key):
    practice.kind = "mutuelle"

    assert actor_refusal(practice, practice_key, professional_id=DR_MARTIN).error == "unauthorized_client"


def test_it_refuses_an_emergency_purpose_of_use_in_normal_mode(practice, practice_key):
    claims = base_claims()
    claims["extensions"]["ihe_iua"]["purpose_of_use"] = [{"system": ACT_REASON_SYSTEM, "code": "ETREAT"}]

    error = refusal(signed(practice_key, claims), practice)

    assert error.error == "invalid_request" and "purpose_of_use" in error.description


def test_it_refuses_actor_claims_of_the_wrong_type(practice, practice_key):
    for extensions in ({"ihe_iua": "810001045367"}, {"ihe_iua": {"national_provider_identifier": 810001045367}},
                       {"ihe_iua": {"national_provider_identifier": DR_MARTIN, "purpose_of_use": "TREAT"}},
                       []):
        error = refusal(signed(practice_key, base_claims(extensions=extensions)), practice)
        assert error.error == "invalid_request"


def test_a_refused_actor_does_not_spend_the_jti(practice, practice_key, jtis):
    assertion = make_client_assertion(practice_key, "cabinet-dupont", TOKEN_ENDPOINT, NOW, professional_id=DR_MARTIN,
                                      mode="emergency")
    refusal(assertion, practice, jtis)

    assert jtis.calls == 0


def test_other_iua_claims_are_accepted_and_ignored(practice, practice_key, jtis):
    claims = base_claims()
    claims["extensions"]["ihe_iua"].update({"subject_name": "Dr Martin", "subject_role": [{"code": "10"}],
                                            "purpose_of_use": [{"system": ACT_REASON_SYSTEM, "code": "TREAT"}]})

    assert verify_client_assertion(signed(practice_key, claims), practice, TOKEN_ENDPOINT, NOW, jtis).mode == "normal"


# --------------------------------------------------------------------------------------------------------------------
# Access tokens


@pytest.fixture
def dr_martin_claims() -> AssertionClaims:
    return AssertionClaims(client_id="cabinet-dupont", jti="a", exp=NOW + 100, professional_id=DR_MARTIN,
                           client_kind="professional")


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


# --------------------------------------------------------------------------------------------------------------------
# Scopes

PRACTICE_ALLOWED = frozenset({"system/DocumentReference.cruds", "system/Patient.rs", "system/List.rs",
                              "system/Binary.r", "system/AuditEvent.read", "system/Practitioner.rs"})


@pytest.mark.parametrize(("requested", "allowed", "granted"), [
    ("system/DocumentReference.cruds", PRACTICE_ALLOWED, {"system/DocumentReference.cruds"}),
    ("system/DocumentReference.rs system/Binary.r", PRACTICE_ALLOWED,
     {"system/DocumentReference.rs", "system/Binary.r"}),
    ("system/List.sr", PRACTICE_ALLOWED, {"system/List.rs"}),
    ("system/AuditEvent.rs", PRACTICE_ALLOWED, {"system/AuditEvent.rs"}),
    ("system/Patient.read", PRACTICE_ALLOWED, {"system/Patient.rs"}),
    ("system/DocumentReference.write", PRACTICE_ALLOWED, {"system/DocumentReference.cud"}),
    ("system/DocumentReference.*", PRACTICE_ALLOWED, {"system/DocumentReference.cruds"}),
    ("system/Patient.cruds system/Practitioner.rs", PRACTICE_ALLOWED, {"system/Practitioner.rs"}),
    ("system/*.rs launch openid", PRACTICE_ALLOWED | {"system/*.rs"}, {"system/*.rs"}),
    ("system/Observation.rs", frozenset({"system/*.rs"}), {"system/Observation.rs"}),
    ("system/Patient.r system/Patient.rs", frozenset({"system/*.read"}), {"system/Patient.r", "system/Patient.rs"}),
    ("carnet-admin", frozenset({"carnet-admin"}), {"carnet-admin"}),
])
def test_scope_negotiation_grants_what_the_allowed_scopes_cover(requested, allowed, granted):
    assert negotiate_scopes(requested, allowed) == granted


@pytest.mark.parametrize(("requested", "allowed"), [
    ("system/*.rs", PRACTICE_ALLOWED),  # a wildcard is covered only by a wildcard
    ("system/Patient.cruds", PRACTICE_ALLOWED),  # more letters than allowed
    ("system/Binary.rs", PRACTICE_ALLOWED),
    ("patient/Patient.rs", PRACTICE_ALLOWED),  # another context
    ("user/DocumentReference.rs", frozenset({"system/*.cruds"})),
    ("system/Patient.rs?name=x", PRACTICE_ALLOWED),  # v2 query parameters are not supported
    ("system/Patient.rr", PRACTICE_ALLOWED),
    ("system/Patient.rv", PRACTICE_ALLOWED),
    ("system/patient.rs", PRACTICE_ALLOWED),
    ("openid launch offline_access", PRACTICE_ALLOWED),
    ("", PRACTICE_ALLOWED),
    ("   ", PRACTICE_ALLOWED),
    ("system/Patient.rs", frozenset()),
    ("system/Patient.rs " * 1000, PRACTICE_ALLOWED),
])
def test_scope_negotiation_refuses_when_nothing_is_covered(requested, allowed):
    with pytest.raises(TokenError) as caught:
        negotiate_scopes(requested, allowed)
    assert (caught.value.error, caught.value.http_status) == ("invalid_scope", 400)


@pytest.mark.parametrize(("scopes", "resource_type", "interaction", "allowed"), [
    ({"system/DocumentReference.rs"}, "DocumentReference", "r", True),
    ({"system/DocumentReference.rs"}, "DocumentReference", "s", True),
    ({"system/DocumentReference.rs"}, "DocumentReference", "c", False),
    ({"system/DocumentReference.cud"}, "DocumentReference", "u", True),
    ({"system/DocumentReference.cud"}, "DocumentReference", "r", False),
    ({"system/*.rs"}, "Binary", "r", True),
    ({"system/*.rs"}, "Binary", "d", False),
    ({"system/Patient.rs"}, "DocumentReference", "r", False),
    ({"system/Patient.read"}, "Patient", "s", True),
    ({"openid", "launch"}, "Patient", "r", False),
    (set(), "Patient", "r", False),
])
def test_scope_allows_reads_the_granted_permissions(scopes, resource_type, interaction, allowed):
    assert scope_allows(scopes, resource_type, interaction) is allowed


@pytest.mark.parametrize("interaction", ["read", "", "x", "rs", "v"])
def test_scope_allows_knows_only_the_five_interactions(interaction):
    with pytest.raises(ValueError):
        scope_allows({"system/*.cruds"}, "Patient", interaction)


_scopes = st.builds(
    "{}/{}.{}".format,
    st.sampled_from(["system", "patient"]),
    st.sampled_from(["*", "Patient", "DocumentReference", "Binary"]),
    st.sets(st.sampled_from("cruds"), min_size=1).map(lambda letters: "".join(sorted(letters))),
)


@given(requested=st.lists(_scopes, min_size=1, max_size=6), allowed=st.sets(_scopes, max_size=6))
def test_a_granted_scope_never_permits_more_than_the_allowed_ones(requested, allowed):
    try:
        granted = negotiate_scopes(" ".join(requested), frozenset(allowed))
    except TokenError:
        return
    for scope in granted:
        context, rest = scope.split("/")
        resource_type, letters = rest.split(".")
        same_context = {s for s in allowed if s.startswith(context + "/")}
        for letter in letters:
            assert scope_allows(same_context, resource_type, letter)


# --------------------------------------------------------------------------------------------------------------------
# Errors


def test_a_token_error_becomes_an_oauth_error_body():
    error = TokenError("invalid_client", "this client is disabled")

    assert error.as_response() == {"error": "invalid_client", "error_description": "this client is disabled"}
    assert error.http_status == 401
    assert TokenError("invalid_request", "x").http_status == 400
    assert TokenError("insufficient_scope", "x").http_status == 403


def test_a_token_error_knows_only_oauth_error_codes():
    with pytest.raises(ValueError):
        TokenError("forbidden", "x")


def test_the_client_id_can_be_read_before_verification_to_find_the_record(practice_key):
    assert unverified_client_id(signed(practice_key, base_claims())) == "cabinet-dupont"
    for bad in ("", "x.y.z", signed(practice_key, base_claims(iss=None))):
        with pytest.raises(TokenError) as caught:
            unverified_client_id(bad)
        assert caught.value.error == "invalid_client"
