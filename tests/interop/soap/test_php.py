"""Interop 2/3: PHP's stock ``SoapClient`` (Debian php-cli + php-soap) in WSDL mode, against the real server
over TLS with a client certificate, called as Esup-Oasis and Pastell call FAST-Parapheur (issue 4, "Show" 2).

In CI (``CI=true``) a missing php or php-soap FAILS the test; locally it is skipped with the reason.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from parafe.domain.errors import E
from tests.api.soap.soaputil import AGENT, ENDPOINT, SIREN, require_php
from tests.conftest import LiveServer
from tests.fixtures.files import pdf_bytes

SCRIPT = Path(__file__).parent / "php" / "soapclient.php"
# What the real clients test fault texts for (research note real-clients.md §3, §6, §9.5).
OASIS_UNKNOWN = re.compile(r"inconnu|introuvable|n.existe pas|does not exist|not found")
ESUP_DUPLICATE = "Fichier déjà depose par un agent"


def test_php_soapclient(soap_server: LiveServer, tmp_path: Path) -> None:
    php = require_php()
    pdf = tmp_path / "php.pdf"
    pdf.write_bytes(pdf_bytes(text="php"))
    cert, key = soap_server.home.demo(AGENT)
    run = subprocess.run(
        [php, str(SCRIPT), f"{soap_server.url}{ENDPOINT}?wsdl", cert, key, soap_server.home.ca, SIREN, str(pdf)],
        capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    out = json.loads(run.stdout)
    assert out["functions"] == 31
    assert int(out["upload"]) >= 100_000_000
    assert out["request_has_ns1_upload"]
    assert 'SOAPAction: ""' in out["request_headers"]
    assert out["history"] == ["Préparé"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", out["history_date"])
    assert out["download_same"]
    assert out["download_documentId"] == out["upload"]
    assert out["fdc_is_pdf"]
    assert {"bureautique", "pes", "otp"} <= set(out["circuits"])
    assert out["remaining_acks_empty"]
    assert ESUP_DUPLICATE in out["duplicate"]["fault"]
    assert out["duplicate"]["fault"].startswith(E.DUPLICATE_FILE.message)
    assert out["duplicate"]["detail_message"] == out["duplicate"]["fault"]
    assert out["unknown_history"]["fault"] == E.DOCUMENT_NOT_FOUND.message
    assert OASIS_UNKNOWN.search(out["unknown_history"]["fault"])
    assert out["unknown_siren"]["fault"] == E.SUBSCRIBER_UNKNOWN_OR_FORBIDDEN.message
    assert OASIS_UNKNOWN.search(out["unknown_siren"]["fault"])
    assert out["refusal_request_empty"]
    assert OASIS_UNKNOWN.search(out["refusal_pastell"]["fault"])
    assert out["refusal"]["fault"] == E.NOT_REFUSED.message
    assert out["delete"] == {"ok": {}}
    assert out["history_after_delete"]["fault"] == E.DOCUMENT_NOT_FOUND.message


def test_php_reads_the_401_fault(soap_server: LiveServer, tmp_path: Path) -> None:
    """A SoapClient with a cached WSDL and no client certificate gets the French 401 fault."""
    php = require_php()
    with soap_server.client(AGENT) as c:
        outer = c.get(f"{ENDPOINT}?wsdl").text
        inner = c.get(f"{ENDPOINT}?wsdl=DocumentService.wsdl").content
    (tmp_path / "DocumentService.wsdl").write_bytes(inner)
    outer = re.sub(r'(<wsdl:import location=)"[^"]*"', r'\1"DocumentService.wsdl"', outer)
    (tmp_path / "Documents.wsdl").write_text(outer)
    code = (f'$c = new SoapClient("{tmp_path}/Documents.wsdl", ["stream_context" => stream_context_create('
            f'["ssl" => ["cafile" => "{soap_server.home.ca}"]]), "cache_wsdl" => WSDL_CACHE_NONE]);'
            f'try {{ $c->getCircuits(["siren" => "{SIREN}"]); echo "no fault"; }}'
            f"catch (SoapFault $f) {{ echo $f->faultstring; }}")
    run = subprocess.run([php, "-r", code], capture_output=True, text=True, timeout=60)
    assert run.stdout == E.CERT_MISSING.message, run.stdout + run.stderr
