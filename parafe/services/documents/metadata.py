"""Metadata of a deposited document, shared by every connector: ``uploadMeta`` (spec §2.5.3 / §2.6.4) and
``uploadOTPInformation`` (spec §2.5.4 / §2.6.5), DECISIONS D15, D18, D19.

- :func:`upload_meta` needs the document at state « Prêt à définir les métadonnées » (S21) and a metadata
  model on its circuit (S22): the circuit's own model, plus the Digiposte / Maileva names of spec §6.2 when the
  circuit has such a step. Names must be in the model (S23), values in their format (S24). Success replaces
  the document's business metadata, writes « Métadonnées définies » and hands the document back to the
  workflow (outbox ``workflow.resume``).
- :func:`upload_otp_information` parses ``OTP_<key>_<i>`` (§6.3): one signer per OTP step of the circuit,
  each with an e-mail or a phone number (D15). It replaces the document's OTP information and writes
  « Informations OTP définies » (actor « boucle sms », D4).

File names (G-09, D18): on the REST ``metadata/define`` endpoints any part name is accepted (real clients
send ``METAS_API.xml``, or a temporary name without extension); the deposit-with-OTP methods (REST
``otp/{siren}/{circuit}/upload``, SOAP ``otpUpload``) keep the document's ``METAS_XXX.xml`` rule (§6.5).
"""

from __future__ import annotations

import re
from typing import Literal

from sqlalchemy import delete as sql_delete
from sqlalchemy.orm import Session

from parafe.context import AppContext
from parafe.db.models import Circuit, Document, HistoryEntry, MetadataValue, OutboxItem, utcnow
from parafe.domain.circuits import StepKind
from parafe.domain.emails import is_email
from parafe.domain.errors import E, ParafeError
from parafe.domain.states import ACTOR_OTP, FINISHED_VALUES, State
from parafe.formats.metadata import (
    MetadataField,
    OtpSigner,
    check_metas_file_name,
    parse_meta_data_list,
    parse_otp_info,
    validate_metadata,
)
from parafe.services.access.auth import Account, Principal
from parafe.services.access.rights import visible_document
from parafe.services.documents.lifecycle import may_act

NameRule = Literal["any", "metas"]

# Spec §6.2, verbatim names.
DIGIPOSTE_NAMES = ("DIGIPOSTE_CLIENT_ID", "DIGIPOSTE_CONTENT_TYPE", "DIGIPOSTE_VALIDITY")
MAILEVA_NAMES = tuple(f"MAILEVA_{side}_{part}" for side in ("SENDER", "RECEIVER")
                      for part in (["MAIL"] if side == "SENDER" else []) + [f"ADDR{i}" for i in range(1, 7)])

# Where OTP information can no longer change: the OTP signature happened, or the document is finished.
OTP_CLOSED_STATES = frozenset({State.OTP_VALIDATED.value, State.OTP_SIGNED.value}) | FINISHED_VALUES

_PHONE = re.compile(r"^\+?[0-9 .()\-]{6,32}$")


def _builtin_fields(circuit: Circuit) -> list[MetadataField]:
    kinds = {step.kind for step in circuit.steps}
    fields: list[MetadataField] = []
    if StepKind.DIGIPOSTE.value in kinds:
        fields += [MetadataField(name=n, kind="numeric" if n == "DIGIPOSTE_VALIDITY" else "text")
                   for n in DIGIPOSTE_NAMES]
    if StepKind.MAILEVA.value in kinds:
        fields += [MetadataField(name=n, kind="text") for n in MAILEVA_NAMES]
    return fields


def metadata_model(circuit: Circuit) -> list[MetadataField] | None:
    """The metadata model of a circuit (its own fields plus the §6.2 names of its Digiposte / Maileva steps);
    None when there is none."""
    fields = [MetadataField(**f) for f in circuit.metadata_model or []]
    names = {f.name for f in fields}
    fields += [f for f in _builtin_fields(circuit) if f.name not in names]
    return fields or None


def _acting_document(session: Session, principal: Principal, document_id: int | str,
                     *, for_update: bool = False) -> tuple[Document, Account]:
    document, account = visible_document(session, principal, document_id, for_update=for_update)
    if not may_act(session, account, document):
        raise ParafeError(E.NO_PERMISSION, detail="only the depositor, an agent or an admin of the circuit")
    return document, account


def upload_meta(ctx: AppContext, principal: Principal, document_id: int | str, data: bytes) -> None:
    """Define the metadata of a document waiting for them (spec §6.1, S20–S24).

    Raises ``DOCUMENT_NOT_FOUND`` (S20), ``NO_PERMISSION`` (S07), ``NOT_READY_FOR_METADATA`` (S21),
    ``NO_METADATA_MODEL`` (S22), ``METADATA_UNKNOWN`` (S23), ``METADATA_BAD_FORMAT`` (S24), and the XML
    errors ``XML_UNSAFE`` / ``XML_MALFORMED`` / ``READ_FAILED``.
    """
    with ctx.db.read() as session:
        document, _ = _acting_document(session, principal, document_id)
        if document.state != State.READY_FOR_METADATA.value:
            raise ParafeError(E.NOT_READY_FOR_METADATA, detail=f"state {document.state}")
        model = metadata_model(document.circuit)
    items = parse_meta_data_list(data)
    validate_metadata(items, model)
    with ctx.db.write() as session:
        document, account = _acting_document(session, principal, document_id, for_update=True)
        if document.state != State.READY_FOR_METADATA.value:
            raise ParafeError(E.NOT_READY_FOR_METADATA, detail=f"state {document.state}")
        session.execute(sql_delete(MetadataValue).where(
            MetadataValue.document_id == document.id, MetadataValue.kind == "meta"))
        for position, (name, value) in enumerate(items):
            session.add(MetadataValue(document_id=document.id, position=position, name=name, value=value,
                                      kind="meta"))
        document.state = State.METADATA_DEFINED.value
        session.add(HistoryEntry(document_id=document.id, state=State.METADATA_DEFINED.value,
                                 user_id=account.user_id, user_fullname=account.full_name, created_at=utcnow()))
        session.add(OutboxItem(kind="workflow.resume", document_id=document.id,
                               payload={"event": "metadata_defined"}))


def otp_step_count(circuit: Circuit) -> int:
    """Number of OTP signature steps of a circuit (OTP information indices 0..n-1)."""
    return sum(1 for step in circuit.steps if step.kind == StepKind.OTP_SIGNATURE.value)


def check_otp_information(data: bytes, otp_steps: int, *, filename: str | None = None,
                          name_rule: NameRule = "any") -> list[OtpSigner]:
    """Parse and check OTP information for a circuit with ``otp_steps`` OTP steps (no database access).

    Raises ``METADATA_FILE_NAME`` (``name_rule="metas"`` and a name other than ``METAS_XXX.xml``),
    ``BSMS_NO_SMS_STEP`` (no OTP step), ``BSMS_METADATA_MISSING`` (no OTP information, or none for one of the
    OTP steps), ``METADATA_UNKNOWN`` (an index beyond the OTP steps, an unknown ``OTP_`` key),
    ``METADATA_BAD_FORMAT`` (neither e-mail nor phone, a malformed e-mail or phone number, a key twice) and
    the XML errors.
    """
    if name_rule == "metas" and filename is not None:
        check_metas_file_name(filename)
    if otp_steps < 1:
        raise ParafeError(E.BSMS_NO_SMS_STEP, detail="the circuit has no OTP signature step")
    signers = parse_otp_info(data)
    if not signers:
        raise ParafeError(E.BSMS_METADATA_MISSING, detail="no OTP_*_i information")
    by_index = {s.index: s for s in signers}
    for signer in signers:
        if signer.index >= otp_steps:
            raise ParafeError(E.METADATA_UNKNOWN, detail=f"the circuit has {otp_steps} OTP step(s)",
                              name=f"OTP_email_{signer.index}")
    for index in range(otp_steps):
        found = by_index.get(index)
        if found is None:
            raise ParafeError(E.BSMS_METADATA_MISSING, detail=f"no OTP information for OTP step {index}")
        signer = found
        if not signer.email and not signer.phone:
            raise ParafeError(E.METADATA_BAD_FORMAT, detail="an OTP signer needs an e-mail or a phone number",
                              name=f"OTP_email_{index}")
        if signer.email and not is_email(signer.email):
            raise ParafeError(E.METADATA_BAD_FORMAT, detail="invalid e-mail address", name=f"OTP_email_{index}")
        if signer.phone and (not _PHONE.match(signer.phone) or sum(c.isdigit() for c in signer.phone) < 6):
            raise ParafeError(E.METADATA_BAD_FORMAT, detail="invalid phone number",
                              name=f"OTP_phonenumber_{index}")
    return sorted(signers, key=lambda s: s.index)


def otp_items(signers: list[OtpSigner]) -> list[tuple[str, str]]:
    """The ``OTP_<key>_<i>`` pairs of signers, in the spec's order (§6.3)."""
    items: list[tuple[str, str]] = []
    for s in signers:
        for key, value in (("firstname", s.firstname), ("lastname", s.lastname), ("phonenumber", s.phone),
                           ("email", s.email)):
            if value is not None:
                items.append((f"OTP_{key}_{s.index}", value))
    return items


def store_otp_information(session: Session, document: Document, account: Account,
                          signers: list[OtpSigner]) -> None:
    """Replace a document's OTP information (in the caller's transaction) and write its history entry.

    The document's state becomes « Informations OTP définies », like its last history entry (search, dashboards
    and clients read the current state); the outbox row ``workflow.resume`` tells the workflow."""
    session.execute(sql_delete(MetadataValue).where(
        MetadataValue.document_id == document.id, MetadataValue.kind == "otp"))
    for position, (name, value) in enumerate(otp_items(signers)):
        session.add(MetadataValue(document_id=document.id, position=position, name=name, value=value, kind="otp"))
    session.add(HistoryEntry(document_id=document.id, state=State.OTP_INFO_DEFINED.value,
                             user_id=account.user_id, user_fullname=ACTOR_OTP, created_at=utcnow()))
    document.state = State.OTP_INFO_DEFINED.value
    session.add(OutboxItem(kind="workflow.resume", document_id=document.id, payload={"event": "otp_info_defined"}))


def upload_otp_information(
    ctx: AppContext, principal: Principal, document_id: int | str, data: bytes, *,
    filename: str | None = None, name_rule: NameRule = "any",
) -> list[OtpSigner]:
    """Define the OTP signers of a deposited document (spec §6.3); returns them by step index.

    Raises ``DOCUMENT_NOT_FOUND``, ``NO_PERMISSION``, ``BSMS_NOT_AT_SMS_STEP`` (the OTP signature already
    happened or the document is finished) and the errors of :func:`check_otp_information`.
    """
    with ctx.db.read() as session:
        document, _ = _acting_document(session, principal, document_id)
        steps = otp_step_count(document.circuit)
        state = document.state
    if state in OTP_CLOSED_STATES:
        raise ParafeError(E.BSMS_NOT_AT_SMS_STEP, detail=f"state {state}")
    signers = check_otp_information(data, steps, filename=filename, name_rule=name_rule)
    with ctx.db.write() as session:
        document, account = _acting_document(session, principal, document_id, for_update=True)
        if document.state in OTP_CLOSED_STATES:
            raise ParafeError(E.BSMS_NOT_AT_SMS_STEP, detail=f"state {document.state}")
        store_otp_information(session, document, account, signers)
    return signers
