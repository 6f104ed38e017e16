"""REST metadata and OTP endpoints against the real server: uploadMeta (R4), uploadOTPInformation (R5), OTP
URL for one or several ids (R17), OTP upload (R18); success paths and documented errors."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from parafe.db.models import Document, MetadataValue, OtpLink
from parafe.domain.errors import E
from parafe.domain.states import State
from tests.api.rest.conftest import Rest
from tests.api.rest.helpers import (
    AGENT,
    SIGNER,
    SIREN,
    V1,
    deposit,
    error,
    make_circuit,
    meta_xml,
    otp_xml,
    set_state,
    unique,
)
from tests.fixtures.files import pdf_bytes

MODEL = [{"name": "TEXT001", "kind": "text"}, {"name": "NUM001", "kind": "numeric"},
         {"name": "DATE001", "kind": "date"}, {"name": "CODE", "kind": "regex", "pattern": "[A-Z]{3}-\\d+"}]
JOHN = {"firstname": "John", "lastname": "Doe", "phonenumber": "0606060606", "email": "john.doe@mail.fr"}
JANE = {"firstname": "Jane", "lastname": "Roe", "phonenumber": "0707070707", "email": "jane.roe@mail.fr"}


def _define(c: httpx.Client, doc: int, data: bytes, name: str = "meta.xml") -> httpx.Response:
    return c.put(f"{V1}/documents/v2/{doc}/metadata/define",
                 files={"meta": (name, data, "application/xml")})


def _define_otp(c: httpx.Client, doc: int, data: bytes, name: str = "METAS_API.xml") -> httpx.Response:
    return c.put(f"{V1}/documents/v2/otp/{doc}/metadata/define",
                 files={"otpinformation": (name, data)})


def test_upload_meta(rest: Rest) -> None:
    make_circuit(rest.ctx, "meta", "BUREAUTIQUE_PDF", ["metadata", "server_signature", "filing"], model=MODEL)
    make_circuit(rest.ctx, "sans-modele", "BUREAUTIQUE_PDF", ["metadata", "filing"])
    with rest.client(AGENT) as c:
        doc = deposit(c, "meta")
        good = meta_xml(TEXT001="John", NUM001="45812", DATE001="31/12/2026", CODE="ABC-12")
        # S21: not yet waiting for metadata
        error(_define(c, doc, good), 409, E.NOT_READY_FOR_METADATA)
        set_state(rest.ctx, doc, State.READY_FOR_METADATA, actor="parapheur parapheur")
        error(_define(c, doc, meta_xml(INCONNU="x")), 422, E.METADATA_UNKNOWN)
        body = error(_define(c, doc, meta_xml(NUM001="douze")), 422, E.METADATA_BAD_FORMAT)
        assert body["userFriendlyMessage"] == "La valeur de la métadonnée NUM001 n'est pas au format...."
        error(_define(c, doc, meta_xml(DATE001="31/02/2026")), 422, E.METADATA_BAD_FORMAT)
        error(_define(c, doc, meta_xml(CODE="abc")), 422, E.METADATA_BAD_FORMAT)
        error(_define(c, doc, b"<meta-data-list><oops"), 422, E.XML_MALFORMED)
        error(_define(c, doc, b'<!DOCTYPE x [<!ENTITY e "x">]><meta-data-list/>'), 422, E.XML_UNSAFE)
        error(c.put(f"{V1}/documents/v2/{doc}/metadata/define", files={"autre": ("a.xml", good)}),
              400, E.BAD_REQUEST)
        r = _define(c, doc, good)
        assert r.status_code == 200
        assert r.content == b""
        assert c.get(f"{V1}/documents/v2/{doc}/history").json()[-1]["stateName"] == "Métadonnées définies"
        metas = c.get(f"{V1}/documents/{doc}/metas").content
        assert b'<meta-data name="CODE" value="ABC-12"/>' in metas
        # S22: no model on the circuit
        doc2 = deposit(c, "sans-modele")
        set_state(rest.ctx, doc2, State.READY_FOR_METADATA)
        error(_define(c, doc2, good), 409, E.NO_METADATA_MODEL)
        error(_define(c, 100999999, good), 404, E.DOCUMENT_NOT_FOUND)
    with rest.client(SIGNER) as c:  # S07: sees the circuit's documents? no role on "meta" → not even visible
        error(_define(c, doc, good), 404, E.DOCUMENT_NOT_FOUND)
    with rest.client(AGENT) as c:
        bureau = deposit(c)
    with rest.client(SIGNER) as c:  # sees it (signataire of bureautique) but may not define its metadata
        error(_define(c, bureau, good), 403, E.NO_PERMISSION)


def test_upload_otp_information(rest: Rest) -> None:
    with rest.client(AGENT) as c:
        doc = deposit(c, "otp")
        # any file name, even without extension (SymfonyDocapostBundle sends /tmp/<uniqid>), D18
        r = _define_otp(c, doc, otp_xml(JOHN), name="65a1b2c3d4e5f")
        assert r.status_code == 200, r.text
        h = c.get(f"{V1}/documents/v2/{doc}/history").json()
        assert [(e["userFullname"], e["stateName"]) for e in h[-1:]] == [("boucle sms", "Informations OTP définies")]
        metas = c.get(f"{V1}/documents/{doc}/metas").content
        assert b'name="OTP_email_0" value="john.doe@mail.fr"' in metas
        # redefining replaces
        assert _define_otp(c, doc, otp_xml(JANE)).status_code == 200
        with rest.ctx.db.read() as s:
            values = dict(s.execute(select(MetadataValue.name, MetadataValue.value).where(
                MetadataValue.document_id == doc, MetadataValue.kind == "otp")).all())
            assert values["OTP_email_0"] == "jane.roe@mail.fr"
            assert len(values) == 4
            row = s.get(Document, doc)
            assert row is not None
            assert row.state == State.OTP_INFO_DEFINED.value
        error(_define_otp(c, doc, otp_xml(JOHN, JANE)), 422, E.METADATA_UNKNOWN)  # one OTP step only
        error(_define_otp(c, doc, otp_xml({"firstname": "Sans", "lastname": "Contact"})), 422,
              E.METADATA_BAD_FORMAT)
        error(_define_otp(c, doc, otp_xml({"email": "pas une adresse"})), 422, E.METADATA_BAD_FORMAT)
        error(_define_otp(c, doc, b"<meta-data-list/>"), 400, E.BSMS_METADATA_MISSING)
        error(_define_otp(c, doc, b"<autre/>"), 422, E.READ_FAILED)
        # a circuit without OTP step (S29)
        bureau = deposit(c)
        error(_define_otp(c, bureau, otp_xml(JOHN)), 409, E.BSMS_NO_SMS_STEP)
        # after the OTP signature it is too late (S31)
        set_state(rest.ctx, doc, State.OTP_SIGNED, actor="boucle sms")
        error(_define_otp(c, doc, otp_xml(JOHN)), 409, E.BSMS_NOT_AT_SMS_STEP)
        error(_define_otp(c, 100999999, otp_xml(JOHN)), 404, E.DOCUMENT_NOT_FOUND)


def test_otp_url_one_and_several(rest: Rest) -> None:
    with rest.client(AGENT) as c:
        a, b, other, bare = deposit(c, "otp"), deposit(c, "otp"), deposit(c, "otp"), deposit(c, "otp")
        for doc in (a, b):
            assert _define_otp(c, doc, otp_xml(JOHN)).status_code == 200
        assert _define_otp(c, other, otp_xml(JANE)).status_code == 200
        r = c.get(f"{V1}/documents/v2/otp/url", params={"id": a})
        assert r.status_code == 200, r.text
        url = r.json()["url"]
        assert url.startswith(f"{rest.server.url}/boucle-sms/documentView?id=")
        token = url.split("id=", 1)[1]
        assert len(token) >= 43  # 256 bits in URL-safe base64
        r2 = c.get(f"{V1}/documents/v2/otp/url?id={a}&id={b}")
        assert r2.status_code == 200
        token2 = r2.json()["url"].split("id=", 1)[1]
        assert token2 != token
        with rest.ctx.db.read() as s:
            link = s.scalar(select(OtpLink).where(OtpLink.token == token2))
            assert link is not None
            assert link.document_ids == [a, b]
            assert link.signer_email == "john.doe@mail.fr"
            assert link.signer_phone == "0606060606"
        error(c.get(f"{V1}/documents/v2/otp/url?id={a}&id={other}"), 409, E.OTP_IDENTITY_MISMATCH)
        error(c.get(f"{V1}/documents/v2/otp/url?id={bare}"), 400, E.BSMS_METADATA_MISSING)
        error(c.get(f"{V1}/documents/v2/otp/url?id={deposit(c)}"), 409, E.BSMS_NO_SMS_STEP)
        error(c.get(f"{V1}/documents/v2/otp/url?id=100999999"), 404, E.DOCUMENT_NOT_FOUND)
        error(c.get(f"{V1}/documents/v2/otp/url"), 400, E.BAD_REQUEST)
        set_state(rest.ctx, b, State.OTP_SIGNED, actor="boucle sms")
        error(c.get(f"{V1}/documents/v2/otp/url?id={a}&id={b}"), 409, E.BSMS_NOT_AT_SMS_STEP)


def test_otp_upload(rest: Rest) -> None:
    def count() -> int:
        with rest.ctx.db.read() as s:
            return int(s.scalar(select(func.count()).select_from(Document)) or 0)

    path = f"{V1}/documents/v2/otp/{SIREN}/otp/upload"
    with rest.client(AGENT) as c:
        name = unique()
        r = c.post(path, files={"document": (name, pdf_bytes()), "meta": (f"METAS_{name}.xml", otp_xml(JOHN))},
                   data={"label": "OTP", "comment": "à signer", "referer": "https://logiciel.example/retour"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"id", "url"}
        assert isinstance(body["id"], int)
        assert "/boucle-sms/documentView?id=" in body["url"]
        states = [e["stateName"] for e in c.get(f"{V1}/documents/v2/{body['id']}/history").json()]
        assert states == ["Préparé", "Informations OTP définies"]
        with rest.ctx.db.read() as s:
            links = [x for x in s.scalars(select(OtpLink)) if x.document_ids == [body["id"]]]
            assert len(links) == 1
            assert links[0].referer == "https://logiciel.example/retour"
        before = count()
        # the METAS_XXX.xml rule (§6.5): nothing is stored when the meta file is refused
        error(c.post(path, files={"document": (unique(), pdf_bytes()), "meta": ("otp.xml", otp_xml(JOHN))}),
              400, E.METADATA_FILE_NAME)
        error(c.post(path, files={"document": (unique(), pdf_bytes()),
                                  "meta": ("METAS_x.xml", otp_xml({"firstname": "X"}))}), 422,
              E.METADATA_BAD_FORMAT)
        error(c.post(path, files={"document": (unique(), pdf_bytes())}), 400, E.BAD_REQUEST)
        error(c.post(f"{V1}/documents/v2/otp/{SIREN}/bureautique/upload",
                     files={"document": (unique(), pdf_bytes()), "meta": ("METAS_a.xml", otp_xml(JOHN))}),
              409, E.BSMS_NO_SMS_STEP)
        error(c.post(f"{V1}/documents/v2/otp/{SIREN}/inconnu/upload",
                     files={"document": (unique(), pdf_bytes()), "meta": ("METAS_a.xml", otp_xml(JOHN))}),
              404, E.CIRCUIT_NOT_FOUND)
        assert count() == before
