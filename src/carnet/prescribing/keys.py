"""The prescribers' signing keys (docs/PRESCRIPTIONS.md, "Signing keys").

``CARNET_PRESCRIBER_KEYS`` chooses where they come from:

- ``demo`` (the embedded default): a demo certification authority and, per prescriber, an EC P-256 key and a
  certificate it issues (subject: the prescriber's name, ``serialNumber`` their national id), made on first use in
  ``var/prescriber-keys/`` (keys mode 0600; never in the database, like the master key). A demo signature proves the
  document was not changed and which demo key signed it, nothing more.
- a directory: the operator puts there one PKCS#12 file per prescriber, ``<national id>.p12`` (key, certificate and
  its chain, e.g. exported from an IGC-Santé certificate), protected by the passphrase in
  ``CARNET_PRESCRIBER_KEYS_PASSPHRASE_FILE``. A prescriber with no file cannot sign: writing fails closed (422).

``CARNET_PRESCRIBER_TRUST`` (a PEM file of CA certificates) is what validation trusts; by default the demo CA in
demo mode, and nothing (so no signature is "trusted") with a directory and no trust file.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from carnet.config import Settings
from carnet.errors import FhirError

DEMO = "demo"
CA_NAME = "Carnet demo prescriber CA (not a real authority)"


@dataclass(frozen=True)
class SigningKey:
    """Files pyHanko loads: a PKCS#12, or a PEM key + certificate + chain."""

    pkcs12: Path | None = None
    passphrase: bytes | None = None
    key: Path | None = None
    cert: Path | None = None
    chain: tuple[Path, ...] = ()


def keys_dir(settings: Settings) -> Path:
    return settings.var_dir / "prescriber-keys"


def _write_once(path: Path, data: bytes, mode: int) -> None:
    """Write ``path`` atomically unless it exists (two processes making the same demo key: the first one wins)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _demo_ca(folder: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key_path, cert_path = folder / "demo-ca.key.pem", folder / "demo-ca.pem"
    if not cert_path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Carnet demo")])
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False, key_agreement=False,
                                             key_cert_sign=True, crl_sign=True, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        _write_once(key_path, _key_pem(key), 0o600)
        _write_once(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    loaded = serialization.load_pem_private_key(key_path.read_bytes(), None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path}: not the EC key Carnet makes")
    return loaded, x509.load_pem_x509_certificate(cert_path.read_bytes())


def _demo_key(settings: Settings, national_id: str, name: str) -> SigningKey:
    folder = keys_dir(settings)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_path, cert_path = folder / f"{national_id}.key.pem", folder / f"{national_id}.pem"
    ca_key, ca_cert = _demo_ca(folder)
    if not cert_path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name or national_id),
                             x509.NameAttribute(NameOID.SERIAL_NUMBER, national_id),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Carnet demo")])
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1095))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True,
                                             key_encipherment=False, data_encipherment=False, key_agreement=False,
                                             key_cert_sign=False, crl_sign=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        _write_once(key_path, _key_pem(key), 0o600)
        _write_once(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return SigningKey(key=key_path, cert=cert_path, chain=(folder / "demo-ca.pem",))


def signing_key(settings: Settings, national_id: str, name: str) -> SigningKey:
    """The prescriber's key, or 422 if this deployment holds none for them."""
    source = settings.prescriber_keys
    if source == DEMO:
        return _demo_key(settings, national_id, name)
    path = Path(source) / f"{national_id}.p12"
    if not national_id.isdigit() or not path.is_file():
        raise FhirError(422, "business-rule", "No signing key is configured for this prescriber: the operator "
                        "must install their certificate before they can sign prescriptions.", "requester")
    passphrase = None
    if settings.prescriber_keys_passphrase_file:
        passphrase = Path(settings.prescriber_keys_passphrase_file).read_bytes().strip()
    return SigningKey(pkcs12=path, passphrase=passphrase)


def trust_roots(settings: Settings) -> list[x509.Certificate]:
    """The CA certificates validation trusts (``CARNET_PRESCRIBER_TRUST``, or the demo CA in demo mode)."""
    if settings.prescriber_trust:
        return x509.load_pem_x509_certificates(Path(settings.prescriber_trust).read_bytes())
    if settings.prescriber_keys == DEMO:
        folder = keys_dir(settings)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return [_demo_ca(folder)[1]]
    return []
