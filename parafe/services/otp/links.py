"""OTP signing URLs, shared by every connector (spec §2.5.17 ``getMultiIdsSmsUrl``, §2.6.17 ``otp/url``,
§2.5.19 ``otpUpload``, §2.6.18 ``otp/{siren}/{circuit}/upload``; DECISIONS D15, D19).

One URL may cover several documents (batch signature with one code) provided every document carries exactly
the same OTP identity (e-mail and/or phone) for its current OTP step. The URL holds a random token of 256 bits
stored in ``otp_links`` with the documents, the signer identity and the redirect URL; the OTP pages (another
part of Parafe) resolve it. The URL is ``<public URL>/boucle-sms/documentView?id=<token>``, the shape of the
real service's links (§2.6.17); the public URL comes from ``PARAFE_PUBLIC_URL`` or, failing that, from the
base URL of the request the connector passes in.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from parafe.context import AppContext
from parafe.db.models import Circuit, Document, MetadataValue, OtpLink
from parafe.domain.circuits import StepKind
from parafe.domain.errors import E, ParafeError
from parafe.domain.ids import parse_ids
from parafe.services.access.auth import Principal
from parafe.services.access.rights import circuit_for_deposit, subscriber_account, visible_document
from parafe.services.documents.deposit import DepositRequest, deposit
from parafe.services.documents.lifecycle import may_act
from parafe.services.documents.metadata import (
    OTP_CLOSED_STATES,
    NameRule,
    check_otp_information,
    otp_step_count,
    store_otp_information,
)
from parafe.services.otp.identity import SignerIdentity

OTP_PAGE_PATH = "/boucle-sms/documentView"
TOKEN_BYTES = 32  # 256 bits (D15: at least 128)


@dataclass(frozen=True)
class OtpUploaded:
    document_id: int
    url: str


def otp_page_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}{OTP_PAGE_PATH}?id={token}"


def _base(ctx: AppContext, base_url: str | None) -> str:
    return (ctx.settings.public_url or base_url or "").rstrip("/")


def current_otp_index(circuit: Circuit, current_step: int | None) -> int | None:
    """Index (``OTP_*_i``) of the OTP step a document is at or will reach next; None when it has passed its
    last OTP step."""
    positions = sorted(s.position for s in circuit.steps if s.kind == StepKind.OTP_SIGNATURE.value)
    if current_step is None:
        return 0 if positions else None
    for index, position in enumerate(positions):
        if position >= current_step:
            return index
    return None


def _identity(session: Session, document: Document, index: int) -> SignerIdentity | None:
    """Who signs with the code, as the link stores it: the e-mail (lower-case) and/or the phone number (digits
    only)."""
    rows = session.scalars(select(MetadataValue).where(
        MetadataValue.document_id == document.id, MetadataValue.kind == "otp",
        MetadataValue.name.in_([f"OTP_email_{index}", f"OTP_phonenumber_{index}"]))).all()
    values = {r.name: r.value.strip() for r in rows if r.value.strip()}
    email = values.get(f"OTP_email_{index}")
    phone = values.get(f"OTP_phonenumber_{index}")
    if not email and not phone:
        return None
    digits = re.sub(r"\D", "", phone) if phone else None
    if digits and phone and phone.strip().startswith("+33"):
        digits = "0" + digits[2:]
    return SignerIdentity(email=email.lower() if email else None, phone=digits or None)


def otp_url(
    ctx: AppContext, principal: Principal, document_ids: Sequence[int | str], *, base_url: str | None = None,
    referer: str | None = None,
) -> str:
    """One OTP signing URL for one or several documents (D15).

    Raises ``DOCUMENT_NOT_FOUND`` (unknown or foreign id), ``NO_PERMISSION`` (visible but the caller is not
    its depositor, an agent of its circuit or an admin), ``BSMS_NO_SMS_STEP`` (a circuit without OTP
    signature step), ``BSMS_NOT_AT_SMS_STEP`` (OTP signature done or document finished),
    ``BSMS_METADATA_MISSING`` (no OTP information for the current OTP step), ``OTP_IDENTITY_MISMATCH``
    (different OTP identities, or documents of different subscribers) and ``BAD_REQUEST`` (no id).
    """
    ids = parse_ids(document_ids, name="id")
    if referer is not None and len(referer) > 1024:
        raise ParafeError(E.BAD_REQUEST, reason="l'URL de redirection ne doit pas excéder 1024 caractères")
    with ctx.db.write() as session:
        identity: SignerIdentity | None = None
        subscriber_id: int | None = None
        creator: int | None = None
        resolved: list[int] = []
        index_used = 0
        for raw in ids:
            document, account = visible_document(session, principal, raw)
            if not may_act(session, account, document):
                raise ParafeError(E.NO_PERMISSION, detail=f"document {document.id}")
            if otp_step_count(document.circuit) == 0:
                raise ParafeError(E.BSMS_NO_SMS_STEP, detail=f"document {document.id}")
            index = current_otp_index(document.circuit, document.current_step)
            if document.state in OTP_CLOSED_STATES or index is None:
                raise ParafeError(E.BSMS_NOT_AT_SMS_STEP, detail=f"document {document.id}: {document.state}")
            found = _identity(session, document, index)
            if found is None:
                raise ParafeError(E.BSMS_METADATA_MISSING, detail=f"document {document.id}: no OTP information")
            if identity is None:
                identity, subscriber_id, creator, index_used = found, document.subscriber_id, account.user_id, index
            elif found != identity or document.subscriber_id != subscriber_id:
                raise ParafeError(E.OTP_IDENTITY_MISMATCH, detail=f"document {document.id}")
            if document.id not in resolved:
                resolved.append(document.id)
        assert identity is not None
        assert subscriber_id is not None
        token = secrets.token_urlsafe(TOKEN_BYTES)
        session.add(OtpLink(token=token, subscriber_id=subscriber_id, document_ids=resolved,
                            signer_index=index_used, signer_email=identity.email, signer_phone=identity.phone,
                            referer=referer or None, created_by=creator))
    return otp_page_url(_base(ctx, base_url), token)


def otp_upload(
    ctx: AppContext, principal: Principal, req: DepositRequest, otp_data: bytes, *,
    otp_filename: str | None = None, name_rule: NameRule = "metas", referer: str | None = None,
    base_url: str | None = None,
) -> OtpUploaded:
    """Deposit a document into a circuit with OTP signature, define its OTP signers and return its id and
    signing URL (spec §2.5.19 / §2.6.18).

    The OTP information is checked before anything is stored (so a bad ``meta`` stores no document); the
    errors are those of :func:`parafe.services.documents.deposit.deposit`, of
    :func:`parafe.services.documents.metadata.check_otp_information` and of :func:`otp_url`.
    """
    with ctx.db.read() as session:
        subscriber, account = subscriber_account(session, principal, req.siren)
        circuit = circuit_for_deposit(session, subscriber, account, req.circuit)
        steps = otp_step_count(circuit)
    signers = check_otp_information(otp_data, steps, filename=otp_filename, name_rule=name_rule)
    deposited = deposit(ctx, principal, req)
    with ctx.db.write() as session:
        document, account = visible_document(session, principal, deposited.document_id, for_update=True)
        store_otp_information(session, document, account, signers)
    url = otp_url(ctx, principal, [deposited.document_id], base_url=base_url, referer=referer)
    return OtpUploaded(deposited.document_id, url)
