"""What the tests of carnet.auth share: the personas' identifiers, an in-memory jti cache, JWS building helpers.

Personas: the Dupont practice's software (a professional client, acting for Dr Martin), Carnet's patient portal
(acting for Mme Petit, or her mother as legal representative), and a CPAM system (Assurance Maladie). Their client
records and keys are fixtures (``conftest.py``).
"""

from __future__ import annotations

import base64
import json

import pytest
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey

from carnet.auth.assertions import ClientRecord, verify_client_assertion
from carnet.auth.errors import TokenError

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


def refusal(assertion: str, client: ClientRecord, jtis: Jtis | None = None, now: int = NOW) -> TokenError:
    with pytest.raises(TokenError) as caught:
        verify_client_assertion(assertion, client, TOKEN_ENDPOINT, now, jtis or Jtis())
    return caught.value
