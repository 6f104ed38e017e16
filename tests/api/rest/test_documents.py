"""REST document endpoints against the real server over TLS: upload (R2), history (R6), delete (R9), refusal
comment (R16), download (R1, with ``acquit`` / ``fdc`` → ZIP), getFdc (R7), metas (R8); each success path and
each documented error."""

from __future__ import annotations

import base64
import io
import zipfile

import pikepdf

from parafe.domain.errors import E
from parafe.domain.states import State
from parafe.services.helios import returns
from tests.api.rest.conftest import Rest
from tests.api.rest.helpers import (
    ADMIN,
    AGENT,
    OTHER,
    SIGNER,
    SIREN,
    V1,
    VISA,
    deposit,
    error,
    set_state,
    unique,
    upload,
)
from tests.fixtures.files import pdf_bytes, zip_bytes


def test_upload_answers_bare_id_and_quirks(rest: Rest) -> None:
    with rest.client(AGENT) as c:
        name = unique()
        r = upload(c, name=name, label="Arrêtés", comment="Pour signature",
                   emailDestinataire="a@x.fr; b@y.fr,c@z.fr")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/plain")
        assert r.text.isdigit()
        assert int(r.text) >= 100_000_000
        # the same triplet again: « Fichier déjà déposé par un agent. » (D21)
        error(upload(c, name=name, label="Arrêtés"), 409, E.DUPLICATE_FILE)
        # same name with another label is fine
        assert upload(c, name=name, label="Autres").status_code == 200
        # SymfonyDocapostBundle sends base64_encode($label): decoded back
        doc = deposit(c, name=unique(), label=base64.b64encode("Délibérations 2026".encode()).decode())
        h = c.get(f"{V1}/documents/v2/{doc}/history")
        assert h.status_code == 200
    from parafe.db.models import Document

    with rest.ctx.db.read() as s:
        row = s.get(Document, doc)
        assert row is not None
        assert row.label.name == "Délibérations 2026"
        assert row.email_destinataire is None
    with rest.client(AGENT) as c:
        # repeated slashes (Pastell) and a zip bundle with an annex
        main = unique()
        bundle = zip_bytes({main: pdf_bytes(), "annexe.pdf": pdf_bytes(text="annexe")})
        r = c.post(f"/parapheur-ws/rest/v1//documents/v2/{SIREN}/bureautique/upload",
                   files={"content": (f"{main}.zip", bundle)})
        assert r.status_code == 200, r.text


def test_upload_errors(rest: Rest) -> None:
    with rest.client(AGENT) as c:
        error(c.post(f"{V1}/documents/v2/{SIREN}/bureautique/upload", data={"label": "x"}), 400, E.BAD_REQUEST)
        error(c.post(f"{V1}/documents/v2/{SIREN}/bureautique/upload", content=b"x",
                     headers={"content-type": "application/json"}), 400, E.BAD_REQUEST)
        error(upload(c, circuit="inconnu"), 404, E.CIRCUIT_NOT_FOUND)
        error(upload(c, siren="111111111"), 403, E.SUBSCRIBER_UNKNOWN_OR_FORBIDDEN)
        error(upload(c, data=b""), 422, E.EMPTY_FILE)
        error(upload(c, name=unique(".exe"), data=b"MZ"), 415, E.EXTENSION_NOT_ALLOWED)
        error(upload(c, name=unique(), data=b"not a pdf at all"), 415, E.PDF_INVALID)
        error(upload(c, name="x" * 150 + ".pdf"), 400, E.NAME_TOO_LONG)
        error(upload(c, label="L" * 256), 400, E.LABEL_TOO_LONG)
        error(upload(c, comment="C" * 256), 400, E.BAD_REQUEST)
        error(upload(c, emailDestinataire="pas-une-adresse"), 400, E.BAD_REQUEST)
        error(upload(c, circuit="pes", name=unique(".pdf")), 415, E.NOT_PES)
        error(upload(c, label="a\x00b"), 400, E.BAD_CHARACTERS)
        error(c.get(f"{V1}/documents/v2/%00/history"), 400, E.BAD_CHARACTERS)
        error(c.get(f"{V1}/nulle-part"), 404, E.ROUTE_NOT_FOUND)
        error(c.patch(f"{V1}/documents/v2/{SIREN}/bureautique/upload"), 405, E.METHOD_NOT_ALLOWED)
    with rest.client(VISA) as c:  # a valideur is not an agent of the circuit
        error(upload(c), 403, E.NO_PERMISSION)


def test_history_delete_refusal(rest: Rest) -> None:
    with rest.client(AGENT) as c:
        doc = deposit(c)
        h = c.get(f"{V1}/documents/v2/{doc}/history").json()
        assert [e["stateName"] for e in h] == ["Préparé"]
        assert h[0]["userFullname"] == "Alice Agent"
        assert h[0]["date"].endswith("Z")
        assert len(h[0]["date"]) == 24
        # not refused: {"comment": null} (D20)
        r = c.get(f"{V1}/documents/v2/{doc}/comments/refusal")
        assert r.status_code == 200
        assert r.json() == {"comment": None}
        # delete in Préparé is allowed
        r = c.delete(f"{V1}/documents/v2/{doc}")
        assert r.status_code == 200
        assert r.content == b""
        error(c.get(f"{V1}/documents/v2/{doc}/history"), 404, E.DOCUMENT_NOT_FOUND)
        error(c.delete(f"{V1}/documents/v2/{doc}"), 404, E.DOCUMENT_NOT_FOUND)
        # a document being signed cannot be deleted
        doc2 = deposit(c)
        set_state(rest.ctx, doc2, State.SENT_FOR_SIGN, actor="parapheur parapheur")
        error(c.delete(f"{V1}/documents/v2/{doc2}"), 409, E.DELETE_NOT_ALLOWED)
        # refused: the comment comes back, and the document may be deleted
        set_state(rest.ctx, doc2, State.REFUSED, comment="Montant erroné", refusal="Montant erroné")
        assert c.get(f"{V1}/documents/v2/{doc2}/comments/refusal").json() == {"comment": "Montant erroné"}
        names = [e["stateName"] for e in c.get(f"{V1}/documents/v2/{doc2}/history").json()]
        assert names == ["Préparé", "Envoyé pour signature", "Refusé"]
        # a visa rejection (history comment only) is returned too
        doc3 = deposit(c)
        set_state(rest.ctx, doc3, State.DISAPPROVED, actor="Victor Valideur", comment="À revoir")
        assert c.get(f"{V1}/documents/v2/{doc3}/comments/refusal").json() == {"comment": "À revoir"}
        assert "Visa désapprouvé" in [e["stateName"] for e in c.get(f"{V1}/documents/v2/{doc3}/history").json()]
        assert c.delete(f"{V1}/documents/v2/{doc2}").status_code == 200
        error(c.get(f"{V1}/documents/v2/abc/history"), 404, E.DOCUMENT_NOT_FOUND)
    with rest.client(SIGNER) as c:  # sees the document (role on the circuit) but may not delete it
        error(c.delete(f"{V1}/documents/v2/{doc3}"), 403, E.AUTH_ACCESS_DENIED)


def test_delete_frees_triplet_keeps_nomfic(rest: Rest) -> None:
    with rest.client(AGENT) as c:
        name = unique()
        doc = deposit(c, name=name, label="L1")
        error(upload(c, name=name, label="L1"), 409, E.DUPLICATE_FILE)
        assert c.delete(f"{V1}/documents/v2/{doc}").status_code == 200
        again = deposit(c, name=name, label="L1")
        assert again != doc


def test_download_original_signed_zip(rest: Rest) -> None:
    data = pdf_bytes(text="original")
    with rest.client(AGENT) as c:
        name = unique()
        doc = deposit(c, name=name, data=data)
        r = c.get(f"{V1}/documents/v2/{doc}/download")
        assert r.status_code == 200
        assert r.content == data
        assert r.headers["content-type"] == "application/pdf"
        assert name in r.headers["content-disposition"]
        # false flags: still the file
        assert c.get(f"{V1}/documents/v2/{doc}/download?fdc=false&acquit=false").content == data
        # the signed version wins once there is one
        signed = pdf_bytes(text="signé")
        ref = rest.ctx.store.put_bytes(signed)
        from parafe.db.models import Document

        with rest.ctx.db.write() as s:
            row = s.get(Document, doc)
            assert row is not None
            row.signed_blob_sha256 = ref.sha256
        assert c.get(f"{V1}/documents/v2/{doc}/download").content == signed
        # fdc=true → ZIP with the document and the fiche de circulation (FdC case accepted, G-19)
        for query in ("fdc=true", "FdC=TRUE"):
            r = c.get(f"{V1}/documents/v2/{doc}/download?{query}")
            assert r.status_code == 200
            assert r.headers["content-type"] == "application/zip"
            zf = zipfile.ZipFile(io.BytesIO(r.content))
            assert zf.namelist() == [name, f"FDC_{name}.pdf"]
            assert zf.read(name) == signed
            with pikepdf.open(io.BytesIO(zf.read(f"FDC_{name}.pdf"))) as fiche:
                assert len(fiche.pages) >= 1
        # acquit=true on a document without acknowledgement: the ZIP holds the document only
        zf = zipfile.ZipFile(io.BytesIO(c.get(f"{V1}/documents/v2/{doc}/download?acquit=true").content))
        assert zf.namelist() == [name]
        # with an acknowledgement
        returns.add_return(rest.ctx, kind="ack", data=b"<PES_ACQUIT/>", name=f"ACQUIT_{name}", document_id=doc)
        zf = zipfile.ZipFile(io.BytesIO(c.get(f"{V1}/documents/v2/{doc}/download?acquit=true&fdc=1").content))
        assert zf.namelist() == [name, f"ACQUIT_{name}", f"FDC_{name}.pdf"]
        assert zf.read(f"ACQUIT_{name}") == b"<PES_ACQUIT/>"
        # unknown: S02 « Le nœud n'existe pas »
        error(c.get(f"{V1}/documents/v2/100999999/download"), 404, E.NODE_NOT_FOUND)


def test_download_missing_blob(rest: Rest) -> None:
    from parafe.db.models import Document

    with rest.client(AGENT) as c:
        doc = deposit(c)
        with rest.ctx.db.write() as s:
            row = s.get(Document, doc)
            assert row is not None
            row.signed_blob_sha256 = "0" * 64
        error(c.get(f"{V1}/documents/v2/{doc}/download"), 500, E.CONTENT_RETRIEVAL)


def test_getfdc_and_metas(rest: Rest) -> None:
    with rest.client(AGENT) as c:
        name = unique()
        bundle = zip_bytes({name: pdf_bytes(), f"METAS_{name}.xml": (
            b'<?xml version="1.0" encoding="UTF-8"?><meta-data-list>'
            b'<meta-data name="TEXT001" value="John"/><meta-data name="NUM001" value="45812"/></meta-data-list>')})
        r = c.post(f"{V1}/documents/v2/{SIREN}/bureautique/upload", files={"content": (f"{name}.zip", bundle)})
        assert r.status_code == 200, r.text
        doc = int(r.text)
        fdc = c.get(f"{V1}/documents/v2/{doc}/getFdc")
        assert fdc.status_code == 200
        assert fdc.headers["content-type"] == "application/pdf"
        assert fdc.content.startswith(b"%PDF")
        for path in (f"{V1}/documents/{doc}/metas", f"{V1}/documents/v2/{doc}/metas"):
            m = c.get(path)
            assert m.status_code == 200
            assert m.headers["content-type"].startswith("application/xml")
            assert b'<meta-data name="TEXT001" value="John"/>' in m.content
            assert b'<meta-data name="NUM001" value="45812"/>' in m.content
        error(c.get(f"{V1}/documents/v2/100999999/getFdc"), 404, E.DOCUMENT_NOT_FOUND)
        error(c.get(f"{V1}/documents/100999999/metas"), 404, E.DOCUMENT_NOT_FOUND)
    with rest.client(OTHER) as c:
        error(c.get(f"{V1}/documents/{doc}/metas"), 404, E.DOCUMENT_NOT_FOUND)
    with rest.client(ADMIN) as c:
        assert c.get(f"{V1}/documents/{doc}/metas").status_code == 200
