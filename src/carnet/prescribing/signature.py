"""PAdES signatures of prescription PDFs, with pyHanko: :func:`sign` (PAdES B-B: a CMS signature with the signing
certificate's hash among the signed attributes, ETSI EN 319 142-1) and :func:`verify`, pyHanko's validation API
with only the trust roots of :func:`carnet.prescribing.keys.trust_roots`: independent of how Carnet signed."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from carnet.errors import FhirError
from carnet.prescribing.keys import SigningKey

FIELD = "Prescripteur"
T = TypeVar("T")
# pyHanko logs a failed check with its traceback and the certificate's subject: the Verdict says what matters, and
# Carnet's logs stay free of names (docs/OPERATIONS.md, "Logs")
for _name in ("pyhanko", "pyhanko_certvalidator"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)


def _run(make: Callable[[], Awaitable[T]]) -> T:
    """Run pyHanko's async API to its end. Its sync wrappers call ``asyncio.run``, which fails in a thread that already
    runs an event loop (a caller inside one): there, run it in a thread of its own."""
    async def main() -> T:
        return await make()
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


def _signer(key: SigningKey) -> signers.SimpleSigner:
    signer: signers.SimpleSigner | None
    if key.pkcs12 is not None:
        signer = signers.SimpleSigner.load_pkcs12(str(key.pkcs12), passphrase=key.passphrase)
    else:
        signer = signers.SimpleSigner.load(str(key.key), str(key.cert), ca_chain_files=[str(p) for p in key.chain])
    if signer is None:
        raise FhirError(422, "business-rule", "The prescriber's signing key could not be loaded.", "requester")
    return signer


def sign(pdf: bytes, key: SigningKey, reason: str) -> bytes:
    """The PDF with one approval signature (``/SubFilter /ETSI.CAdES.detached``), made with ``key``."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    meta = signers.PdfSignatureMetadata(field_name=FIELD, subfilter=fields.SigSeedSubFilter.PADES,
                                        md_algorithm="sha256", reason=reason, location="France")
    signer = _signer(key)
    out = _run(lambda: signers.async_sign_pdf(writer, meta, signer=signer))
    return out.getvalue()


@dataclass(frozen=True)
class Verdict:
    intact: bool  # the signed bytes are unchanged
    valid: bool  # the cryptographic signature holds
    trusted: bool  # the certificate chains to a trusted root
    covers_whole_file: bool  # nothing was added after the signature
    signer: str | None  # the signing certificate's subject

    @property
    def ok(self) -> bool:
        return self.intact and self.valid and self.trusted and self.covers_whole_file


def verify(pdf: bytes, roots: list[x509.Certificate]) -> Verdict:
    """Check the PDF's (first) signature; a PDF with no signature, or one pyHanko cannot read, is not ok."""
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        sigs = reader.embedded_signatures
        if not sigs:
            return Verdict(False, False, False, False, None)
        vc = ValidationContext(trust_roots=[asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))
                                            for c in roots], allow_fetching=False)
        status = _run(lambda: async_validate_pdf_signature(sigs[0], vc))
    except Exception:  # noqa: BLE001 - any damage that stops the reader is a failed check, never a crash
        return Verdict(False, False, False, False, None)
    coverage = getattr(status, "coverage", None)
    whole = coverage is not None and coverage.name == "ENTIRE_FILE"
    return Verdict(bool(status.intact), bool(status.valid), bool(status.trusted), whole,
                   status.signing_cert.subject.human_friendly if status.signing_cert else None)
