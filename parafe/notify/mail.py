"""Mails (SMTP, configurable) and their French texts.

``PARAFE_SMTP_HOST`` set: mails go to that SMTP server (``PARAFE_SMTP_PORT``, ``…_USER``/``…_PASSWORD``,
``…_STARTTLS`` or ``…_SSL``, sender ``PARAFE_MAIL_FROM``). Not set: they are kept in the development outbox
(table ``dev_messages``, ``parafe dev outbox``). Texts are French; dates are shown Europe/Paris (D16).
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterable
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid

from parafe.config import workflow_settings
from parafe.context import AppContext
from parafe.db.models import DevMessage
from parafe.domain.paris_time import aware as aware  # re-exported: the services import it from here
from parafe.domain.paris_time import paris_format

DOCUMENT_PATH = "/documents/{id}"  # the portal's document page


def paris(moment: datetime) -> str:
    """``JJ/MM/AAAA à HH:MM`` in Europe/Paris (DECISIONS D16)."""
    return paris_format(moment)


def base_url(ctx: AppContext) -> str:
    return (ctx.settings.public_url or "https://127.0.0.1:8443").rstrip("/")


def document_link(ctx: AppContext, document_id: int) -> str:
    return base_url(ctx) + DOCUMENT_PATH.format(id=document_id)


def _recipients(to: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for address in to:
        for part in address.replace(";", ",").split(","):
            part = part.strip()
            if part and part.lower() not in (s.lower() for s in seen):
                seen.append(part)
    return seen


def split_recipients(to: Iterable[str]) -> list[str]:
    """The addresses of ``to`` (each may hold several, separated by ``,`` or ``;``), without duplicates."""
    return _recipients(to)


def send_mail(ctx: AppContext, to: Iterable[str], subject: str, body: str, *, document_id: int | None = None,
              message_id: str | None = None) -> list[str]:
    """Send one mail to every recipient (one message, all in To); returns the recipients."""
    recipients = _recipients(to)
    if not recipients:
        return []
    s = workflow_settings()
    if not s.smtp_host:
        with ctx.db.write() as session:
            session.add(DevMessage(channel="mail", recipient=", ".join(recipients), subject=subject, body=body,
                                   document_id=document_id))
        return recipients
    msg = EmailMessage()
    msg["From"] = s.mail_from
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = subject
    msg["Message-ID"] = message_id or make_msgid(domain="parafe")
    msg["Content-Language"] = "fr"
    msg.set_content(body, charset="utf-8")
    smtp_cls = smtplib.SMTP_SSL if s.smtp_ssl else smtplib.SMTP
    with smtp_cls(s.smtp_host, s.smtp_port, timeout=30) as smtp:
        if s.smtp_starttls and not s.smtp_ssl:
            smtp.starttls(context=ssl.create_default_context())
        if s.smtp_user:
            smtp.login(s.smtp_user, s.smtp_password or "")
        smtp.send_message(msg)
    return recipients


def signature_block() -> str:
    return ("\n\n--\nParafe, parapheur électronique\n"
            "Ce message est envoyé automatiquement, merci de ne pas y répondre.\n")
