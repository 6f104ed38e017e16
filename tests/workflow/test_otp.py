"""OTP circuit (D15): the code is read from the SMS outbox (``parafe dev outbox``'s table), typed, the document
is signed on the server with a pictogram naming the signer; wrong codes, lock after 3 tries, expiry, e-mail
channel, identity checks across documents, refusal."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from parafe.db.models import DevMessage, MetadataValue
from parafe.domain.errors import E, ParafeError
from parafe.domain.states import ACTOR_OTP, State
from parafe.services.access.auth import principal_for_email
from parafe.services.demo import AGENT
from parafe.services.documents.metadata import upload_otp_information
from parafe.services.otp import codes as otp
from tests.fixtures.files import pdf_bytes
from tests.workflow.conftest import deposit_file, document, history, run_jobs, state_of, states


def otp_xml(email: str = "jean.dupont@exemple.fr", phone: str | None = "06 12 34 56 78") -> bytes:
    items = [("OTP_firstname_0", "Jean"), ("OTP_lastname_0", "Dupont"), ("OTP_email_0", email)]
    if phone:
        items.append(("OTP_phonenumber_0", phone))
    body = "".join(f'<meta-data name="{n}" value="{v}"/>' for n, v in items)
    return f'<?xml version="1.0" encoding="UTF-8"?><meta-data-list>{body}</meta-data-list>'.encode()


def otp_document(ctx: Any, tmp_path: Path, name: str, **kw: Any) -> int:
    doc_id = deposit_file(ctx, tmp_path, name, pdf_bytes(text=name), circuit="otp")
    upload_otp_information(ctx, principal_for_email(ctx, AGENT), doc_id, otp_xml(**kw))
    run_jobs(ctx)
    return doc_id


def last_message(ctx: Any, channel: str) -> DevMessage:
    with ctx.db.read() as s:
        message = s.scalars(select(DevMessage).where(DevMessage.channel == channel)
                            .order_by(DevMessage.id.desc())).first()
        assert message is not None
        s.expunge(message)
        return message


def code_in(text: str) -> str:
    match = re.search(r"\b(\d{6})\b", text)
    assert match, text
    return match.group(1)


def test_otp_signature_with_code_from_sms_outbox(ctx: Any, tmp_path: Path) -> None:
    doc_id = otp_document(ctx, tmp_path, "bon de commande.pdf")
    sent = otp.send_code(ctx, [doc_id])
    assert sent.channel == "sms"
    assert sent.destination.endswith("78")
    assert "12 34" not in sent.destination
    message = last_message(ctx, "sms")
    assert message.recipient == "+33612345678"
    code = code_in(message.body)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    with pytest.raises(ParafeError) as info:
        otp.check_code(ctx, [doc_id], wrong)
    assert info.value.error is E.OTP_CODE_INVALID
    assert "2" in info.value.message
    assert otp.check_code(ctx, [doc_id], code) == [doc_id]
    run_jobs(ctx)
    assert states(ctx, doc_id) == [State.PREPARED, State.OTP_INFO_DEFINED, State.OTP_VALIDATED, State.OTP_SIGNED,
                                   State.FILED]
    assert [e.user_fullname for e in history(ctx, doc_id)[2:4]] == [ACTOR_OTP, ACTOR_OTP]
    signed = ctx.store.read_bytes(document(ctx, doc_id).signed_blob_sha256 or "")
    path = tmp_path / "otp.pdf"
    path.write_bytes(signed)
    report = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True).stdout
    assert "Signature is Valid" in report, report
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True).stdout
    assert "Jean Dupont" in text  # the pictogram names the OTP signer (D15)
    # a used code cannot be used again
    with pytest.raises(ParafeError):
        otp.check_code(ctx, [doc_id], code)


def test_three_wrong_codes_lock(ctx: Any, tmp_path: Path) -> None:
    doc_id = otp_document(ctx, tmp_path, "a.pdf")
    otp.send_code(ctx, [doc_id])
    code = code_in(last_message(ctx, "sms").body)
    wrong = f"{(int(code) + 7) % 1_000_000:06d}"
    errors = []
    for _ in range(3):
        with pytest.raises(ParafeError) as info:
            otp.check_code(ctx, [doc_id], wrong)
        errors.append(info.value.error)
    assert errors == [E.OTP_CODE_INVALID, E.OTP_CODE_INVALID, E.OTP_LOCKED]
    with pytest.raises(ParafeError) as info:
        otp.check_code(ctx, [doc_id], code)  # even the right code: locked
    assert info.value.error is E.OTP_LOCKED
    otp.send_code(ctx, [doc_id])  # a new code unlocks
    otp.check_code(ctx, [doc_id], code_in(last_message(ctx, "sms").body))
    run_jobs(ctx)
    assert state_of(ctx, doc_id) == State.FILED.value


def test_expired_code(ctx: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARAFE_OTP_TTL_SECONDS", "0")
    doc_id = otp_document(ctx, tmp_path, "b.pdf")
    otp.send_code(ctx, [doc_id])
    with pytest.raises(ParafeError) as info:
        otp.check_code(ctx, [doc_id], code_in(last_message(ctx, "sms").body))
    assert info.value.error is E.OTP_CODE_EXPIRED


def test_code_by_email_and_several_documents(ctx: Any, tmp_path: Path) -> None:
    first = otp_document(ctx, tmp_path, "c1.pdf", phone=None)
    second = otp_document(ctx, tmp_path, "c2.pdf", phone=None)
    other = otp_document(ctx, tmp_path, "c3.pdf", email="autre@exemple.fr", phone=None)
    with pytest.raises(ParafeError) as info:
        otp.send_code(ctx, [first, other])
    assert info.value.error is E.OTP_IDENTITY_MISMATCH
    sent = otp.send_code(ctx, [first, second])
    assert sent.channel == "email"
    mail = last_message(ctx, "mail")
    assert mail.recipient == "jean.dupont@exemple.fr"
    otp.check_code(ctx, [second, first], code_in(mail.body))
    run_jobs(ctx)
    assert state_of(ctx, first) == state_of(ctx, second) == State.FILED.value
    assert state_of(ctx, other) == State.OTP_INFO_DEFINED.value


def test_otp_refusal(ctx: Any, tmp_path: Path) -> None:
    from parafe.services.documents import lifecycle

    doc_id = otp_document(ctx, tmp_path, "d.pdf")
    otp.refuse(ctx, [doc_id], "Je ne suis pas d'accord")
    run_jobs(ctx)
    assert state_of(ctx, doc_id) == State.REFUSED.value
    assert lifecycle.refusal_message(ctx, principal_for_email(ctx, AGENT), doc_id) == "Je ne suis pas d'accord"


def test_no_identity(ctx: Any, tmp_path: Path) -> None:
    doc_id = deposit_file(ctx, tmp_path, "e.pdf", pdf_bytes(), circuit="otp")
    run_jobs(ctx)
    with ctx.db.read() as s:
        assert s.scalars(select(MetadataValue).where(MetadataValue.document_id == doc_id)).all() == []
    with pytest.raises(ParafeError) as info:
        otp.send_code(ctx, [doc_id])
    assert info.value.error is E.OTP_INFO_MISSING
