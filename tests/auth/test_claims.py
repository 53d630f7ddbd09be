"""Tests for carnet.auth.claims: which actor each kind of client may name, read from its client assertion."""

from __future__ import annotations

import pytest
from joserfc.jwk import ECKey

from carnet.auth.assertions import ClientRecord, make_client_assertion, verify_client_assertion
from carnet.auth.claims import ACT_REASON_SYSTEM
from carnet.auth.errors import TokenError
from tests.auth.helpers import DR_MARTIN, HER_MOTHER, MME_PETIT_INS, NOW, TOKEN_ENDPOINT, base_claims, refusal, signed

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
