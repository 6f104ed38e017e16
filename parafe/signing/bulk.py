"""Mass server signature of PDFs ("signer des documents en masse", spec §1.1.1).

Public API
----------
``BulkPdfSigner(signer, *, level="B-B", stamp=None, reason=None, location=None, tsa_url=None,
timestamper=None, validation_context=None)``

- ``.sign_one(pdf_bytes) -> bytes``
- ``.sign_many(items) -> Iterator[BulkResult]`` where each item is the PDF bytes or a ``(key, bytes)`` pair; a
  result carries the key (the item's index for bare bytes), the signed bytes or the error, and whether the fast
  writer was used. One bad document does not stop the batch.

What is reused between documents: the parsed private key (:class:`~parafe.signing.keys.ServerSigner`), the
certificate chain and every constant DER part of the CMS (:class:`~parafe.signing.fastpdf.CmsTemplate`), the
pictogram appearance (rendered and compressed once per distinct text; the text changes at most once a minute),
the image data, and the time-stamp client. B-B and B-T use the fast incremental writer; B-LT/B-LTA and
unusual files (encrypted, hybrid xref, certified) go through :func:`pades.sign_pdf`.

The work is CPU-bound and single-threaded per call; scale out with processes (one ``BulkPdfSigner`` per
worker process).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pyhanko.sign.timestamps import TimeStamper
from pyhanko_certvalidator import ValidationContext

from parafe.signing.errors import PdfSigningError, SigningError
from parafe.signing.fastpdf import FastPathUnsupported, FastPdfSigner
from parafe.signing.keys import ServerSigner
from parafe.signing.pades import sign_pdf
from parafe.signing.stamp import StampSpec
from parafe.signing.tsa import normalize_level, resolve_timestamper

__all__ = ["BulkPdfSigner", "BulkResult"]

log = logging.getLogger(__name__)


@dataclass
class BulkResult:
    """Outcome for one document of a batch."""

    key: Any
    pdf: bytes | None
    error: SigningError | None
    fast_path: bool

    @property
    def ok(self) -> bool:
        return self.error is None


class BulkPdfSigner:
    """Sign many PDFs with one server key and one set of options."""

    def __init__(
        self,
        signer: ServerSigner,
        *,
        level: str = "B-B",
        stamp: StampSpec | None = None,
        reason: str | None = None,
        location: str | None = None,
        tsa_url: str | None = None,
        timestamper: TimeStamper | None = None,
        validation_context: ValidationContext | None = None,
    ) -> None:
        self.signer = signer
        self.level = normalize_level(level)
        self.stamp = stamp
        self.reason = reason
        self.location = location
        self.timestamper = resolve_timestamper(self.level, tsa_url, timestamper)
        self.validation_context = validation_context
        self.fast_count = 0
        self.fallback_count = 0
        self._fast: FastPdfSigner | None = None
        if self.level in ("B-B", "B-T"):
            try:
                self._fast = FastPdfSigner(signer, stamp=stamp, reason=reason, location=location,
                                           timestamper=self.timestamper)
            except FastPathUnsupported:
                self._fast = None

    def sign_one(self, data: bytes, *, when: datetime | None = None) -> bytes:
        """Sign one document (fast writer when possible, pyHanko otherwise)."""
        return self._sign(data, when)[0]

    def _sign(self, data: bytes, when: datetime | None) -> tuple[bytes, bool]:
        if self._fast is not None:
            try:
                out = self._fast.sign(data, when=when)
                self.fast_count += 1
                return out, True
            except FastPathUnsupported:
                pass
            except SigningError:
                raise
            except Exception:  # an unforeseen input: the pyHanko path decides (signs or reports why not)
                log.warning("fast PAdES writer failed, falling back to pyHanko", exc_info=True)
        out = sign_pdf(data, self.signer, level=self.level, stamp=self.stamp, reason=self.reason,
                       location=self.location, timestamper=self.timestamper,
                       validation_context=self.validation_context)
        self.fallback_count += 1
        return out, False

    def sign_many(self, items: Iterable[bytes | tuple[Any, bytes]]) -> Iterator[BulkResult]:
        """Sign each item in turn, yielding one :class:`BulkResult` per item (errors do not stop the batch)."""
        for index, item in enumerate(items):
            key, data = (index, item) if isinstance(item, (bytes, bytearray, memoryview)) else item
            try:
                out, fast = self._sign(bytes(data), None)
            except SigningError as exc:
                yield BulkResult(key, None, exc, False)
                continue
            except Exception as exc:  # never let one document stop the batch
                yield BulkResult(key, None, PdfSigningError(f"Signature impossible : {exc}"), False)
                continue
            yield BulkResult(key, out, None, fast)
