"""The daily digest (issue 20): one French e-mail a day to each person with documents waiting for their visa or
signature (their own, and those of a colleague who delegated to them), through :mod:`parafe.notify.mail`.

Run by :func:`daily_digest`, scheduled at the composition root (huey periodic task, ``parafe dev digest``). A
user opts out from the portal's « Absence et récapitulatif » page (``users.digest_mail``). One digest per person
and per Paris day, whatever the number of workers: the day is claimed in ``users.digest_sent_on`` before the mail
goes (and released if the SMTP server refuses it, so that the next run retries).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

from sqlalchemy import or_, select, update

from parafe.context import AppContext
from parafe.db.models import User, utcnow
from parafe.domain.errors import ParafeError
from parafe.domain.paris_time import paris_today
from parafe.notify import mail
from parafe.services.access.auth import principal_for_email
from parafe.services.portal import lists

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DigestReport:
    sent: int
    skipped: int  # nothing waiting, or already sent today
    failed: int = 0  # the SMTP server refused the mail (retried at the next run)


def subject(count: int) -> str:
    return (f"Parafe : {count} document{'s' if count > 1 else ''} en attente de votre visa ou signature")


def text(ctx: AppContext, name: str, rows: list[lists.DocumentRow]) -> str:
    """The digest's body: the waiting documents, oldest first, each with its link."""
    lines = [f"Bonjour {name},", "", "Les documents suivants attendent votre action dans Parafe :", ""]
    for row in rows:
        what = "À viser" if row.action == "visa" else "À signer"
        lines.append(f"- {what} : {row.name} (n° {row.id}, {row.circuit_name} / {row.label}, déposé le "
                     f"{mail.paris(row.deposited_at)} par {row.depositor or '—'})")
        lines.append(f"  {mail.document_link(ctx, row.id)}")
    lines += ["", f"Tableau de bord : {mail.base_url(ctx)}/tableau-de-bord",
              f"Pour ne plus recevoir ce récapitulatif quotidien : {mail.base_url(ctx)}/absence"]
    return "\n".join(lines) + mail.signature_block()


def send_digests(ctx: AppContext, today: date | None = None) -> DigestReport:
    """Send today's digests (Paris date); returns how many went out."""
    day = (today or paris_today(utcnow())).isoformat()
    with ctx.db.read() as session:
        emails = sorted(set(session.scalars(select(User.email).where(
            User.active.is_(True), User.digest_mail.is_(True), User.email != "",
            or_(User.digest_sent_on.is_(None), User.digest_sent_on != day)))))
    sent = skipped = failed = 0
    for email in emails:
        try:
            principal = principal_for_email(ctx, email)
        except ParafeError:
            skipped += 1
            continue
        rows = lists.pending(ctx, principal)
        if not rows:
            skipped += 1
            continue
        with ctx.db.write() as session:  # claim the day (another worker may be on it)
            claimed = session.execute(update(User).where(
                User.email == email, User.digest_mail.is_(True),
                or_(User.digest_sent_on.is_(None), User.digest_sent_on != day))
                .values(digest_sent_on=day).execution_options(synchronize_session=False))
        if not getattr(claimed, "rowcount", 0):
            skipped += 1
            continue
        name = principal.accounts[0].full_name if principal.accounts else email
        try:
            mail.send_mail(ctx, [email], subject(len(rows)), text(ctx, name, rows))
        except Exception as exc:  # SMTP down or refusing: release the day, the next run retries
            log.warning("digest to %s not sent: %s", email, exc)
            failed += 1
            with ctx.db.write() as session:
                session.execute(update(User).where(User.email == email, User.digest_sent_on == day)
                                .values(digest_sent_on=None).execution_options(synchronize_session=False))
            continue
        sent += 1
    return DigestReport(sent, skipped, failed)


def daily_digest(ctx: AppContext) -> dict[str, int]:
    """The daily run (huey periodic task at 06:05 UTC, i.e. 07:05 or 08:05 in Paris, or ``parafe dev digest``):
    :func:`send_digests`, as counts."""
    report = send_digests(ctx)
    return {"sent": report.sent, "skipped": report.skipped, "failed": report.failed}


def set_preference(ctx: AppContext, user_ids: frozenset[int], wanted: bool) -> None:
    """The caller's opt-in / opt-out (every account of the person)."""
    with ctx.db.write() as session:
        session.execute(update(User).where(User.id.in_(sorted(user_ids))).values(digest_mail=wanted)
                        .execution_options(synchronize_session=False))


def preference(ctx: AppContext, user_ids: frozenset[int]) -> bool:
    with ctx.db.read() as session:
        values = list(session.scalars(select(User.digest_mail).where(User.id.in_(sorted(user_ids)))))
    return all(values) if values else True
