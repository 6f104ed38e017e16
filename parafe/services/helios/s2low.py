"""S²LOW accounts, PES_Retour fetching and the operators' checks (Helios through S²LOW, docs/helios.md).

- :func:`set_account` / :func:`describe_accounts` / :func:`remove_account`: each subscriber (SIREN) may have its
  own S²LOW account; the others use the installation's default one (``PARAFE_S2LOW_*``). Secrets (private key,
  passwords) are stored, never shown nor logged.
- :func:`attach_transaction`: when the answer to a post was lost (worker killed, network cut after S²LOW
  received the file), S²LOW refuses the re-post as a duplicate without telling its transaction number; the
  operator reads it in S²LOW and gives it here, and the document's status polling resumes.
- :func:`poll_retours`: every ``PARAFE_S2LOW_POLL_SECONDS``, the unread PES_Retour of each account are
  fetched, stored once as ``pes_retour`` returns (``listRemainingPesRetour``, WebDAV ``out/``) and marked read
  on S²LOW — in that order, so that a crash in between fetches the file again and stores it once.
- :func:`check_providers`: ``parafe admin providers check``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from parafe.config import workflow_settings
from parafe.context import AppContext
from parafe.db.models import Document, ReturnItem, S2lowAccount, S2lowRetour, S2lowTransaction, Subscriber, utcnow
from parafe.domain.errors import E, ParafeError
from parafe.domain.states import State
from parafe.formats.safexml import parse_untrusted
from parafe.transmission.returns import RETURN_ID_START
from parafe.transmission.s2low import (
    DEFAULT_ACCOUNT,
    S2lowClient,
    S2lowCredentials,
    S2lowError,
    default_credentials,
    load_client_certificate,
    subscriber_credentials,
)

log = logging.getLogger(__name__)


def _subscriber(session: object, siren: str) -> Subscriber:
    from sqlalchemy.orm import Session

    assert isinstance(session, Session)
    sub = session.scalar(select(Subscriber).where(Subscriber.siren == siren))
    if sub is None:
        raise ParafeError(E.SUBSCRIBER_NOT_FOUND)
    return sub


# --- accounts -------------------------------------------------------------------------------------------------

def set_account(ctx: AppContext, siren: str, *, url: str, cert: bytes, key: bytes | None = None,
                cert_password: str | None = None, ca: bytes | None = None, login: str | None = None,
                password: str | None = None) -> S2lowCredentials:
    """Create or replace the S²LOW account of a subscriber (certificate PEM + key PEM, or PKCS#12)."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ParafeError(E.S2LOW_ACCOUNT_INVALID, reason=f"l'adresse doit être une URL https:// ({url})")
    try:
        cert_pem, key_pem = load_client_certificate(cert, key, cert_password)
    except ValueError as exc:
        raise ParafeError(E.S2LOW_ACCOUNT_INVALID, reason=str(exc)) from None
    if ca is not None and b"-----BEGIN CERTIFICATE-----" not in ca:
        raise ParafeError(E.S2LOW_ACCOUNT_INVALID, reason="l'AC du serveur doit être un fichier PEM")
    if password and not login:
        raise ParafeError(E.S2LOW_ACCOUNT_INVALID, reason="un mot de passe sans identifiant de connexion")
    with ctx.db.write() as session:
        sub = _subscriber(session, siren)
        row = session.scalar(select(S2lowAccount).where(S2lowAccount.subscriber_id == sub.id))
        if row is None:
            row = S2lowAccount(subscriber_id=sub.id, url=url, cert_pem="", key_pem="")
            session.add(row)
        row.url = url.rstrip("/")
        row.cert_pem, row.key_pem = cert_pem.decode(), key_pem.decode()
        row.ca_pem = ca.decode() if ca else None
        row.login, row.password = login or None, password or None
        row.updated_at = utcnow()
        session.flush()
        return subscriber_credentials(row, siren)


def remove_account(ctx: AppContext, siren: str) -> None:
    with ctx.db.write() as session:
        sub = _subscriber(session, siren)
        row = session.scalar(select(S2lowAccount).where(S2lowAccount.subscriber_id == sub.id))
        if row is None:
            raise ParafeError(E.S2LOW_ACCOUNT_NOT_FOUND, siren=siren)
        session.delete(row)


def describe(credentials: S2lowCredentials) -> list[str]:
    """What an operator may see of an account: never the key nor the passwords."""
    cert = credentials.certificate()
    subject = cert.subject.rfc4514_string()
    until = cert.not_valid_after_utc.strftime("%d/%m/%Y")
    return [f"{credentials.label} :",
            f"  adresse : {credentials.url}",
            f"  certificat client : {subject} (valide jusqu'au {until})",
            "  clé privée : enregistrée",
            f"  AC du serveur : {'fournie' if credentials.ca_pem else 'AC du système'}",
            f"  identifiant : {credentials.login or '(aucun)'}",
            f"  mot de passe : {'défini' if credentials.password else '(aucun)'}"]


def all_credentials(ctx: AppContext) -> list[tuple[str | None, S2lowCredentials]]:
    """Every configured account: (SIREN, credentials) per subscriber, then (None, default) if set."""
    out: list[tuple[str | None, S2lowCredentials]] = []
    with ctx.db.read() as session:
        for row, siren in session.execute(select(S2lowAccount, Subscriber.siren).join(
                Subscriber, Subscriber.id == S2lowAccount.subscriber_id).order_by(Subscriber.siren)):
            out.append((siren, subscriber_credentials(row, siren)))
    default = default_credentials()
    if default is not None:
        out.append((None, default))
    return out


def describe_accounts(ctx: AppContext, siren: str | None = None) -> list[str]:
    lines: list[str] = []
    if siren is not None:
        with ctx.db.read() as session:
            sub = _subscriber(session, siren)
            row = session.scalar(select(S2lowAccount).where(S2lowAccount.subscriber_id == sub.id))
            if row is None:
                raise ParafeError(E.S2LOW_ACCOUNT_NOT_FOUND, siren=siren)
            return describe(subscriber_credentials(row, siren))
    try:
        accounts = all_credentials(ctx)
    except S2lowError as exc:
        raise ParafeError(E.S2LOW_ACCOUNT_INVALID, reason=str(exc)) from None
    for _siren, credentials in accounts:
        lines += describe(credentials)
    return lines or ["Aucun compte S²LOW n'est configuré."]


# --- a transaction whose answer was lost ----------------------------------------------------------------------

def attach_transaction(ctx: AppContext, document_id: int, transaction_id: str) -> str:
    """Name the S²LOW transaction of a document whose post answer was lost; its polling resumes."""
    from parafe.jobs import outbox
    from parafe.transmission.s2low import credentials_for
    from parafe.workflow.engine import record, workflow_tx

    transaction_id = transaction_id.strip()
    if not transaction_id.isdigit():
        raise ParafeError(E.BAD_REQUEST, reason="le numéro de transaction S²LOW est un nombre")
    with ctx.db.read() as session:
        document = session.get(Document, document_id)
        if document is None:
            raise ParafeError(E.DOCUMENT_NOT_FOUND)
        lost = dict((document.extra or {}).get("helios") or {}).get("answer_lost")
        if not lost or document.state != State.SENT_TO_FAST.value:
            raise ParafeError(E.S2LOW_NO_LOST_TRANSACTION, document=document_id)
        subscriber_id = document.subscriber_id
    try:  # the transaction must exist and belong to this account
        current = S2lowClient(credentials_for(ctx, subscriber_id)).status(transaction_id)
    except S2lowError as exc:
        raise ParafeError(E.S2LOW_UNAVAILABLE, reason=str(exc)) from None
    with workflow_tx(ctx) as session:
        doc = session.scalar(select(Document).where(Document.id == document_id).with_for_update())
        assert doc is not None
        extra = dict(doc.extra or {})
        helios = dict(extra.get("helios") or {})
        if not helios.get("answer_lost") or doc.state != State.SENT_TO_FAST.value:
            raise ParafeError(E.S2LOW_NO_LOST_TRANSACTION, document=document_id)
        helios.update(remote_id=transaction_id, answer_lost=False)
        extra["helios"] = helios
        doc.extra = extra
        row = session.scalar(select(S2lowTransaction).where(S2lowTransaction.document_id == document_id)
                             .order_by(S2lowTransaction.id.desc()).limit(1))
        if row is not None:
            row.transaction_id, row.status, row.posted_at = transaction_id, "posted", utcnow()
            row.last_status, row.last_message = current.status, current.message
        record(session, doc, None, comment=f"Transaction S²LOW n°{transaction_id} renseignée par l'exploitant "
                                            f"(réponse à l'envoi perdue).")
        outbox.add(session, "helios.poll", doc.id, {"position": doc.current_step, "remote_id": transaction_id})
    return f"Document {document_id} : transaction S²LOW n°{transaction_id} enregistrée, suivi repris."


# --- PES_Retour -----------------------------------------------------------------------------------------------

_default_polled_at: dict[str, float] = {}


@dataclass
class RetourReport:
    accounts: int = 0
    fetched: int = 0
    marked_read: int = 0
    errors: list[str] = field(default_factory=list)


def _retour_siren(data: bytes) -> str | None:
    try:
        root = parse_untrusted(data, allow_huge_text=True).getroot()
    except Exception:
        return None
    for el in root.iter():
        if isinstance(el.tag, str) and el.tag.rsplit("}", 1)[-1] == "IdColl":
            value = str(el.get("V") or "")
            return value[:9] if len(value) >= 9 else None
    return None


def _claim(ctx: AppContext, siren: str | None, credentials: S2lowCredentials, force: bool) -> bool:
    """Whether this process polls this account now (one poller per period across processes)."""
    period = workflow_settings().s2low_poll_seconds
    if siren is None:
        last = _default_polled_at.get(credentials.url)
        if not force and last is not None and time.monotonic() - last < period:
            return False
        _default_polled_at[credentials.url] = time.monotonic()
        return True
    now = utcnow()
    subscriber_id = int(credentials.account.split(":", 1)[1])
    with ctx.db.write() as session:
        stmt = update(S2lowAccount).where(S2lowAccount.subscriber_id == subscriber_id)
        if not force:
            stmt = stmt.where(or_(S2lowAccount.retours_polled_at.is_(None),
                                  S2lowAccount.retours_polled_at <= now - timedelta(seconds=period)))
        result = session.execute(stmt.values(retours_polled_at=now).execution_options(synchronize_session=False))
        return int(getattr(result, "rowcount", 0) or 0) == 1


def _store_retour(ctx: AppContext, account: str, subscriber_id: int, retour_id: str, name: str,
                  data: bytes) -> bool:
    """Store the file once per (account, S²LOW id); False when another poller stored it first."""
    ref = ctx.store.put_bytes(data)
    try:
        with ctx.db.write() as session:
            if session.scalar(select(S2lowRetour.id).where(S2lowRetour.account == account,
                                                           S2lowRetour.retour_id == retour_id)) is not None:
                return False
            item = ReturnItem(subscriber_id=subscriber_id, document_id=None, public_id=0, kind="pes_retour",
                              name=(name or f"PES_Retour_{retour_id}.xml")[:255], blob_sha256=ref.sha256)
            session.add(item)
            session.flush()
            item.public_id = RETURN_ID_START + item.id
            session.add(S2lowRetour(account=account, retour_id=retour_id, name=item.name, return_id=item.id))
    except IntegrityError:
        return False
    return True


def _poll_account(ctx: AppContext, siren: str | None, credentials: S2lowCredentials, report: RetourReport) -> None:
    from parafe.formats.pes import validate_pes_retour

    client = S2lowClient(credentials)
    account = credentials.account
    for ref in client.list_retours():
        with ctx.db.read() as session:
            seen = session.scalar(select(S2lowRetour).where(S2lowRetour.account == account,
                                                            S2lowRetour.retour_id == ref.id))
            read = seen is not None and seen.read_at is not None
        if seen is None:
            data = client.get_retour(ref.id)
            target = siren or _retour_siren(data)
            with ctx.db.read() as session:
                subscriber_id = session.scalar(select(Subscriber.id).where(Subscriber.siren == target)) \
                    if target else None
            if subscriber_id is None:
                report.errors.append(f"{credentials.label} : PES_Retour {ref.id} ({ref.name}) sans abonné "
                                     f"correspondant (IdColl {target or 'absent'}), laissé non lu sur S²LOW")
                continue
            problems = validate_pes_retour(data)
            if problems:
                log.warning("S2LOW PES_Retour %s (%s) is not schema-valid: %s", ref.id, ref.name, problems[0])
            if _store_retour(ctx, account, subscriber_id, ref.id, ref.name, data):
                report.fetched += 1
        if not read:
            client.mark_read(ref.id)
            with ctx.db.write() as session:
                session.execute(update(S2lowRetour).where(
                    S2lowRetour.account == account, S2lowRetour.retour_id == ref.id,
                    S2lowRetour.read_at.is_(None)).values(read_at=utcnow()))
            report.marked_read += 1


def poll_retours(ctx: AppContext, *, force: bool = False) -> RetourReport:
    """Fetch the unread PES_Retour of every account that is due (every account with ``force``)."""
    report = RetourReport()
    try:
        accounts = all_credentials(ctx)
    except S2lowError as exc:
        report.errors.append(str(exc))
        return report
    for siren, credentials in accounts:
        if not _claim(ctx, siren, credentials, force):
            continue
        report.accounts += 1
        try:
            _poll_account(ctx, siren, credentials, report)
        except S2lowError as exc:
            report.errors.append(f"{credentials.label} : {exc}")
    for error in report.errors:
        log.warning("S2LOW PES_Retour: %s", error)
    return report


# --- operators' check -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    provider: str
    ok: bool
    message: str


def check_s2low(credentials: S2lowCredentials) -> Verdict:
    """Authentication (mutual TLS, login) and reachability of one S²LOW account, and its Helios module."""
    client = S2lowClient(credentials)
    try:
        client.test_connection()
        retours = client.list_retours()
    except S2lowError as exc:
        return Verdict(f"S²LOW ({credentials.label})", False, f"échec : {exc}")
    return Verdict(f"S²LOW ({credentials.label})", True,
                   f"connexion authentifiée à {credentials.url}, module Hélios accessible "
                   f"({len(retours)} PES_Retour non lu(s))")


def check_providers(ctx: AppContext) -> list[Verdict]:
    """The configured SMS provider, then every configured S²LOW account."""
    verdicts: list[Verdict] = []
    try:
        from parafe.notify.sms import check_sms_provider
    except ImportError:
        verdicts.append(Verdict("SMS", False, "vérification indisponible dans cette version "
                                              "(parafe.notify.sms.check_sms_provider absent)"))
    else:
        try:
            ok, message = check_sms_provider(workflow_settings())
        except Exception as exc:  # the check itself failed: that is a failed check
            ok, message = False, f"échec de la vérification : {exc}"
        verdicts.append(Verdict(f"SMS ({workflow_settings().sms_provider})", bool(ok), str(message)))
    if workflow_settings().helios_transport != "s2low":
        verdicts.append(Verdict("Hélios", True, f"transport « {workflow_settings().helios_transport} » "
                                                f"(pas de S²LOW à vérifier)"))
    try:
        accounts = all_credentials(ctx)
    except S2lowError as exc:
        return [*verdicts, Verdict("S²LOW (compte par défaut)", False, f"échec : {exc}")]
    if not accounts and workflow_settings().helios_transport == "s2low":
        verdicts.append(Verdict("S²LOW", False, "PARAFE_HELIOS_TRANSPORT=s2low mais aucun compte n'est configuré"))
    verdicts += [check_s2low(credentials) for _siren, credentials in accounts]
    return verdicts


def scheduled_poll(ctx: AppContext) -> RetourReport | None:
    """The worker's periodic fetch (each minute, :mod:`parafe.composition`): nothing unless
    ``PARAFE_HELIOS_TRANSPORT=s2low``; each account is polled every ``PARAFE_S2LOW_POLL_SECONDS`` (one process
    polls an account per period). Returns the report when an account was polled."""
    if workflow_settings().helios_transport != "s2low":
        return None
    report = poll_retours(ctx)
    return report if report.accounts else None


__all__ = ["DEFAULT_ACCOUNT", "RetourReport", "Verdict", "attach_transaction", "check_providers", "check_s2low",
           "describe_accounts", "poll_retours", "remove_account", "scheduled_poll", "set_account"]

