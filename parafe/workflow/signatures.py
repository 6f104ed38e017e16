"""The workflow's use of the Signature engine (:mod:`parafe.signing`): the server key and what is signed with it.

- :func:`server_signer` — the server signing key: ``PARAFE_SERVER_SIGNING_P12`` (password
  ``PARAFE_SERVER_SIGNING_PASSWORD``), else ``$PARAFE_HOME/pki/server-signing.p12``, issued from the dev CA of
  the home when missing (development homes);
- :func:`server_sign_pdf` — PAdES with a visible pictogram (server signature step, OTP signature), placed where
  the deposit's pictograms say (:func:`deposit_pictogram`) or bottom-right of the last page;
- :func:`sign_with` — a person's own key (portal / tools), PDF, PES or detached XAdES by document kind;
- :func:`verify_new_pdf_signature` / :func:`verify_pes_signature` — checks before a signature is accepted.

PES and detached-XAdES functions are looked up in :mod:`parafe.signing` when called, so that this module
imports while the Signature engine is still growing.
"""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from parafe.config import workflow_settings
from parafe.context import AppContext
from parafe.domain.errors import E, ParafeError
from parafe.formats.pictograms import PictogramPosition, signature_position
from parafe.signing.bulk import BulkPdfSigner
from parafe.signing.keys import ServerSigner, load_signer
from parafe.signing.stamp import StampSpec

SERVER_SIGNER_EMAIL = "parapheur@parafe.invalid"
SERVER_SIGNER_NAME = "Parapheur électronique Parafe"

_lock = threading.Lock()
_signers: dict[str, ServerSigner] = {}
_bulk: dict[tuple[str, str, str], BulkPdfSigner] = {}


def server_key_path(ctx: AppContext) -> Path:
    return workflow_settings().signing_p12 or ctx.settings.pki_dir / "server-signing.p12"


def ensure_server_key(ctx: AppContext) -> Path:
    """The server signing PKCS#12, created from the home's dev CA when it is missing (default path only)."""
    path = server_key_path(ctx)
    if path.exists() or workflow_settings().signing_p12 is not None:
        return path
    from parafe.security import pki

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / ".server-signing.lock", "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if not path.exists():
            ca = pki.load_ca(ctx.settings.pki_dir)
            leaf = pki.issue_user_cert(ca, SERVER_SIGNER_EMAIL, SERVER_SIGNER_NAME, organization="Parafe")
            pki.write_p12(leaf, path, workflow_settings().signing_password.encode(), ca)
    return path


def server_signer(ctx: AppContext) -> ServerSigner:
    """The server key, parsed once per process."""
    path = ensure_server_key(ctx)
    key = str(path)
    with _lock:
        signer = _signers.get(key)
        if signer is None:
            signer = load_signer(path, workflow_settings().signing_password)
            _signers[key] = signer
        return signer


def deposit_pictogram(extra: Mapping[str, Any] | None, position: int | None) -> PictogramPosition | None:
    """The signature pictogram given at deposit (``extra["pictograms_xml"]``) for the circuit step at
    ``position``; None: the default place."""
    if not extra or position is None:
        return None
    xml = extra.get("pictograms_xml")
    return signature_position(xml, position) if isinstance(xml, str) else None


def server_stamp(name: str, quality: str | None = None, extra: tuple[str, ...] = (),
                 at: PictogramPosition | None = None) -> StampSpec:
    """The pictogram: where the deposit said (``at``), else bottom-right of the last page."""
    if at is not None:
        points = at.points()
        return StampSpec(x=points["x"], y=points["y"], page=at.page, width=points["width"],
                         height=points["height"], signer_name=name, quality=quality, extra_lines=extra)
    return StampSpec(x=340, y=30, page=-1, width=220, height=80, signer_name=name, quality=quality,
                     extra_lines=extra)


def server_sign_pdf(ctx: AppContext, data: bytes, *, name: str | None = None, quality: str | None = None,
                    extra: tuple[str, ...] = (), reason: str | None = None,
                    at: PictogramPosition | None = None) -> bytes:
    """A PAdES B-B signature with the server key and a visible pictogram naming ``name`` (placed ``at`` the
    deposit's position when given)."""
    return _bulk_signer(ctx, name, quality, extra, reason, at).sign_one(data)


def server_sign_pdfs(ctx: AppContext, items: Sequence[tuple[bytes, PictogramPosition | None]], *,
                     reason: str | None = None) -> list[bytes | Exception]:
    """:func:`server_sign_pdf` of several documents (the server signature step of a batch, issue 17): those
    whose pictogram goes to the same place are one :class:`BulkPdfSigner` batch; each document gets its signed
    bytes or its error (one bad file does not stop the others)."""
    out: list[bytes | Exception] = [RuntimeError("non signé")] * len(items)
    groups: dict[str, list[int]] = {}
    for index, (_data, at) in enumerate(items):
        groups.setdefault(repr(at), []).append(index)
    for indexes in groups.values():
        bulk = _bulk_signer(ctx, None, None, (), reason, items[indexes[0]][1])
        for result in bulk.sign_many([(index, items[index][0]) for index in indexes]):
            out[result.key] = result.pdf if result.pdf is not None else (result.error or RuntimeError("non signé"))
    return out


def _bulk_signer(ctx: AppContext, name: str | None, quality: str | None, extra: tuple[str, ...],
                 reason: str | None, at: PictogramPosition | None) -> BulkPdfSigner:
    """The process's signer of one set of options (key, pictogram text and place, reason), built once."""
    signer = server_signer(ctx)
    shown = name or signer.common_name
    key = (str(server_key_path(ctx)), shown, "|".join((quality or "", *extra, reason or "", repr(at))))
    with _lock:
        bulk = _bulk.get(key)
        if bulk is None:
            if len(_bulk) > 256:
                _bulk.clear()
            bulk = BulkPdfSigner(signer, stamp=server_stamp(shown, quality, extra, at), reason=reason)
            _bulk[key] = bulk
    return bulk


def sign_pes(data: bytes, signer: ServerSigner, *, mode: str = "per_bordereau", role: str | None = None) -> bytes:
    """An enveloped XAdES-EPES signature of a PES (DECISIONS D12), global or per bordereau."""
    from parafe.signing.pes import sign_pes as _sign_pes

    kwargs: dict[str, Any] = {"per_bordereau": mode != "global"}
    if role:
        kwargs["role"] = role
    return bytes(_sign_pes(data, signer, **kwargs))


def sign_xades_detached(data: bytes, signer: ServerSigner, name: str) -> bytes:
    """The detached XAdES signature file of an office document (the ZIP is rebuilt on download)."""
    from parafe.signing.xades import sign_xades_detached as _sign_xades

    signature_xml, _zip = _sign_xades(data, name, signer)
    return bytes(signature_xml)


def trust_roots(ctx: AppContext) -> list[Path]:
    roots = [ctx.settings.ca_bundle]
    return [p for p in roots if p.exists()]


def verify_new_pdf_signature(ctx: AppContext, original: bytes, signed: bytes) -> None:
    """Refuse a "signed" PDF that is not the original plus exactly one more valid signature."""
    from parafe.signing.verify import verify_pdf

    if not signed.startswith(original):
        raise ParafeError(E.SIGNED_DOCUMENT_INVALID, reason="ce n'est pas une mise à jour incrémentale du document")
    try:
        before = len(verify_pdf(original, trust_roots(ctx)).signatures)
        report = verify_pdf(signed, trust_roots(ctx))
    except Exception as exc:
        raise ParafeError(E.SIGNED_DOCUMENT_INVALID, reason="PDF illisible", detail=str(exc)) from exc
    if len(report.signatures) != before + 1:
        raise ParafeError(E.SIGNED_DOCUMENT_INVALID, reason="une et une seule nouvelle signature est attendue")
    if not report.valid:
        raise ParafeError(E.SIGNED_DOCUMENT_INVALID, reason="signature invalide ou certificat non reconnu",
                          detail=report.to_text())


def verify_pes_signature(ctx: AppContext, data: bytes) -> tuple[bool, str]:
    """Whether the signatures of a signed PES verify (DECISIONS D12), and the verifier's explanation."""
    from parafe.signing.verify import verify_pes

    report = verify_pes(data, trust_roots(ctx), huge_tree=True)
    valid = bool(getattr(report, "valid", False))
    text = report.to_text() if hasattr(report, "to_text") else str(report)
    return valid, str(text)
