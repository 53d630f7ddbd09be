"""The prescription PDF's signature (issue 12 §2) checked by pyHanko's validation API with only the trust roots:
valid and trusted as filed; one changed byte breaks it; an unknown CA is not trusted; a PKCS#12 key the operator
configures signs too, and a prescriber without one cannot sign (fail closed)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from carnet import prescribing
from carnet.config import Settings
from carnet.context import run
from carnet.documents import service as documents
from carnet.errors import FhirError
from carnet.prescribing import keys, signature
from tests.conftest import World
from tests.prescribing.helpers import write
from tests.tasks.helpers import patient


def _filed_pdf(world: World, services=None) -> bytes:  # type: ignore[no-untyped-def]
    written = write(world, services=services)
    data, _, _ = run(world.services, patient(world), lambda ctx: documents.retrieve(ctx, str(written.document_id)))
    return bytes(data)


def test_the_filed_pdf_verifies_and_any_changed_byte_fails(world: World) -> None:
    pdf = _filed_pdf(world)
    assert prescribing.verify_pdf(world.services.settings, pdf).ok
    at = pdf.find(b"ORDONNANCE")
    for where in (at if at > 0 else len(pdf) // 3, len(pdf) // 2):  # in the page content, and in the middle
        changed = bytearray(pdf)
        changed[where] ^= 0x01
        assert not prescribing.verify_pdf(world.services.settings, bytes(changed)).ok
    appended = pdf + b"\n% added after signing\n"
    assert not prescribing.verify_pdf(world.services.settings, appended).ok


def test_a_signature_is_not_trusted_without_its_ca(world: World) -> None:
    verdict = signature.verify(_filed_pdf(world), [])
    assert verdict.intact and verdict.valid and not verdict.trusted and not verdict.ok


def _pkcs12(folder: Path, national_id: str, passphrase: bytes) -> Path:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test operator CA")])
    now = dt.datetime.now(dt.UTC)
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Dr Test")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(ca_key, hashes.SHA256()))
    path = folder / f"{national_id}.p12"
    path.write_bytes(pkcs12.serialize_key_and_certificates(b"dr", key, cert, [ca],
                                                           serialization.BestAvailableEncryption(passphrase)))
    (folder / "trust.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return path


def test_an_operator_configured_pkcs12_key_signs_and_a_prescriber_without_one_cannot(world: World,
                                                                                      tmp_path: Path) -> None:
    _pkcs12(tmp_path, world.pros["gp"], b"s3cret")
    (tmp_path / "pass").write_bytes(b"s3cret\n")
    settings = dataclasses.replace(world.services.settings, prescriber_keys=str(tmp_path),
                                   prescriber_keys_passphrase_file=str(tmp_path / "pass"),
                                   prescriber_trust=str(tmp_path / "trust.pem"))
    configured = dataclasses.replace(world.services, settings=settings)
    pdf = _filed_pdf(world, configured)
    assert prescribing.verify_pdf(settings, pdf).ok
    assert not prescribing.verify_pdf(world.services.settings, pdf).trusted  # the demo CA did not issue it
    (tmp_path / f"{world.pros['gp']}.p12").unlink()
    with pytest.raises(FhirError) as refused:
        write(world, services=configured)
    assert refused.value.status == 422 and "signing key" in str(refused.value)


def test_demo_keys_live_outside_the_database_with_private_modes(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path)
    key = keys.signing_key(settings, "810000000015", "Dr Demo")
    assert key.key is not None and key.key.parent == tmp_path / "prescriber-keys"
    assert key.key.stat().st_mode & 0o777 == 0o600
    assert keys.signing_key(settings, "810000000015", "Dr Demo") == key  # made once, then reused
