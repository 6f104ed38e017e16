"""What each outbox kind does (registered with :func:`parafe.jobs.outbox.handler`).

Pattern of every handler: do the external work first (sign, send, verify — outside any transaction, its result
stored as a write-once blob or in an idempotent remote), then ONE transaction (:func:`_finish`) that re-reads
the outbox row and the document under lock, checks the document is still where the job expects it, applies the
state change + history + next outbox rows, and closes the row. Executed twice, a handler changes the database
once; the Helios and postal simulators dedupe a repeated send on its key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from parafe.config import fault_pause_for
from parafe.context import AppContext
from parafe.db.models import Circuit, Document, Label, OutboxItem, ReturnItem, User, utcnow
from parafe.db.session import get_kept
from parafe.domain.circuits import StepKind
from parafe.domain.errors import WEBDAV_CASE_OF, WEBDAV_CASES, catalogue
from parafe.domain.states import ACTOR_OTP, State, label
from parafe.jobs import outbox
from parafe.jobs.outbox import handler
from parafe.notify.mail import (
    Mail,
    base_url,
    document_link,
    paris,
    send_mail,
    send_many,
    signature_block,
    split_recipients,
)
from parafe.transmission import helios, postal
from parafe.workflow import batches, engine, recipient_links, signatures, verification
from parafe.workflow.batches import current_bytes
from parafe.workflow.engine import lock_document, record, workflow_tx
from parafe.workflow.members import actor_emails, delegate_emails

log = logging.getLogger(__name__)


def _finish(ctx: AppContext, item: OutboxItem, apply: Callable[[Session, Document | None], None]) -> bool:
    """The closing transaction of a job (see the module docstring); False when the row was already done."""
    with workflow_tx(ctx) as session:
        pending = outbox.lock_pending(session, item.id)
        if pending is None:
            return False
        document = lock_document(session, item.document_id) if item.document_id is not None else None
        apply(session, document)
        outbox.close(pending)
    return True


def _pause(ctx: AppContext, kind: str, document_id: int | None) -> None:
    """Crash-test hook (``PARAFE_FAULT_PAUSE``): mark "effect done, commit pending", then wait."""
    seconds = fault_pause_for(kind)
    if seconds <= 0:
        return
    marker_dir = ctx.settings.resolved_home / "faults"
    marker_dir.mkdir(parents=True, exist_ok=True)
    (marker_dir / f"{kind}-{document_id}").write_text(str(time.time()))
    time.sleep(seconds)




def _load(ctx: AppContext, document_id: int | None) -> Document | None:
    if document_id is None:
        return None
    with ctx.db.read() as session:
        document = session.get(Document, document_id)
        if document is not None:
            session.expunge(document)
        return document


def _position(item: OutboxItem) -> int | None:
    value = item.payload.get("position")
    return int(value) if value is not None else None


# --- workflow.start -------------------------------------------------------------------------------------------

@handler("workflow.start", many=batches.start_many)
def _start(ctx: AppContext, item: OutboxItem) -> None:
    def apply(session: Session, document: Document | None) -> None:
        if document is not None:
            engine.start(ctx, session, document)
    _finish(ctx, item, apply)


@handler("workflow.resume")
def _resume(ctx: AppContext, item: OutboxItem) -> None:
    """After « Métadonnées définies » (services.metadata): leave a metadata step, or run the Digiposte /
    Maileva step that was waiting for its metadata. Other events (OTP information) need nothing here."""
    def apply(session: Session, document: Document | None) -> None:
        if document is None or document.current_step is None:
            return
        step = engine.current_step(session, document)
        if step is None or document.state != State.METADATA_DEFINED.value:
            return
        if step.kind == StepKind.METADATA.value:
            engine.advance(ctx, session, document)
        elif step.kind in (StepKind.DIGIPOSTE.value, StepKind.MAILEVA.value):
            engine.enter(ctx, session, document, document.current_step)
    _finish(ctx, item, apply)


# --- signatures -------------------------------------------------------------------------------------------------

@handler("sign.server", many=batches.sign_server_many)
def _sign_server(ctx: AppContext, item: OutboxItem) -> None:
    document = _load(ctx, item.document_id)
    position = _position(item)
    if document is None or document.current_step != position or document.state != State.SENT_FOR_SIGN.value:
        _finish(ctx, item, lambda s, d: None)
        return
    data = current_bytes(ctx, document)
    signed: bytes | None
    signature: bytes | None
    if document.kind == "pdf":
        signed, signature = signatures.server_sign_pdf(
            ctx, data, reason="Signature serveur", at=signatures.deposit_pictogram(document.extra, position)), None
    else:
        signed, signature = batches.sign_not_pdf(ctx, document, data)
    signed_sha = ctx.store.put_bytes(signed).sha256 if signed is not None else None
    signature_sha = ctx.store.put_bytes(signature).sha256 if signature is not None else None
    _pause(ctx, "sign.server", document.id)
    _finish(ctx, item, lambda session, doc: batches.apply_server_signature(
        ctx, session, doc, position, signed_sha, signature_sha))


@handler("sign.otp")
def _sign_otp(ctx: AppContext, item: OutboxItem) -> None:
    document = _load(ctx, item.document_id)
    position = _position(item)
    if document is None or document.current_step != position or document.state != State.OTP_VALIDATED.value:
        _finish(ctx, item, lambda s, d: None)
        return
    signer = dict(item.payload.get("signer") or {})
    name = " ".join(p for p in (signer.get("firstname"), signer.get("lastname")) if p) or signer.get("email") or ""
    channel = "SMS" if item.payload.get("channel") == "sms" else "courriel"
    signed = signatures.server_sign_pdf(
        ctx, current_bytes(ctx, document), name=name or None, quality="Signataire (code à usage unique)",
        extra=(f"Code vérifié par {channel}",), reason=f"Signature OTP de {name}".strip(),
        at=signatures.deposit_pictogram(document.extra, position))
    signed_sha = ctx.store.put_bytes(signed).sha256
    _pause(ctx, "sign.otp", document.id)

    def apply(session: Session, doc: Document | None) -> None:
        if doc is None or not engine.at_step(session, doc, position, StepKind.OTP_SIGNATURE):
            return
        if doc.state != State.OTP_VALIDATED.value:
            return
        doc.signed_blob_sha256 = signed_sha
        record(session, doc, State.OTP_SIGNED, actor=ACTOR_OTP, comment=f"Signé par {name}" if name else None)
        engine.advance(ctx, session, doc)
    _finish(ctx, item, apply)


@handler("pes.verify")
def _pes_verify(ctx: AppContext, item: OutboxItem) -> None:
    document = _load(ctx, item.document_id)
    position = _position(item)
    if document is None or document.current_step != position:
        _finish(ctx, item, lambda s, d: None)
        return
    verdict = verification.verify_document(ctx, document)
    valid, text = verdict.valid, verdict.text
    kept = verification.keep_report(ctx, verdict, document_id=document.id, name=document.name,
                                    source="signed_pes", step=position)

    def apply(session: Session, doc: Document | None) -> None:
        if doc is None or not engine.at_step(session, doc, position, StepKind.SIGNATURE):
            return
        verification.attach_report(doc, kept)
        if valid:
            record(session, doc, State.SIGNATURE_VALIDATED,
                   comment="PES déjà signé : signature vérifiée, étape de signature passée.")
            engine.advance(ctx, session, doc)
        else:
            record(session, doc, State.SIGNATURE_REJECTED, comment=f"Signature du PES invalide.\n{text}"[:4000])
            engine.stop(ctx, session, doc, "signature_rejected")
    _finish(ctx, item, apply)


@handler("verify.signature")
def _verify_signature(ctx: AppContext, item: OutboxItem) -> None:
    document = _load(ctx, item.document_id)
    position = _position(item)
    if document is None or document.current_step != position:
        _finish(ctx, item, lambda s, d: None)
        return
    verdict = verification.verify_document(ctx, document)
    kept = verification.keep_report(ctx, verdict, document_id=document.id, name=document.name,
                                    source="verification_step", step=position)
    comment = verification.history_comment(verdict)

    def apply(session: Session, doc: Document | None) -> None:
        if doc is None or not engine.at_step(session, doc, position, StepKind.SIGNATURE_VERIFICATION):
            return
        verification.attach_report(doc, kept)
        if verdict.valid:
            record(session, doc, State.SIGNATURE_VALIDATED, comment=comment)
            engine.advance(ctx, session, doc)
        else:
            record(session, doc, State.SIGNATURE_REJECTED, comment=comment)
            engine.stop(ctx, session, doc, "signature_rejected")
    _finish(ctx, item, apply)


# --- Helios -----------------------------------------------------------------------------------------------------

def _helios_give_up(ctx: AppContext, item: OutboxItem, error: str) -> None:
    def apply(session: Session, doc: Document | None) -> None:
        if doc is None or doc.state != State.SENDING.value:
            return
        record(session, doc, State.SEND_TO_FAST_FAILED, comment=error[:2000])
        engine.stop(ctx, session, doc, "failed")
    _finish(ctx, item, apply)


def transmission_key(document: Document) -> str:
    return f"doc-{document.id}-{(document.signed_blob_sha256 or document.blob_sha256)[:16]}"


@handler("helios.send", give_up=_helios_give_up)
def _helios_send(ctx: AppContext, item: OutboxItem) -> None:
    document = _load(ctx, item.document_id)
    position = _position(item)
    if document is None or document.current_step != position or document.state != State.SENDING.value:
        _finish(ctx, item, lambda s, d: None)
        return
    transport = helios.transport(ctx, document.subscriber_id)
    try:
        remote_id = transport.send(
            transmission_key(document), document.name, current_bytes(ctx, document), document_id=document.id)
    except (helios.HeliosRefused, helios.HeliosAnswerLost) as exc:
        _helios_not_sent(ctx, item, position, exc)
        return
    _pause(ctx, "helios.send", document.id)

    def apply(session: Session, doc: Document | None) -> None:
        if doc is None or not engine.at_step(session, doc, position, StepKind.HELIOS):
            return
        if doc.state != State.SENDING.value:
            return
        extra = dict(doc.extra or {})
        extra["helios"] = {"remote_id": remote_id, "sent_at": utcnow().isoformat()}
        doc.extra = extra
        record(session, doc, State.SENT_TO_FAST, comment=f"Transmission {remote_id}")
        outbox.add(session, "helios.poll", doc.id, {"position": position, "remote_id": remote_id},
                   delay=transport.poll_delay(0))
    _finish(ctx, item, apply)


def _helios_not_sent(ctx: AppContext, item: OutboxItem, position: int | None,
                     exc: helios.HeliosRefused | helios.HeliosAnswerLost) -> None:
    """A refused file fails at once; a file whose send answer was lost waits for its transmission number."""
    def apply(session: Session, doc: Document | None) -> None:
        if doc is None or not engine.at_step(session, doc, position, StepKind.HELIOS):
            return
        if doc.state != State.SENDING.value:
            return
        if isinstance(exc, helios.HeliosRefused):
            record(session, doc, State.SEND_TO_FAST_FAILED, comment=str(exc)[:2000])
            engine.stop(ctx, session, doc, "failed")
            return
        extra = dict(doc.extra or {})
        extra["helios"] = {"remote_id": None, "answer_lost": True, "sent_at": utcnow().isoformat()}
        doc.extra = extra
        record(session, doc, State.SENT_TO_FAST, comment=str(exc)[:2000])
    _finish(ctx, item, apply)


def _helios_poll_give_up(ctx: AppContext, item: OutboxItem, error: str) -> None:
    def apply(session: Session, doc: Document | None) -> None:
        if doc is None or doc.state not in (State.SENT_TO_FAST.value, State.SENT_TO_HELIOS.value):
            return
        record(session, doc, State.FAST_PROCESSING_FAILED, comment=error[:2000])
        engine.stop(ctx, session, doc, "failed")
    _finish(ctx, item, apply)


@handler("helios.poll", give_up=_helios_poll_give_up)
def _helios_poll(ctx: AppContext, item: OutboxItem) -> None:
    position = _position(item)
    remote_id = str(item.payload.get("remote_id"))
    rounds = int(item.payload.get("rounds") or 0)
    document = _load(ctx, item.document_id)
    transport = helios.transport(ctx, document.subscriber_id if document is not None else None)
    status = transport.status(remote_id)
    ack_sha: str | None = None
    etat: int | None = None
    if status.stage == "acknowledged":
        assert status.ack is not None
        from parafe.formats.pes import validate_acquit

        errors = validate_acquit(status.ack)
        if errors:
            raise ValueError(f"acquittement Helios non conforme au schéma : {errors[0]}")
        etat = helios.etat_ack(status.ack)
        ack_sha = ctx.store.put_bytes(status.ack).sha256
    poll_delay = transport.poll_delay(rounds)
    next_payload = {**dict(item.payload), "rounds": rounds + 1}

    def apply(session: Session, doc: Document | None) -> None:
        if doc is None or not engine.at_step(session, doc, position, StepKind.HELIOS):
            return
        if doc.state not in (State.SENT_TO_FAST.value, State.SENT_TO_HELIOS.value):
            return
        if status.stage == "received":
            outbox.add(session, "helios.poll", doc.id, next_payload, delay=poll_delay)
        elif status.stage == "transmitted":
            if doc.state == State.SENT_TO_FAST.value:
                record(session, doc, State.SENT_TO_HELIOS, comment=status.detail)
            outbox.add(session, "helios.poll", doc.id, next_payload, delay=poll_delay)
        elif status.stage == "acknowledged":
            if doc.state == State.SENT_TO_FAST.value:
                record(session, doc, State.SENT_TO_HELIOS, comment=status.detail)
            assert ack_sha is not None
            session.add(ReturnItem(subscriber_id=doc.subscriber_id, document_id=doc.id, public_id=doc.id,
                                   kind="ack", name=f"ACQUIT_{doc.name}", blob_sha256=ack_sha, created_at=utcnow()))
            extra = dict(doc.extra or {})
            extra["helios"] = {**dict(extra.get("helios") or {}), "etat_ack": etat, "ack_sha256": ack_sha}
            doc.extra = extra
            verdict = "Acquittement positif (EtatAck 1)" if etat == 1 else "Acquittement négatif (EtatAck 0)"
            record(session, doc, State.ACKNOWLEDGED,
                   comment=f"{verdict}\n{status.detail}" if status.detail else verdict)
            engine.advance(ctx, session, doc)
        elif status.stage == "fast_failed":
            record(session, doc, State.FAST_PROCESSING_FAILED, comment=status.detail)
            engine.stop(ctx, session, doc, "failed")
        elif status.stage == "helios_failed":
            if doc.state == State.SENT_TO_FAST.value:
                record(session, doc, State.SENT_TO_HELIOS, comment=status.detail)
            record(session, doc, State.SEND_TO_HELIOS_FAILED, comment=status.detail)
            engine.stop(ctx, session, doc, "failed")
    _finish(ctx, item, apply)


# --- Digiposte, Maileva, vault -----------------------------------------------------------------------------------

_POSTAL_TEXT = {
    "digiposte": "Document déposé dans le coffre-fort Digiposte du destinataire (identifiant {id}).",
    "maileva": "Document remis à Maileva pour envoi postal (identifiant {id}).",
}


def _postal(kind: str) -> Callable[[AppContext, OutboxItem], None]:
    step_kind = StepKind(kind) if kind != "archive" else StepKind.ARCHIVE

    def run(ctx: AppContext, item: OutboxItem) -> None:
        document = _load(ctx, item.document_id)
        position = _position(item)
        if document is None or document.current_step != position:
            _finish(ctx, item, lambda s, d: None)
            return
        with ctx.db.read() as session:
            doc_row = session.get(Document, document.id)
            assert doc_row is not None
            metadata = engine.metadata_of(session, doc_row)
        remote_id = postal.service(ctx, kind).deposit(
            transmission_key(document), document.name, current_bytes(ctx, document), metadata)

        def apply(session: Session, doc: Document | None) -> None:
            if doc is None or not engine.at_step(session, doc, position, step_kind):
                return
            if kind == "archive":
                record(session, doc, State.ARCHIVED, comment=f"Archivé dans le coffre-fort électronique ({remote_id}).")
            else:
                record(session, doc, None, comment=_POSTAL_TEXT[kind].format(id=remote_id))
            engine.advance(ctx, session, doc)
        _finish(ctx, item, apply)
    return run


for _kind in ("digiposte", "maileva", "archive"):
    handler(f"{_kind}.send")(_postal(_kind))


# --- mails ------------------------------------------------------------------------------------------------------

def _describe(session: Session, document: Document) -> tuple[str, str, str]:
    circuit = get_kept(session, Circuit, document.circuit_id)  # kept: a batch's documents share them
    uploader = get_kept(session, User, document.uploader_id) if document.uploader_id else None
    label_row = get_kept(session, Label, document.label_id) if document.label_id else None
    return (circuit.name if circuit else "?", label_row.name if label_row else "",
            uploader.full_name if uploader else "un agent")


@handler("mail.next_actor")
def _mail_next_actor(ctx: AppContext, item: OutboxItem) -> None:
    position = _position(item)
    with ctx.db.read() as session:
        document = session.get(Document, item.document_id) if item.document_id else None
        if document is None or document.deleted_at is not None or document.current_step != position:
            to: list[str] = []
        else:
            step = engine.current_step(session, document)
            to = actor_emails(session, step) if step is not None else []
            if step is not None:  # colleagues replacing an absent actor (issue 20)
                to += delegate_emails(session, step)
            action = "viser" if step is not None and step.kind == StepKind.VISA.value else "signer"
            circuit, label_name, uploader = _describe(session, document)
            subject = f"Document à {action} : {document.name}"
            body = (f"Bonjour,\n\nLe document « {document.name} » attend votre action : il est à {action}.\n\n"
                    f"Circuit : {circuit}\nLibellé : {label_name}\nDéposé par : {uploader}, le "
                    f"{paris(document.created_at)}\n")
            if document.comment:
                body += f"Commentaire : {document.comment}\n"
            body += f"\nAccéder au document : {document_link(ctx, document.id)}" + signature_block()
    if to:
        send_mail(ctx, to, subject, body, document_id=item.document_id)
    _finish(ctx, item, lambda s, d: None)


_END_SUBJECT = {
    "done": "Circuit terminé : {name}",
    "refused": "Document refusé : {name}",
    "rejected": "Document rejeté : {name}",
    "signature_rejected": "Signature rejetée : {name}",
    "failed": "Échec de la transmission : {name}",
    "step_failed": "Échec du traitement : {name}",
}


def _mail_end_many(ctx: AppContext, items: list[OutboxItem]) -> list[tuple[OutboxItem, Exception]]:
    """End-of-circuit mails of a batch: composed in one read, sent together (one SMTP connection, or one write
    of the development outbox), then one closing transaction for all."""
    with ctx.db.read() as session:
        # the batch's documents in one query, held while the mails are composed (session.get finds them)
        held = list(session.scalars(select(Document).where(
            Document.id.in_({item.document_id for item in items if item.document_id is not None}))))
        composed = [_end_mail(ctx, session, item) for item in items]
        del held
    mails = [(item, mail) for item, (mail, _receivers) in zip(items, composed, strict=True) if mail is not None]
    failed = [(mails[index][0], exc) for index, exc in send_many(ctx, [mail for _item, mail in mails])]
    failed_ids = {item.id for item, _exc in failed}
    for item, (_mail, receivers) in zip(items, composed, strict=True):
        if receivers and item.document_id is not None and item.id not in failed_ids:
            try:
                _mail_receivers(ctx, item.document_id, receivers)
            except Exception as exc:
                failed.append((item, exc))
                failed_ids.add(item.id)
    batches.finish_many(ctx, [item for item in items if item.id not in failed_ids], lambda s, i, d: None)
    return failed


@handler("mail.end", many=_mail_end_many)
def _mail_end(ctx: AppContext, item: OutboxItem) -> None:
    _send_end_mail(ctx, item)
    _finish(ctx, item, lambda s, d: None)


def _send_end_mail(ctx: AppContext, item: OutboxItem) -> None:
    with ctx.db.read() as session:
        mail, receivers = _end_mail(ctx, session, item)
    if mail is not None:
        send_mail(ctx, mail.to, mail.subject, mail.body, document_id=mail.document_id)
    if receivers and item.document_id is not None:
        _mail_receivers(ctx, item.document_id, receivers)


def _end_mail(ctx: AppContext, session: Session, item: OutboxItem) -> tuple[Mail | None, list[str]]:
    """The end-of-circuit mail to the depositor (None when there is nobody to tell) and the receivers of the
    deposit to send a download link to."""
    outcome = str(item.payload.get("outcome") or "done")
    document = session.get(Document, item.document_id) if item.document_id else None
    if document is None or document.deleted_at is not None:
        return None, []
    uploader = get_kept(session, User, document.uploader_id) if document.uploader_id else None
    receivers = [a for a in (document.email_destinataire, document.email_cc) if a] if outcome == "done" else []
    if uploader is None:
        return None, receivers
    circuit, label_name, _ = _describe(session, document)
    state = label(State(document.state), ctx.label_set)
    subject = _END_SUBJECT.get(outcome, _END_SUBJECT["done"]).format(name=document.name)
    body = (f"Bonjour,\n\nLe document « {document.name} » (circuit {circuit}, libellé {label_name}) "
            f"est à l'état « {state} » depuis le {paris(document.updated_at)}.\n")
    if outcome in ("refused", "rejected") and document.refusal_message:
        body += f"\nMotif : {document.refusal_message}\n"
    if outcome in ("failed", "signature_rejected", "step_failed"):  # the history is read only then
        last = document.history[-1] if document.history else None
        if last is not None and last.comment:
            body += f"\nDétail : {last.comment}\n"
    body += f"\nAccéder au document : {document_link(ctx, document.id)}" + signature_block()
    return Mail([uploader.email], subject, body, item.document_id), receivers


def _mail_receivers(ctx: AppContext, document_id: int, receivers: list[str]) -> None:
    """Spec §2.6.3: « une fois le document signé, un email sera envoyé à ces adresses avec un lien permettant de
    télécharger le document signé » — a capability link, no account or certificate needed
    (:mod:`parafe.workflow.recipient_links`). A new link per sending (a job run twice mails two valid
    links)."""
    to = split_recipients(receivers)
    with ctx.db.write() as session:
        document = session.get(Document, document_id)
        if document is None or document.deleted_at is not None or not to:
            return
        token, expires = recipient_links.create(session, ctx, document, to)
        name = document.name
    url = recipient_links.link_url(base_url(ctx), token)
    send_mail(ctx, to, f"Document signé mis à votre disposition : {name}",
              f"Bonjour,\n\nLe document « {name} » a terminé son circuit de signature.\n\n"
              f"Le télécharger : {url}\n\nCe lien personnel, sans compte ni certificat, est valable jusqu'au "
              f"{paris(expires)} (heure de Paris). Ne le transmettez qu'aux personnes autorisées à lire ce "
              "document." + signature_block(), document_id=document_id)


@handler("mail.deposit_error")
def _mail_deposit_error(ctx: AppContext, item: OutboxItem) -> None:
    p = item.payload
    to = str(p.get("to") or "")
    message = str(p.get("message") or "")
    code = p.get("code")
    body = (f"Bonjour,\n\nLe fichier « {p.get('filename', '')} » que vous avez déposé le "
            f"{paris(item.created_at)} n'a pas été pris en compte.\n\n"
            f"Abonné (SIREN) : {p.get('siren', '')}\nCircuit : {p.get('circuit', '')}\n"
            f"Erreur {code} : {message}\n")
    entry = next((e for e in catalogue().values() if e.code == code), None)
    case = WEBDAV_CASE_OF.get(entry.key) if entry is not None else None
    if case is not None:
        body += f"\nCas {case} de la documentation : {WEBDAV_CASES[case]}\n"
    body += "\nCorrigez le fichier puis déposez-le à nouveau." + signature_block()
    if to:
        send_mail(ctx, [to], f"Dépôt refusé : {p.get('filename', '')}", body)
    _finish(ctx, item, lambda s, d: None)


def marker_dir(ctx: AppContext) -> Path:
    return ctx.settings.resolved_home / "faults"
