"""End to end through the services, on SQLite and PostgreSQL: each demo circuit from deposit to its end.

Deposits go through the deposit service, people act through ``parafe.services.steps``, the jobs run with
the worker's code (``parafe.jobs.outbox.execute``); signed PDFs are checked by poppler's ``pdfsig``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from parafe.db.models import OutboxItem
from parafe.domain.errors import E, ParafeError
from parafe.domain.states import ACTOR_AUTOMATIC, State
from parafe.services import steps as wf
from parafe.services.access.auth import principal_for_email
from parafe.services.demo import AGENT, SIGNER, VISA
from tests.fixtures.files import pdf_bytes
from tests.workflow.conftest import deposit_file, document, history, run_jobs, state_of, states


def pdfsig(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "signed.pdf"
    path.write_bytes(data)
    out = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, timeout=60)
    return out.stdout + out.stderr


def test_server_signature_circuit(ctx: Any, tmp_path: Path) -> None:
    doc_id = deposit_file(ctx, tmp_path, "arrêté.pdf", pdf_bytes(2), circuit="serveur")
    run_jobs(ctx)
    assert states(ctx, doc_id) == [State.PREPARED, State.SENT_FOR_SIGN, State.SIGNED, State.FILED]
    entries = history(ctx, doc_id)
    assert [e.user_fullname for e in entries[1:]] == [ACTOR_AUTOMATIC] * 3
    doc = document(ctx, doc_id)
    assert doc.state == State.FILED.value
    assert doc.signed_blob_sha256
    report = pdfsig(tmp_path, ctx.store.read_bytes(doc.signed_blob_sha256))
    assert "Signature #1" in report
    assert "Signature #2" not in report
    assert "Signature is Valid" in report, report
    with ctx.db.read() as s:
        pending = s.scalars(select(OutboxItem).where(OutboxItem.done_at.is_(None))).all()
        assert pending == []
        kinds = [o.kind for o in s.scalars(select(OutboxItem).where(OutboxItem.document_id == doc_id))]
        assert kinds == ["workflow.start", "sign.server", "mail.end"]


def test_visa_then_signature(ctx: Any, tmp_path: Path) -> None:
    doc_id = deposit_file(ctx, tmp_path, "délibération.pdf", pdf_bytes(), circuit="bureautique")
    run_jobs(ctx)
    assert state_of(ctx, doc_id) == State.SENT_FOR_VISA.value
    visa, signer, agent = (principal_for_email(ctx, e) for e in (VISA, SIGNER, AGENT))
    assert [p.id for p in wf.pending_for(ctx, visa)] == [doc_id]
    assert wf.pending_for(ctx, signer) == []
    # the signer is not a member of the visa step
    with pytest.raises(ParafeError) as info:
        wf.approve_visa(ctx, signer, doc_id)
    assert info.value.error is E.STEP_NOT_ACTIONABLE
    wf.approve_visa(ctx, visa, doc_id, comment="Vu")
    run_jobs(ctx)
    assert state_of(ctx, doc_id) == State.SENT_FOR_SIGN.value
    # the first who acts decides: a second approval is refused
    with pytest.raises(ParafeError) as info:
        wf.approve_visa(ctx, visa, doc_id)
    assert info.value.error is E.STEP_NOT_ACTIONABLE
    assert [p.action for p in wf.pending_for(ctx, signer)] == ["signature"]
    from parafe.signing.keys import load_signer

    key = load_signer(ctx.settings.resolved_home / "demo" / f"{SIGNER}.p12", "demo")
    wf.sign_with_signer(ctx, signer, doc_id, key, quality="Maire")
    run_jobs(ctx)
    assert states(ctx, doc_id) == [State.PREPARED, State.SENT_FOR_VISA, State.APPROVED, State.SENT_FOR_SIGN,
                                   State.SIGNED, State.FILED]
    entries = history(ctx, doc_id)
    assert entries[2].user_fullname == "Victor Valideur"
    assert entries[2].comment == "Vu"
    assert entries[4].user_fullname == "Sophie Signataire"
    signed = ctx.store.read_bytes(document(ctx, doc_id).signed_blob_sha256 or "")
    report = pdfsig(tmp_path, signed)
    assert "Signature is Valid" in report, report
    assert "Sophie Signataire" in report, report
    del agent


def test_signature_produced_elsewhere(ctx: Any, tmp_path: Path) -> None:
    from parafe.signing.keys import load_signer
    from parafe.signing.pades import sign_pdf

    doc_id = deposit_file(ctx, tmp_path, "contrat.pdf", pdf_bytes(), circuit="bureautique")
    run_jobs(ctx)
    wf.approve_visa(ctx, principal_for_email(ctx, VISA), doc_id)
    run_jobs(ctx)
    signer = principal_for_email(ctx, SIGNER)
    original = ctx.store.read_bytes(document(ctx, doc_id).blob_sha256)
    # not the document (another PDF, signed) → refused
    key = load_signer(ctx.settings.resolved_home / "demo" / f"{SIGNER}.p12", "demo")
    with pytest.raises(ParafeError) as info:
        wf.sign(ctx, signer, doc_id, sign_pdf(pdf_bytes(text="autre"), key))
    assert info.value.error is E.SIGNED_DOCUMENT_INVALID
    # signed by a key the trust list does not know → refused
    from parafe.security import pki

    stranger_ca = pki.create_ca("AC inconnue") if hasattr(pki, "create_ca") else None
    if stranger_ca is not None:
        leaf = pki.issue_user_cert(stranger_ca, "x@y.fr", "Inconnu")
        other = load_signer(pki.p12_bytes(leaf, b"x", ca=stranger_ca), "x")
        with pytest.raises(ParafeError) as info:
            wf.sign(ctx, signer, doc_id, sign_pdf(original, other))
        assert info.value.error is E.SIGNED_DOCUMENT_INVALID
    wf.sign(ctx, signer, doc_id, sign_pdf(original, key), comment="Lu et approuvé")
    run_jobs(ctx)
    assert state_of(ctx, doc_id) == State.FILED.value
    assert states(ctx, doc_id).count(State.SIGNED) == 1


def test_rejection_and_refusal_store_the_message(ctx: Any, tmp_path: Path) -> None:
    from parafe.services.documents import lifecycle

    agent = principal_for_email(ctx, AGENT)
    rejected = deposit_file(ctx, tmp_path, "rejeté.pdf", pdf_bytes(text="r"), circuit="bureautique")
    refused = deposit_file(ctx, tmp_path, "refusé.pdf", pdf_bytes(text="f"), circuit="bureautique")
    run_jobs(ctx)
    visa = principal_for_email(ctx, VISA)
    with pytest.raises(ParafeError) as info:
        wf.reject_visa(ctx, visa, rejected, "  ")
    assert info.value.error is E.REASON_REQUIRED
    wf.reject_visa(ctx, visa, rejected, "Montant erroné")
    wf.approve_visa(ctx, visa, refused)
    run_jobs(ctx)
    wf.refuse(ctx, principal_for_email(ctx, SIGNER), refused, "Pas de crédits")
    run_jobs(ctx)
    assert state_of(ctx, rejected) == State.DISAPPROVED.value
    assert state_of(ctx, refused) == State.REFUSED.value
    assert lifecycle.refusal_message(ctx, agent, rejected) == "Montant erroné"
    assert lifecycle.refusal_message(ctx, agent, refused) == "Pas de crédits"
    assert history(ctx, refused)[-1].comment == "Pas de crédits"
    # refused and rejected documents can be deleted (D14)
    lifecycle.delete(ctx, agent, refused)
    lifecycle.delete(ctx, agent, rejected)


def test_xml_circuit_detached_xades(ctx: Any, home: Any, tmp_path: Path) -> None:
    """The `xml` demo circuit: the signer signs an office document; the detached XAdES verifies with xmlsec1."""
    from parafe.security import pki
    from parafe.signing.keys import load_signer
    from parafe.signing.xades import verify_xades_detached

    office = b"Rapport annuel\nTexte du rapport \xc3\xa0 signer.\n"
    doc_id = deposit_file(ctx, tmp_path, "rapport.txt", office, circuit="xml")
    run_jobs(ctx)
    assert state_of(ctx, doc_id) == State.SENT_FOR_SIGN.value
    ca = pki.load_ca(home.path / "pki")
    p12 = tmp_path / "signataire.p12"
    pki.write_p12(pki.issue_user_cert(ca, SIGNER, "Sophie Signataire"), p12, b"secret", ca=ca)
    wf.sign_with_signer(ctx, principal_for_email(ctx, SIGNER), doc_id, load_signer(p12, "secret"))
    run_jobs(ctx)
    doc = document(ctx, doc_id)
    assert doc.signature_blob_sha256
    assert doc.state in (State.SIGNED.value, State.FILED.value)
    signature = ctx.store.read_bytes(doc.signature_blob_sha256)
    report = verify_xades_detached(signature, office, [home.path / "pki" / "ca.pem"])
    assert report.document_digest_ok, report
    assert report.signature_value_ok, report
    assert report.chain_trusted, report
    tampered = verify_xades_detached(signature, office + b"!", [home.path / "pki" / "ca.pem"])
    assert not tampered.document_digest_ok
