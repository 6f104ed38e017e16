"""cadaver (Debian ``cadaver`` 0.24, neon + GnuTLS) with the agent's PKCS#12 client certificate: MKCOL of a
label, PUT (deposit), ls, then GET and DELETE of a return in out/, against the real server over TLS.

cadaver asks for the PKCS#12 password and about our (private) server CA only on a terminal, so it runs on a
pseudo-terminal and the test answers (``demo``, ``y``)."""

from __future__ import annotations

from pathlib import Path

from tests.api.webdav.davutil import DAV, SIREN, Dav, children, propfind, put, require_tool, unique, url_path
from tests.fixtures.files import pdf_bytes
from tests.interop.webdav.clients import run_in_pty


def test_cadaver_deposits_and_fetches(dav: Dav, tmp_path: Path) -> None:
    cadaver = require_tool("cadaver")
    # a return waiting in out/bureautique/<label>
    out_label, returned_name = unique("", "retours"), unique(prefix="signe")
    with dav.client() as c:
        r = put(c, url_path(SIREN, "in", "bureautique", out_label, returned_name), pdf_bytes())
        assert r.status_code == 201
    returned = pdf_bytes(text="signé par cadaver", pad_to=4000)
    dav.sign(int(r.headers["x-fast-docid"]), returned)

    label, name = unique("", "cadaver"), unique(prefix="cadaver")
    local = tmp_path / name
    local.write_bytes(pdf_bytes(text="déposé avec cadaver"))
    fetched = tmp_path / "recu.pdf"
    p12 = dav.home.path / "demo" / "agent@demo.parafe.test.p12"
    script = tmp_path / "cadaverrc"
    script.write_text("\n".join([
        f"set client-cert {p12}",
        f"open {dav.url}{DAV}/{SIREN}/in/bureautique/",
        f"mkcol {label}",
        f"cd {label}",
        f"put {local} {name}",
        "ls",
        f"cd {DAV}/{SIREN}/out/bureautique/{out_label}/",
        "ls",
        f"get {returned_name} {fetched}",
        f"delete {returned_name}",
        "ls",
        "quit",
        "",
    ]))
    status, transcript = run_in_pty([cadaver, "-r", str(script)], [(b"password:", b"demo\n"), (b"(y/n)", b"y\n")],
                                    env={"HOME": str(tmp_path)}, cwd=tmp_path)
    assert status == 0, transcript
    assert "Using client certificate." in transcript
    assert f"Creating `{label}': succeeded." in transcript, transcript
    assert "Uploading" in transcript, transcript
    assert "failed" not in transcript, transcript
    # the deposit: one document, in the label folder cadaver created
    [document] = dav.documents_named(name)
    assert document.source == "webdav"
    assert document.size == local.stat().st_size
    # the return: fetched byte for byte, then deleted from out/
    assert fetched.read_bytes() == returned
    with dav.client() as c:
        folder = url_path(SIREN, "out", "bureautique", out_label, collection=True)
        assert returned_name not in children(propfind(c, folder), folder)
        inside = url_path(SIREN, "in", "bureautique", label, collection=True)
        assert name in children(propfind(c, inside), inside)  # the receipt cadaver's `ls` showed
    assert name in transcript
