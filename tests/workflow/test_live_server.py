"""Through the REST connector of a real ``parafe serve`` (TLS, client certificates) with its in-process worker:
a PDF deposited in the ``serveur`` circuit comes back signed and ``Classé``; a PES-PJ goes to the Helios
simulator and its acknowledgement is listed, downloaded and XSD-valid; the FdC and a ZIP with ``fdc=true``."""

from __future__ import annotations

import io
import re
import subprocess
import time
import zipfile
from pathlib import Path

import httpx

from parafe.formats.pes import validate_acquit
from parafe.services.demo import AGENT
from tests.conftest import TESTDATA, Home, start_server, stop_server
from tests.fixtures.files import pdf_bytes

REST = "/parapheur-ws/rest/v1"


def _history(client: httpx.Client, doc_id: str) -> list[str]:
    response = client.get(f"{REST}/documents/v2/{doc_id}/history")
    assert response.status_code == 200, response.text
    return [entry["stateName"] for entry in response.json()]


def _wait(client: httpx.Client, doc_id: str, last: str, timeout: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        names = _history(client, doc_id)
        if names and names[-1] == last:
            return names
        assert time.monotonic() < deadline, names
        time.sleep(0.3)


def test_rest_end_to_end_with_in_process_worker(home: Home, tmp_path: Path) -> None:
    server = start_server(home, {"PARAFE_HELIOS_SIM_DELAY": "0.3", "PARAFE_HELIOS_POLL_SECONDS": "0.3"})
    try:
        with server.client(AGENT) as client:
            response = client.post(f"{REST}/documents/v2/123456789/serveur/upload",
                                   files={"content": ("convention.pdf", pdf_bytes(), "application/pdf")})
            assert response.status_code == 200, response.text
            doc_id = response.text.strip()
            assert _wait(client, doc_id, "Classé") == ["Préparé", "Envoyé pour signature", "Signé", "Classé"]
            signed = client.get(f"{REST}/documents/v2/{doc_id}/download")
            assert signed.status_code == 200
            path = tmp_path / "signed.pdf"
            path.write_bytes(signed.content)
            report = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True).stdout
            assert "Signature is Valid" in report, report

            pes = re.sub(rb'<NomFic V="[^"]*"/>', b'<NomFic V="PARAFE_LIVE_1"/>',
                         (TESTDATA / "pes" / "samples" / "valid_PES_PJ.xml").read_bytes(), count=1)
            response = client.post(f"{REST}/documents/v2/123456789/pes-pj/upload",
                                   files={"content": ("pj.xml", pes, "text/xml")})
            assert response.status_code == 200, response.text
            pes_id = response.text.strip()
            assert _wait(client, pes_id, "Classé") == [
                "Préparé", "En cours d'envoi", "Envoyé à FAST", "Transmis à Hélios", "Acquittement Hélios", "Classé"]
            remaining = client.get(f"{REST}/documents/v2/123456789/ack/remaining")
            assert remaining.status_code == 200, remaining.text
            assert pes_id in remaining.text, remaining.text
            ack = client.get(f"{REST}/documents/v2/{pes_id}/ack/download")
            assert ack.status_code == 200
            assert validate_acquit(ack.content) == []
            assert pes_id not in client.get(f"{REST}/documents/v2/123456789/ack/remaining").text
            bundle = client.get(f"{REST}/documents/v2/{pes_id}/download", params={"fdc": "true", "acquit": "true"})
            assert bundle.status_code == 200, bundle.text
            names = zipfile.ZipFile(io.BytesIO(bundle.content)).namelist()
            assert "pj.xml" in names
            assert "ACQUIT_pj.xml" in names
            assert any(n.startswith("FDC_") for n in names)
    finally:
        stop_server(server)
