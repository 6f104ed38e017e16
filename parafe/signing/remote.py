"""Remote signing: the signer's key stays on the signer's machine (smart card, token, browser helper).

The server prepares the document and the exact bytes to sign, the signer's helper returns raw signature
values, the server finishes the document. Nothing is kept in memory between the two calls: the session object
is serialisable (``to_json()`` / ``from_json()``) and is meant to be stored server-side (database row or blob)
— never trusted from the client.

Protocol (see ``docs/signing.md`` for the HTTP shape used by the portal's helper)
------------------------------------------------------------------------------
1. The helper sends the signer's certificate (and chain), DER or PEM.
2. ``prepare_pdf(pdf, certificate, chain, ...)`` / ``prepare_xades(doc, filename, certificate, chain)`` /
   ``prepare_pes(xml, certificate, chain, per_bordereau=...)`` return ``(session, requests)``. Each
   :class:`SignRequest` gives ``data_to_sign`` — PAdES: the DER of the CMS signed attributes; XAdES/PES: the
   exclusive-C14N ``ds:SignedInfo`` — plus, for helpers that sign a pre-computed hash, its SHA-256 ``digest``
   and the PKCS#1 ``digest_info`` (for ``CKM_RSA_PKCS``). Algorithm: RSASSA-PKCS1-v1_5 with SHA-256 (ECDSA
   P-256/SHA-256 accepted for PAdES, DER-encoded).
3. The helper signs each ``data_to_sign`` and returns the raw signature values, in order.
4. ``finish_pdf(session, [value])`` / ``finish_xades(session, value)`` / ``finish_pes(session, values)`` check
   every value against the certificate BEFORE embedding it (:class:`RemoteSigningError` otherwise) and return
   the signed document (for XAdES: the signature file and the ZIP).

Levels: PAdES B-B or B-T (the time-stamp is requested at ``finish``); PES and XAdES as in their modules. The
signing time shown in the pictogram and in the signed attributes/properties is fixed at ``prepare``; sessions
older than ``max_age`` (default 15 minutes) are refused at ``finish``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import secrets
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree

from parafe.signing.errors import PdfSigningError, RemoteSigningError
from parafe.signing.fastpdf import CmsTemplate, FastPathUnsupported, FastPdfSigner, PreparedPdf
from parafe.signing.keys import certificate_display_name, verify_raw
from parafe.signing.pes import prepare_pes as _prepare_pes
from parafe.signing.stamp import StampSpec
from parafe.signing.tsa import make_timestamper, normalize_level, timestamp_token
from parafe.signing.xades import prepare_xades as _prepare_xades
from parafe.signing.xades import signature_filename
from parafe.signing.xmldsig import b64_lines

__all__ = [
    "PdfRemoteSession",
    "PesRemoteSession",
    "SignRequest",
    "XadesRemoteSession",
    "finish_pdf",
    "finish_pes",
    "finish_xades",
    "load_certificate_chain",
    "prepare_pdf",
    "prepare_pes",
    "prepare_xades",
]

ALGORITHM = "RSASSA-PKCS1-v1_5-SHA256"
_SHA256_DIGEST_INFO_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")
DEFAULT_MAX_AGE = timedelta(minutes=15)


@dataclass(frozen=True)
class SignRequest:
    """What the remote signer must sign."""

    data_to_sign: bytes
    algorithm: str = ALGORITHM

    @property
    def digest(self) -> bytes:
        """SHA-256 of ``data_to_sign`` (for helpers that sign a hash)."""
        return hashlib.sha256(self.data_to_sign).digest()

    @property
    def digest_info(self) -> bytes:
        """DER DigestInfo(SHA-256, digest): the input of a raw ``CKM_RSA_PKCS`` signature."""
        return _SHA256_DIGEST_INFO_PREFIX + self.digest

    def to_dict(self) -> dict[str, str]:
        return {"algorithm": self.algorithm,
                "data_to_sign": base64.b64encode(self.data_to_sign).decode(),
                "digest": base64.b64encode(self.digest).decode(),
                "digest_info": base64.b64encode(self.digest_info).decode()}


def load_certificate_chain(blobs: Sequence[bytes | str | x509.Certificate]) -> list[x509.Certificate]:
    """Certificates from PEM (one or many per blob), DER or base64-DER strings; signer first."""
    out: list[x509.Certificate] = []
    for blob in blobs:
        if isinstance(blob, x509.Certificate):
            out.append(blob)
            continue
        data = blob.encode() if isinstance(blob, str) else blob
        try:
            if b"-----BEGIN" in data:
                out.extend(x509.load_pem_x509_certificates(data))
            else:
                try:
                    out.append(x509.load_der_x509_certificate(data))
                except ValueError:
                    out.append(x509.load_der_x509_certificate(base64.b64decode(data)))
        except ValueError as exc:
            raise RemoteSigningError(f"Certificat du signataire illisible : {exc}") from exc
    if not out:
        raise RemoteSigningError("Certificat du signataire absent.")
    return out


def _der(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def _load_der(text: str) -> x509.Certificate:
    return x509.load_der_x509_certificate(base64.b64decode(text))


def _check_key(cert: x509.Certificate, *, allow_ec: bool) -> int:
    pub = cert.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        return (pub.key_size + 7) // 8
    if allow_ec and isinstance(pub, ec.EllipticCurvePublicKey):
        return 2 * ((pub.key_size + 7) // 8) + 9
    raise RemoteSigningError("Type de clé du signataire non pris en charge (RSA attendu).")


def _check_values(cert: x509.Certificate, to_sign: Sequence[bytes], values: Sequence[bytes]) -> None:
    if len(values) != len(to_sign):
        raise RemoteSigningError(f"{len(to_sign)} valeur(s) de signature attendue(s), {len(values)} reçue(s).")
    for i, (data, value) in enumerate(zip(to_sign, values, strict=True)):
        if not verify_raw(cert, value, data, "sha256"):
            raise RemoteSigningError(
                f"La valeur de signature n°{i + 1} ne correspond pas au certificat du signataire "
                f"({certificate_display_name(cert)}).")


def _check_age(created_at: str, max_age: timedelta) -> None:
    if datetime.now(UTC) - datetime.fromisoformat(created_at) > max_age:
        raise RemoteSigningError("Session de signature expirée : recommencez la signature.")


# --- PDF -------------------------------------------------------------------------------------------------------
@dataclass
class PdfRemoteSession:
    """Server-side state between :func:`prepare_pdf` and :func:`finish_pdf`."""

    prepared_pdf: bytes
    contents_start: int
    contents_end: int
    signed_attrs: bytes
    certificate: str  # base64 DER
    chain: list[str]
    level: str
    tsa_url: str | None
    field_name: str
    created_at: str

    def to_json(self, *, include_document: bool = True) -> str:
        """JSON state; without the document, store ``prepared_pdf`` as a blob and pass it to ``from_json``."""
        data: dict[str, Any] = {k: v for k, v in self.__dict__.items() if k not in ("prepared_pdf", "signed_attrs")}
        data["signed_attrs"] = base64.b64encode(self.signed_attrs).decode()
        if include_document:
            data["prepared_pdf"] = base64.b64encode(self.prepared_pdf).decode()
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str, document: bytes | None = None) -> PdfRemoteSession:
        data = json.loads(text)
        data["signed_attrs"] = base64.b64decode(data["signed_attrs"])
        data["prepared_pdf"] = document if document is not None else base64.b64decode(data["prepared_pdf"])
        return cls(**data)


def prepare_pdf(
    pdf: bytes,
    certificate: x509.Certificate,
    chain: Sequence[x509.Certificate] = (),
    *,
    level: str = "B-B",
    stamp: StampSpec | None = None,
    reason: str | None = None,
    location: str | None = None,
    tsa_url: str | None = None,
) -> tuple[PdfRemoteSession, list[SignRequest]]:
    """Prepare a PAdES signature by a remote signer (levels B-B and B-T)."""
    level = normalize_level(level)
    if level not in ("B-B", "B-T"):
        raise RemoteSigningError("La signature à distance produit du PAdES B-B ou B-T.")
    if level == "B-T" and not tsa_url:
        raise RemoteSigningError("Le niveau B-T exige une autorité d'horodatage : aucune URL configurée.")
    sig_size = _check_key(certificate, allow_ec=True)
    template = CmsTemplate(certificate, chain, sig_size)
    writer = FastPdfSigner(None, stamp=stamp, signer_name=certificate_display_name(certificate), reason=reason,
                           location=location)
    reserve = template.base_size + (16384 if level == "B-T" else 0)
    try:
        prepared: PreparedPdf = writer.prepare(pdf, reserve)
    except FastPathUnsupported as exc:
        raise PdfSigningError(f"Ce PDF ne peut pas être signé à distance ({exc}).") from exc
    signed_attrs = template.signed_attrs(prepared.digest)
    session = PdfRemoteSession(
        prepared_pdf=bytes(prepared.data), contents_start=prepared.contents_start,
        contents_end=prepared.contents_end, signed_attrs=signed_attrs, certificate=_der(certificate),
        chain=[_der(c) for c in chain], level=level, tsa_url=tsa_url, field_name=prepared.field_name,
        created_at=datetime.now(UTC).isoformat())
    return session, [SignRequest(signed_attrs)]


def finish_pdf(
    session: PdfRemoteSession, signature_values: Sequence[bytes] | bytes, cert_chain: Sequence[Any] | None = None,
    *, timestamper: Any = None, max_age: timedelta = DEFAULT_MAX_AGE,
) -> bytes:
    """Embed the remote signature value; returns the signed PDF."""
    _check_age(session.created_at, max_age)
    values = [signature_values] if isinstance(signature_values, bytes) else list(signature_values)
    cert = _load_der(session.certificate)
    if cert_chain:
        given = load_certificate_chain(list(cert_chain))
        if given[0] != cert:
            raise RemoteSigningError("Le certificat renvoyé n'est pas celui de la préparation.")
    _check_values(cert, [session.signed_attrs], values)
    chain = [_load_der(c) for c in session.chain]
    template = CmsTemplate(cert, chain, _check_key(cert, allow_ec=True))
    tst = None
    if session.level == "B-T":
        ts = timestamper or make_timestamper(session.tsa_url or "")
        tst = timestamp_token(ts, hashlib.sha256(values[0]).digest()).dump()
    prepared = PreparedPdf(bytearray(session.prepared_pdf), session.contents_start, session.contents_end, b"",
                           session.field_name, datetime.fromisoformat(session.created_at))
    return prepared.embed(template.assemble(session.signed_attrs, values[0], tst))


# --- XAdES detached ------------------------------------------------------------------------------------------
@dataclass
class XadesRemoteSession:
    """Server-side state between :func:`prepare_xades` and :func:`finish_xades`."""

    document: bytes
    filename: str
    signature_xml: bytes  # with a placeholder SignatureValue
    token: str
    to_sign: bytes
    certificate: str
    created_at: str

    def to_json(self) -> str:
        return json.dumps({
            "document": base64.b64encode(self.document).decode(), "filename": self.filename,
            "signature_xml": base64.b64encode(self.signature_xml).decode(), "token": self.token,
            "to_sign": base64.b64encode(self.to_sign).decode(), "certificate": self.certificate,
            "created_at": self.created_at})

    @classmethod
    def from_json(cls, text: str) -> XadesRemoteSession:
        d = json.loads(text)
        for k in ("document", "signature_xml", "to_sign"):
            d[k] = base64.b64decode(d[k])
        return cls(**d)


def prepare_xades(
    doc: bytes, filename: str, certificate: x509.Certificate, chain: Sequence[x509.Certificate] = (), *,
    mime_type: str | None = None,
) -> tuple[XadesRemoteSession, list[SignRequest]]:
    """Prepare a detached XAdES signature by a remote signer."""
    _check_key(certificate, allow_ec=False)
    prepared = _prepare_xades(doc, filename, certificate, chain, mime_type=mime_type)
    token = secrets.token_hex(8)
    prepared._value_element.text = f"@@PARAFE-SV-0-{token}@@"
    xml = etree.tostring(prepared.tree, xml_declaration=True, encoding="UTF-8")
    session = XadesRemoteSession(doc, filename, xml, token, prepared.to_sign, _der(certificate),
                                 datetime.now(UTC).isoformat())
    return session, [SignRequest(prepared.to_sign)]


def finish_xades(
    session: XadesRemoteSession, signature_value: bytes | Sequence[bytes], *, max_age: timedelta = DEFAULT_MAX_AGE,
) -> tuple[bytes, bytes]:
    """Insert the remote signature value; returns (signature XML, ZIP of document + signature)."""
    _check_age(session.created_at, max_age)
    values = [signature_value] if isinstance(signature_value, bytes) else list(signature_value)
    _check_values(_load_der(session.certificate), [session.to_sign], values)
    sig_xml = _fill(session.signature_xml, session.token, values)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(session.filename, session.document)
        zf.writestr(signature_filename(session.filename), sig_xml)
    return sig_xml, buf.getvalue()


def _fill(xml: bytes, token: str, values: Sequence[bytes]) -> bytes:
    """Replace the ``@@PARAFE-SV-<i>-<token>@@`` placeholders in one pass."""
    pattern = re.compile(rb"@@PARAFE-SV-(\d+)-" + re.escape(token.encode()) + rb"@@")
    seen: set[int] = set()

    def repl(m: re.Match[bytes]) -> bytes:
        i = int(m.group(1))
        seen.add(i)
        return b64_lines(values[i]).encode("ascii")

    out = pattern.sub(repl, xml)
    if seen != set(range(len(values))):
        raise RemoteSigningError("Session de signature incohérente (emplacements de signature).")
    return out


# --- PES -------------------------------------------------------------------------------------------------------
@dataclass
class PesRemoteSession:
    """Server-side state between :func:`prepare_pes` and :func:`finish_pes`."""

    xml: bytes  # with placeholder SignatureValues
    token: str
    to_sign: list[bytes]
    signature_ids: list[str]
    certificate: str
    created_at: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({
            "xml": base64.b64encode(self.xml).decode(), "token": self.token,
            "to_sign": [base64.b64encode(t).decode() for t in self.to_sign], "signature_ids": self.signature_ids,
            "certificate": self.certificate, "created_at": self.created_at, "extra": self.extra})

    @classmethod
    def from_json(cls, text: str) -> PesRemoteSession:
        d = json.loads(text)
        d["xml"] = base64.b64decode(d["xml"])
        d["to_sign"] = [base64.b64decode(t) for t in d["to_sign"]]
        return cls(**d)


def prepare_pes(
    xml: bytes, certificate: x509.Certificate, chain: Sequence[x509.Certificate] = (), *, per_bordereau: bool,
    role: str = "Ordonnateur", city: str | None = None, postal_code: str | None = None,
    info_dematerialisee: str = "set",
) -> tuple[PesRemoteSession, list[SignRequest]]:
    """Prepare the PES signatures (one per bordereau, or one global) of a remote signer."""
    _check_key(certificate, allow_ec=False)
    prepared = _prepare_pes(xml, certificate, chain, per_bordereau=per_bordereau, role=role, city=city,
                            postal_code=postal_code, info_dematerialisee=info_dematerialisee)
    token = secrets.token_hex(8)
    session = PesRemoteSession(prepared.with_placeholders(token), token, list(prepared.to_sign),
                               list(prepared.signature_ids), _der(certificate), datetime.now(UTC).isoformat())
    return session, [SignRequest(t) for t in prepared.to_sign]


def finish_pes(
    session: PesRemoteSession, signature_values: Sequence[bytes], *, max_age: timedelta = DEFAULT_MAX_AGE,
) -> bytes:
    """Insert the remote signature values (in request order); returns the signed PES."""
    _check_age(session.created_at, max_age)
    _check_values(_load_der(session.certificate), session.to_sign, signature_values)
    return _fill(session.xml, session.token, signature_values)

