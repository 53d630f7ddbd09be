"""Tests for carnet.auth.scopes: SMART scopes negotiated and checked."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carnet.auth.errors import TokenError
from carnet.auth.scopes import negotiate_scopes, scope_allows

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
