"""A PES deposited already signed is refused at deposit when a signature it carries is broken (spec §4.4 case 3,
« Tentative de dépôt d’une enveloppe avec une signature invalide »: code 177), through the deposit service and on
the REST and SOAP wires. An intact signature is accepted whatever its CA (the chain of trust is the verification
step's business), and an unsigned PES is not verified at all."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from parafe.domain.errors import E, ParafeError
from parafe.services.access.auth import principal_for_email
from parafe.services.demo import AGENT, SIGNER
from parafe.services.documents.deposit import DepositRequest, deposit
from parafe.signing.keys import ServerSigner, load_pem_signer, load_signer
from parafe.signing.pes import sign_pes
from tests.api.rest.helpers import V1, error
from tests.api.soap.soaputil import envelope, fault, module_server, post, returns
from tests.conftest import TESTDATA, LiveServer
from tests.unit.services._helpers import upload

SAMPLE = TESTDATA / "pes" / "samples" / "valid_unsigned_PES_ex.xml"
MESSAGE = "Fichier refusé : la signature du fichier PES est invalide."


def pes(nom_fic: str) -> bytes:
    return re.sub(rb'<NomFic V="[^"]*"/>', f'<NomFic V="{nom_fic}"/>'.encode(), SAMPLE.read_bytes(), count=1)


def signer_key(home: Path) -> ServerSigner:
    return load_signer(home / "demo" / f"{SIGNER}.p12", "demo")


def broken(data: bytes) -> bytes:
    """The signed PES with one signed amount changed after the signature."""
    forged = data.replace(b'<MtBordHT V="55.22"/>', b'<MtBordHT V="99.99"/>', 1)
    assert forged != data
    return forged


def wrong_value(data: bytes) -> bytes:
    """The signed PES with its first SignatureValue altered (digests intact, value false)."""
    start = data.index(b">", data.index(b"SignatureValue")) + 1
    return data[:start] + (b"B" if data[start:start + 1] == b"A" else b"A") + data[start + 1:]


def service_deposit(ctx: Any, tmp_path: Path, data: bytes, name: str) -> int:
    req = DepositRequest(siren="123456789", circuit="pes", upload=upload(tmp_path, name, data))
    return deposit(ctx, principal_for_email(ctx, AGENT), req).document_id


def test_message_is_the_catalogue_entry_of_case_3() -> None:
    from parafe.domain.errors import WEBDAV_CASE_OF

    assert E.PES_SIGNATURE_INVALID.code == 177
    assert E.PES_SIGNATURE_INVALID.message == MESSAGE
    assert WEBDAV_CASE_OF["PES_SIGNATURE_INVALID"] == 3


@pytest.mark.parametrize("alter", [broken, wrong_value], ids=["signed-content-changed", "signature-value"])
def test_broken_signature_is_refused_by_the_service(ctx: Any, tmp_path: Path, alter: Any) -> None:
    signed = sign_pes(pes(f"BROKEN_{alter.__name__}"), signer_key(ctx.settings.resolved_home), per_bordereau=True)
    with pytest.raises(ParafeError) as info:
        service_deposit(ctx, tmp_path, alter(signed), "mandats.xml")
    assert info.value.code == 177
    assert info.value.message == MESSAGE
    # nothing stored: the same NomFic can be deposited again once signed properly
    service_deposit(ctx, tmp_path, signed, "mandats.xml")


def test_intact_signatures_and_unsigned_pes_are_accepted(ctx: Any, tmp_path: Path) -> None:
    home = ctx.settings.resolved_home
    bad = home / "demo" / "bad"
    stranger = load_pem_signer((bad / "unknown-ca.pem").read_bytes(), (bad / "unknown-ca.key").read_bytes())
    service_deposit(ctx, tmp_path, sign_pes(pes("OK_GLOBAL"), signer_key(home), per_bordereau=False), "g.xml")
    service_deposit(ctx, tmp_path, sign_pes(pes("OK_STRANGER"), stranger, per_bordereau=True), "s.xml")
    service_deposit(ctx, tmp_path, pes("OK_UNSIGNED"), "u.xml")


def test_integrity_check_of_a_real_signed_pes() -> None:
    """A PES signed elsewhere (XAdES 1.2.2, sample of tests/data; schema-invalid, so checked directly)."""
    from parafe.signing.pes_verify import integrity_errors

    real = (TESTDATA / "pes" / "samples" / "signed_per_bordereau_xades122_sha256.xml").read_bytes()
    assert integrity_errors(real) == []
    errors = integrity_errors(wrong_value(real))
    assert any("valeur de signature" in e for e in errors), errors


# --- on the wire ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, pki_template: Path) -> Iterator[LiveServer]:
    yield from module_server(tmp_path_factory, pki_template)


def test_rest_upload_answers_177(server: LiveServer) -> None:
    signed = sign_pes(pes("REST_BROKEN"), signer_key(server.home.path), per_bordereau=True)
    with server.client(AGENT) as c:
        r = c.post(f"{V1}/documents/v2/123456789/pes/upload",
                   files={"content": ("mandats.xml", broken(signed), "application/xml")})
        body = error(r, 422, E.PES_SIGNATURE_INVALID)
        assert body["userFriendlyMessage"] == MESSAGE
        ok = c.post(f"{V1}/documents/v2/123456789/pes/upload",
                    files={"content": ("mandats.xml", signed, "application/xml")})
        assert ok.status_code == 200, ok.text
        assert int(ok.text) > 0, ok.text


def test_soap_upload_answers_177(server: LiveServer) -> None:
    signed = sign_pes(pes("SOAP_BROKEN"), signer_key(server.home.path), per_bordereau=True)

    def inner(data: bytes) -> str:
        return (f"<label>pes</label><comment/><subscriberId>123456789</subscriberId><circuitId>pes</circuitId>"
                f"<dataFileVO><dataHandler>{base64.b64encode(data).decode()}</dataHandler>"
                f"<filename>mandats.xml</filename></dataFileVO>")

    with server.client(AGENT) as c:
        r = post(c, envelope("upload", inner(wrong_value(signed))))
        assert r.status_code == 500
        code, string, detail = fault(r)
        assert code == "soap:Server"
        assert string == MESSAGE
        assert (detail.findtext(".//details") or "").startswith("177 ")
        (ret,) = returns(post(c, envelope("upload", inner(signed))), "upload")
        assert int(ret.text or "0") > 0
