"""The wire format against the specification's own test vectors (../shared/examples/shl, SOURCES.md) and an
independent decoder (tests/sharing/decoder.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carnet.sharing import payload
from tests.sharing.decoder import decrypt_jwe, parse_shlink

SHL = Path(__file__).resolve().parents[3] / "shared" / "examples" / "shl"
KEY = "rxTgYlOaKJPFtcEd0qcceN8wEU4p94SqAwIWQe6uX7Q"
# links-specification.md, "Example SMART Health Link Generation": the JSON in that order, and its base64url
SPEC_JSON = {"url": "https://ehr.example.org/qr/Y9xwkUdtmN9wwoJoN3ffJIhX2UGvCL1JnlPVNL3kDWM/m", "flag": "LP",
             "key": KEY, "label": "Back-to-school immunizations for Oliver Brown"}
SPEC_ENCODED = ("eyJ1cmwiOiJodHRwczovL2Voci5leGFtcGxlLm9yZy9xci9ZOXh3a1VkdG1OOXd3b0pvTjNmZkpJaFgyVUd2Q0wxSm5sUFZOTDNr"
                "RFdNL20iLCJmbGFnIjoiTFAiLCJrZXkiOiJyeFRnWWxPYUtKUEZ0Y0VkMHFjY2VOOHdFVTRwOTRTcUF3SVdRZTZ1WDdRIiwibGFiZWwi"
                "OiJCYWNrLXRvLXNjaG9vbCBpbW11bml6YXRpb25zIGZvciBPbGl2ZXIgQnJvd24ifQ")

pytestmark = pytest.mark.skipif(not SHL.is_dir(), reason="the shared SMART Health Links examples are not here")


def test_the_published_link_decodes_to_its_published_payload() -> None:
    details = json.loads((SHL / "IPS_IG-bundle-01-shl-details.json").read_text())["shlinkJsonPayload"]
    p = payload.decode((SHL / "IPS_IG-bundle-01-shl.txt").read_text())
    assert (p.url, payload.b64url(p.key), p.flag, p.label) == (details["url"], details["key"], details["flag"],
                                                               details["label"])


def test_the_published_jwe_decrypts_byte_for_byte_to_the_published_ips() -> None:
    p = payload.decode((SHL / "IPS_IG-bundle-01-shl.txt").read_text())
    header, plaintext = payload.decrypt(p.key, (SHL / "IPS_IG-bundle-01-enc.txt").read_text())
    assert plaintext == (SHL / "IPS_IG-bundle-01.json").read_bytes()
    assert header["alg"] == "dir" and header["enc"] == "A256GCM"


def test_the_specifications_example_payload_is_the_base64url_of_its_minified_json() -> None:
    minified = json.dumps(SPEC_JSON, separators=(",", ":")).encode()
    assert payload.b64url(minified) == SPEC_ENCODED
    p = payload.decode("https://viewer.example.org#shlink:/" + SPEC_ENCODED)
    assert (p.flag, p.label, payload.b64url(p.key)) == ("LP", SPEC_JSON["label"], KEY)


def test_a_link_carnet_encodes_is_read_by_the_independent_decoder() -> None:
    key = payload.new_key()
    link = payload.encode(payload.Payload(url="https://carnet.example/shl/" + payload.new_link_id(), key=key,
                                          exp=1767225600, flag="LP", label="Résumé d'urgence"),
                          viewer="https://carnet.example/shl/view")
    assert link.startswith("https://carnet.example/shl/view#shlink:/")
    data = parse_shlink(link)
    assert data["key"] == payload.b64url(key) and len(data["key"]) == 43
    assert data["flag"] == "LP" and data["exp"] == 1767225600 and data["label"] == "Résumé d'urgence"
    assert data["v"] == 1 and len(data["url"]) <= 128


def test_a_file_carnet_encrypts_is_opened_by_the_independent_decoder_with_its_content_type() -> None:
    key = payload.new_key()
    first = payload.encrypt(key, b'{"resourceType":"Bundle"}', "application/fhir+json")
    second = payload.encrypt(key, b'{"resourceType":"Bundle"}', "application/fhir+json")
    header, plaintext = decrypt_jwe(first, payload.b64url(key))
    assert header == {"alg": "dir", "enc": "A256GCM", "cty": "application/fhir+json"}
    assert plaintext == b'{"resourceType":"Bundle"}'
    assert first.split(".")[2] != second.split(".")[2]  # a fresh nonce for every encryption


def test_the_independent_decoder_agrees_on_the_published_vector() -> None:
    _, plaintext = decrypt_jwe((SHL / "IPS_IG-bundle-01-enc.txt").read_text(), KEY)
    assert plaintext == (SHL / "IPS_IG-bundle-01.json").read_bytes()


def test_a_file_under_another_key_or_tampered_is_refused() -> None:
    key = payload.new_key()
    token = payload.encrypt(key, b"secret", "application/fhir+json")
    with pytest.raises(payload.PayloadError):
        payload.decrypt(payload.new_key(), token)
    parts = token.split(".")
    parts[3] = ("A" if parts[3][0] != "A" else "B") + parts[3][1:]
    with pytest.raises(payload.PayloadError):
        payload.decrypt(key, ".".join(parts))


@pytest.mark.parametrize(("field", "value"), [
    ("flag", "PU"), ("flag", "PL"), ("flag", "X"), ("label", "x" * 81), ("key", "short"), ("url", ""),
    ("exp", "1767225600")])
def test_a_payload_against_the_specification_is_refused_naming_its_field(field: str, value: object) -> None:
    data = {"url": "https://carnet.example/shl/x", "key": KEY, field: value}
    text = "shlink:/" + payload.b64url(json.dumps(data).encode())
    with pytest.raises(payload.PayloadError, match=field):
        payload.decode(text)


def test_ids_and_keys_carry_256_random_bits() -> None:
    assert len(payload.new_link_id()) == 43 and len(payload.new_key()) == 32
    assert len({payload.new_link_id() for _ in range(100)}) == 100


def test_jwcrypto_an_independent_jose_library_reads_carnets_files_and_carnet_reads_its() -> None:
    from jwcrypto import jwe, jwk

    raw = payload.new_key()
    key = jwk.JWK(kty="oct", k=payload.b64url(raw))
    token = jwe.JWE()
    token.deserialize(payload.encrypt(raw, b'{"resourceType":"Bundle"}', "application/fhir+json"), key=key)
    assert token.payload == b'{"resourceType":"Bundle"}'
    assert token.jose_header == {"alg": "dir", "enc": "A256GCM", "cty": "application/fhir+json"}
    theirs = jwe.JWE(b'{"resourceType":"Patient"}', protected={"alg": "dir", "enc": "A256GCM",
                                                                   "cty": "application/fhir+json"})
    theirs.add_recipient(key)
    header, plaintext = payload.decrypt(raw, theirs.serialize(compact=True))
    assert plaintext == b'{"resourceType":"Patient"}' and header["cty"] == "application/fhir+json"
