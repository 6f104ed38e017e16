"""Abuse limits of the OTP pages (issue 18): a cap on the codes sent per document, and the document's links
locked after too many wrong codes in total (each new code used to give 3 more guesses, without limit)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from parafe.db.models import DevMessage
from parafe.domain.errors import E, ParafeError
from parafe.domain.states import State
from parafe.services.otp import codes as otp
from tests.workflow.conftest import run_jobs, state_of
from tests.workflow.test_otp import code_in, last_message, otp_document


def _sms_count(ctx: Any) -> int:
    with ctx.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(DevMessage).where(DevMessage.channel == "sms")) or 0)


def test_codes_per_document_are_capped_with_error_189(ctx: Any, tmp_path: Path) -> None:
    doc_id = otp_document(ctx, tmp_path, "plafond.pdf")
    before = _sms_count(ctx)
    outcomes: list[str] = []
    for _ in range(12):
        try:
            otp.send_code(ctx, [doc_id])
            outcomes.append("sent")
        except ParafeError as error:
            outcomes.append(f"{error.code} {error.message}")
    refused = "189 Trop de codes de vérification ont été envoyés pour ce lien : contactez l'émetteur du document."
    assert outcomes == ["sent"] * 5 + [refused] * 7
    assert _sms_count(ctx) - before == 5  # nothing sent past the cap
    # the last code sent still signs
    otp.check_code(ctx, [doc_id], code_in(last_message(ctx, "sms").body))
    run_jobs(ctx)
    assert state_of(ctx, doc_id) == State.FILED.value


def test_cap_counts_per_document_across_links(ctx: Any, tmp_path: Path) -> None:
    """Asking codes for the document alone, then with another document, still counts for the document."""
    first = otp_document(ctx, tmp_path, "un.pdf")
    second = otp_document(ctx, tmp_path, "deux.pdf")
    for _ in range(5):
        otp.send_code(ctx, [first])
    with pytest.raises(ParafeError) as info:
        otp.send_code(ctx, [first, second])
    assert info.value.error is E.OSS_TOO_MANY_CODES
    otp.send_code(ctx, [second])  # the other document has its own count


def test_wrong_codes_across_codes_lock_the_link(ctx: Any, tmp_path: Path) -> None:
    doc_id = otp_document(ctx, tmp_path, "verrou.pdf")
    errors: list[str] = []
    for _ in range(4):
        otp.send_code(ctx, [doc_id])
        code = code_in(last_message(ctx, "sms").body)
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        for _ in range(3):
            try:
                otp.check_code(ctx, [doc_id], wrong)
            except ParafeError as error:
                errors.append(error.error.key)
                if error.error is not E.OTP_CODE_INVALID:
                    break
    # 3 + 3 + 3 wrong codes (each code locked after 3), then the 10th wrong code in total locks the link
    assert errors == (["OTP_CODE_INVALID", "OTP_CODE_INVALID", "OTP_LOCKED"] * 3 + ["OTP_LINK_LOCKED"]), errors
    with pytest.raises(ParafeError) as info:
        otp.check_code(ctx, [doc_id], code)  # even the right code of the last one
    assert info.value.error is E.OTP_LINK_LOCKED
    with pytest.raises(ParafeError) as info:
        otp.send_code(ctx, [doc_id])  # and no new code
    assert info.value.error is E.OTP_LINK_LOCKED
    assert state_of(ctx, doc_id) == State.OTP_INFO_DEFINED.value

