"""SMS: the provider interface and the ``outbox`` provider for development (DECISIONS D15).

A provider sends one text to one phone number and answers a provider message id. ``outbox`` (the default,
``PARAFE_SMS_PROVIDER``) sends nothing: it keeps the message in the development outbox (table
``dev_messages``), where ``parafe dev outbox`` and the tests read it. A real provider (an HTTP API of an SMS
operator) plugs in by name in :func:`provider`.
"""

from __future__ import annotations

import re
from typing import Protocol

from parafe.db.models import DevMessage
from parafe.services.context import AppContext
from parafe.workflow.settings import workflow_settings


class SmsProvider(Protocol):
    def send(self, phone: str, text: str, *, document_id: int | None = None) -> str: ...


def normalise_phone(phone: str) -> str:
    """``06 06 06 06 06`` / ``+33 6…`` → ``+33606060606`` (French numbers); other numbers keep their digits."""
    digits = re.sub(r"[^\d+]", "", phone)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    if re.fullmatch(r"0\d{9}", digits):
        digits = "+33" + digits[1:]
    return digits


def mask_phone(phone: str) -> str:
    """``+33606060606`` → ``+33 6 •• •• •• 06`` (shown on the OTP page and in history comments)."""
    p = normalise_phone(phone)
    return p[:4] + "•" * max(len(p) - 6, 0) + p[-2:] if len(p) > 6 else "•" * len(p)


class OutboxSms:
    """Keeps SMS in the development outbox."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def send(self, phone: str, text: str, *, document_id: int | None = None) -> str:
        with self.ctx.db.write() as session:
            message = DevMessage(channel="sms", recipient=normalise_phone(phone), body=text,
                                 document_id=document_id)
            session.add(message)
            session.flush()
            return f"outbox-{message.id}"


def provider(ctx: AppContext) -> SmsProvider:
    name = workflow_settings().sms_provider
    if name == "outbox":
        return OutboxSms(ctx)
    raise RuntimeError(f"fournisseur SMS inconnu : {name!r} (disponible : outbox)")
