"""Sandbox mode (issue 21): in a sandbox subscriber, visa and signature steps complete by themselves (real
server signatures named as such in the history), a share of them are refused, Helios answers come from the
simulator (ACK or NACK) and a PES_Retour flow follows. Outside the sandbox, nothing acts by itself."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature

from parafe.config import reset_settings
from parafe.domain.states import State
from parafe.formats.pes import validate_acquit
from parafe.services.access.auth import principal_for_email
from parafe.services.admin.sandbox import set_subscriber_sandbox
from parafe.services.demo import AGENT
from parafe.services.helios import returns
from parafe.transmission.helios import etat_ack
from parafe.workflow import sandbox
from tests.fixtures.files import pdf_bytes
from tests.workflow.conftest import deposit_file, document, history, run_jobs, state_of, states
from tests.workflow.test_helios import finished, pes

SIREN = "123456789"


@pytest.fixture
def sandbox_env(home: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.setenv("PARAFE_SANDBOX_VISA_SECONDS", "0.1")
    monkeypatch.setenv("PARAFE_SANDBOX_SIGNATURE_SECONDS", "0.1")
    reset_settings()
    yield monkeypatch
    reset_settings()


def test_visa_and_signature_complete_by_themselves_in_a_sandbox_subscriber(sandbox_env: Any, ctx: Any,
                                                                             tmp_path: Path) -> None:
    before = deposit_file(ctx, tmp_path, "hors-bac.pdf", pdf_bytes(text="hors bac"), circuit="bureautique")
    run_jobs(ctx)
    assert state_of(ctx, before) == State.SENT_FOR_VISA.value  # people in the loop: nothing happens
    set_subscriber_sandbox(ctx, SIREN, True)
    doc = deposit_file(ctx, tmp_path, "bac.pdf", pdf_bytes(text="bac à sable"), circuit="bureautique")
    run_jobs(ctx, until=lambda: state_of(ctx, doc) == State.FILED.value)
    assert states(ctx, doc) == [State.PREPARED, State.SENT_FOR_VISA, State.APPROVED, State.SENT_FOR_SIGN,
                                State.SIGNED, State.FILED]
    entries = {e.state: e for e in history(ctx, doc)}
    assert entries[State.APPROVED.value].user_fullname == sandbox.ACTOR == "Parafe (bac à sable)"
    assert entries[State.SIGNED.value].user_fullname == sandbox.ACTOR
    assert "ce n'est pas la signature du signataire" in (entries[State.SIGNED.value].comment or "")
    signed = ctx.store.read_bytes(document(ctx, doc).signed_blob_sha256)
    reader = PdfFileReader(io.BytesIO(signed))
    status = validate_pdf_signature(reader.embedded_signatures[0])
    assert status.intact
    assert status.valid  # a real signature, by the server key
    assert state_of(ctx, before) == State.SENT_FOR_VISA.value  # entered before the sandbox: left to people
    set_subscriber_sandbox(ctx, SIREN, False)
    after = deposit_file(ctx, tmp_path, "apres.pdf", pdf_bytes(text="après"), circuit="bureautique")
    run_jobs(ctx)
    assert state_of(ctx, after) == State.SENT_FOR_VISA.value


def test_refusal_share(sandbox_env: Any, ctx: Any, tmp_path: Path) -> None:
    sandbox_env.setenv("PARAFE_SANDBOX_REFUSAL_SHARE", "1")
    reset_settings()
    from parafe.config import get_settings

    ctx.settings = get_settings()
    set_subscriber_sandbox(ctx, SIREN, True)
    doc = deposit_file(ctx, tmp_path, "refus.pdf", pdf_bytes(text="refus"), circuit="bureautique")
    run_jobs(ctx, until=lambda: state_of(ctx, doc) == State.DISAPPROVED.value)
    assert document(ctx, doc).refusal_message == sandbox.REFUSAL == "Refus simulé (bac à sable)"
    assert sandbox.share_hit(0.5, 1, 2, "visa") == sandbox.share_hit(0.5, 1, 2, "visa")  # the same every time


def test_helios_nack_and_pes_retour(sandbox_env: Any, ctx: Any, tmp_path: Path) -> None:
    sandbox_env.setenv("PARAFE_SANDBOX_HELIOS_NACK_SHARE", "1")
    sandbox_env.setenv("PARAFE_HELIOS_TRANSPORT", "s2low")  # ignored in the sandbox: nothing leaves
    reset_settings()
    from parafe.config import get_settings

    ctx.settings = get_settings()
    set_subscriber_sandbox(ctx, SIREN, True)
    doc = deposit_file(ctx, tmp_path, "mandats.xml", pes("PARAFE_BAC_1"), circuit="pes")
    run_jobs(ctx, until=finished(ctx, doc))
    assert State.ACKNOWLEDGED.value in states(ctx, doc)
    agent = principal_for_email(ctx, AGENT)
    ack = returns.download(ctx, agent, doc, "ack")
    assert validate_acquit(ack.data) == []
    assert etat_ack(ack.data) == 0  # a NACK
    run_jobs(ctx, until=lambda: bool(returns.remaining(ctx, agent, SIREN, "pes_retour")))
    flow = returns.download(ctx, agent, returns.remaining(ctx, agent, SIREN, "pes_retour")[0], "pes_retour")
    assert b"PES_Retour" in flow.data
    assert flow.public_id >= returns.RETURN_ID_START
    assert sandbox.RETURN_ID_START == returns.RETURN_ID_START
