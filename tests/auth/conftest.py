"""Fixtures of the carnet.auth tests: the personas' client records and keys, a fresh jti cache, a server key."""

from __future__ import annotations

import pytest
from joserfc.jwk import ECKey

from carnet.auth.assertions import ClientRecord
from carnet.auth.claims import AssertionClaims
from carnet.auth.keys import ServerKey
from tests.auth.helpers import DR_MARTIN, NOW, Jtis, ec_key, jwks_of


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


@pytest.fixture
def dr_martin_claims() -> AssertionClaims:
    return AssertionClaims(client_id="cabinet-dupont", jti="a", exp=NOW + 100, professional_id=DR_MARTIN,
                           client_kind="professional")
