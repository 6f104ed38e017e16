"""Mails through a real SMTP server (aiosmtpd) started by the test: the next actor is alerted, the depositor at
the end and on every refused deposit, in French, with a link to the document."""

from __future__ import annotations

import email
import email.policy
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from parafe.domain.errors import ParafeError
from parafe.services import steps as wf
from parafe.services.access.auth import principal_for_email
from parafe.services.demo import AGENT, SIGNER, VISA
from tests.conftest import free_port
from tests.fixtures.files import pdf_bytes
from tests.workflow.conftest import deposit_file, run_jobs


class Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.port = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address in str(m["X-Envelope-To"])]

    def wait(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)


@pytest.fixture
def smtp(wf_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    inbox = Inbox()
    port = inbox.port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("PARAFE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("PARAFE_SMTP_PORT", str(port))
    monkeypatch.setenv("PARAFE_MAIL_FROM", "Parafe <parapheur@demo.parafe.test>")
    try:
        yield inbox
    finally:
        controller.stop()


def body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def test_mails_along_a_circuit(ctx: Any, tmp_path: Path, smtp: Inbox) -> None:
    doc_id = deposit_file(ctx, tmp_path, "délibération n°12.pdf", pdf_bytes(), circuit="bureautique",
                          comment="Urgent", email_destinataire="prefecture@exemple.fr")
    run_jobs(ctx)
    smtp.wait(1)
    to_visa = smtp.to(VISA)
    assert len(to_visa) == 1
    assert to_visa[0]["Subject"] == "Document à viser : délibération n°12.pdf"
    text = body(to_visa[0])
    assert "attend votre action" in text
    assert "Alice Agent" in text
    assert "Urgent" in text
    assert f"/documents/{doc_id}" in text
    wf.approve_visa(ctx, principal_for_email(ctx, VISA), doc_id)
    run_jobs(ctx)
    smtp.wait(2)
    to_signer = smtp.to(SIGNER)
    assert [m["Subject"] for m in to_signer] == ["Document à signer : délibération n°12.pdf"]
    wf.refuse(ctx, principal_for_email(ctx, SIGNER), doc_id, "Il manque l'annexe budgétaire")
    run_jobs(ctx)
    smtp.wait(3)
    to_agent = smtp.to(AGENT)
    assert [m["Subject"] for m in to_agent] == ["Document refusé : délibération n°12.pdf"]
    text = body(to_agent[0])
    assert "« Refusé »" in text
    assert "Motif : Il manque l'annexe budgétaire" in text
    assert f"/documents/{doc_id}" in text
    assert smtp.to("prefecture@exemple.fr") == []  # receivers only hear of a finished circuit


def test_end_of_circuit_mail_to_depositor_and_receiver(ctx: Any, tmp_path: Path, smtp: Inbox) -> None:
    doc_id = deposit_file(ctx, tmp_path, "arrêté.pdf", pdf_bytes(), circuit="serveur",
                          email_destinataire="prefecture@exemple.fr")
    run_jobs(ctx)
    smtp.wait(2)
    [end] = smtp.to(AGENT)
    assert end["Subject"] == "Circuit terminé : arrêté.pdf"
    assert "« Classé »" in body(end)
    assert f"/documents/{doc_id}" in body(end)
    [receiver] = smtp.to("prefecture@exemple.fr")
    assert "a terminé son circuit" in body(receiver)


def test_deposit_error_mail(ctx: Any, tmp_path: Path, smtp: Inbox) -> None:
    with pytest.raises(ParafeError):
        deposit_file(ctx, tmp_path, "vide.pdf", b"", circuit="bureautique")
    with pytest.raises(ParafeError):
        deposit_file(ctx, tmp_path, "pas-un-pes.txt", b"bonjour", circuit="pes")
    run_jobs(ctx)
    smtp.wait(2)
    mails = smtp.to(AGENT)
    assert [m["Subject"] for m in mails] == ["Dépôt refusé : vide.pdf", "Dépôt refusé : pas-un-pes.txt"]
    assert "Le fichier envoyé est vide." in body(mails[0])
    assert "Cas 5" in body(mails[0])
    assert "n'a pas été pris en compte" in body(mails[1])


def test_smtp_down_is_retried(ctx: Any, tmp_path: Path, smtp: Inbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARAFE_SMTP_PORT", str(free_port()))  # nobody listens there
    deposit_file(ctx, tmp_path, "x.pdf", pdf_bytes(), circuit="bureautique")
    from parafe.jobs import outbox

    outbox.run_due(ctx)
    outbox.run_due(ctx)
    from sqlalchemy import select

    from parafe.db.models import OutboxItem

    with ctx.db.read() as s:
        item = s.scalars(select(OutboxItem).where(OutboxItem.kind == "mail.next_actor")).one()
        assert item.done_at is None
        assert item.last_error
        assert item.attempts >= 1
    monkeypatch.setenv("PARAFE_SMTP_PORT", str(smtp.port))
    run_jobs(ctx)
    smtp.wait(1)
    assert len(smtp.to(VISA)) == 1


class CountingInbox(Inbox):
    """An inbox that counts SMTP sessions and refuses the messages whose subject says so."""

    def __init__(self) -> None:
        super().__init__()
        self.sessions = 0

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if b"Subject: refuse" in envelope.content:
            return "554 Message refusé"
        return await super().handle_DATA(server, session, envelope)


def test_a_batch_of_mails_goes_through_one_smtp_session_and_a_refusal_stops_no_other(
        ctx: Any, wf_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from parafe.notify.mail import Mail, send_many

    inbox = CountingInbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    monkeypatch.setenv("PARAFE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("PARAFE_SMTP_PORT", str(controller.port))
    try:
        mails = [Mail([f"agent{i}@exemple.fr"], "refuse" if i == 2 else f"Circuit terminé : {i}", "Bonjour")
                 for i in range(5)] + [Mail([], "personne", "")]
        failures = send_many(ctx, mails)
    finally:
        controller.stop()
    assert [index for index, _exc in failures] == [2]
    assert sorted(str(m["Subject"]) for m in inbox.messages) == [f"Circuit terminé : {i}" for i in (0, 1, 3, 4)]
    assert inbox.sessions == 2  # one session, opened again after the refusal


def test_a_batch_of_mails_is_one_write_of_the_development_outbox(ctx: Any, wf_env: None) -> None:
    from sqlalchemy import func, select

    from parafe.db.models import DevMessage
    from parafe.notify.mail import Mail, send_many

    with ctx.db.read() as session:
        before = session.scalar(select(func.count()).select_from(DevMessage))
    mails = [Mail(["a@exemple.fr"], "un", "x"), Mail(["b@exemple.fr; c@exemple.fr"], "deux", "y")]
    assert send_many(ctx, mails) == []
    with ctx.db.read() as session:
        rows = list(session.scalars(select(DevMessage).order_by(DevMessage.id)))[before:]
    assert [(r.recipient, r.subject) for r in rows] == [("a@exemple.fr", "un"),
                                                        ("b@exemple.fr, c@exemple.fr", "deux")]
