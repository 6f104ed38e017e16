"""Every deposit check of the Foundation issue, through the service layer, on SQLite and PostgreSQL.

After every refusal the database holds no document and the blob store holds no blob: nothing half-stored.
"""

from __future__ import annotations

import hashlib
import shutil
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from parafe.db.models import Annex, Document, HistoryEntry, Label, MetadataValue, OutboxItem
from parafe.domain.errors import E, ErrorDef, ParafeError
from parafe.domain.states import State
from parafe.services.access.auth import principal_for_email
from parafe.services.demo import AGENT, OTHER_AGENT, VISA
from parafe.services.documents.deposit import DepositRequest, Upload, deposit
from tests.fixtures.files import PES_SAMPLES, encrypted_pdf, pdf_bytes, zip_bytes


def _upload(tmp_path: Path, name: str | bytes, data: bytes) -> Upload:
    path = tmp_path / f"up-{hashlib.sha256(data + str(name).encode()).hexdigest()[:12]}"
    path.write_bytes(data)
    return Upload(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data), filename=name)


def _deposit(ctx: Any, tmp_path: Path, name: str | bytes, data: bytes, *, circuit: str = "bureautique",
             siren: str = "123456789", user: str = AGENT, **kw: Any) -> int:
    req = DepositRequest(siren=siren, circuit=circuit, upload=_upload(tmp_path, name, data), **kw)
    return deposit(ctx, principal_for_email(ctx, user), req).document_id


def _blob_count(ctx: Any) -> int:
    return sum(1 for _ in ctx.store.iter_refs())


def _document_count(ctx: Any) -> int:
    with ctx.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(Document)) or 0)


def _refused(ctx: Any, tmp_path: Path, expected: ErrorDef, name: str | bytes, data: bytes, **kw: Any) -> ParafeError:
    docs, blobs = _document_count(ctx), _blob_count(ctx)
    with pytest.raises(ParafeError) as info:
        _deposit(ctx, tmp_path, name, data, **kw)
    assert info.value.error is expected, info.value.message
    assert _document_count(ctx) == docs
    assert _blob_count(ctx) == blobs
    return info.value


def test_pdf_deposit_creates_prepared_document(ctx: Any, tmp_path: Path) -> None:
    data = pdf_bytes()
    doc_id = _deposit(ctx, tmp_path, "arrêté 2026-001.pdf", data, label="Arrêtés", comment="Pour signature")
    assert doc_id >= 100_000_000
    with ctx.db.read() as s:
        doc = s.get(Document, doc_id)
        assert doc is not None
        assert doc.state == State.PREPARED.value
        assert doc.kind == "pdf"
        assert doc.name == "arrêté 2026-001.pdf"
        assert doc.label.name == "Arrêtés"
        assert [h.state for h in doc.history] == [State.PREPARED.value]
        assert doc.history[0].user_fullname == "Alice Agent"
        outbox = s.scalars(select(OutboxItem).where(OutboxItem.document_id == doc_id)).all()
        assert [o.kind for o in outbox] == ["workflow.start"]
    assert ctx.store.read_bytes(hashlib.sha256(data).hexdigest()) == data


def test_ids_increase(ctx: Any, tmp_path: Path) -> None:
    a = _deposit(ctx, tmp_path, "a.pdf", pdf_bytes(text="a"))
    b = _deposit(ctx, tmp_path, "b.pdf", pdf_bytes(text="b"))
    assert b > a >= 100_000_000


def test_default_label_is_today_in_paris(ctx: Any, tmp_path: Path) -> None:
    from parafe.domain.deposit import default_label

    doc_id = _deposit(ctx, tmp_path, "sans-libelle.pdf", pdf_bytes())
    with ctx.db.read() as s:
        assert s.get(Document, doc_id).label.name == default_label()


def test_rights(ctx: Any, tmp_path: Path) -> None:
    _refused(ctx, tmp_path, E.SUBSCRIBER_UNKNOWN_OR_FORBIDDEN, "a.pdf", pdf_bytes(), siren="111111111")
    _refused(ctx, tmp_path, E.SUBSCRIBER_UNKNOWN_OR_FORBIDDEN, "a.pdf", pdf_bytes(), user=OTHER_AGENT)
    _refused(ctx, tmp_path, E.CIRCUIT_NOT_FOUND, "a.pdf", pdf_bytes(), circuit="inconnu")
    _refused(ctx, tmp_path, E.NO_PERMISSION, "a.pdf", pdf_bytes(), user=VISA)


@pytest.mark.parametrize(("name", "expected"), [
    ("dossier/a.pdf", E.BAD_CHARACTERS),
    ("a\\b.pdf", E.BAD_CHARACTERS),
    ("a\x07b.pdf", E.BAD_CHARACTERS),
    ("a\x00.pdf", E.BAD_CHARACTERS),
    (b"caf\xe9.pdf", E.BAD_CHARACTERS),
    ("x" * 147 + ".pdf", E.NAME_TOO_LONG),
    ("", E.NAME_MISSING),
])
def test_name_rules(ctx: Any, tmp_path: Path, name: str | bytes, expected: ErrorDef) -> None:
    _refused(ctx, tmp_path, expected, name, pdf_bytes())


def test_name_150_ok_and_nfc(ctx: Any, tmp_path: Path) -> None:
    _deposit(ctx, tmp_path, "x" * 146 + ".pdf", pdf_bytes())
    nfd = unicodedata.normalize("NFD", "délibération.pdf")
    doc_id = _deposit(ctx, tmp_path, nfd, pdf_bytes(text="nfd"))
    with ctx.db.read() as s:
        assert s.get(Document, doc_id).name == unicodedata.normalize("NFC", nfd)
    _refused(ctx, tmp_path, E.DUPLICATE_FILE, "délibération.pdf", pdf_bytes(text="nfc"))


def test_empty_and_extensions(ctx: Any, tmp_path: Path) -> None:
    _refused(ctx, tmp_path, E.EMPTY_FILE, "vide.pdf", b"")
    _refused(ctx, tmp_path, E.EXTENSION_NOT_ALLOWED, "a.foo", b"data")
    _refused(ctx, tmp_path, E.EXTENSION_NOT_ALLOWED, "a.docx", b"PK data")  # allowed extension, PDF circuit
    _refused(ctx, tmp_path, E.PDF_INVALID, "faux.pdf", b"this is not a pdf")


def test_duplicate_triplet(ctx: Any, tmp_path: Path) -> None:
    _deposit(ctx, tmp_path, "a.pdf", pdf_bytes(), label="L1")
    _refused(ctx, tmp_path, E.DUPLICATE_FILE, "a.pdf", pdf_bytes(text="other"), label="L1")
    _deposit(ctx, tmp_path, "a.pdf", pdf_bytes(), label="L2")  # another label: allowed
    # a zip bundle's main document is known only once opened: the same triplet rule, checked after
    _refused(ctx, tmp_path, E.DUPLICATE_FILE, "a.pdf.zip", zip_bytes({"a.pdf": pdf_bytes(text="zip")}), label="L1")


def test_protected_pdfs(ctx: Any, tmp_path: Path) -> None:
    _refused(ctx, tmp_path, E.PDF_PROTECTED, "pwd.pdf", encrypted_pdf(tmp_path, user_password="secret").read_bytes())
    _refused(ctx, tmp_path, E.PDF_PROTECTED, "ro.pdf", encrypted_pdf(tmp_path, allow_modify=False).read_bytes())
    # encrypted with an owner password only and every right granted: signable
    _deposit(ctx, tmp_path, "owner-only.pdf", encrypted_pdf(tmp_path, allow_modify=True).read_bytes())


def test_docmdp_certified_pdf_refused(ctx: Any, tmp_path: Path, home: Any) -> None:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko.sign.signers.pdf_signer import PdfSignatureMetadata

    cert, key = home.demo(AGENT)
    signer = signers.SimpleSigner.load(key, cert)
    out = tmp_path / "certified.pdf"
    import io

    w = IncrementalPdfFileWriter(io.BytesIO(pdf_bytes()))
    meta = PdfSignatureMetadata(field_name="Cert", certify=True, docmdp_permissions=fields.MDPPerm.NO_CHANGES)
    out.write_bytes(signers.sign_pdf(w, meta, signer=signer).getvalue())
    _refused(ctx, tmp_path, E.PDF_PROTECTED, "certifie.pdf", out.read_bytes())


def test_pes_checks(ctx: Any, tmp_path: Path) -> None:
    valid = (PES_SAMPLES / "valid_unsigned_PES_ex.xml").read_bytes()
    doc_id = _deposit(ctx, tmp_path, "pes1.xml", valid, circuit="pes")
    with ctx.db.read() as s:
        doc = s.get(Document, doc_id)
        assert doc is not None
        assert doc.kind == "pes"
        assert doc.nom_fic
    # same NomFic under another file name: refused
    _refused(ctx, tmp_path, E.PES_DUPLICATE_NOMFIC, "pes2.xml", valid, circuit="pes")
    _refused(ctx, tmp_path, E.PES_PROCESSING, "invalide.xml",
             (PES_SAMPLES / "invalid_BlocPiece_without_InfoPce.xml").read_bytes(), circuit="pes")
    _refused(ctx, tmp_path, E.PES_NO_BORDEREAU, "pj.xml", (PES_SAMPLES / "valid_PES_PJ.xml").read_bytes(),
             circuit="pes")
    _refused(ctx, tmp_path, E.NOT_PES, "pas-pes.xml", b"<?xml version='1.0'?><facture/>", circuit="pes")
    _refused(ctx, tmp_path, E.NOT_PES, "doc.pdf", pdf_bytes(), circuit="pes")
    _refused(ctx, tmp_path, E.XML_UNSAFE, "xxe.xml",
             b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><PES_Aller>&x;</PES_Aller>',
             circuit="pes")
    # the PES-PJ circuit takes the PES_PJ sample
    _deposit(ctx, tmp_path, "pj.xml", (PES_SAMPLES / "valid_PES_PJ.xml").read_bytes(), circuit="pes-pj")
    # an ISO-8859-1 sample with accents
    _deposit(ctx, tmp_path, "iso.xml", (PES_SAMPLES / "valid_unsigned_iso8859_accents.xml").read_bytes(),
             circuit="pes")


def test_nomfic_unique_across_subscribers(ctx: Any, tmp_path: Path) -> None:
    from parafe.db.models import Circuit, CircuitRole, Subscriber, User

    valid = (PES_SAMPLES / "valid_unsigned_HELIOS_SIMU_ALR2_1496987735_826268894.xml").read_bytes()
    with ctx.db.write() as s:
        other = s.scalar(select(Subscriber).where(Subscriber.siren == "987654321"))
        agent = s.scalar(select(User).where(User.email == OTHER_AGENT))
        circuit = Circuit(subscriber_id=other.id, key="pes", name="PES", type="HELIOS_AVEC_TELETRANSMISSION")
        s.add(circuit)
        s.flush()
        s.add(CircuitRole(circuit_id=circuit.id, user_id=agent.id, role="agent"))
    _deposit(ctx, tmp_path, "helios.xml", valid, circuit="pes")
    _refused(ctx, tmp_path, E.PES_DUPLICATE_NOMFIC, "helios.xml", valid, circuit="pes", siren="987654321",
             user=OTHER_AGENT)


def test_bundle_with_annexes_and_metas(ctx: Any, tmp_path: Path) -> None:
    metas = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><meta-data-list>'
             b'<meta-data name="TEXT001" value="John"/></meta-data-list>')
    bundle = zip_bytes({"bonjour.pdf": pdf_bytes(), "bonjour2.pdf": pdf_bytes(text="annexe"),
                        "notes.txt": b"annexe texte", "METAS_bonjour.pdf.xml": metas})
    doc_id = _deposit(ctx, tmp_path, "bonjour.pdf.zip", bundle)
    with ctx.db.read() as s:
        doc = s.get(Document, doc_id)
        assert doc is not None
        assert doc.name == "bonjour.pdf"
        assert doc.kind == "pdf"
        assert sorted(a.name for a in s.scalars(select(Annex).where(Annex.document_id == doc_id))) == [
            "bonjour2.pdf", "notes.txt"]
        assert [(m.name, m.value) for m in s.scalars(select(MetadataValue))] == [("TEXT001", "John")]


@pytest.mark.parametrize(("entries", "expected"), [
    ({"bonjour.pdf": b"%PDF", "../evil.txt": b"x"}, E.BUNDLE_INVALID),
    ({"bonjour.pdf": b"%PDF", "/abs.txt": b"x"}, E.BUNDLE_INVALID),
    ({"bonjour.pdf": b"%PDF", "sub/dir.txt": b"x"}, E.BUNDLE_INVALID),
    ({"autre.pdf": b"%PDF"}, E.BUNDLE_MAIN_MISSING),
    ({"bonjour.pdf": b"%PDF", "virus.foo": b"x"}, E.EXTENSION_NOT_ALLOWED),
])
def test_bad_bundles(ctx: Any, tmp_path: Path, entries: dict[str, bytes], expected: ErrorDef) -> None:
    fixed = {k: (pdf_bytes() if v == b"%PDF" else v) for k, v in entries.items()}
    _refused(ctx, tmp_path, expected, "bonjour.pdf.zip", zip_bytes(fixed))


def test_nested_zip_refused(ctx: Any, tmp_path: Path) -> None:
    inner = zip_bytes({"x.txt": b"x"})
    _refused(ctx, tmp_path, E.BUNDLE_INVALID, "bonjour.pdf.zip", zip_bytes({"bonjour.pdf": pdf_bytes(),
                                                                             "inner.zip": inner}))


def test_corrupt_zip(ctx: Any, tmp_path: Path) -> None:
    _refused(ctx, tmp_path, E.BUNDLE_INVALID, "bonjour.pdf.zip", b"PK\x03\x04 not really a zip")


def test_label_guard(ctx: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from parafe.domain.deposit import default_label

    ctx.settings.label_guard = 3
    for i in range(3):
        _deposit(ctx, tmp_path, f"g{i}.pdf", pdf_bytes(text=str(i)), label=f"L{i}")
    doc_id = _deposit(ctx, tmp_path, "g4.pdf", pdf_bytes(text="4"), label="L-nouveau")
    with ctx.db.read() as s:
        doc = s.get(Document, doc_id)
        assert doc is not None
        assert doc.label.name == default_label()
        assert s.scalar(select(func.count()).select_from(Label).where(Label.name == "L-nouveau")) == 0
        note = s.scalars(select(HistoryEntry.comment).where(HistoryEntry.document_id == doc_id)).one()
        assert note
        assert "L-nouveau" in note
    # an existing label is still usable
    _deposit(ctx, tmp_path, "g5.pdf", pdf_bytes(text="5"), label="L1")


def test_refusal_queues_error_mail(ctx: Any, tmp_path: Path) -> None:
    _refused(ctx, tmp_path, E.EMPTY_FILE, "vide.pdf", b"")
    with ctx.db.read() as s:
        mails = s.scalars(select(OutboxItem).where(OutboxItem.kind == "mail.deposit_error")).all()
        assert len(mails) == 1
        assert mails[0].payload["to"] == AGENT
        assert mails[0].payload["message"] == E.EMPTY_FILE.message


def test_email_lists(ctx: Any, tmp_path: Path) -> None:
    doc_id = _deposit(ctx, tmp_path, "m.pdf", pdf_bytes(), email_destinataire="a@x.fr; b@y.fr,c@z.fr")
    with ctx.db.read() as s:
        assert s.get(Document, doc_id).email_destinataire == "a@x.fr,b@y.fr,c@z.fr"
    _refused(ctx, tmp_path, E.BAD_REQUEST, "n.pdf", pdf_bytes(), email_destinataire="pas-une-adresse")


def test_clean_tmp(ctx: Any, tmp_path: Path) -> None:
    _deposit(ctx, tmp_path, "bonjour.pdf.zip", zip_bytes({"bonjour.pdf": pdf_bytes(), "a.txt": b"a"}))
    leftovers = [p for p in ctx.tmp_dir.iterdir() if p.name.startswith("deposit-")]
    assert leftovers == []
    shutil.rmtree(tmp_path / "unused", ignore_errors=True)


def test_a_replaced_blob_is_kept_as_a_version(ctx: Any, tmp_path: Path) -> None:
    """The before-flush hook keeps the previous blob of a document whose blob column changes, and only then
    (issue 17: it walks the session's modified states instead of ``session.dirty``)."""
    from parafe.db.models import DocumentBlobVersion

    doc_id = _deposit(ctx, tmp_path, "versions.pdf", pdf_bytes(text="versions"))
    first, second = "a" * 64, "b" * 64

    def versions() -> list[str]:
        with ctx.db.read() as s:
            return list(s.scalars(select(DocumentBlobVersion.blob).where(DocumentBlobVersion.document_id == doc_id)
                                  .order_by(DocumentBlobVersion.id)))

    with ctx.db.write() as s:
        document = s.get(Document, doc_id)
        assert document is not None
        original = document.blob_sha256
        document.signed_blob_sha256 = first  # was empty: nothing to keep
    assert versions() == []
    with ctx.db.write() as s:
        document = s.get(Document, doc_id)
        assert document is not None
        document.name = "renommé.pdf"  # not a blob column
        s.get(Label, document.label_id)  # another object in the session, unchanged
    assert versions() == []
    with ctx.db.write() as s:
        document = s.get(Document, doc_id)
        assert document is not None
        document.signed_blob_sha256 = second
        document.blob_sha256 = first
    assert sorted(versions()) == sorted([first, original])
