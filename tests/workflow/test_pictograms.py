"""Pictogram positions given at deposit (issue 15 point 5): every workflow signature — server signature, OTP,
the signer's own key on the server and remote (portal) signature — is drawn where the deposit's
``<pictogrammes>`` file says (millimetres from the bottom-left corner, ``index`` = step number, ``$`` = last
page). The signed PDFs are read back with pikepdf (widget ``/Rect`` and page of each signature) and checked
by ``pdfsig``; an invalid file is refused at deposit with error 240 and nothing is stored."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from sqlalchemy import func, select

from parafe.db.models import Document
from parafe.domain.errors import E, ParafeError
from parafe.domain.states import State
from parafe.formats.pictograms import MM
from parafe.services import steps as wf
from parafe.services.access.auth import principal_for_email
from parafe.services.demo import AGENT, SIGNER, VISA
from parafe.services.documents.metadata import upload_otp_information
from parafe.services.otp import codes as otp
from parafe.services.signers import remote_signing
from parafe.signing.keys import load_signer
from tests.fixtures.files import pdf_bytes
from tests.workflow.conftest import deposit_file, document, run_jobs, state_of
from tests.workflow.test_otp import code_in, last_message, otp_xml

DEFAULT_RECT = (340.0, 30.0, 560.0, 110.0)  # the workflow's own place: bottom-right of the last page


def pictograms(*pictos: tuple[str, dict[str, str]], kind: str = "signature") -> bytes:
    """A Maarch-style ``<pictogrammes>`` file: ``(index, position attributes)`` pairs ("" = no index)."""
    def attributes(values: dict[str, str]) -> str:
        return " ".join(f'{k}="{v}"' for k, v in values.items())

    body = "".join(
        f'<pictogramme {attributes({"index": index} if index else {})} border="true" opacite="true" '
        f'font-size="6"><position {attributes(attrs)}/>'
        '<center><metadata name="IMAGE" value="SIGNATAIRE"/></center>'
        '<bottom><metadata name="CHAMP_LIBRE" value="Signé par: ${SIGNATAIRE}"/><metadata name="DATE_SIGNATURE"/>'
        "</bottom></pictogramme>" for index, attrs in pictos)
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><pictogrammes>'
            f"<pictogramme-{kind}>{body}</pictogramme-{kind}></pictogrammes>").encode()


def signature_widgets(data: bytes) -> list[tuple[int, tuple[float, ...]]]:
    """(0-based page, /Rect) of every signature widget, in page order."""
    out = []
    with pikepdf.open(__import__("io").BytesIO(data)) as pdf:
        for number, page in enumerate(pdf.pages):
            for annot in page.obj.get("/Annots", []):
                field = annot if "/FT" in annot else annot.get("/Parent")
                if annot.get("/Subtype") == "/Widget" and field is not None and field.get("/FT") == "/Sig":
                    out.append((number, tuple(round(float(v), 2) for v in annot["/Rect"])))
    return out


def expected_rect(x: float, y: float, width: float, height: float) -> Any:
    """The rectangle in points of a position in millimetres (the PDF writers round to 0.01 pt)."""
    return pytest.approx(tuple(v * MM for v in (x, y, x + width, y + height)), abs=0.02)


def pdfsig_valid(tmp_path: Path, data: bytes, count: int) -> None:
    path = tmp_path / f"signed-{hashlib.sha256(data).hexdigest()[:8]}.pdf"
    path.write_bytes(data)
    report = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True).stdout
    assert report.count("Signature is Valid") == count, report


def signed_of(ctx: Any, doc_id: int) -> bytes:
    return bytes(ctx.store.read_bytes(document(ctx, doc_id).signed_blob_sha256 or ""))


def test_server_signature_at_the_deposit_position(ctx: Any, tmp_path: Path) -> None:
    xml = pictograms(("1", {"x": "20", "y": "30", "width": "60", "height": "25", "page": "2"}))
    doc_id = deposit_file(ctx, tmp_path, "serveur.pdf", pdf_bytes(3, "serveur"), circuit="serveur",
                          pictograms=xml)
    run_jobs(ctx)
    assert state_of(ctx, doc_id) == State.FILED.value
    signed = signed_of(ctx, doc_id)
    assert signature_widgets(signed) == [(1, expected_rect(20, 30, 60, 25))]
    pdfsig_valid(tmp_path, signed, 1)


def test_without_a_matching_pictogram_the_default_place(ctx: Any, tmp_path: Path) -> None:
    # only a pictogram for step 5 and a visa pictogram: the server signature (step 1) keeps its default place
    other_step = pictograms(("5", {"x": "20", "y": "30", "page": "1"}))
    visa_only = pictograms(("1", {"x": "20", "y": "30", "page": "1"}), kind="visa")
    ids = [deposit_file(ctx, tmp_path, f"defaut-{i}.pdf", pdf_bytes(2, f"defaut {i}"), circuit="serveur",
                        pictograms=xml) for i, xml in enumerate((other_step, visa_only))]
    # a pictogram without index serves every signature step; page "$" is the last page, sizes default to 50 × 20
    no_index = deposit_file(ctx, tmp_path, "sans-index.pdf", pdf_bytes(2, "sans index"), circuit="serveur",
                            pictograms=pictograms(("", {"x": "100", "y": "150", "page": "$"})))
    run_jobs(ctx)
    for doc_id in ids:
        assert signature_widgets(signed_of(ctx, doc_id)) == [(1, DEFAULT_RECT)]
    assert signature_widgets(signed_of(ctx, no_index)) == [(1, expected_rect(100, 150, 50, 20))]


def test_otp_signature_at_the_deposit_position(ctx: Any, tmp_path: Path) -> None:
    xml = pictograms(("1", {"x": "15.5", "y": "240", "width": "70", "height": "22", "page": "1"}))
    doc_id = deposit_file(ctx, tmp_path, "otp-picto.pdf", pdf_bytes(2, "otp"), circuit="otp", pictograms=xml)
    upload_otp_information(ctx, principal_for_email(ctx, AGENT), doc_id, otp_xml())
    run_jobs(ctx)
    otp.send_code(ctx, [doc_id])
    assert otp.check_code(ctx, [doc_id], code_in(last_message(ctx, "sms").body)) == [doc_id]
    run_jobs(ctx)
    assert state_of(ctx, doc_id) == State.FILED.value
    signed = signed_of(ctx, doc_id)
    assert signature_widgets(signed) == [(0, expected_rect(15.5, 240, 70, 22))]
    pdfsig_valid(tmp_path, signed, 1)


def _at_signature(ctx: Any, tmp_path: Path, name: str, xml: bytes) -> int:
    doc_id = deposit_file(ctx, tmp_path, name, pdf_bytes(2, name), circuit="bureautique", pictograms=xml)
    run_jobs(ctx)
    wf.approve_visa(ctx, principal_for_email(ctx, VISA), doc_id)
    run_jobs(ctx)
    assert state_of(ctx, doc_id) == State.SENT_FOR_SIGN.value
    return doc_id


def test_portal_remote_signature_at_the_deposit_position(ctx: Any, home: Any, tmp_path: Path) -> None:
    # bureautique = visa (step 1), signature (step 2): the visa pictogram is not a signature's
    xml = pictograms(("1", {"x": "10", "y": "10", "page": "1"}), kind="visa").replace(
        b"</pictogrammes>", b'<pictogramme-signature><pictogramme index="2"><position x="120" y="40" width="55" '
        b'height="18" page="1"/></pictogramme></pictogramme-signature></pictogrammes>')
    doc_id = _at_signature(ctx, tmp_path, "distant.pdf", xml)
    key = load_signer(home.path / "demo" / f"{SIGNER}.p12", "demo")
    signer = principal_for_email(ctx, SIGNER)
    prepared = remote_signing.prepare(ctx, signer, [doc_id], [key.cert_der])
    values = {d.id: [base64.b64encode(key.sign_raw(r.data_to_sign)).decode() for r in d.requests]
              for d in prepared.documents}
    assert [o.ok for o in remote_signing.finish(ctx, signer, prepared.session_id, values)] == [True]
    run_jobs(ctx)
    signed = signed_of(ctx, doc_id)
    assert signature_widgets(signed) == [(0, expected_rect(120, 40, 55, 18))]
    pdfsig_valid(tmp_path, signed, 1)


def test_signature_with_the_signers_key_on_the_server_at_the_deposit_position(ctx: Any, home: Any,
                                                                            tmp_path: Path) -> None:
    doc_id = _at_signature(ctx, tmp_path, "cle.pdf", pictograms(("2", {"x": "30", "y": "60", "page": "-2"})))
    key = load_signer(home.path / "demo" / f"{SIGNER}.p12", "demo")
    wf.sign_with_signer(ctx, principal_for_email(ctx, SIGNER), doc_id, key, quality="Maire")
    run_jobs(ctx)
    signed = signed_of(ctx, doc_id)
    assert signature_widgets(signed) == [(0, expected_rect(30, 60, 50, 20))]
    pdfsig_valid(tmp_path, signed, 1)


BAD = [
    (b'<pictogrammes><pictogramme-signature><pictogramme index="1"><position x="abc" y="1"/></pictogramme>'
     b"</pictogramme-signature></pictogrammes>", E.PICTOGRAMS_INVALID, "« x » doit être un nombre"),
    (b'<pictogrammes><pictogramme-signature><pictogramme><position y="1"/></pictogramme>'
     b"</pictogramme-signature></pictogrammes>", E.PICTOGRAMS_INVALID, "« x » de <position> est obligatoire"),
    (b'<pictogrammes><pictogramme-signature><pictogramme><position x="1" y="1" page="4"/></pictogramme>'
     b"</pictogramme-signature></pictogrammes>", E.PICTOGRAMS_INVALID, "la page 4 n'existe pas"),
    (b'<pictogrammes><pictogramme-signature><pictogramme><position x="1" y="1" width="-3"/></pictogramme>'
     b"</pictogramme-signature></pictogrammes>", E.PICTOGRAMS_INVALID, "strictement positif"),
    (b'<pictogrammes><pictogramme-signature><pictogramme index="0"><position x="1" y="1"/></pictogramme>'
     b"</pictogramme-signature></pictogrammes>", E.PICTOGRAMS_INVALID, "index 0"),
    (b'<pictogrammes><pictogramme-signature><pictogramme index="1"><position x="1" y="1"/></pictogramme>'
     b'<pictogramme index="1"><position x="2" y="2"/></pictogramme></pictogramme-signature></pictogrammes>',
     E.PICTOGRAMS_INVALID, "deux pictogrammes de signature avec l'index 1"),
    (b"<pictogrammes><signature/></pictogrammes>", E.PICTOGRAMS_INVALID, "élément <signature> inattendu"),
    (b"<pictos/>", E.PICTOGRAMS_INVALID, "élément racine <pictogrammes> attendu"),
    (b"<pictogrammes><pictogramme-signature>", E.XML_MALFORMED, "Fichier XML mal formé"),
    (b'<!DOCTYPE p [<!ENTITY x "y">]><pictogrammes/>', E.XML_UNSAFE, "entités ou DTD interdites"),
]


@pytest.mark.parametrize(("xml", "error", "text"), BAD, ids=[f"bad-{i}" for i in range(len(BAD))])
def test_invalid_pictograms_refused_with_nothing_stored(ctx: Any, tmp_path: Path, xml: bytes, error: Any,
                                                       text: str) -> None:
    data = pdf_bytes(3, f"refus {text}")
    with ctx.db.read() as s:
        before = s.scalar(select(func.count()).select_from(Document))
    with pytest.raises(ParafeError) as info:
        deposit_file(ctx, tmp_path, "refus.pdf", data, circuit="serveur", pictograms=xml)
    assert info.value.error is error, info.value.message
    assert text in info.value.message, info.value.message
    if error is E.PICTOGRAMS_INVALID:
        assert info.value.message.startswith("Fichier de pictogrammes invalide : ")
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Document)) == before
    assert not ctx.store.exists(hashlib.sha256(data).hexdigest())
