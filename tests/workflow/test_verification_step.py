"""The signature-verification step verifies for real — PDF (PAdES), office document (detached XAdES) and PES
(enveloped XAdES) alike — and records its verdict in the history (« Signature validée » / « signature rejetée »
with the verifier's explanation) and in a JSON verification report kept in the blob store, referenced from the
document (``extra["verifications"]``)."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

from sqlalchemy import select

from parafe.db.models import Circuit, CircuitRole, CircuitStep, Document, StepMember, Subscriber, User
from parafe.domain.circuits import CircuitType, StepKind
from parafe.domain.errors import E
from parafe.domain.states import State
from parafe.services import steps as wf
from parafe.services.access.auth import principal_for_email
from parafe.services.demo import AGENT, SIGNER
from parafe.signing.keys import ServerSigner, load_pem_signer, load_signer
from tests.conftest import TESTDATA
from tests.fixtures.files import pdf_bytes
from tests.workflow.conftest import deposit_file, document, history, run_jobs, state_of

SAMPLE_PES = TESTDATA / "pes" / "samples" / "valid_unsigned_PES_ex.xml"
DONE = (State.FILED.value, State.SIGNATURE_REJECTED.value)


def make_circuit(ctx: Any, key: str, ctype: CircuitType, steps: list[tuple[StepKind, str | None]]) -> None:
    """A circuit of the demo subscriber, as an administrator would configure it."""
    with ctx.db.write() as session:
        sub = session.scalar(select(Subscriber).where(Subscriber.siren == "123456789"))
        assert sub is not None
        users = {u.email: u for u in session.scalars(select(User).where(User.subscriber_id == sub.id))}
        circuit = Circuit(subscriber_id=sub.id, key=key, name=key, type=ctype.value, settings={})
        session.add(circuit)
        session.flush()
        roles = {(users[AGENT].id, "agent")}
        for position, (kind, member) in enumerate(steps):
            step = CircuitStep(circuit_id=circuit.id, position=position, kind=kind.value, config={})
            if member:
                step.members.append(StepMember(user_id=users[member].id))
                roles.add((users[member].id, "signataire"))
            session.add(step)
        for user_id, role in sorted(roles):
            session.add(CircuitRole(circuit_id=circuit.id, user_id=user_id, role=role))


def signer_key(ctx: Any) -> ServerSigner:
    return load_signer(ctx.settings.resolved_home / "demo" / f"{SIGNER}.p12", "demo")


def unknown_ca_key(ctx: Any) -> ServerSigner:
    bad = ctx.settings.resolved_home / "demo" / "bad"
    return load_pem_signer((bad / "unknown-ca.pem").read_bytes(), (bad / "unknown-ca.key").read_bytes())


def pes(nom_fic: str) -> bytes:
    return re.sub(rb'<NomFic V="[^"]*"/>', f'<NomFic V="{nom_fic}"/>'.encode(), SAMPLE_PES.read_bytes(), count=1)


def office_document() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        zf.writestr("content.xml", "<office:document-content>Arrêté du maire</office:document-content>")
    return buf.getvalue()


def verdict_entry(ctx: Any, doc_id: int, state: State) -> Any:
    (entry,) = [h for h in history(ctx, doc_id) if h.state == state.value]
    return entry


def step_report(ctx: Any, doc_id: int) -> dict[str, Any]:
    """The report the verification step kept with the document (read back from the blob store)."""
    held = document(ctx, doc_id)
    entries = [e for e in (held.extra or {}).get("verifications") or [] if e["source"] == "verification_step"]
    assert len(entries) == 1, held.extra
    report = json.loads(ctx.store.read_bytes(entries[0]["report_sha256"]))
    assert report["valid"] is entries[0]["valid"]
    assert report["document_id"] == doc_id
    assert report["verified_sha256"] == (held.signed_blob_sha256 or held.blob_sha256)
    return report


def test_pdf_signed_in_the_circuit_is_validated(ctx: Any, tmp_path: Path) -> None:
    make_circuit(ctx, "pdf-verif", CircuitType.BUREAUTIQUE_PDF,
                 [(StepKind.SIGNATURE, SIGNER), (StepKind.SIGNATURE_VERIFICATION, None), (StepKind.FILING, None)])
    doc_id = deposit_file(ctx, tmp_path, "arrêté.pdf", pdf_bytes(), circuit="pdf-verif")
    run_jobs(ctx)
    wf.sign_with_signer(ctx, principal_for_email(ctx, SIGNER), doc_id, signer_key(ctx))
    run_jobs(ctx, until=lambda: state_of(ctx, doc_id) in DONE)
    assert state_of(ctx, doc_id) == State.FILED.value
    comment = verdict_entry(ctx, doc_id, State.SIGNATURE_VALIDATED).comment
    assert comment.startswith("Vérification de la signature PAdES du PDF : valide.")
    assert "Sophie Signataire" in comment
    report = step_report(ctx, doc_id)
    assert report["verdict"] == "Signature validée"
    assert report["kind"] == "pdf"
    (sig,) = report["report"]["signatures"]
    assert sig["signer"] == "Sophie Signataire"
    assert sig["intact"]
    assert sig["trusted"]


def test_pdf_signed_by_an_unknown_ca_is_rejected(ctx: Any, tmp_path: Path) -> None:
    from parafe.signing.pades import sign_pdf

    make_circuit(ctx, "pdf-verif-only", CircuitType.BUREAUTIQUE_PDF,
                 [(StepKind.SIGNATURE_VERIFICATION, None), (StepKind.FILING, None)])
    signed = sign_pdf(pdf_bytes(text="signé ailleurs"), unknown_ca_key(ctx))
    doc_id = deposit_file(ctx, tmp_path, "signé ailleurs.pdf", signed, circuit="pdf-verif-only")
    run_jobs(ctx, until=lambda: state_of(ctx, doc_id) in DONE)
    assert state_of(ctx, doc_id) == State.SIGNATURE_REJECTED.value
    comment = verdict_entry(ctx, doc_id, State.SIGNATURE_REJECTED).comment
    assert comment.startswith("Vérification de la signature PAdES du PDF : rejetée.")
    assert "autorité approuvée" in comment
    report = step_report(ctx, doc_id)
    assert report["verdict"] == "signature rejetée"
    assert report["report"]["signatures"][0]["trusted"] is False


def test_office_signature_is_verified_again_by_the_step(ctx: Any, tmp_path: Path) -> None:
    from parafe.signing.xades import sign_xades_detached

    make_circuit(ctx, "xml-verif", CircuitType.BUREAUTIQUE_XML,
                 [(StepKind.SIGNATURE, SIGNER), (StepKind.SIGNATURE_VERIFICATION, None), (StepKind.FILING, None)])
    data = office_document()
    doc_id = deposit_file(ctx, tmp_path, "arrêté.odt", data, circuit="xml-verif")
    run_jobs(ctx)
    signature, _ = sign_xades_detached(data, "arrêté.odt", signer_key(ctx))
    wf.sign(ctx, principal_for_email(ctx, SIGNER), doc_id, signature)
    run_jobs(ctx, until=lambda: state_of(ctx, doc_id) in DONE)
    assert state_of(ctx, doc_id) == State.FILED.value
    comment = verdict_entry(ctx, doc_id, State.SIGNATURE_VALIDATED).comment
    assert comment.startswith("Vérification de la signature XAdES détachée : valide.")
    report = step_report(ctx, doc_id)
    assert report["kind"] == "xades-detached"
    assert report["verdict"] == "Signature validée"
    assert report["signature_sha256"] == document(ctx, doc_id).signature_blob_sha256
    assert report["report"]["document_digest_ok"]
    assert report["report"]["chain_trusted"]
    sources = [e["source"] for e in document(ctx, doc_id).extra["verifications"]]
    assert sources == ["signature", "verification_step"]


def test_office_signature_replaced_in_the_store_is_rejected(ctx: Any, tmp_path: Path) -> None:
    """Between the signature and the step, the stored signature becomes one over another file (a corrupted or
    substituted blob): the step does not trust what was accepted earlier, it verifies again."""
    from parafe.signing.xades import sign_xades_detached

    make_circuit(ctx, "xml-verif2", CircuitType.BUREAUTIQUE_XML,
                 [(StepKind.SIGNATURE, SIGNER), (StepKind.SIGNATURE_VERIFICATION, None), (StepKind.FILING, None)])
    data = office_document()
    doc_id = deposit_file(ctx, tmp_path, "note.odt", data, circuit="xml-verif2")
    run_jobs(ctx)
    signature, _ = sign_xades_detached(data, "note.odt", signer_key(ctx))
    wf.sign(ctx, principal_for_email(ctx, SIGNER), doc_id, signature)  # queues the verification, not run yet
    other, _ = sign_xades_detached(b"autre contenu", "autre.odt", signer_key(ctx))
    with ctx.db.write() as session:
        row = session.get(Document, doc_id)
        assert row is not None
        assert row.state == State.SIGNED.value
        row.signature_blob_sha256 = ctx.store.put_bytes(other).sha256
    run_jobs(ctx, until=lambda: state_of(ctx, doc_id) in DONE)
    assert state_of(ctx, doc_id) == State.SIGNATURE_REJECTED.value
    comment = verdict_entry(ctx, doc_id, State.SIGNATURE_REJECTED).comment
    assert comment.startswith("Vérification de la signature XAdES détachée : rejetée.")
    assert E.SIGNATURE_OTHER_FILE.format(signed="autre.odt", name="note.odt") in comment
    assert step_report(ctx, doc_id)["verdict"] == "signature rejetée"


def test_pes_signed_in_the_circuit_is_validated(ctx: Any, tmp_path: Path) -> None:
    make_circuit(ctx, "pes-verif", CircuitType.HELIOS_SANS_TELETRANSMISSION,
                 [(StepKind.SIGNATURE, SIGNER), (StepKind.SIGNATURE_VERIFICATION, None), (StepKind.FILING, None)])
    doc_id = deposit_file(ctx, tmp_path, "mandats.xml", pes("VERIF_PES_1"), circuit="pes-verif")
    run_jobs(ctx)
    wf.sign_with_signer(ctx, principal_for_email(ctx, SIGNER), doc_id, signer_key(ctx), quality="Ordonnateur")
    run_jobs(ctx, until=lambda: state_of(ctx, doc_id) in DONE)
    assert state_of(ctx, doc_id) == State.FILED.value
    comment = verdict_entry(ctx, doc_id, State.SIGNATURE_VALIDATED).comment
    assert comment.startswith("Vérification de la signature XAdES du PES : valide.")
    report = step_report(ctx, doc_id)
    assert report["kind"] == "pes"
    assert report["verdict"] == "Signature validée"
    assert report["report"]["signatures"]
    assert all(s["chain_trusted"] for s in report["report"]["signatures"])


def test_pes_signed_by_an_unknown_ca_is_rejected(ctx: Any, tmp_path: Path) -> None:
    from parafe.signing.pes import sign_pes

    make_circuit(ctx, "pes-verif-only", CircuitType.HELIOS_SANS_TELETRANSMISSION,
                 [(StepKind.SIGNATURE_VERIFICATION, None), (StepKind.FILING, None)])
    signed = sign_pes(pes("VERIF_PES_2"), unknown_ca_key(ctx), per_bordereau=True)
    doc_id = deposit_file(ctx, tmp_path, "signé ailleurs.xml", signed, circuit="pes-verif-only")
    run_jobs(ctx, until=lambda: state_of(ctx, doc_id) in DONE)
    assert state_of(ctx, doc_id) == State.SIGNATURE_REJECTED.value
    comment = verdict_entry(ctx, doc_id, State.SIGNATURE_REJECTED).comment
    assert comment.startswith("Vérification de la signature XAdES du PES : rejetée.")
    assert "Chaîne de certification non approuvée" in comment
    report = step_report(ctx, doc_id)
    assert report["verdict"] == "signature rejetée"
    assert not any(s["chain_trusted"] for s in report["report"]["signatures"])
