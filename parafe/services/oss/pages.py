"""The OSS signing pages (public, reached by a URL holding a random token of 256 bits, DECISIONS D15).

- ``sa`` pages (uploadSA, generateSAUrl, spec §3.4.2): the signer authenticates with a client certificate; every
  authentication, signature and refusal is logged (subject, issuer, serial, fingerprint, date, IP) and returned
  by ``docInformation.logs``; the documents are signed with the workflow's server certificate.
- ``sms`` pages (uploadSMS, generateSMSUrl, §3.4.3): a one-time code (6 digits, 10 minutes, 3 tries, D15) is sent
  by SMS when a phone number is known, else by e-mail; the documents are signed with the server certificate and
  a pictogram naming the signer.
- ``sgc`` pages (uploadSGC, §3.4.4): the same code, then a certificate issued on the fly in the signer's name by
  the internal CA signs every document of the batch.

Codes are kept hashed (salted SHA-256) in ``oss_codes``; at most ``MAX_CODES`` codes per page. The signature
itself is the ``oss.sign`` job of :mod:`parafe.services.oss.operations`, run at once in the caller's thread.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from parafe.config import workflow_settings
from parafe.context import AppContext
from parafe.db.models import OssAuthLog, OssCode, OssDocument, OssLink, OssLinkDocument, OssWorkflow, utcnow
from parafe.domain.errors import E, ErrorDef, ParafeError
from parafe.notify import sms
from parafe.notify.mail import aware, send_mail, signature_block
from parafe.security.certcheck import CertVerdict
from parafe.services.oss.access import parse_id
from parafe.services.oss.model import REFUSED, SIGNED, WAITING
from parafe.services.oss.operations import DocContent, run_now, start_signing, token_hash
from parafe.services.otp.hashing import code_matches, hash_code
from parafe.services.otp.identity import SignerIdentity
from parafe.signing.keys import certificate_display_name

MAX_CODES = 5
OUTCOMES = ("SIGNED", "REFUSED", "ERROR", "NONE")

_CERT_ERRORS: dict[str, ErrorDef] = {
    "missing": E.CERT_MISSING, "expired": E.CERT_EXPIRED, "revoked": E.CERT_REVOKED,
    "unknown_ca": E.CERT_UNKNOWN_CA, "invalid": E.AUTH_UNKNOWN_USER,
}


@dataclass(frozen=True)
class PageDocument:
    id: int
    filename: str
    status: str
    size: int
    error: str | None


@dataclass(frozen=True)
class CodeState:
    channel: str  # sms | email
    destination: str  # masked
    expires_at: datetime
    remaining: int
    locked: bool


@dataclass(frozen=True)
class PageView:
    kind: str  # sa | sms | sgc
    workflow_name: str
    documents: tuple[PageDocument, ...]
    signer_name: str | None
    redirection_url: str | None
    outcome: str | None  # signed | refused | error once the page is finished
    code: CodeState | None

    @property
    def waiting(self) -> bool:
        return self.outcome is None and all(d.status == WAITING for d in self.documents)


@dataclass(frozen=True)
class Outcome:
    result: str  # SIGNED | REFUSED | ERROR
    redirect: str | None
    documents: tuple[PageDocument, ...]


# --- helpers ------------------------------------------------------------------------------------------------------
def _link(session: Session, token: str, *, lock: bool = False) -> OssLink:
    if not token or len(token) > 128:
        raise ParafeError(E.OSS_LINK_INVALID)
    stmt = select(OssLink).where(OssLink.token_hash == token_hash(token))
    if lock:
        stmt = stmt.with_for_update()
    link = session.scalar(stmt)
    if link is None or (link.completed_at is None and aware(link.expires_at) <= utcnow()):
        raise ParafeError(E.OSS_LINK_INVALID)
    return link


def _documents(session: Session, link: OssLink, *, lock: bool = False) -> list[OssDocument]:
    stmt = (select(OssDocument).join(OssLinkDocument, OssLinkDocument.document_id == OssDocument.id)
            .where(OssLinkDocument.link_id == link.id).order_by(OssLinkDocument.position))
    if lock:
        stmt = stmt.with_for_update()
    return list(session.scalars(stmt))


def _page_documents(documents: list[OssDocument]) -> tuple[PageDocument, ...]:
    return tuple(PageDocument(d.id, d.filename, d.status, d.signed_size or d.size, d.error) for d in documents)


def _waiting(documents: list[OssDocument]) -> None:
    now = utcnow()
    if any(aware(d.date_to_purge) <= now or d.purge_date is not None for d in documents):
        raise ParafeError(E.OSS_DOCUMENT_PURGED)
    if not documents or any(d.status != WAITING for d in documents):
        raise ParafeError(E.OSS_ALREADY_SIGNED)


def _mask(channel: str, destination: str) -> str:
    if channel == "sms":
        return sms.mask_phone(destination)
    local, _, domain = destination.partition("@")
    return f"{local[:2]}•••@{domain}"


def _current_code(session: Session, link: OssLink, *, lock: bool = False) -> OssCode | None:
    stmt = (select(OssCode).where(OssCode.link_id == link.id, OssCode.status.in_(("pending", "locked")))
            .order_by(OssCode.id.desc()).limit(1))
    if lock:
        stmt = stmt.with_for_update()
    return session.scalar(stmt)


def _code_state(code: OssCode | None) -> CodeState | None:
    if code is None or aware(code.expires_at) <= utcnow():
        return None
    return CodeState(code.channel, _mask(code.channel, code.destination), aware(code.expires_at),
                     max(code.max_attempts - code.attempts, 0), code.status == "locked")


def redirect_target(url: str | None, result: str) -> str | None:
    """The publisher's ``redirectionUrl`` with ``return=<SIGNED|REFUSED|ERROR|NONE>`` appended (as §7.2), or None
    when there is no redirection."""
    if not url:
        return None
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "return"]
    query.append(("return", result))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


# --- page -----------------------------------------------------------------------------------------------------------
def view(ctx: AppContext, token: str) -> PageView:
    """What the page shows (no side effect)."""
    with ctx.db.read() as session:
        link = _link(session, token)
        documents = _documents(session, link)
        if not documents:
            raise ParafeError(E.OSS_LINK_INVALID)
        workflow = session.get(OssWorkflow, documents[0].workflow_id)
        signer = SignerIdentity.from_dict(link.signer) if link.signer else None
        return PageView(
            kind=link.kind, workflow_name=workflow.name if workflow is not None else "", signer_name=(
                signer.full_name if signer is not None else None) or None,
            documents=_page_documents(documents), redirection_url=link.redirection_url, outcome=link.outcome,
            code=_code_state(_current_code(session, link)) if link.kind in ("sms", "sgc") else None)


def document_content(ctx: AppContext, token: str, document_id: int | str) -> DocContent:
    """A document of the page, to view it (the signed version once signed)."""
    with ctx.db.read() as session:
        link = _link(session, token)
        wanted = parse_id(document_id)
        for document in _documents(session, link):
            if document.id == wanted:
                if document.blob_sha256 is None or aware(document.date_to_purge) <= utcnow():
                    raise ParafeError(E.OSS_DOCUMENT_PURGED)
                signed = document.status == SIGNED and document.signed_blob_sha256 is not None
                return DocContent(document.filename, (document.signed_blob_sha256 if signed else
                                                          document.blob_sha256) or "",
                                      (document.signed_size if signed else document.size) or 0, signed)
    raise ParafeError(E.DOCUMENT_NOT_FOUND)


# --- one-time codes (sms, sgc) ------------------------------------------------------------------------------------
def send_code(ctx: AppContext, token: str, *, only_if_none: bool = False) -> CodeState | None:
    """Send a new code (the previous one is replaced). ``only_if_none``: do nothing when a live code exists
    (the page's first display sends the code, as §3.4.4 describes)."""
    s = workflow_settings()
    code = f"{secrets.randbelow(10 ** s.otp_digits):0{s.otp_digits}d}"
    with ctx.db.write() as session:
        link = _link(session, token, lock=True)
        if link.kind not in ("sms", "sgc"):
            raise ParafeError(E.OSS_MODE_NOT_ALLOWED, detail="no code for certificate pages")
        documents = _documents(session, link)
        _waiting(documents)
        current = _current_code(session, link)
        if only_if_none and current is not None and aware(current.expires_at) > utcnow():
            return _code_state(current)
        if link.codes_sent >= MAX_CODES:
            raise ParafeError(E.OSS_TOO_MANY_CODES)
        signer = SignerIdentity.from_dict(link.signer)
        channel = "sms" if signer.phone else "email"
        destination = sms.normalise_phone(signer.phone) if signer.phone else (signer.email or "")
        if not destination:
            raise ParafeError(E.OSS_SIGNER_MISSING, reason="ni courriel ni téléphone")
        for old in session.scalars(select(OssCode).where(OssCode.link_id == link.id,
                                                         OssCode.status.in_(("pending", "locked")))):
            old.status = "replaced"
        now = utcnow()
        row = OssCode(link_id=link.id, channel=channel, destination=destination, code_hash=hash_code(code),
                      max_attempts=s.otp_attempts, created_at=now,
                      expires_at=now + timedelta(seconds=s.otp_ttl_seconds))
        session.add(row)
        link.codes_sent += 1
        session.flush()
        state = _code_state(row)
        first_id = documents[0].id
        count = len(documents)
    minutes = max(s.otp_ttl_seconds // 60, 1)
    what = "du document" if count == 1 else f"des {count} documents"
    if channel == "sms":
        try:  # OSS pages send at once, without the outbox's retries (issue 16 covers the workflow's OTP)
            sms.provider(ctx).send(destination, f"Parafe : votre code de signature {what} est {code}. "
                                                f"Il est valable {minutes} minutes.", document_id=first_id)
        except sms.SmsError as exc:
            raise ParafeError(E.SMS_SEND_FAILED, reason=str(exc)) from None
    else:
        send_mail(ctx, [destination], "Votre code de signature",
                  f"Bonjour {signer.full_name},\n\nVotre code de signature {what} est : {code}\n\nIl est valable "
                  f"{minutes} minutes et ne peut être utilisé qu'une fois." + signature_block(),
                  document_id=first_id)
    return state


def sign_with_code(ctx: AppContext, token: str, code: str) -> Outcome:
    """Check the code (3 tries, then locked) and sign the page's documents; wrong codes raise
    ``OTP_CODE_INVALID`` (tries left), ``OTP_LOCKED``, ``OTP_CODE_EXPIRED``."""
    failure: ParafeError | None = None
    job_id = 0
    ids: list[int] = []
    with ctx.db.write() as session:
        link = _link(session, token, lock=True)
        if link.kind not in ("sms", "sgc"):
            raise ParafeError(E.OSS_MODE_NOT_ALLOWED)
        documents = _documents(session, link, lock=True)
        _waiting(documents)
        current = _current_code(session, link, lock=True)
        if current is None or aware(current.expires_at) <= utcnow():
            failure = ParafeError(E.OTP_CODE_EXPIRED)
        elif current.status == "locked":
            failure = ParafeError(E.OTP_LOCKED)
        elif not code or not code.strip().isdigit() or not code_matches(current.code_hash, code):
            current.attempts += 1
            remaining = current.max_attempts - current.attempts
            if remaining <= 0:
                current.status = "locked"
                failure = ParafeError(E.OTP_LOCKED)
            else:
                failure = ParafeError(E.OTP_CODE_INVALID, remaining=remaining)
        else:
            current.status = "done"
            current.used_at = utcnow()
            via = "sgc" if link.kind == "sgc" else "sms"
            job_id = start_signing(session, link, documents, {"via": via, "channel": current.channel})
            ids = [d.id for d in documents]
    if failure is not None:
        raise failure
    return _finish(ctx, token, job_id, ids)


# --- certificate pages (sa) ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CertificateInfo:
    subject: str
    issuer: str
    serial: str
    fingerprint: str
    name: str


def certificate_info(verdict: CertVerdict | None) -> CertificateInfo:
    """The verified client certificate of the page's visitor, or the catalogue error saying why not."""
    if verdict is None or verdict.reason == "missing" or verdict.cert is None:
        raise ParafeError(E.CERT_MISSING)
    if not verdict.ok:
        raise ParafeError(_CERT_ERRORS.get(verdict.reason, E.AUTH_UNKNOWN_USER))
    cert: x509.Certificate = verdict.cert
    return CertificateInfo(subject=cert.subject.rfc4514_string(), issuer=cert.issuer.rfc4514_string(),
                           serial=format(cert.serial_number, "X"), fingerprint=verdict.fingerprint or "",
                           name=certificate_display_name(cert))


def _log(session: Session, link: OssLink, documents: list[OssDocument], info: CertificateInfo, event: str,
         ip: str | None) -> None:
    now = utcnow()
    for document in documents:
        session.add(OssAuthLog(document_id=document.id, link_id=link.id, event=event, subject=info.subject[:1024],
                               issuer=info.issuer[:1024], serial=info.serial[:64], fingerprint=info.fingerprint,
                               ip=(ip or "")[:64] or None, created_at=now))


def authenticate(ctx: AppContext, token: str, verdict: CertVerdict | None, ip: str | None) -> CertificateInfo:
    """The visitor of an ``sa`` page shows a valid certificate: keep the authentication log (§3.4.2 4a)."""
    info = certificate_info(verdict)
    with ctx.db.write() as session:
        link = _link(session, token)
        if link.kind != "sa":
            raise ParafeError(E.OSS_MODE_NOT_ALLOWED)
        documents = _documents(session, link)
        if link.outcome is None and all(d.status == WAITING for d in documents):
            _log(session, link, documents, info, "authentication", ip)
    return info


def sign_with_certificate(ctx: AppContext, token: str, verdict: CertVerdict | None, ip: str | None) -> Outcome:
    """The authenticated visitor clicks « Signer »: signature with the workflow's server certificate."""
    info = certificate_info(verdict)
    with ctx.db.write() as session:
        link = _link(session, token, lock=True)
        if link.kind != "sa":
            raise ParafeError(E.OSS_MODE_NOT_ALLOWED)
        documents = _documents(session, link, lock=True)
        _waiting(documents)
        _log(session, link, documents, info, "signature", ip)
        job_id = start_signing(session, link, documents, {"via": "sa", "person": info.name})
        ids = [d.id for d in documents]
    return _finish(ctx, token, job_id, ids)


# --- end of a page ----------------------------------------------------------------------------------------------
def _finish(ctx: AppContext, token: str, job_id: int, ids: list[int]) -> Outcome:
    statuses = run_now(ctx, job_id, ids)
    result = "SIGNED" if statuses and all(s == SIGNED for s in statuses.values()) else "ERROR"
    with ctx.db.read() as session:
        link = _link(session, token)
        return Outcome(result, redirect_target(link.redirection_url, result),
                       _page_documents(_documents(session, link)))


def refuse(ctx: AppContext, token: str, reason: str | None, verdict: CertVerdict | None = None,
           ip: str | None = None) -> Outcome:
    """The signer refuses: the documents end ``refused`` (reason kept), the page is closed."""
    text = (reason or "").strip()[:2000]
    with ctx.db.write() as session:
        link = _link(session, token, lock=True)
        documents = _documents(session, link, lock=True)
        _waiting(documents)
        if link.kind == "sa":
            _log(session, link, documents, certificate_info(verdict), "refusal", ip)
        now = utcnow()
        for document in documents:
            document.status = REFUSED
            document.error = f"Signature refusée par le signataire{' : ' + text if text else '.'}"
            document.updated_at = now
        link.completed_at = now
        link.outcome = "refused"
        return Outcome("REFUSED", redirect_target(link.redirection_url, "REFUSED"), _page_documents(documents))
