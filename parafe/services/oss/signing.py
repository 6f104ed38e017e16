"""OSS signing: workflow server keys (parsed once per process), pictogram placement (DECISIONS D7), the internal
certification authority of ``uploadSGC`` and its on-the-fly certificates, and the PAdES signature itself.

Everything here goes through the Signature engine (:mod:`parafe.signing`): ``load_signer`` / ``load_pem_signer``
for keys, :class:`~parafe.signing.bulk.BulkPdfSigner` (cached per key, level and pictogram) to sign, and
:class:`~parafe.signing.stamp.StampSpec` for the visible pictogram.

Pictogram placements are kept as plain dicts in PDF points, ``{"x", "y", "page", "width", "height"}``, bottom-left
origin of the page as displayed: ``pictogramme`` (``x,y[,page]`` in centimetres) and the workflow's default
(centimetres) are converted here, ``jsonPictogram`` is already in points.

Internal CA (``$PARAFE_HOME/pki/oss-ca/``): created on first use, as a subordinate of the home's dev CA when its
key is there (so on-the-fly certificates chain to the CA the server already trusts), else as a self-signed root.
An operator replaces ``ca.pem`` / ``ca.key`` (and ``chain.pem``) by their own issuing CA.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from parafe.context import AppContext
from parafe.domain.errors import E, ParafeError
from parafe.security import pki
from parafe.signing.bulk import BulkPdfSigner
from parafe.signing.errors import KeyLoadError, PdfProtectedError, SigningError
from parafe.signing.keys import ServerSigner, load_pem_signer, load_signer
from parafe.signing.stamp import CM, StampSpec

OSS_CA_DIR = "oss-ca"
OSS_CA_NAME = "Parafe AC de signature à la volée"
CHAIN_FILE = "chain.pem"

# Default pictogram of a workflow, centimetres from the bottom-left corner of the last page.
DEFAULT_PICTOGRAM_CM: dict[str, float] = {"x": 12.0, "y": 1.5, "page": -1, "width": 7.5, "height": 2.8}
MAX_COORDINATE_POINTS = 14_400.0  # the PDF user-space limit of a page side (200 inches)

_lock = threading.Lock()
RECHECK_SECONDS = 2.0


@dataclass
class _CachedSigner:
    signer: ServerSigner
    mtime: float
    checked: float


_signers: dict[tuple[str, str, str], _CachedSigner] = {}
_bulk: OrderedDict[tuple[Any, ...], BulkPdfSigner] = OrderedDict()
_BULK_CACHE = 256
_ca_cache: dict[str, tuple[float, pki.CertAndKey, tuple[x509.Certificate, ...]]] = {}


# --- workflow keys ----------------------------------------------------------------------------------------------
def key_path(ctx: AppContext, certificate_p12: str | None) -> Path:
    """The PKCS#12 file of a workflow: absolute, or relative to ``$PARAFE_HOME``."""
    if not certificate_p12:
        raise ParafeError(E.OSS_SIGNATURE_FAILED, reason="aucun certificat serveur n'est configuré pour ce workflow")
    path = Path(certificate_p12)
    return path if path.is_absolute() else ctx.settings.resolved_home / path


def workflow_signer(ctx: AppContext, certificate_p12: str | None, password: str | None) -> ServerSigner:
    """The server key of a workflow, parsed once per process (reloaded when the file changes; the file is looked
    at most every ``RECHECK_SECONDS``)."""
    now = time.monotonic()
    cache_key = (str(ctx.settings.home), certificate_p12 or "", password or "")
    with _lock:
        hit = _signers.get(cache_key)
    if hit is not None and now - hit.checked < RECHECK_SECONDS:
        return hit.signer
    path = key_path(ctx, certificate_p12)
    try:
        mtime = path.stat().st_mtime
    except OSError:
        raise ParafeError(E.OSS_SIGNATURE_FAILED, reason="le certificat serveur du workflow est introuvable",
                          detail=str(path)) from None
    if hit is not None and hit.mtime == mtime:
        hit.checked = now
        return hit.signer
    try:
        signer = load_signer(path, password)
    except KeyLoadError as exc:
        raise ParafeError(E.OSS_SIGNATURE_FAILED, reason="le certificat serveur du workflow est illisible",
                          detail=str(exc)) from exc
    with _lock:
        _signers[cache_key] = _CachedSigner(signer, mtime, now)
    return signer


# --- pictograms -------------------------------------------------------------------------------------------------
def _placement(x: float, y: float, page: int, width: float, height: float) -> dict[str, Any]:
    if page == 0:
        raise ParafeError(E.OSS_PICTOGRAM_INVALID, reason="les pages sont numérotées à partir de 1")
    if not (0 <= x <= MAX_COORDINATE_POINTS and 0 <= y <= MAX_COORDINATE_POINTS):
        raise ParafeError(E.OSS_PICTOGRAM_INVALID, reason="coordonnées négatives ou hors de la page")
    if not (1 <= width <= MAX_COORDINATE_POINTS and 1 <= height <= MAX_COORDINATE_POINTS):
        raise ParafeError(E.OSS_PICTOGRAM_INVALID, reason="largeur ou hauteur invalide")
    return {"x": round(x, 3), "y": round(y, 3), "page": page, "width": round(width, 3), "height": round(height, 3)}


def workflow_placement(pictogram_cm: Mapping[str, Any] | None) -> dict[str, Any]:
    """A workflow's default placement (its ``pictogram`` setting, in centimetres) in points."""
    cfg = {**DEFAULT_PICTOGRAM_CM, **(pictogram_cm or {})}
    try:
        return _placement(float(cfg["x"]) * CM, float(cfg["y"]) * CM, int(cfg["page"]),
                          float(cfg["width"]) * CM, float(cfg["height"]) * CM)
    except (TypeError, ValueError):
        raise ParafeError(E.OSS_PICTOGRAM_INVALID, reason="pictogramme du workflow mal configuré") from None


def parse_pictogramme(value: str, default: Mapping[str, Any]) -> dict[str, Any]:
    """``pictogramme`` = ``x,y[,page]`` in centimetres from the bottom-left corner (D7); the size is the
    workflow's. A page is required to exist when the document is signed."""
    text = value.strip()
    parts = [p.strip() for p in text.replace(";", ",").split(",")]
    if len(parts) not in (2, 3) or not all(parts):
        raise ParafeError(E.OSS_PICTOGRAM_INVALID, reason=f"« {text[:60]} » (attendu x,y[,page] en centimètres)")
    try:
        spec = StampSpec.parse_pictogramme(text, width=float(default["width"]), height=float(default["height"]))
    except SigningError as exc:
        raise ParafeError(E.OSS_PICTOGRAM_INVALID, reason=f"« {text[:60]} » (attendu x,y[,page] en centimètres)",
                          detail=str(exc)) from None
    page = spec.page if len(parts) == 3 else int(default["page"])
    return _placement(spec.x, spec.y, page, spec.width, spec.height)


def parse_json_pictogram(value: str | bytes, default: Mapping[str, Any]) -> dict[str, Any]:
    """``jsonPictogram`` = ``{"x", "y", "width", "height", "page"}`` in PDF points, origin bottom-left (D7)."""
    try:
        obj = json.loads(value)
        if not isinstance(obj, dict):
            raise ValueError("not an object")
        merged = {"width": default["width"], "height": default["height"], "page": default["page"], **obj}
        spec = StampSpec.from_json_pictogram(merged)
    except (ValueError, SigningError) as exc:
        raise ParafeError(E.OSS_PICTOGRAM_INVALID, reason="JSON attendu {\"x\", \"y\", \"width\", \"height\", "
                                                          "\"page\"} en points", detail=str(exc)) from None
    return _placement(spec.x, spec.y, spec.page, spec.width, spec.height)


def stamp_for(placement: Mapping[str, Any], *, signer_name: str | None = None, quality: str | None = None,
              extra_lines: Sequence[str] = ()) -> StampSpec:
    return StampSpec(x=float(placement["x"]), y=float(placement["y"]), page=int(placement["page"]),
                     width=float(placement["width"]), height=float(placement["height"]), signer_name=signer_name,
                     quality=quality, extra_lines=tuple(extra_lines))


# --- signing ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SignOptions:
    level: str = "B-B"
    reason: str | None = None
    location: str | None = None
    tsa_url: str | None = None


def _bulk_signer(signer: ServerSigner, stamp: StampSpec, options: SignOptions, *, cache: bool) -> BulkPdfSigner:
    key = (id(signer), stamp, options)
    if cache:
        with _lock:
            bulk = _bulk.get(key)
            if bulk is not None and bulk.signer is signer:
                _bulk.move_to_end(key)
                return bulk
    bulk = BulkPdfSigner(signer, level=options.level, stamp=stamp, reason=options.reason,
                         location=options.location, tsa_url=options.tsa_url)
    if cache:
        with _lock:
            _bulk[key] = bulk
            while len(_bulk) > _BULK_CACHE:
                _bulk.popitem(last=False)
    return bulk


def sign_pdf(signer: ServerSigner, data: bytes, stamp: StampSpec, options: SignOptions, *,
             cache: bool = True) -> bytes:
    """Sign one PDF (PAdES, visible pictogram); engine errors become catalogue errors."""
    try:
        return _bulk_signer(signer, stamp, options, cache=cache).sign_one(data)
    except PdfProtectedError as exc:
        raise ParafeError(E.PDF_PROTECTED, detail=str(exc)) from exc
    except SigningError as exc:
        text = str(exc).rstrip(". ")
        if "page" in text.lower() and "n'existe pas" in text:
            raise ParafeError(E.OSS_PICTOGRAM_INVALID, reason=text[:1].lower() + text[1:], detail=str(exc)) from exc
        raise ParafeError(E.OSS_SIGNATURE_FAILED, reason=text[:200], detail=str(exc)) from exc
    except ValueError as exc:  # an unknown level in the workflow's configuration
        raise ParafeError(E.OSS_SIGNATURE_FAILED, reason="type de signature du workflow invalide",
                          detail=str(exc)) from exc


# --- internal CA and on-the-fly certificates (uploadSGC) -------------------------------------------------------
def ca_dir(ctx: AppContext) -> Path:
    return ctx.settings.pki_dir / OSS_CA_DIR


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def ensure_internal_ca(ctx: AppContext) -> Path:
    """Create the internal CA when missing (idempotent, safe across processes); returns its directory."""
    directory = ca_dir(ctx)
    if (directory / pki.CA_CERT).exists() and (directory / pki.CA_KEY).exists():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if (directory / pki.CA_CERT).exists() and (directory / pki.CA_KEY).exists():
            return directory
        root_dir = ctx.settings.pki_dir
        if (root_dir / pki.CA_CERT).exists() and (root_dir / pki.CA_KEY).exists():
            root = pki.load_ca(root_dir, trusted=True)
            ca = pki.issue_intermediate_ca(root, OSS_CA_NAME, days=1825, path_length=0)
            chain = root.cert_pem()
        else:
            ca = pki.create_ca(OSS_CA_NAME, days=3650)
            chain = b""
        _write_private(directory / pki.CA_KEY, ca.key_pem())
        (directory / CHAIN_FILE).write_bytes(chain)
        # the certificate last and atomically: processes that do not take the lock test its presence
        tmp = directory / f".{pki.CA_CERT}.tmp"
        tmp.write_bytes(ca.cert_pem())
        os.replace(tmp, directory / pki.CA_CERT)
    return directory


def internal_ca(ctx: AppContext) -> tuple[pki.CertAndKey, tuple[x509.Certificate, ...]]:
    """The internal CA (certificate + key) and the certificates above it (empty for a root), cached."""
    directory = ensure_internal_ca(ctx)
    mtime = (directory / pki.CA_CERT).stat().st_mtime
    with _lock:
        hit = _ca_cache.get(str(directory))
    if hit is not None and hit[0] == mtime:
        return hit[1], hit[2]
    ca = pki.load_ca(directory, trusted=True)
    chain_path = directory / CHAIN_FILE
    above = tuple(x509.load_pem_x509_certificates(chain_path.read_bytes())) if (
        chain_path.exists() and chain_path.stat().st_size) else ()
    with _lock:
        _ca_cache[str(directory)] = (mtime, ca, above)
    return ca, above


def issue_signer(ctx: AppContext, firstname: str, lastname: str, email: str, *, days: int = 30,
                 organization: str | None = None) -> ServerSigner:
    """A key and a certificate in the signer's name (CN « Prénom NOM », e-mail), issued now by the internal CA.

    The private key only lives in memory, for the documents of one signature.
    """
    ca, above = internal_ca(ctx)
    full_name = f"{firstname.strip()} {lastname.strip()}".strip()
    try:
        leaf = pki.issue_user_cert(ca, email.strip(), full_name, days=max(int(days), 1), organization=organization)
    except ValueError as exc:
        raise ParafeError(E.OSS_SIGNER_MISSING, reason="nom ou courriel du signataire invalide",
                          detail=str(exc)) from exc
    chain_pem = [ca.cert_pem(), *(c.public_bytes(serialization.Encoding.PEM) for c in above)]
    return load_pem_signer(leaf.cert_pem(), leaf.key_pem(), chain_pem)


def certificate_pem(signer: ServerSigner) -> str:
    return signer.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
