"""Parafe's signature engine: PAdES, PES XAdES-EPES, detached XAdES, verification, keys, remote and bulk signing.

Imports nothing from the web framework or the database. The public API is re-exported here lazily (importing
``parafe.signing`` stays cheap; pyHanko and lxml load on first use):

- keys: ``load_signer``, ``load_pem_signer``, ``load_pkcs11_signer``, ``ServerSigner``;
- PDF: ``sign_pdf``, ``StampSpec``, ``BulkPdfSigner``, ``verify_pdf``;
- PES: ``sign_pes``, ``verify_pes``; office documents: ``sign_xades_detached``, ``verify_xades_detached``;
- remote signing: module :mod:`parafe.signing.remote` (``prepare_pdf``/``finish_pdf``, ``prepare_xades``/
  ``finish_xades``, ``prepare_pes``/``finish_pes``);
- errors: ``SigningError`` and its subclasses (:mod:`parafe.signing.errors`).

See ``docs/signing.md``.
"""

from __future__ import annotations

import importlib
from typing import Any

from parafe.signing.errors import (
    KeyLoadError,
    PdfProtectedError,
    PdfSigningError,
    PesAlreadySignedError,
    PesInfoDematerialiseeError,
    PesStructureError,
    RemoteSigningError,
    SigningError,
    TimestampError,
    VerificationInputError,
    XmlSigningError,
)

_LAZY = {
    "ServerSigner": "parafe.signing.keys",
    "load_signer": "parafe.signing.keys",
    "load_pem_signer": "parafe.signing.keys",
    "load_pkcs11_signer": "parafe.signing.keys",
    "sign_pdf": "parafe.signing.pades",
    "StampSpec": "parafe.signing.stamp",
    "BulkPdfSigner": "parafe.signing.bulk",
    "verify_pdf": "parafe.signing.verify",
    "verify_pes": "parafe.signing.pes_verify",
    "sign_pes": "parafe.signing.pes",
    "sign_xades_detached": "parafe.signing.xades",
    "verify_xades_detached": "parafe.signing.xades",
    "make_validation_context": "parafe.signing.trust",
}

__all__ = [
    "KeyLoadError",
    "PdfProtectedError",
    "PdfSigningError",
    "PesAlreadySignedError",
    "PesInfoDematerialiseeError",
    "PesStructureError",
    "RemoteSigningError",
    "SigningError",
    "TimestampError",
    "VerificationInputError",
    "XmlSigningError",
    *sorted(_LAZY),
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'parafe.signing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
