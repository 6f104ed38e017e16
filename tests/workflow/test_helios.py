"""PES circuits: signature then Helios through the simulator, acknowledgement stored, XSD-valid, listed by
listRemainingAcknowledgements until downloaded (D11); already-signed PES skip the signature (§1.1.3, verified
first); the simulator's failure cases give the ``Échec …`` states; PES_Retour / Chorus injection."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from parafe.domain.states import State
from parafe.formats.pes import validate_acquit
from parafe.services import steps as wf
from parafe.services.access.auth import principal_for_email
from parafe.services.demo import ADMIN, AGENT, SIGNER
from parafe.services.helios import returns
from parafe.signing.keys import load_signer
from parafe.transmission.helios import HeliosSimulator, etat_ack
from tests.conftest import TESTDATA
from tests.workflow.conftest import deposit_file, document, history, run_jobs, state_of, states

SAMPLE = TESTDATA / "pes" / "samples" / "valid_unsigned_PES_ex.xml"

HELIOS_OK = [State.SENDING, State.SENT_TO_FAST, State.SENT_TO_HELIOS, State.ACKNOWLEDGED, State.FILED]


def pes(nom_fic: str) -> bytes:
    data = SAMPLE.read_bytes()
    return re.sub(rb'<NomFic V="[^"]*"/>', f'<NomFic V="{nom_fic}"/>'.encode(), data, count=1)


def finished(ctx: Any, doc_id: int) -> Any:
    return lambda: state_of(ctx, doc_id) in (
        State.FILED.value, State.FAST_PROCESSING_FAILED.value, State.SEND_TO_HELIOS_FAILED.value,
        State.SEND_TO_FAST_FAILED.value, State.SIGNATURE_REJECTED.value)


def test_pes_signed_then_helios_then_ack(ctx: Any, tmp_path: Path) -> None:
    doc_id = deposit_file(ctx, tmp_path, "mandats.xml", pes("PARAFE_T1"), circuit="pes")
    run_jobs(ctx)
    assert state_of(ctx, doc_id) == State.SENT_FOR_SIGN.value
    signer = principal_for_email(ctx, SIGNER)
    key = load_signer(ctx.settings.resolved_home / "demo" / f"{SIGNER}.p12", "demo")
    wf.sign_with_signer(ctx, signer, doc_id, key, quality="Ordonnateur")
    run_jobs(ctx, until=finished(ctx, doc_id))
    assert states(ctx, doc_id) == [State.PREPARED, State.SENT_FOR_SIGN, State.SIGNED, *HELIOS_OK]
    # the simulator received the signed PES once
    sim = HeliosSimulator.for_context(ctx)
    sent = [t for t in sim.transmissions() if str(t["key"]).startswith(f"doc-{doc_id}-")]
    assert len(sent) == 1
    assert sent[0]["duplicates"] == 0
    signed = ctx.store.read_bytes(document(ctx, doc_id).signed_blob_sha256 or "")
    assert sim.store.data(str(sent[0]["key"])) == signed
    # the acknowledgement: listed, downloaded once, schema-valid, then gone from the list (D11)
    agent = principal_for_email(ctx, AGENT)
    assert returns.remaining(ctx, agent, "123456789", "ack") == [doc_id]
    ack = returns.download(ctx, agent, doc_id, "ack")
    assert ack.name == "ACQUIT_mandats.xml"
    assert validate_acquit(ack.data) == []
    assert etat_ack(ack.data) == 1
    assert returns.remaining(ctx, agent, "123456789", "ack") == []


def test_already_signed_pes_skips_signature(ctx: Any, tmp_path: Path) -> None:
    from parafe.signing.pes import sign_pes

    key = load_signer(ctx.settings.resolved_home / "demo" / f"{SIGNER}.p12", "demo")
    signed = sign_pes(pes("PARAFE_T2"), key, per_bordereau=True)
    doc_id = deposit_file(ctx, tmp_path, "signé.xml", signed, circuit="pes")
    run_jobs(ctx, until=finished(ctx, doc_id))
    assert states(ctx, doc_id) == [State.PREPARED, State.SIGNATURE_VALIDATED, *HELIOS_OK]
    assert document(ctx, doc_id).signed_blob_sha256 is None  # transmitted as deposited


def test_pes_with_a_forged_signature_is_refused_at_deposit(ctx: Any, tmp_path: Path) -> None:
    from parafe.domain.errors import E, ParafeError
    from parafe.signing.pes import sign_pes

    key = load_signer(ctx.settings.resolved_home / "demo" / f"{SIGNER}.p12", "demo")
    signed = sign_pes(pes("PARAFE_T3"), key, per_bordereau=True)
    forged = signed.replace(b'<MtBordHT V="55.22"/>', b'<MtBordHT V="99.99"/>')
    assert forged != signed
    with pytest.raises(ParafeError) as info:  # spec §4.4 case 3 (tests/unit/services/test_pes_signed_deposit.py)
        deposit_file(ctx, tmp_path, "falsifié.xml", forged, circuit="pes")
    assert info.value.error is E.PES_SIGNATURE_INVALID


def test_pes_signed_by_an_unknown_ca_is_rejected_before_helios(ctx: Any, tmp_path: Path) -> None:
    from parafe.signing.keys import load_pem_signer
    from parafe.signing.pes import sign_pes

    bad = ctx.settings.resolved_home / "demo" / "bad"
    key = load_pem_signer((bad / "unknown-ca.pem").read_bytes(), (bad / "unknown-ca.key").read_bytes())
    signed = sign_pes(pes("PARAFE_T3"), key, per_bordereau=True)  # intact, but no chain to the trust store
    doc_id = deposit_file(ctx, tmp_path, "inconnu.xml", signed, circuit="pes")
    run_jobs(ctx, until=finished(ctx, doc_id))
    assert states(ctx, doc_id) == [State.PREPARED, State.SIGNATURE_REJECTED]
    assert "Chaîne de certification non approuvée" in (history(ctx, doc_id)[-1].comment or "")
    assert HeliosSimulator.for_context(ctx).transmissions() == []


@pytest.mark.parametrize(("marker", "expected"), [
    ("SIMU_ECHEC_FAST", [State.SENDING, State.SENT_TO_FAST, State.FAST_PROCESSING_FAILED]),
    ("SIMU_ECHEC_HELIOS", [State.SENDING, State.SENT_TO_FAST, State.SENT_TO_HELIOS, State.SEND_TO_HELIOS_FAILED]),
    ("SIMU_ECHEC_ENVOI", [State.SENDING, State.SEND_TO_FAST_FAILED]),
])
def test_helios_failures(ctx: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, marker: str,
                         expected: list[State]) -> None:
    monkeypatch.setenv("PARAFE_JOB_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("PARAFE_JOB_BACKOFF_SECONDS", "0.05")
    doc_id = deposit_file(ctx, tmp_path, f"pj_{marker}.xml", TESTDATA.joinpath(
        "pes", "samples", "valid_PES_PJ.xml").read_bytes(), circuit="pes-pj")
    run_jobs(ctx, until=finished(ctx, doc_id))
    assert states(ctx, doc_id) == [State.PREPARED, *expected]
    assert history(ctx, doc_id)[-1].comment  # the reason is kept in the history
    assert returns.remaining(ctx, principal_for_email(ctx, AGENT), "123456789", "ack") == []


def test_negative_acknowledgement(ctx: Any, tmp_path: Path) -> None:
    doc_id = deposit_file(ctx, tmp_path, "pj_SIMU_ACK_KO.xml", TESTDATA.joinpath(
        "pes", "samples", "valid_PES_PJ.xml").read_bytes(), circuit="pes-pj")
    run_jobs(ctx, until=finished(ctx, doc_id))
    assert states(ctx, doc_id) == [State.PREPARED, *HELIOS_OK]
    ack = returns.download(ctx, principal_for_email(ctx, AGENT), doc_id, "ack")
    assert validate_acquit(ack.data) == []
    assert etat_ack(ack.data) == 0
    assert history(ctx, doc_id)[-2].comment == "Acquittement négatif (EtatAck 0)"


def test_injected_pes_retour_and_chorus(ctx: Any) -> None:
    from parafe.transmission.chorus import inject, inject_pes_retour

    admin = principal_for_email(ctx, ADMIN)
    retour = inject_pes_retour(ctx, "123456789", HeliosSimulator.pes_retour(), "PES_Retour_1.xml")
    chorus = inject(ctx, "123456789", (TESTDATA / "chorus" / "samples" / "facture-pivot.xml").read_bytes(),
                    "facture.xml")
    with pytest.raises(ValueError, match="flux Chorus refusé"):
        inject(ctx, "123456789", b"<facture/>", "x.xml")
    assert returns.remaining(ctx, admin, "123456789", "pes_retour") == [retour]
    assert returns.remaining(ctx, admin, "123456789", "chorus") == [chorus]
    assert returns.download(ctx, admin, retour, "pes_retour").data.startswith(b"<?xml")
    assert returns.remaining(ctx, admin, "123456789", "pes_retour") == []
