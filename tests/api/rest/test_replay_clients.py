"""Replay of the exact REST requests of real clients (research note ``real-clients.md`` §4, §5, §2 and the
clients' public code read for it), byte-shaped as they send them, against the real server over TLS.

- **Maarch Courrier** (``FastParapheurController.php`` + ``CurlModel``): hand-built multipart bodies with the
  boundary ``-------------<uniqid>`` and **no per-part Content-Type**; the deposit is a ``<name>.pdf.zip``
  holding the PDF, ``document_principal.pdf`` and ``PJ_1.pdf``; ``comment`` sent empty; ``ondemand`` with
  repeated ``annexes`` parts and a ``pictograms.xml``; ``otpinformation`` named ``METAS_API.xml`` written by
  SimpleXMLElement with pretty printing; upload bodies JSON-decoded (must be a bare number); the OTP metadata
  answer must be exactly 200; ``exportUsersData`` read as ``users[].{prenom, nom, email}``; the (commented)
  search ``{"siren", "state": "Prepared", "circuit": "circuit-a-la-volee"}``.
- **SymfonyDocapostBundle** (``DocapostFast.php``, Symfony Mime ``FormDataPart``): text parts with
  ``Content-Type: text/plain; charset=utf-8`` and ``Content-Transfer-Encoding: 8bit``; ``label`` sent as
  ``base64_encode($label)``; an extra ``circuit_id`` field on ``ondemand``; the OTP information file named after
  ``/tmp/<uniqid>`` (no extension) and produced by Symfony's XmlEncoder; ``(int)$id === 0`` means failure;
  ``exportUsersData`` read as ``users[].circuits[0].habilitations[0].profil``.
- **Pastell**: ``rest/v1//documents/…`` (double slash), ``email_cc`` in lower case.
"""

from __future__ import annotations

import base64
import io
import json
import secrets
import time
import zipfile

import httpx

from parafe.db.models import Document
from parafe.domain.states import State
from tests.api.rest.conftest import Rest
from tests.api.rest.helpers import AGENT, SIGNER, SIREN, VISA, set_state
from tests.fixtures.files import pdf_bytes

BASE = "/parapheur-ws/rest/v1"  # Maarch's and Symfony's configured base (no trailing slash for Maarch)


def _uniqid() -> str:
    """PHP uniqid(): 13 hex digits from the time."""
    t = time.time()
    return f"{int(t):8x}{int((t - int(t)) * 1_000_000):05x}"


def maarch_multipart(parts: list[tuple[str, bytes | str, str | None]]) -> tuple[bytes, str]:
    """Maarch's CurlModel body: ``name`` → value, or a file with its ``filename``; no part Content-Type."""
    delimiter = "-------------" + _uniqid()
    body = b""
    for name, value, filename in parts:
        data = value.encode() if isinstance(value, str) else value
        body += f"--{delimiter}\r\n".encode()
        if filename is None:
            body += f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        else:
            body += f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n\r\n'.encode()
        body += data + b"\r\n"
    body += f"--{delimiter}--\r\n".encode()
    return body, f"multipart/form-data; boundary={delimiter}"


def symfony_multipart(fields: list[tuple[str, bytes | str, str | None, str | None]]) -> tuple[bytes, str]:
    """Symfony Mime FormDataPart: text parts are ``text/plain; charset=utf-8`` 8bit, file parts carry their
    guessed type; (name, value, filename, content type)."""
    boundary = secrets.token_urlsafe(6).replace("-", "a").replace("_", "b")
    body = b""
    for name, value, filename, ctype in fields:
        data = value.encode() if isinstance(value, str) else value
        body += f"--{boundary}\r\n".encode()
        if filename is None:
            body += (b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
                     + f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        else:
            body += (f"Content-Type: {ctype}\r\n"
                     f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n\r\n').encode()
        body += data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def maarch_otp_xml(otp: dict[str, str]) -> bytes:
    """What FastParapheurController::generateOtpXml(prettyPrint) produces."""
    lines = ['<?xml version="1.0" encoding="UTF-8" standalone="yes"?>', "<meta-data-list>"]
    lines += [f'  <meta-data name="{k}" value="{v}"/>' for k, v in otp.items()]
    return ("\n".join(lines) + "\n</meta-data-list>\n").encode()


def test_maarch_courrier(rest: Rest) -> None:
    with rest.client(AGENT) as c:
        # 1. classic deposit: a zip named after the attachment, holding it, the main document and an annex
        attachment = f"Reponse_courrier_{secrets.randbelow(10**6)}_1234.pdf"
        bundle = io.BytesIO()
        with zipfile.ZipFile(bundle, "w") as zf:
            zf.writestr(attachment, pdf_bytes(text="réponse"))
            zf.writestr("document_principal.pdf", pdf_bytes(text="courrier"))
            zf.writestr("PJ_1.pdf", pdf_bytes(text="pj"))
        body, ctype = maarch_multipart([("content", bundle.getvalue(), f"{attachment}.zip"),
                                        ("label", "DGS", None), ("comment", "", None)])
        r = c.post(f"{BASE}/documents/v2/{SIREN}/bureautique/upload", content=body, headers={"content-type": ctype})
        assert r.status_code == 200, r.text
        doc = json.loads(r.text)  # Maarch JSON-decodes the answer: a bare number
        assert isinstance(doc, int)
        with rest.ctx.db.read() as s:
            row = s.get(Document, doc)
            assert row is not None
            assert row.name == attachment
            assert sorted(a.name for a in row.annexes) == ["PJ_1.pdf", "document_principal.pdf"]
        # 2. integrated workflow: ondemand with repeated annexes, pictograms, then the OTP information
        circuit = {"type": "BUREAUTIQUE_PDF", "steps": [
            {"step": "visa", "members": [VISA]},
            {"step": "OTPSignature", "members": ["externe@exemple.fr"]}]}
        pictograms = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<pictogrammes><pictogramme-visa>'
                      b'<pictogramme index="1" border="true" opacite="true" font-size="6"><position height="20" '
                      b'width="50" page="1" x="10" y="10"/><center><metadata name="IMAGE" value="VALIDEUR"/></center>'
                      b'<bottom><metadata name="CHAMP_LIBRE" value="Valid\xc3\xa9 par: ${VALIDEUR}"/><metadata '
                      b'name="DATE_VISA"/></bottom></pictogramme></pictogramme-visa></pictogrammes>\n')
        body, ctype = maarch_multipart([
            ("comment", "", None),
            ("doc", pdf_bytes(text="courrier OTP"), "Courrier_sortant.pdf"),
            ("annexes", pdf_bytes(text="fiche"), "Fiche-De-Liaison.pdf"),
            ("annexes", pdf_bytes(text="pj"), "Piece_jointe.pdf"),
            ("circuit", json.dumps(circuit), None),
            ("pictograms", pictograms, "pictograms.xml"),
        ])
        r = c.post(f"{BASE}/documents/ondemand/{SIREN}/upload", content=body, headers={"content-type": ctype})
        assert r.status_code == 200, r.text
        otp_doc = json.loads(r.text)
        body, ctype = maarch_multipart([("otpinformation", maarch_otp_xml({
            "OTP_firstname_0": "Jean", "OTP_lastname_0": "Externe", "OTP_phonenumber_0": "0612345678",
            "OTP_email_0": "externe@exemple.fr"}), "METAS_API.xml")])
        r = c.put(f"{BASE}/documents/v2/otp/{otp_doc}/metadata/define", content=body,
                  headers={"content-type": ctype})
        assert r.status_code == 200, r.text  # Maarch: `if ($curlReturn['code'] != 200)` is an error
        # 3. follow-up: history (JSON), users (idToDisplay = prenom + nom), proof = getFdc, download
        history = c.get(f"{BASE}/documents/v2/{otp_doc}/history").json()
        assert history[0]["stateName"].startswith("Préparé")
        assert history[-1]["userFullname"] == "boucle sms"
        users = c.get(f"{BASE}/exportUsersData?siren={SIREN}").json()["users"]
        display = {f"{u['prenom']} {u['nom']}".strip(): u["email"] for u in users}
        assert display["Alice Agent"] == AGENT
        fdc = c.get(f"{BASE}/documents/v2/{doc}/getFdc")
        assert fdc.status_code == 200
        assert "developerMessage" not in fdc.text[:200]
        download = c.get(f"{BASE}/documents/v2/{doc}/download")
        assert download.status_code == 200
        assert download.content.startswith(b"%PDF")
        # 4. refusal: `comment`, else `developerMessage` after its first ':'
        set_state(rest.ctx, doc, State.REFUSED, refusal="Signature refusée : montant")
        refusal = c.get(f"{BASE}/documents/v2/{doc}/comments/refusal").json()
        assert refusal == {"comment": "Signature refusée : montant"}
        # 5. search of on-demand documents (Maarch's getResources, POST with JSON headers)
        r = c.post(f"{BASE}/documents/search", content=json.dumps(
            {"siren": SIREN, "state": "OTPvalidated", "circuit": "circuit-a-la-volee"}),
            headers={"Accept": "application/json", "Content-Type": "application/json"})
        assert r.status_code == 200
        assert r.json() == []
        r = c.post(f"{BASE}/documents/search", content=json.dumps(
            {"siren": SIREN, "state": "Prepared", "circuit": "circuit-a-la-volee"}),
            headers={"Accept": "application/json", "Content-Type": "application/json"})
        assert r.status_code == 200
        assert isinstance(r.json(), list)


def test_symfony_docapost_bundle(rest: Rest) -> None:
    with rest.client(AGENT) as c:
        # uploadDocument(): label base64-encoded, PDF part typed application/pdf
        body, ctype = symfony_multipart([
            ("label", base64.b64encode(b"Conventions de stage").decode(), None, None),
            ("comment", "Convention n°12", None, None),
            ("emailDestinataire", "", None, None),
            ("content", pdf_bytes(text="convention"), f"convention-{secrets.token_hex(4)}.pdf", "application/pdf"),
        ])
        r = c.post(f"{BASE}/documents/v2/{SIREN}/bureautique/upload", content=body,
                   headers={"content-type": ctype})
        assert r.status_code == 200, r.text
        doc = int(r.text)
        with rest.ctx.db.read() as s:
            row = s.get(Document, doc)
            assert row is not None
            assert row.label.name == "Conventions de stage"
        # dynamicCircuit(): ondemand with an extra circuit_id field and an OTP step, then uploadOTPInformation
        circuit = {"type": "BUREAUTIQUE_PDF", "steps": [{"step": "visa", "members": [SIGNER]},
                                                          {"step": "OTPSignature"}]}
        body, ctype = symfony_multipart([
            ("email_destinataire", "etudiant@univ.fr;tuteur@entreprise.fr", None, None),
            ("doc", pdf_bytes(text="convention OTP"), "convention.pdf", "application/pdf"),
            ("circuit_id", "bureautique", None, None),
            ("circuit", json.dumps(circuit), None, None),
            ("comment", "Convention à signer", None, None),
        ])
        r = c.post(f"{BASE}/documents/ondemand/{SIREN}/upload", content=body, headers={"content-type": ctype})
        assert r.status_code == 200, r.text
        docapost_id = r.text
        assert int(docapost_id) != 0  # `(int) $docapostId === 0` is the client's failure test
        xml = ('<?xml version="1.0"?>\n<meta-data-list><meta-data name="OTP_firstname_0" value="Emma"/>'
               '<meta-data name="OTP_lastname_0" value="Etudiante"/><meta-data name="OTP_phonenumber_0" '
               'value="0611223344"/><meta-data name="OTP_email_0" value="etudiant@univ.fr"/></meta-data-list>\n')
        body, ctype = symfony_multipart([("otpinformation", xml, _uniqid(), "text/xml")])
        r = c.put(f"{BASE}/documents/v2/otp/{docapost_id}/metadata/define", content=body,
                  headers={"content-type": ctype})
        assert r.status_code == 200, r.text
        # getSmsUrl(), history(), getSignInfo(), getMetas(), getFdc(), downloadDocument()
        url = c.get(f"{BASE}/documents/v2/otp/url?id={docapost_id}").json()["url"]
        assert "/boucle-sms/documentView?id=" in url
        history = c.get(f"{BASE}/documents/v2/{docapost_id}/history").json()
        assert all({"userFullname", "stateName", "date"} <= set(h) for h in history)
        assert c.get(f"{BASE}/documents/v2/{docapost_id}/comments/refusal").json() == {"comment": None}
        metas = c.get(f"{BASE}/documents/{docapost_id}/metas")
        assert metas.status_code == 200
        assert b"OTP_email_0" in metas.content
        assert c.get(f"{BASE}/documents/v2/{doc}/getFdc").content.startswith(b"%PDF")
        download = c.get(f"{BASE}/documents/v2/{doc}/download")
        assert download.headers["content-type"] == "application/pdf"  # a JSON body would be an error
        # getUsersCertificate(): current(current($u['circuits'])['habilitations'])['profil'] === 'CERTIFICAT'
        users = json.loads(c.get(f"{BASE}/exportUsersData?siren={SIREN}").content)["users"]
        certificate_users = [u for u in users if u.get("circuits")
                             and u["circuits"][0]["habilitations"][0]["profil"] == "CERTIFICAT"]
        assert AGENT in {u["email"] for u in certificate_users}
        # delete(): getContent() of the DELETE answer
        r = c.delete(f"{BASE}/documents/v2/{docapost_id}")
        assert r.status_code == 200
        assert r.text == ""
        # errors are always the JSON shape with errorCode 119 for a member without an account
        body, ctype = symfony_multipart([
            ("email_destinataire", "", None, None),
            ("doc", pdf_bytes(), "x.pdf", "application/pdf"),
            ("circuit_id", "bureautique", None, None),
            ("circuit", json.dumps({"type": "BUREAUTIQUE_PDF",
                                    "steps": [{"step": "visa", "members": ["sans.compte@univ.fr"]}]}), None, None),
        ])
        r = c.post(f"{BASE}/documents/ondemand/{SIREN}/upload", content=body, headers={"content-type": ctype})
        assert r.status_code == 400
        assert r.json()["errorCode"] == 119


def test_pastell_rest(rest: Rest) -> None:
    with rest.client(AGENT) as c:
        r = c.post(f"{BASE}//documents/ondemand/{SIREN}/upload",
                   files={"doc": ("arrete.pdf", pdf_bytes())},
                   data={"circuit": json.dumps({"type": "BUREAUTIQUE_PDF", "steps": [
                       {"step": "visa", "members": [VISA]}, {"step": "signature", "members": [SIGNER]}]}),
                         "email_destinataire": "elu@mairie.fr", "email_cc": "dgs@mairie.fr",
                         "agents": "admin@demo.parafe.test"})
        assert r.status_code == 200, r.text
        doc = json.loads(r.text)
        r = c.get(f"{BASE}//documents/v2/{doc}/comments/refusal")
        assert r.status_code == 200
        assert r.json() == {"comment": None}
        r = c.post(f"{BASE}//documents/ondemand/{SIREN}/upload", files={"doc": ("a.pdf", pdf_bytes())},
                   data={"circuit": json.dumps({"type": "BUREAUTIQUE_PDF", "steps": [{"step": "cachet"}]})})
        assert r.status_code == 400
        assert r.json()["errorCode"] == 118  # Pastell's "Invalid step type" fixture
        assert r.json()["developerMessage"].startswith("Invalid step type")


def test_raw_http_without_client_library(rest: Rest) -> None:
    """A body sent with Transfer-Encoding: chunked (curl with a stream) parses the same."""
    body, ctype = maarch_multipart([("content", pdf_bytes(), f"chunked-{secrets.token_hex(4)}.pdf")])

    def chunks() -> object:
        for i in range(0, len(body), 1000):
            yield body[i:i + 1000]

    with rest.client(AGENT) as c:
        r = c.post(f"{BASE}/documents/v2/{SIREN}/bureautique/upload", content=chunks(),  # type: ignore[arg-type]
                   headers={"content-type": ctype})
        assert r.status_code == 200, r.text
        assert isinstance(httpx.Response(200, content=r.content).json(), int)
