"""The interface document's own cURL commands (spec §4.6: ``curl -T``, ``-X PROPFIND -H depth:1``, GET,
``--request DELETE``, all with ``-E Certificat.pem:MotDePasse``), run by ``curl_seed.sh`` against the real server
over TLS."""

from __future__ import annotations

import os
from pathlib import Path

from lxml import etree

from tests.api.webdav.davutil import AGENT, DAV, SIREN, Dav, children, propfind, put, require_tool, run, url_path
from tests.interop.webdav.clients import encrypted_pem, pes_pj

SCRIPT = Path(__file__).with_name("curl_seed.sh")


def test_seed_curl_commands(dav: Dav, tmp_path: Path) -> None:
    require_tool("curl")
    # a return waiting in out/pes-pj: a document deposited as Retour.xml, signed and filed by the workflow
    with dav.client() as c:
        deposited = put(c, url_path(SIREN, "in", "pes-pj", "Retour.xml"), pes_pj())
        assert deposited.status_code == 201, deposited.text
    signed = pes_pj("RETOURSIGNE")  # the content the workflow would have returned
    dav.sign(int(deposited.headers["x-fast-docid"]), signed)

    client_side, serv_client = tmp_path / "logiciel-metier", tmp_path / "ServClient"
    client_side.mkdir()
    serv_client.mkdir()
    fichier = client_side / "Fichier.xml"
    fichier.write_bytes(pes_pj())
    certificat = encrypted_pem(dav, AGENT, "MotDePasse", tmp_path / "Certificat.pem")
    base = f"{dav.url}{DAV}/{SIREN}"
    result = run(["bash", str(SCRIPT), f"{base}/in/pes-pj", f"{base}/out/pes-pj", str(certificat), "MotDePasse",
                  str(fichier), str(serv_client)], env={**os.environ, "CURL_CA_BUNDLE": dav.home.ca})
    assert result.returncode == 0, result.stderr.decode(errors="replace")

    # PUT: consumed synchronously, one document
    [document] = dav.documents_named("Fichier.xml")
    assert document.source == "webdav"
    assert document.size == fichier.stat().st_size
    # PROPFIND: the listing of out/pes-pj names the return
    listing = etree.fromstring((serv_client / "liste.txt").read_bytes())
    hrefs = [h.text or "" for h in listing.iter("{DAV:}href")]
    assert f"{DAV}/{SIREN}/out/pes-pj/Retour.xml" in hrefs
    # GET: the return, byte for byte
    assert (serv_client / "Retour.xml").read_bytes() == signed
    # DELETE: gone from out/ (the document stays)
    with dav.client() as c:
        folder = url_path(SIREN, "out", "pes-pj", collection=True)
        assert "Retour.xml" not in children(propfind(c, folder), folder)
    assert dav.documents_named("Retour.xml")[0].deleted_at is None
