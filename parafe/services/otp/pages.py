"""The public OTP signing pages (spec §2.2, §2.5.17, §7; DECISIONS D15, D19): what a link token gives access to.

A link (``otp_links`` row, created by :mod:`parafe.services.otp.links`) names one or several documents and the
redirect URL of the business software. Whoever holds the token (≥ 128 random bits) may see those documents —
and only those —, ask for a code, sign with it or refuse. The code itself (6 digits, 10 minutes, 3 tries) is the
business of :mod:`parafe.services.otp.codes`; this module resolves the token and hands it the documents that still
wait for their OTP signature.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from parafe.context import AppContext
from parafe.db.models import Document, OtpLink, Subscriber
from parafe.domain.circuits import StepKind
from parafe.domain.errors import E, ParafeError
from parafe.domain.states import State, label
from parafe.notify import sms
from parafe.services.documents.downloads import Content, media_type_for
from parafe.services.otp import codes as otp
from parafe.services.otp.identity import SignerIdentity
from parafe.workflow import engine

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{22,64}$")
RETURN_VALUES = ("SIGNED", "REFUSED", "ERROR", "NONE")
_NOT_STARTED = (State.PREPARED.value, State.OTP_INFO_DEFINED.value, State.METADATA_DEFINED.value)


@dataclass(frozen=True)
class OtpDocument:
    id: int
    name: str
    kind: str
    size: int
    state: str
    state_label: str
    waiting: bool  # still at its OTP signature step
    starting: bool = False  # deposited moments ago: the workflow has not reached its first step yet


@dataclass(frozen=True)
class OtpPage:
    token: str
    subscriber: str
    documents: list[OtpDocument]
    signer_name: str
    channel: str  # sms | email
    destination: str  # masked
    referer: str | None

    @property
    def waiting_ids(self) -> list[int]:
        return [d.id for d in self.documents if d.waiting]

    @property
    def starting(self) -> bool:
        return any(d.starting for d in self.documents)

    @property
    def outcome(self) -> str | None:
        """SIGNED / REFUSED once no document waits any more, else None."""
        if self.waiting_ids or self.starting:
            return None
        if any(d.state == State.REFUSED.value for d in self.documents):
            return "REFUSED"
        return "SIGNED"


def _link(session: Session, token: str) -> OtpLink:
    if not token or not _TOKEN.match(token):
        raise ParafeError(E.OTP_LINK_INVALID, detail="malformed token")
    link = session.scalar(select(OtpLink).where(OtpLink.token == token))
    if link is None or link.revoked_at is not None:
        raise ParafeError(E.OTP_LINK_INVALID)
    return link


def _mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:2]}•••@{domain}"


def open_page(ctx: AppContext, token: str) -> OtpPage:
    """The documents and signer of a link; ``OTP_LINK_INVALID`` for an unknown or revoked token."""
    with ctx.db.read() as session:
        link = _link(session, token)
        ids = [int(i) for i in link.document_ids]
        rows = {d.id: d for d in session.scalars(select(Document).where(
            Document.id.in_(ids), Document.subscriber_id == link.subscriber_id, Document.deleted_at.is_(None)))}
        documents: list[OtpDocument] = []
        who: SignerIdentity | None = None
        for doc_id in ids:
            document = rows.get(doc_id)
            if document is None:
                continue
            step = engine.current_step(session, document)
            waiting = (step is not None and step.kind == StepKind.OTP_SIGNATURE.value and document.state not in (
                State.OTP_VALIDATED.value, State.OTP_SIGNED.value, State.REFUSED.value))
            if waiting and who is None and step is not None:
                who = otp.identity(session, document, step)
            starting = document.current_step is None and document.state in _NOT_STARTED
            documents.append(OtpDocument(document.id, document.name, document.kind, document.size, document.state,
                                         label(State(document.state), ctx.label_set), waiting, starting))
        if not documents:
            raise ParafeError(E.OTP_LINK_INVALID, detail="no live document")
        subscriber = session.get(Subscriber, link.subscriber_id)
        email = (who.email if who else None) or link.signer_email
        phone = (who.phone if who else None) or link.signer_phone
        channel = "sms" if phone else "email"
        shown = sms.mask_phone(phone) if phone else _mask_email(email or "")
        name = who.full_name if who else (email or phone or "")
        return OtpPage(token, subscriber.name if subscriber else "", documents, name, channel, shown, link.referer)


def content(ctx: AppContext, token: str, document_id: int | str) -> Content:
    """A document of the link (the signed version once signed); any other id is ``DOCUMENT_NOT_FOUND``."""
    with ctx.db.read() as session:
        link = _link(session, token)
        try:
            doc_id = int(str(document_id))
        except ValueError:
            raise ParafeError(E.DOCUMENT_NOT_FOUND) from None
        if doc_id not in [int(i) for i in link.document_ids]:
            raise ParafeError(E.DOCUMENT_NOT_FOUND)
        document = session.scalar(select(Document).where(
            Document.id == doc_id, Document.subscriber_id == link.subscriber_id, Document.deleted_at.is_(None)))
        if document is None:
            raise ParafeError(E.DOCUMENT_NOT_FOUND)
        sha = document.signed_blob_sha256 or document.blob_sha256
        return Content(filename=document.name, media_type=media_type_for(document.name), size=ctx.store.size(sha),
                       blob_sha256=sha)


def _waiting(ctx: AppContext, token: str) -> list[int]:
    ids = open_page(ctx, token).waiting_ids
    if not ids:
        raise ParafeError(E.BSMS_NOT_AT_SMS_STEP, detail="nothing left to sign on this link")
    return ids


def send_code(ctx: AppContext, token: str) -> otp.SentCode:
    """Send a new code for the documents of the link that still wait (one code for all of them)."""
    return otp.send_code(ctx, _waiting(ctx, token))


def sign(ctx: AppContext, token: str, code: str) -> list[int]:
    """Check the code and sign (see :func:`parafe.services.otp.codes.check_code`)."""
    return otp.check_code(ctx, _waiting(ctx, token), code)


def refuse(ctx: AppContext, token: str, message: str) -> None:
    otp.refuse(ctx, _waiting(ctx, token), message)


def redirect_url(referer: str | None, outcome: str) -> str | None:
    """The business software's URL with ``return=<outcome>`` appended (spec §7.2); None without a referer or
    when the referer is not an http(s) URL."""
    if not referer or outcome not in RETURN_VALUES:
        return None
    parts = urlsplit(referer.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    query = f"{parts.query}&" if parts.query else ""
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query + urlencode({"return": outcome}),
                       parts.fragment))
