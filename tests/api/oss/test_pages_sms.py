"""O3 ``uploadSMS`` and O8 ``generateSMSUrl`` with the public code page (D15): the code read from the SMS / mail
outbox, wrong codes, lock after 3 tries, a new code, the signature with a pictogram naming the signer, the
redirection with ``return=SIGNED|REFUSED``, the SMS fields of docInformation, batch pages and their errors."""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from parafe.domain.errors import E
from tests.api.oss.helpers import (
    AGENT,
    Oss,
    code_in,
    error,
    last_message,
    meta_xml,
    pdfsig,
    pdftext,
    post_doc,
    pyhanko_report,
    token_of,
    validate,
)
from tests.fixtures.files import pdf_bytes

RETURN = "https://editeur.test/retour?dossier=42"


def identity(phone: str | None = "06 12 34 56 78", email: str = "jean.dupont@exemple.fr") -> bytes:
    items = {"OTP_firstname_0": "Jean", "OTP_lastname_0": "Dupont", "OTP_email_0": email, "REFERENCE": "SMS-1"}
    if phone:
        items["OTP_phonenumber_0"] = phone
    return meta_xml(**items)


def upload_sms(oss: Oss, **kw: object) -> tuple[int, str]:
    with oss.client(AGENT) as agent:
        r = post_doc(agent, "uploadSMS", meta=kw.pop("meta", identity()), redirectionUrl=RETURN, **kw)  # type: ignore[arg-type]
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"url", "docId"}
    assert body["url"].startswith(f"{oss.server.url}/oss/signature/")
    return int(body["docId"]), token_of(body["url"])


def page_text(response: httpx.Response) -> str:
    return html.unescape(response.text)


def test_sms_code_page_and_signature(oss: Oss, tmp_path: Path) -> None:
    doc_id, token = upload_sms(oss)
    with oss.public() as browser:
        page = browser.get(f"/oss/signature/{token}")
        assert page.status_code == 200, page.text
        assert page.headers["referrer-policy"] == "no-referrer"
        assert "no-store" in page.headers["cache-control"]
        text = page_text(page)
        assert '<html lang="fr">' in page.text
        assert "<script" not in page.text
        assert '<label for="code">' in page.text
        assert 'autocomplete="one-time-code"' in page.text
        assert "Jean Dupont" in text
        assert "12345678" not in text  # the number is masked
        sms = last_message(oss.ctx, "sms", "+33612345678")
        code = code_in(sms.body)
        assert browser.get(f"/oss/signature/{token}").status_code == 200
        assert code_in(last_message(oss.ctx, "sms", "+33612345678").body) == code  # not re-sent on reload
        with oss.client(AGENT) as agent:
            info = agent.get(f"/oss/docInformation/{doc_id}").json()
        assert info["Smsdate"]
        assert info["smsexpirationDate"] > info["Smsdate"]
        assert info["SMSRemainingTriesNb"] == 3

        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        bad = browser.post(f"/oss/signature/{token}/signer", data={"code": wrong})
        assert bad.status_code == 422
        assert "Code de vérification incorrect. Essais restants : 2." in page_text(bad)
        assert 'aria-invalid="true"' in bad.text
        assert 'role="alert"' in bad.text
        with oss.client(AGENT) as agent:
            assert agent.get(f"/oss/docInformation/{doc_id}").json()["SMSRemainingTriesNb"] == 2

        done = browser.post(f"/oss/signature/{token}/signer", data={"code": code})
        assert done.status_code == 303, done.text
        location = urlsplit(done.headers["location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == "https://editeur.test/retour"
        assert parse_qs(location.query) == {"dossier": ["42"], "return": ["SIGNED"]}

        again = browser.get(f"/oss/signature/{token}")
        assert again.status_code == 200
        assert "déjà été utilisé" in page_text(again)
        replay = browser.post(f"/oss/signature/{token}/signer", data={"code": code})
        assert replay.status_code == 409
        assert E.OSS_ALREADY_SIGNED.message in page_text(replay)
        viewed = browser.get(f"/oss/signature/{token}/documents/{doc_id}")
        assert viewed.status_code == 200
        assert viewed.headers["content-type"] == "application/pdf"

    with oss.client(AGENT) as agent:
        signed = agent.get(f"/oss/downloadDoc/{doc_id}").content
        info = agent.get(f"/oss/docInformation/{doc_id}").json()
    assert signed == viewed.content
    assert info["signatureDate"] is not None
    pdfsig(signed, tmp_path, oss.home.path / "pki" / "ca.pem")
    report = pyhanko_report(signed, [oss.home.path / "pki" / "ca.pem"])
    assert report.signatures[0].signer == "Commune de Démo - signature serveur"  # the workflow's certificate
    text = pdftext(signed, tmp_path)
    assert "Jean Dupont" in text
    assert "Code vérifié par SMS" in text
    assert "Réf. : SMS-1" in text


def test_lock_after_three_wrong_codes_then_new_code(oss: Oss) -> None:
    doc_id, token = upload_sms(oss, meta=identity(phone="07 00 00 00 01"))
    with oss.public() as browser:
        browser.get(f"/oss/signature/{token}")
        code = code_in(last_message(oss.ctx, "sms", "+33700000001").body)
        wrong = f"{(int(code) + 7) % 1_000_000:06d}"
        assert browser.post(f"/oss/signature/{token}/signer", data={"code": wrong}).status_code == 422
        assert browser.post(f"/oss/signature/{token}/signer", data={"code": "abc"}).status_code == 422
        locked = browser.post(f"/oss/signature/{token}/signer", data={"code": wrong})
        assert locked.status_code == 423
        assert E.OTP_LOCKED.message in page_text(locked)
        still = browser.post(f"/oss/signature/{token}/signer", data={"code": code})  # even the right one
        assert still.status_code == 423
        with oss.client(AGENT) as agent:
            assert agent.get(f"/oss/docInformation/{doc_id}").json()["SMSRemainingTriesNb"] == 0
        resent = browser.post(f"/oss/signature/{token}/code")
        assert resent.status_code == 303
        assert resent.headers["location"].endswith("?info=code-envoye")
        assert "Un nouveau code" in page_text(browser.get(resent.headers["location"]))
        new_code = code_in(last_message(oss.ctx, "sms", "+33700000001").body)
        assert browser.post(f"/oss/signature/{token}/signer", data={"code": new_code}).status_code == 303
        with oss.client(AGENT) as agent:
            info = agent.get(f"/oss/docInformation/{doc_id}").json()
        assert info["signatureDate"] is not None
        assert info["SMSRemainingTriesNb"] == 3


def test_code_by_email_and_refusal(oss: Oss) -> None:
    original = pdf_bytes(text="à refuser")
    doc_id, token = upload_sms(oss, meta=identity(phone=None, email="marie.curie@exemple.fr"), data=original)
    with oss.public() as browser:
        page = browser.get(f"/oss/signature/{token}")
        assert "par courriel" in page_text(page)
        mail = last_message(oss.ctx, "mail", "marie.curie@exemple.fr")
        assert code_in(mail.body)
        refused = browser.post(f"/oss/signature/{token}/refuser", data={"motif": "Montant erroné"})
        assert refused.status_code == 303
        assert parse_qs(urlsplit(refused.headers["location"]).query)["return"] == ["REFUSED"]
        assert browser.post(f"/oss/signature/{token}/signer", data={"code": code_in(mail.body)}).status_code == 409
    with oss.client(AGENT) as agent:
        assert agent.get(f"/oss/downloadDoc/{doc_id}").content == original
        assert agent.get(f"/oss/docInformation/{doc_id}").json()["signatureDate"] is None


def test_batch_url_one_code_for_several_documents(oss: Oss, tmp_path: Path) -> None:
    first, _ = upload_sms(oss, meta=identity(phone="06 11 11 11 11"))
    second, _ = upload_sms(oss, meta=identity(phone="+33 6 11 11 11 11"))
    other, _ = upload_sms(oss, meta=identity(phone="06 22 22 22 22"))
    with oss.client(AGENT) as agent:
        sa = post_doc(agent, "uploadSA").json()["docId"]
        error(agent.post("/oss/generateSMSUrl", data={"ids": f"{first}, {other}"}), 409, E.OTP_IDENTITY_MISMATCH)
        error(agent.post("/oss/generateSMSUrl", data={"ids": f"{first},{sa}"}), 409, E.OSS_MODE_NOT_ALLOWED)
        error(agent.post("/oss/generateSMSUrl", data={"ids": "599999998"}), 404, E.DOCUMENT_NOT_FOUND)
        error(agent.post("/oss/generateSMSUrl", data={}), 400, E.BAD_REQUEST)
        r = agent.post("/oss/generateSMSUrl", files={"ids": (None, f"{first}, {second}"),
                                                     "url": (None, "https://editeur.test/lot")})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["Ids"] == [first, second]
        token = token_of(body["url"])
    with oss.public() as browser:
        page = browser.get(f"/oss/signature/{token}")
        assert "Les 2 documents" in page_text(page)
        code = code_in(last_message(oss.ctx, "sms", "+33611111111").body)
        done = browser.post(f"/oss/signature/{token}/signer", data={"code": code})
        assert done.status_code == 303
        assert done.headers["location"] == "https://editeur.test/lot?return=SIGNED"
    with oss.client(AGENT) as agent:
        for doc_id in (first, second):
            validate(agent.get(f"/oss/downloadDoc/{doc_id}").content, tmp_path, oss.home.path)
        error(agent.post("/oss/generateSMSUrl", json={"ids": [first]}), 409, E.OSS_ALREADY_SIGNED)


def test_page_and_upload_errors(oss: Oss) -> None:
    with oss.public() as browser:
        unknown = browser.get("/oss/signature/" + "A" * 43)
        assert unknown.status_code == 404
        assert E.OSS_LINK_INVALID.message in page_text(unknown)
        assert browser.post("/oss/signature/" + "A" * 43 + "/signer", data={"code": "123456"}).status_code == 404
    with oss.client(AGENT) as agent:
        error(post_doc(agent, "uploadSMS", meta=meta_xml(REFERENCE="x")), 400, E.OSS_SIGNER_MISSING)
        error(post_doc(agent, "uploadSMS", meta=identity(), redirectionUrl="javascript:alert(1)"), 400,
              E.BAD_REQUEST)
        error(post_doc(agent, "uploadSMS", meta=identity(phone="12")), 400, E.OSS_SIGNER_MISSING)
        # identity as plain form fields, without metaFile
        r = post_doc(agent, "uploadSMS", firstname="Ada", lastname="Lovelace", email="ada@exemple.fr")
        assert r.status_code == 200, r.text
        # a redirection URL is optional: the page ends on its own confirmation page
        r = post_doc(agent, "uploadSMS", meta=identity(phone="06 33 33 33 33"))
        token = token_of(r.json()["url"])
    with oss.public() as browser:
        browser.get(f"/oss/signature/{token}")
        code = code_in(last_message(oss.ctx, "sms", "+33633333333").body)
        end = browser.post(f"/oss/signature/{token}/signer", data={"code": code})
        assert end.status_code == 200
        assert "Signature réalisée" in page_text(end)
