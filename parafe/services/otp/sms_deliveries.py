"""SMS deliveries: every OTP SMS is a row of ``sms_deliveries`` sent through the outbox (issue 16).

- :func:`queue_otp_sms` adds the delivery (E.164 number, length, GSM-7/UCS-2 segments) and an ``sms.send``
  outbox row in the caller's transaction (the one that stores the OTP challenge); the caller then runs it at
  once (:func:`send_now`), a worker picks it up after a crash.
- ``sms.send`` hands the text to the configured provider (``notify.sms``). A temporary failure (network, 5xx,
  429) is retried by the outbox with back-off; a permanent one (4xx: number, sender or credentials refused),
  the last retry, or a code that expired before a retry could send it marks the delivery ``failed``, the OTP
  challenge ``failed`` (getSMSHistory ``ptt``) and writes a history entry on each document: no silent loss.
- The text (it carries the code) is erased from the row as soon as the send is final.
- Delivery status: OVHcloud is polled (:func:`poll_deliveries`, a periodic task); a generic gateway posts
  receipts to ``POST /hooks/sms/http`` (:func:`apply_receipt`, HMAC-SHA256 of the body with a shared secret).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import select
from sqlalchemy.orm import Session

from parafe.config import sms_settings
from parafe.context import AppContext
from parafe.db.models import OtpChallenge, OutboxItem, SmsDelivery, utcnow
from parafe.domain.states import ACTOR_OTP
from parafe.jobs import outbox
from parafe.notify import sms
from parafe.notify.mail import aware
from parafe.workflow.engine import lock_document, record

log = logging.getLogger(__name__)

KIND = "sms.send"

PROVIDER_LABELS = {"outbox": "boîte de développement", "ovh": "OVHcloud", "http": "passerelle SMS"}


def queue_otp_sms(session: Session, challenge: OtpChallenge, text: str, document_ids: Iterable[int],
                  expires_at: datetime | None) -> OutboxItem:
    """Record the SMS of an OTP challenge and its ``sms.send`` job in the current transaction."""
    parts = sms.sms_parts(text)
    ids = [int(i) for i in document_ids]
    delivery = SmsDelivery(
        subscriber_id=challenge.subscriber_id, circuit_id=challenge.circuit_id, challenge_id=challenge.id,
        document_ids=ids, provider=sms_settings().provider, recipient=sms.normalise_phone(challenge.destination),
        body=text, encoding=parts.encoding, message_length=parts.length, segments=parts.segments,
        status="queued", attempts=0, created_at=utcnow(), expires_at=expires_at)
    session.add(delivery)
    session.flush()
    return outbox.add(session, KIND, ids[0] if ids else None, {"delivery": delivery.id})


def send_now(ctx: AppContext, item: OutboxItem | int) -> SmsDelivery | None:
    """Run the ``sms.send`` job in this thread (unless a worker already took it); the delivery as it is after."""
    item_id = item if isinstance(item, int) else item.id
    for job_id in outbox.claim(ctx, [item_id]):
        outbox.execute(ctx, job_id)
    with ctx.db.read() as session:
        row = session.get(OutboxItem, item_id)
        delivery = session.get(SmsDelivery, int((row.payload or {}).get("delivery", 0))) if row else None
        if delivery is not None:
            session.expunge(delivery)
        return delivery


def _delivery_id(item: OutboxItem) -> int:
    return int((item.payload or {}).get("delivery", 0))


def _fail(ctx: AppContext, session: Session, delivery: SmsDelivery, reason: str) -> None:
    """Mark the delivery failed, its OTP code unusable, and tell the agent on every document's history."""
    if delivery.status in ("failed", "delivered"):
        return
    delivery.status = "failed"
    delivery.failed_at = utcnow()
    delivery.error = reason[:2000]
    delivery.body = None
    if delivery.challenge_id is not None:
        challenge = session.get(OtpChallenge, delivery.challenge_id)
        if challenge is not None and challenge.status == "pending":
            challenge.status = "failed"
    label = PROVIDER_LABELS.get(delivery.provider, delivery.provider)
    for document_id in delivery.document_ids or []:
        document = lock_document(session, int(document_id))
        if document is not None:
            record(session, document, None, actor=ACTOR_OTP,
                   comment=f"Échec de l'envoi du code de signature par SMS au {sms.mask_phone(delivery.recipient)}"
                           f" ({label}) : {reason}")


def _send(ctx: AppContext, item: OutboxItem) -> None:
    delivery_id = _delivery_id(item)
    with ctx.db.read() as session:
        delivery = session.get(SmsDelivery, delivery_id)
        if delivery is not None:
            session.expunge(delivery)
    if delivery is None or delivery.status != "queued" or delivery.body is None:
        with ctx.db.write() as session:
            row = outbox.lock_pending(session, item.id)
            if row is not None:
                outbox.close(row)
        return
    failure: str | None = None
    provider_id = ""
    name = sms_settings().provider
    if item.attempts > 1 and delivery.expires_at is not None and aware(delivery.expires_at) <= utcnow():
        failure = "le code a expiré avant de pouvoir être envoyé"
    else:
        try:
            sender = sms.provider(ctx)
            reference = f"parafe-{delivery.id}"
            already = sender.find_sent(reference) if item.attempts > 1 and hasattr(sender, "find_sent") else None
            provider_id = already or sender.send(delivery.recipient, delivery.body,
                                                 document_id=(delivery.document_ids or [None])[0],
                                                 reference=reference)
        except sms.SmsPermanentError as exc:
            failure = str(exc)
        except sms.SmsTemporaryError as exc:
            with ctx.db.write() as session:
                waiting = session.get(SmsDelivery, delivery_id)
                if waiting is not None:
                    waiting.attempts = item.attempts
                    waiting.error = str(exc)[:2000]
            raise
    with ctx.db.write() as session:
        row = outbox.lock_pending(session, item.id)
        current = session.get(SmsDelivery, delivery_id)
        if row is None or current is None:
            return
        current.provider = name
        current.attempts = item.attempts
        if failure is not None:
            _fail(ctx, session, current, failure)
        elif current.status == "queued":
            current.status = "sent"
            current.sent_at = utcnow()
            current.provider_id = provider_id or None
            current.error = None
            current.body = None
        outbox.close(row, failure)


def _give_up(ctx: AppContext, item: OutboxItem, error: str) -> None:
    with ctx.db.write() as session:
        delivery = session.get(SmsDelivery, _delivery_id(item))
        if delivery is not None:
            delivery.attempts = item.attempts
            _fail(ctx, session, delivery, f"abandon après {item.attempts} essais ({error.partition(': ')[2] or error})")


outbox.handler(KIND, give_up=_give_up)(_send)


# --- delivery status -------------------------------------------------------------------------------------------

def _apply(ctx: AppContext, session: Session, delivery: SmsDelivery, status: sms.DeliveryStatus) -> bool:
    """Apply a provider status to the delivery (final states stay final); True when it changed."""
    delivery.checked_at = utcnow()
    if delivery.status in ("delivered", "failed"):
        return False
    if status.provider_status:
        delivery.provider_status = status.provider_status[:64]
    if status.sent_at is not None and delivery.sent_at is None:
        delivery.sent_at = status.sent_at
    if status.state == "delivered":
        delivery.status = "delivered"
        delivery.delivered_at = status.delivered_at or utcnow()
        return True
    if status.state == "failed":
        _fail(ctx, session, delivery, status.detail or "non remis au destinataire")
        return True
    return False


def poll_deliveries(ctx: AppContext) -> int:
    """Read back the status of sent SMS from providers that answer it (OVHcloud); returns how many changed."""
    s = sms_settings()
    if s.provider != "ovh":
        return 0
    since = utcnow() - timedelta(hours=s.status_poll_hours)
    with ctx.db.read() as session:
        ids = list(session.scalars(select(SmsDelivery.id).where(
            SmsDelivery.status == "sent", SmsDelivery.provider == "ovh", SmsDelivery.provider_id.is_not(None),
            SmsDelivery.created_at >= since).order_by(SmsDelivery.id)))
    if not ids:
        return 0
    reader = sms.OvhSms(s)
    changed = 0
    for delivery_id in ids:
        with ctx.db.read() as session:
            provider_id = session.scalar(select(SmsDelivery.provider_id).where(SmsDelivery.id == delivery_id))
        try:
            status = reader.status(provider_id or "")
        except sms.SmsError as exc:
            log.warning("SMS %s: status not read: %s", delivery_id, exc)
            continue
        with ctx.db.write() as session:
            delivery = session.get(SmsDelivery, delivery_id)
            if delivery is None:
                continue
            if status is None:
                delivery.checked_at = utcnow()
            elif _apply(ctx, session, delivery, status):
                changed += 1
    return changed


# --- receipts of the generic gateway ---------------------------------------------------------------------------

class ReceiptRejected(Exception):
    """A receipt refused with an HTTP status and a French message."""

    def __init__(self, http_status: int, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.message = message


def signature_of(secret: str, body: bytes) -> str:
    """The receipt signature: hex HMAC-SHA256 of the raw body with the shared secret."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _parse(body: bytes, content_type: str) -> dict[str, Any]:
    if "application/x-www-form-urlencoded" in content_type:
        return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    try:
        data = json.loads(body)
    except ValueError:
        raise ReceiptRejected(400, "accusé de réception illisible : JSON attendu") from None
    if not isinstance(data, dict):
        raise ReceiptRejected(400, "accusé de réception illisible : objet JSON attendu")
    return data


def apply_receipt(ctx: AppContext, provider_name: str, body: bytes, signature: str | None,
                  content_type: str = "application/json") -> dict[str, str]:
    """A delivery receipt posted by the gateway: signature checked first, then the message's status mapped to
    delivered / failed (other statuses are kept as the provider's last status). Raises :class:`ReceiptRejected`."""
    s = sms_settings()
    if provider_name != "http" or s.provider != "http" or not s.hook_secret:
        raise ReceiptRejected(404, "aucun accusé de réception SMS n'est attendu à cette adresse")
    given = (signature or "").strip()
    given = given.split("=", 1)[1] if given.lower().startswith("sha256=") else given
    if not given or not hmac.compare_digest(given.lower(), signature_of(s.hook_secret, body)):
        raise ReceiptRejected(401, "signature de l'accusé de réception invalide")
    data = _parse(body, content_type)
    message_id = sms.json_path(data, s.hook_id_path)
    raw_status = sms.json_path(data, s.hook_status_path)
    if message_id is None or raw_status is None:
        raise ReceiptRejected(400, f"accusé de réception incomplet : « {s.hook_id_path} » et "
                                   f"« {s.hook_status_path} » sont obligatoires")
    word = str(raw_status).strip()
    state = ("delivered" if word.lower() in s.hook_delivered else "failed" if word.lower() in s.hook_failed
             else "sent")
    with ctx.db.write() as session:
        delivery = session.scalar(select(SmsDelivery).where(
            SmsDelivery.provider == "http", SmsDelivery.provider_id == str(message_id)))
        if delivery is None:
            raise ReceiptRejected(404, "message SMS inconnu")
        _apply(ctx, session, delivery, sms.DeliveryStatus(
            state, word, None, utcnow() if state == "delivered" else None,
            f"non remis au destinataire selon la passerelle (statut « {word} »)"))
        return {"id": str(message_id), "status": delivery.status}


# --- getSMSHistory ---------------------------------------------------------------------------------------------

# deliveryReceipt of getSMSHistory's smsHistoryVO, with OVHcloud's DLR values (the VO is OVHcloud's sms.Outgoing):
# 1 delivered, 2 not delivered, 4 waiting for a receipt; 0 when no delivery was recorded.
_RECEIPT_CODES = {"delivered": 1, "failed": 2, "sent": 4, "queued": 4}


def receipt_code(delivery_status: str | None) -> int:
    return _RECEIPT_CODES.get(delivery_status or "", 0)


def describe(provider: str | None, delivery_status: str | None, error: str | None) -> str | None:
    """A French description of a delivery (getSMSHistory ``pttDescription``); None without a delivery."""
    if not delivery_status:
        return None
    label = PROVIDER_LABELS.get(provider or "", provider or "")
    if delivery_status == "delivered":
        return f"Remis au destinataire ({label})"
    if delivery_status == "sent":
        return f"Envoyé ({label}), accusé de réception non reçu"
    if delivery_status == "failed":
        return f"Échec de l'envoi ({label}) : {error or 'refusé'}"
    return f"En attente d'envoi ({label})" + (f", nouvel essai prévu après : {error}" if error else "")
