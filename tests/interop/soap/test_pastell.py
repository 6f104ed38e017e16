"""Interop: PHP ``SoapClient`` built exactly as Pastell's FAST connector builds it (issue 14).

``'login' => ''`` makes PHP send ``Authorization: Basic Og==`` (empty user and password) beside the client
certificate, on the ``?wsdl`` fetch and on every call; FAST ignores it, so must Parafe. The key is encrypted and
given with its certificate in one PEM with ``passphrase``, peer verification off, as Pastell does.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.api.soap.soaputil import AGENT, SIREN, require_php
from tests.conftest import LiveServer
from tests.fixtures.files import pdf_bytes

SCRIPT = Path(__file__).parent / "php" / "pastell.php"
PASSPHRASE = "pastell-secret"


def _keycert(server: LiveServer, tmp_path: Path) -> Path:
    cert, key = server.home.demo(AGENT)
    encrypted = subprocess.run(
        ["openssl", "pkey", "-in", key, "-aes256", "-passout", f"pass:{PASSPHRASE}"],
        capture_output=True, check=True).stdout
    out = tmp_path / "pastell.pem"
    out.write_bytes(encrypted + Path(cert).read_bytes())
    return out


def test_pastell_soapclient_loads_the_wsdl_and_calls(soap_server: LiveServer, tmp_path: Path) -> None:
    php = require_php()
    pdf = tmp_path / "pastell.pdf"
    pdf.write_bytes(pdf_bytes(text="pastell"))
    run = subprocess.run(
        [php, str(SCRIPT), soap_server.url, str(_keycert(soap_server, tmp_path)), PASSPHRASE, SIREN, str(pdf)],
        capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    out = json.loads(run.stdout)
    assert "wsdl_fault" not in out, out
    assert out["functions"] == 31
    # the calls really carried the empty Basic header Pastell sends
    assert "Authorization: Basic Og==" in out["request_headers"]
    assert "ok" in out["acks"], out["acks"]
    assert {"bureautique", "pes", "otp"} <= set(out["circuits"]["ok"])
    assert int(out["upload"]["ok"]) >= 100_000_000
    assert out["history"] == {"ok": ["Préparé"]}
    assert out["download_same"] == {"ok": True}
