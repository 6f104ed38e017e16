"""OTP signature (spec §2.2, §7; DECISIONS D15, D19): send a one-time code, check it, sign.

The OTP page (public, reached through an OTP link of ``services.otp_links``) calls:

- :func:`send_code` — a new 6-digit code (``PARAFE_OTP_DIGITS``) valid 10 minutes (``PARAFE_OTP_TTL_SECONDS``)
  for the documents of the link, all at an OTP signature step with the same signer identity; sent by SMS when
  the OTP information gives a phone number, else by e-mail. Only a salted hash of the code is stored; a new
  code replaces the previous one.
- abuse limits (issue 18): at most ``PARAFE_OTP_MAX_CODES`` codes per document and OTP step (then
  ``OSS_TOO_MANY_CODES``, 189), and ``PARAFE_OTP_MAX_FAILURES`` wrong codes in total over all its codes, after
  which the document's OTP links are locked (``OTP_LINK_LOCKED``); counted in ``otp_usage``.
- :func:`check_code` — 3 attempts (``PARAFE_OTP_ATTEMPTS``), then the code is locked. A valid code writes
  ``OTP validé`` (actor « boucle sms ») and a ``sign.otp`` job per document in one transaction; the jobs are
  run at once in the caller's thread (a worker would pick them up after a crash): a server PAdES signature
  with a pictogram naming the signer, then ``OTP signé``, then the next step.
- :func:`refuse` — the signer refuses: ``Refusé`` with the message.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from parafe.config import workflow_settings
from parafe.context import AppContext
from parafe.db.models import CircuitStep, Document, MetadataValue, OtpChallenge, OtpUsage, StepMember, User, utcnow
from parafe.domain.circuits import StepKind
from parafe.domain.errors import E, ParafeError
from parafe.domain.states import ACTOR_OTP, State
from parafe.jobs import outbox
from parafe.notify import sms
from parafe.notify.mail import aware, send_mail, signature_block
from parafe.services.otp import sms_deliveries
from parafe.services.otp.hashing import code_matches, hash_code
from parafe.services.otp.identity import SignerIdentity
from parafe.workflow import engine
from parafe.workflow.engine import lock_document, record, workflow_tx


@dataclass(frozen=True)
class SentCode:
    channel: str  # sms | email
    destination: str  # masked
    expires_at: datetime


def otp_index(session: Session, document: Document, position: int) -> int:
    """Index ``i`` of ``OTP_*_i`` for the OTP step at ``position`` (0 for the circuit's first OTP step)."""
    return sum(1 for step in engine.steps_of(session, document)
               if step.kind == StepKind.OTP_SIGNATURE.value and step.position < position)


def identity(session: Session, document: Document, step: CircuitStep) -> SignerIdentity | None:
    """The OTP signer of a step: the document's OTP information (§6.3), else the step's member (D19)."""
    index = otp_index(session, document, step.position)
    rows = session.scalars(select(MetadataValue).where(
        MetadataValue.document_id == document.id, MetadataValue.kind == "otp"))
    values = {row.name: row.value.strip() for row in rows if row.value and row.value.strip()}
    found = SignerIdentity(values.get(f"OTP_firstname_{index}"), values.get(f"OTP_lastname_{index}"),
                           values.get(f"OTP_email_{index}"), values.get(f"OTP_phonenumber_{index}"))
    if found.email or found.phone:
        return found
    for member in session.scalars(select(StepMember).where(StepMember.step_id == step.id)):
        user = session.get(User, member.user_id) if member.user_id else None
        if user is not None:
            return SignerIdentity(user.firstname, user.lastname, user.email, user.phone)
        if member.email:
            return SignerIdentity(None, None, member.email, None)
    return None


def _at_otp_step(session: Session, document_id: int, *, lock: bool = False) -> tuple[Document, CircuitStep]:
    document = lock_document(session, document_id) if lock else session.scalar(
        select(Document).where(Document.id == document_id, Document.deleted_at.is_(None)))
    if document is None:
        raise ParafeError(E.DOCUMENT_NOT_FOUND)
    step = engine.current_step(session, document)
    if step is None or step.kind != StepKind.OTP_SIGNATURE.value or document.state in (
            State.OTP_VALIDATED.value, State.OTP_SIGNED.value, State.REFUSED.value):
        raise ParafeError(E.BSMS_NOT_AT_SMS_STEP, detail=f"document {document_id} is not waiting for an OTP signature")
    return document, step


def _documents(session: Session, document_ids: list[int], *, lock: bool = False,
               ) -> tuple[list[tuple[Document, CircuitStep]], SignerIdentity]:
    if not document_ids:
        raise ParafeError(E.BAD_REQUEST, reason="aucun document")
    found = [_at_otp_step(session, doc_id, lock=lock) for doc_id in sorted(set(document_ids))]
    identities = [identity(session, doc, step) for doc, step in found]
    if any(i is None for i in identities):
        raise ParafeError(E.OTP_INFO_MISSING)
    first = identities[0]
    assert first is not None
    if any(i is not None and i.key() != first.key() for i in identities[1:]):
        raise ParafeError(E.OTP_IDENTITY_MISMATCH)
    if len({doc.subscriber_id for doc, _ in found}) != 1:
        raise ParafeError(E.OTP_IDENTITY_MISMATCH, detail="documents of several subscribers")
    return found, first


def _key(document_ids: list[int]) -> list[int]:
    return sorted(set(int(i) for i in document_ids))


def _usage(session: Session, found: list[tuple[Document, CircuitStep]]) -> list[OtpUsage]:
    """The ``otp_usage`` rows of these documents at their OTP step, created if needed, locked for the
    transaction (the counters of the abuse limits, shared by every server process)."""
    rows: list[OtpUsage] = []
    for document, step in found:
        key = {"document_id": document.id, "position": step.position}
        row = session.scalar(select(OtpUsage).filter_by(**key).with_for_update())
        if row is None:
            try:
                with session.begin_nested():  # a concurrent request may create the same row
                    row = OtpUsage(**key, codes_sent=0, failures=0)
                    session.add(row)
            except IntegrityError:
                row = session.scalar(select(OtpUsage).filter_by(**key).with_for_update())
        assert row is not None
        rows.append(row)
    return rows


def _check_not_locked(usage: list[OtpUsage]) -> None:
    if any(row.locked_at is not None for row in usage):
        raise ParafeError(E.OTP_LINK_LOCKED)


def send_code(ctx: AppContext, document_ids: list[int]) -> SentCode:
    """Send a new code to the OTP signer of these documents (see the module docstring)."""
    s = workflow_settings()
    ids = _key(document_ids)
    code = f"{secrets.randbelow(10 ** s.otp_digits):0{s.otp_digits}d}"
    with ctx.db.write() as session:
        found, who = _documents(session, ids)
        _challenge(session, ids)  # lock order of check_code (challenges, then usage rows): no deadlock between them
        usage = _usage(session, found)
        _check_not_locked(usage)
        if any(row.codes_sent >= s.otp_max_codes for row in usage):
            raise ParafeError(E.OSS_TOO_MANY_CODES, detail=f"more than {s.otp_max_codes} codes for a document")
        for row in usage:
            row.codes_sent += 1
        channel = "sms" if who.phone else "email"
        destination = sms.normalise_phone(who.phone) if who.phone else (who.email or "")
        for old in session.scalars(select(OtpChallenge).where(OtpChallenge.status == "pending",
                                                              OtpChallenge.subscriber_id == found[0][0].subscriber_id)):
            if _key(list(old.document_ids)) == ids:
                old.status = "replaced"
        expires = utcnow() + timedelta(seconds=s.otp_ttl_seconds)
        challenge = OtpChallenge(
            subscriber_id=found[0][0].subscriber_id, circuit_id=found[0][0].circuit_id, document_ids=ids,
            channel=channel, destination=destination, code_hash=hash_code(code), max_attempts=s.otp_attempts,
            expires_at=expires, created_at=utcnow())
        session.add(challenge)
        session.flush()
        minutes = max(s.otp_ttl_seconds // 60, 1)
        sms_job = sms_deliveries.queue_otp_sms(
            session, challenge, f"Parafe : votre code de signature est {code}. Il est valable {minutes} minutes.",
            ids, expires).id if channel == "sms" else None
    if sms_job is not None:  # sent now through the outbox: retried with back-off, a failure is recorded
        delivery = sms_deliveries.send_now(ctx, sms_job)
        if delivery is not None and delivery.status == "failed":
            raise ParafeError(E.SMS_SEND_FAILED, reason=delivery.error or "refusé par le fournisseur")
        shown = sms.mask_phone(destination)
    else:
        send_mail(ctx, [destination], "Votre code de signature",
                  f"Bonjour {who.full_name},\n\nVotre code de signature est : {code}\n\nIl est valable {minutes} "
                  f"minutes et ne peut être utilisé qu'une fois." + signature_block(), document_id=ids[0])
        local, _, domain = destination.partition("@")
        shown = f"{local[:2]}•••@{domain}"
    return SentCode(channel=channel, destination=shown, expires_at=expires)


def _challenge(session: Session, ids: list[int]) -> OtpChallenge | None:
    rows = session.scalars(select(OtpChallenge).where(OtpChallenge.status.in_(("pending", "locked")))
                           .order_by(OtpChallenge.id.desc()).with_for_update())
    for row in rows:
        if _key(list(row.document_ids)) == ids:
            return row
    return None


def check_code(ctx: AppContext, document_ids: list[int], code: str) -> list[int]:
    """Check the code; on success sign every document (see the module docstring) and return their ids."""
    ids = _key(document_ids)
    now = utcnow()
    failure: ParafeError | None = None
    s = workflow_settings()
    with ctx.db.write() as session:
        challenge = _challenge(session, ids)
        usage: list[OtpUsage] = []
        if challenge is not None:
            usage = _usage(session, [_at_otp_step(session, doc_id) for doc_id in ids])
        if any(row.locked_at is not None for row in usage):
            failure = ParafeError(E.OTP_LINK_LOCKED)
        elif challenge is None or aware(challenge.expires_at) <= now:
            if challenge is not None:
                challenge.status = "expired"
            failure = ParafeError(E.OTP_CODE_EXPIRED)
        elif challenge.status == "locked":
            failure = ParafeError(E.OTP_LOCKED)
        elif not code_matches(challenge.code_hash, code):
            challenge.attempts += 1
            remaining = challenge.max_attempts - challenge.attempts
            for row in usage:
                row.failures += 1
            if any(row.failures >= s.otp_max_failures for row in usage):
                for row in usage:
                    row.locked_at = now
                challenge.status = "locked"
                failure = ParafeError(E.OTP_LINK_LOCKED)
            elif remaining <= 0:
                challenge.status = "locked"
                failure = ParafeError(E.OTP_LOCKED)
            else:
                failure = ParafeError(E.OTP_CODE_INVALID, remaining=remaining)
    if failure is not None:
        raise failure
    job_ids: list[int] = []
    with workflow_tx(ctx) as session:
        challenge = _challenge(session, ids)
        if challenge is None or challenge.status != "pending" or not code_matches(challenge.code_hash, code):
            raise ParafeError(E.OTP_CODE_EXPIRED)
        found, who = _documents(session, ids, lock=True)
        challenge.status = "done"
        challenge.used_at = utcnow()
        via = "SMS" if challenge.channel == "sms" else "courriel"
        for document, step in found:
            record(session, document, State.OTP_VALIDATED, actor=ACTOR_OTP,
                   comment=f"Code vérifié ({via}) pour {who.full_name}")
            job = outbox.add(session, "sign.otp", document.id, {
                "position": step.position, "channel": challenge.channel,
                "signer": {"firstname": who.firstname, "lastname": who.lastname, "email": who.email,
                           "phone": who.phone}})
            job_ids.append(job.id)
    for job_id in outbox.claim(ctx, job_ids):
        outbox.execute(ctx, job_id)
    return ids


def refuse(ctx: AppContext, document_ids: list[int], message: str) -> None:
    """The OTP signer refuses to sign: ``Refusé`` (actor « boucle sms »), message kept for getRefusalMessage."""
    text = (message or "").strip()
    if not text:
        raise ParafeError(E.REASON_REQUIRED)
    with workflow_tx(ctx) as session:
        found, who = _documents(session, _key(document_ids), lock=True)
        for document, _step in found:
            document.refusal_message = text[:4000]
            record(session, document, State.REFUSED, actor=ACTOR_OTP, comment=f"{who.full_name} : {text}"[:4000])
            engine.stop(ctx, session, document, "refused")
