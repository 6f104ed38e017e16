"""Metadata services: the OTP information checks (§6.3, D15, D18), the circuit metadata model (§6.2) and
uploadMeta / uploadOTPInformation through the service layer, on both backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from parafe.db.models import Circuit, CircuitStep, Document, HistoryEntry
from parafe.domain.errors import E, ParafeError
from parafe.domain.states import State
from parafe.services.access.auth import principal_for_email
from parafe.services.documents.metadata import (
    MAILEVA_NAMES,
    check_otp_information,
    metadata_model,
    upload_meta,
    upload_otp_information,
)
from tests.unit.services._helpers import AGENT, deposit_pdf


def _otp(*pairs: tuple[str, str]) -> bytes:
    return ("<meta-data-list>" + "".join(f'<meta-data name="{n}" value="{v}"/>' for n, v in pairs)
            + "</meta-data-list>").encode()


def test_check_otp_information() -> None:
    signers = check_otp_information(_otp(("OTP_email_1", "b@x.fr"), ("OTP_phonenumber_0", "+33 6 06 06 06 06"),
                                         ("TEXT001", "ignored")), 2)
    assert [(s.index, s.email, s.phone) for s in signers] == [(0, None, "+33 6 06 06 06 06"), (1, "b@x.fr", None)]
    cases = [
        (_otp(("OTP_email_0", "a@x.fr")), 2, E.BSMS_METADATA_MISSING),
        (_otp(("OTP_email_0", "a@x.fr")), 0, E.BSMS_NO_SMS_STEP),
        (_otp(("OTP_firstname_0", "A")), 1, E.METADATA_BAD_FORMAT),
        (_otp(("OTP_phonenumber_0", "12")), 1, E.METADATA_BAD_FORMAT),
        (_otp(("OTP_email_0", "a@x.fr"), ("OTP_email_3", "d@x.fr")), 1, E.METADATA_UNKNOWN),
        (_otp(("OTP_fax_0", "1")), 1, E.METADATA_UNKNOWN),
        (_otp(), 1, E.BSMS_METADATA_MISSING),
    ]
    for data, steps, expected in cases:
        with pytest.raises(ParafeError) as info:
            check_otp_information(data, steps)
        assert info.value.error is expected, (data, info.value.message)
    with pytest.raises(ParafeError) as info:
        check_otp_information(_otp(("OTP_email_0", "a@x.fr")), 1, filename="otp.xml", name_rule="metas")
    assert info.value.error is E.METADATA_FILE_NAME
    assert check_otp_information(_otp(("OTP_email_0", "a@x.fr")), 1, filename="tmp12ab", name_rule="any")


def test_metadata_model_builtin_names() -> None:
    circuit = Circuit(metadata_model=[{"name": "TEXT001", "kind": "text"}],
                      steps=[CircuitStep(position=0, kind="maileva"), CircuitStep(position=1, kind="digiposte")])
    names = [f.name for f in metadata_model(circuit) or []]
    assert names[0] == "TEXT001"
    assert "DIGIPOSTE_VALIDITY" in names
    assert set(MAILEVA_NAMES) <= set(names)
    assert "MAILEVA_SENDER_MAIL" in MAILEVA_NAMES
    assert "MAILEVA_RECEIVER_MAIL" not in MAILEVA_NAMES
    assert len(MAILEVA_NAMES) == 13
    assert metadata_model(Circuit(metadata_model=None, steps=[CircuitStep(position=0, kind="visa")])) is None


def test_upload_meta_digiposte_without_model(ctx: Any, tmp_path: Path) -> None:
    doc = deposit_pdf(ctx, tmp_path)
    with ctx.db.write() as s:
        row = s.get(Document, doc)
        assert row is not None
        s.add(CircuitStep(circuit_id=row.circuit_id, position=9, kind="digiposte", config={}))
        row.state = State.READY_FOR_METADATA.value
    principal = principal_for_email(ctx, AGENT)
    with pytest.raises(ParafeError) as info:
        upload_meta(ctx, principal, doc, _otp(("DIGIPOSTE_VALIDITY", "dix")))
    assert info.value.error is E.METADATA_BAD_FORMAT
    upload_meta(ctx, principal, doc, _otp(("DIGIPOSTE_CLIENT_ID", "001"), ("DIGIPOSTE_VALIDITY", "10")))
    with ctx.db.read() as s:
        row = s.get(Document, doc)
        assert row is not None
        assert row.state == State.METADATA_DEFINED.value
        assert [(m.name, m.value) for m in row.metadata_values] == [("DIGIPOSTE_CLIENT_ID", "001"),
                                                                    ("DIGIPOSTE_VALIDITY", "10")]


def test_otp_information_history_and_state(ctx: Any, tmp_path: Path) -> None:
    doc = deposit_pdf(ctx, tmp_path, circuit="otp")
    principal = principal_for_email(ctx, AGENT)
    upload_otp_information(ctx, principal, doc, _otp(("OTP_email_0", "a@x.fr")))
    with ctx.db.read() as s:
        entries = s.scalars(select(HistoryEntry).where(HistoryEntry.document_id == doc)
                            .order_by(HistoryEntry.id)).all()
        assert [(e.state, e.user_fullname) for e in entries] == [
            ("prepared", "Alice Agent"), ("otp_info_defined", "boucle sms")]
