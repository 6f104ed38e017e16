"""On-demand circuits (spec §2.5.23 / §2.6.3) run by the engine: visa → visa → signature, the members being
ordinary users; an OTP step whose signer is a plain e-mail (D19); error 122 when the depositor is a member."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from parafe.domain.errors import E, ParafeError
from parafe.domain.states import State
from parafe.services import steps as wf
from parafe.services.access.auth import principal_for_email
from parafe.services.demo import ADMIN, AGENT, SIGNER, VISA
from parafe.services.ondemand import OnDemandRequest, deposit_on_demand
from parafe.services.otp import codes as otp
from parafe.signing.keys import load_signer
from tests.fixtures.files import pdf_bytes
from tests.workflow.conftest import make_upload, run_jobs, state_of, states
from tests.workflow.test_otp import code_in, last_message


def on_demand(ctx: Any, tmp_path: Path, name: str, steps: list[dict[str, Any]]) -> int:
    circuit = json.dumps({"type": "BUREAUTIQUE_PDF", "steps": steps})
    req = OnDemandRequest(siren="123456789", circuit=circuit, upload=make_upload(tmp_path, name, pdf_bytes(text=name)))
    return deposit_on_demand(ctx, principal_for_email(ctx, AGENT), req).document_id


def test_on_demand_visa_visa_signature(ctx: Any, tmp_path: Path) -> None:
    doc_id = on_demand(ctx, tmp_path, "à la volée.pdf", [
        {"step": "visa", "members": [VISA, ADMIN]}, {"step": "Visa", "members": [ADMIN]},
        {"step": "signature", "members": [SIGNER]}])
    run_jobs(ctx)
    admin, visa, signer = (principal_for_email(ctx, e) for e in (ADMIN, VISA, SIGNER))
    assert [p.id for p in wf.pending_for(ctx, admin)] == [doc_id]
    wf.approve_visa(ctx, visa, doc_id)  # the first member who acts decides
    with pytest.raises(ParafeError):
        wf.approve_visa(ctx, visa, doc_id)  # not a member of the second visa
    wf.approve_visa(ctx, admin, doc_id)
    run_jobs(ctx)
    wf.sign_with_signer(ctx, signer, doc_id,
                        load_signer(ctx.settings.resolved_home / "demo" / f"{SIGNER}.p12", "demo"))
    run_jobs(ctx)
    assert states(ctx, doc_id) == [State.PREPARED, State.SENT_FOR_VISA, State.APPROVED, State.SENT_FOR_VISA,
                                   State.APPROVED, State.SENT_FOR_SIGN, State.SIGNED, State.FILED]


def test_on_demand_otp_member_is_an_email(ctx: Any, tmp_path: Path) -> None:
    doc_id = on_demand(ctx, tmp_path, "otp.pdf", [{"step": "OTPSignature", "members": ["externe@exemple.fr"]}])
    run_jobs(ctx)
    sent = otp.send_code(ctx, [doc_id])
    assert sent.channel == "email"
    otp.check_code(ctx, [doc_id], code_in(last_message(ctx, "mail").body))
    run_jobs(ctx)
    assert state_of(ctx, doc_id) == State.FILED.value


def test_depositor_cannot_be_a_member(ctx: Any, tmp_path: Path) -> None:
    with pytest.raises(ParafeError) as info:
        on_demand(ctx, tmp_path, "x.pdf", [{"step": "signature", "members": [AGENT]}])
    assert info.value.error is E.INVALID_STEP_MEMBER_AGENT
