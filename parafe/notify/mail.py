"""Mails (SMTP, configurable) and their French texts.

``PARAFE_SMTP_HOST`` set: mails go to that SMTP server (``PARAFE_SMTP_PORT``, ``…_USER``/``…_PASSWORD``,
``…_STARTTLS`` or ``…_SSL``, sender ``PARAFE_MAIL_FROM``). Not set: they are kept in the development outbox
(table ``dev_messages``, ``parafe dev outbox``). Texts are French; dates are shown Europe/Paris (D16).
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid

from parafe.config import WorkflowSettings, workflow_settings
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


@dataclass(frozen=True)
class Mail:
    """One message to send (all recipients in To)."""
    to: list[str]
    subject: str
    body: str
    document_id: int | None = None
    message_id: str | None = None


def send_mail(ctx: AppContext, to: Iterable[str], subject: str, body: str, *, document_id: int | None = None,
              message_id: str | None = None) -> list[str]:
    """Send one mail to every recipient (one message, all in To); returns the recipients."""
    recipients = _recipients(to)
    if not recipients:
        return []
    failures = send_many(ctx, [Mail(recipients, subject, body, document_id, message_id)])
    if failures:
        raise failures[0][1]
    return recipients


def send_many(ctx: AppContext, mails: list[Mail]) -> list[tuple[int, Exception]]:
    """Send several mails at once (a batch of jobs): through ONE SMTP connection, or ONE write transaction of the
    development outbox. Returns the (index, error) of the mails that could not be sent; a refused message does
    not stop the others (the connection is opened again for the next one)."""
    wanted = [(index, mail, _recipients(mail.to)) for index, mail in enumerate(mails)]
    wanted = [(index, mail, recipients) for index, mail, recipients in wanted if recipients]
    if not wanted:
        return []
    s = workflow_settings()
    host = s.smtp_host
    if not host:
        with ctx.db.write() as session:
            session.add_all([DevMessage(channel="mail", recipient=", ".join(recipients), subject=mail.subject,
                                        body=mail.body, document_id=mail.document_id)
                             for _index, mail, recipients in wanted])
        return []
    failures: list[tuple[int, Exception]] = []
    smtp: smtplib.SMTP | None = None
    try:
        for index, mail, recipients in wanted:
            msg = EmailMessage()
            msg["From"] = s.mail_from
            msg["To"] = ", ".join(recipients)
            msg["Subject"] = mail.subject
            msg["Message-ID"] = mail.message_id or make_msgid(domain="parafe")
            msg["Content-Language"] = "fr"
            msg.set_content(mail.body, charset="utf-8")
            try:
                if smtp is None:
                    smtp = _connect(s, host)
                smtp.send_message(msg)
            except Exception as exc:
                failures.append((index, exc))
                if smtp is not None:
                    with contextlib.suppress(Exception):
                        smtp.close()
                smtp = None
    finally:
        if smtp is not None:
            with contextlib.suppress(Exception):
                smtp.quit()
    return failures


def _connect(s: WorkflowSettings, host: str) -> smtplib.SMTP:
    """An SMTP session with ``host``, secured and logged in as the settings say."""
    smtp_cls = smtplib.SMTP_SSL if s.smtp_ssl else smtplib.SMTP
    smtp = smtp_cls(host, s.smtp_port, timeout=30)
    try:
        if s.smtp_starttls and not s.smtp_ssl:
            smtp.starttls(context=ssl.create_default_context())
        if s.smtp_user:
            smtp.login(s.smtp_user, s.smtp_password or "")
    except Exception:
        smtp.close()
        raise
    return smtp


def signature_block() -> str:
    return ("\n\n--\nParafe, parapheur électronique\n"
            "Ce message est envoyé automatiquement, merci de ne pas y répondre.\n")
