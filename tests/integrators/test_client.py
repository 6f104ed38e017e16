"""The typed Python client and the ``parafe client`` commands (issue 21) against a real ``parafe serve`` in
sandbox mode (``PARAFE_SANDBOX``: visa and signature complete by themselves), over TLS with the demo agent's
client certificate."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from sqlalchemy import select

from parafe.client import ParafeClient, ParafeClientError
from parafe.config import Settings
from parafe.context import AppContext
from parafe.db.models import Document, HistoryEntry
from tests.conftest import ROOT, Home, ServedHome, init_home, start_server, stop_server
from tests.fixtures.files import pdf_bytes

AGENT = "agent@demo.parafe.test"
SIREN = "123456789"
SANDBOX_ENV = {"PARAFE_SANDBOX": "1", "PARAFE_SANDBOX_VISA_SECONDS": "1", "PARAFE_SANDBOX_SIGNATURE_SECONDS": "1"}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory, pki_template: Path) -> Iterator[ServedHome]:
    path = tmp_path_factory.mktemp("sandbox") / "home"
    shutil.copytree(pki_template, path)
    url = f"sqlite:///{path / 'parafe.db'}"
    init_home(path, url)
    server = start_server(Home(path=path, backend="sqlite", database_url=url), SANDBOX_ENV)
    ctx = AppContext.from_settings(Settings(home=path, database_url=url))
    try:
        yield ServedHome(server=server, ctx=ctx)
    finally:
        ctx.close()
        stop_server(server)


def _client(served: ServedHome, url: str | None = None, **kwargs: object) -> ParafeClient:
    pem, key = served.home.demo(AGENT)
    return ParafeClient(url or served.url, cert=(pem, key), ca=served.home.ca, **kwargs)  # type: ignore[arg-type]


def _cli(served: ServedHome, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    pem, key = served.home.demo(AGENT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARAFE_")}
    env.update(PARAFE_CLIENT_URL=served.url, PARAFE_CLIENT_CERT=pem, PARAFE_CLIENT_KEY=key,
               PARAFE_CLIENT_CA=served.home.ca, PARAFE_HOME=str(served.home.path / "client-home"))
    return subprocess.run([sys.executable, "-m", "parafe", "client", *args], cwd=str(ROOT), env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_client_imports_no_server_stack() -> None:
    code = ("import sys, parafe.client, parafe.client.cli\n"
            "heavy = ('fastapi', 'starlette', 'sqlalchemy', 'pyhanko', 'pikepdf', 'uvicorn', 'lxml', 'alembic')\n"
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
            "print(loaded); sys.exit(1 if loaded else 0)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=str(ROOT), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_cli_deposits_90_mib_waits_for_the_sandbox_signature_and_downloads(sandbox: ServedHome,
                                                                           tmp_path: Path) -> None:
    big = tmp_path / "rapport-90-mio.pdf"
    big.write_bytes(pdf_bytes(text="Rapport annuel", pad_to=90 * 2**20))
    out = tmp_path / "signes"
    out.mkdir()
    result = _cli(sandbox, "upload", SIREN, "bureautique", str(big), "--wait", "Signed", "--download", str(out),
                  "--json")
    assert result.returncode == 0, result.stderr
    assert "[##############################] 100 %" in result.stderr
    assert "90,0 / 90,0 Mio" in result.stderr
    assert "bac à sable" in result.stderr
    answer = json.loads(result.stdout)
    doc_id = answer["id"]
    states = [e["state"] for e in answer["status"]["history"]]
    assert states[:4] == ["Préparé", "Envoyé pour visa", "Visa approuvé", "Envoyé pour signature"]
    assert "Signé" in states
    signed = Path(answer["file"])
    assert signed.parent == out
    assert signed.stat().st_size > big.stat().st_size
    with open(signed, "rb") as fh:  # a real signature by the server key, which the history names as such
        sig = PdfFileReader(fh).embedded_signatures[0]
        status = validate_pdf_signature(sig)
        assert status.intact
        assert status.valid
        assert "Parafe" in sig.signer_cert.subject.human_friendly
    with sandbox.ctx.db.read() as session:
        entry = session.scalar(select(HistoryEntry).where(HistoryEntry.document_id == doc_id,
                                                          HistoryEntry.state == "signed"))
        assert entry is not None
        assert entry.user_fullname == "Parafe (bac à sable)"
        assert "pas la signature du signataire" in (entry.comment or "")


def test_every_answer_is_marked_and_the_cli_reads_state(sandbox: ServedHome, tmp_path: Path) -> None:
    with sandbox.client(AGENT) as c:
        for path in ("/healthz", "/parapheur-ws/rest/v1/documents/v2/123456789/ack/remaining",
                     "/parapheur-ws/rest/v1/nowhere"):
            assert c.get(path).headers.get("x-parafe-sandbox") == "1", path
    circuits = _cli(sandbox, "circuits", SIREN, "--json")
    assert circuits.returncode == 0, circuits.stderr
    assert {c["id"] for c in json.loads(circuits.stdout)} >= {"bureautique", "serveur", "pes"}
    small = tmp_path / "petit.pdf"
    small.write_bytes(pdf_bytes(text="petit"))
    with _client(sandbox) as client:
        doc = client.upload(SIREN, "serveur", small)
        status = client.wait_until(doc, "Filed", first_delay=0.2)
        assert status.state == "Classé"
        assert client.sandbox
    listed = _cli(sandbox, "returns", "list", SIREN, "--kind", "signed", "--json")
    assert listed.returncode == 0
    assert doc in json.loads(listed.stdout)
    fetched = _cli(sandbox, "returns", "fetch", "--kind", "signed", str(doc), "-o", str(tmp_path))
    assert fetched.returncode == 0, fetched.stderr
    assert (tmp_path / "petit.pdf").read_bytes().startswith(b"%PDF")
    status_text = _cli(sandbox, "status", str(doc))
    assert status_text.returncode == 0
    assert f"Document {doc} : « Classé »" in status_text.stdout
    ended = _cli(sandbox, "wait", str(doc), "Refused", "--json")
    assert ended.returncode == 1
    assert json.loads(ended.stdout)["errorCode"] == 272
    assert "n'atteindra plus l'état « Refused »" in ended.stderr
    unknown = _cli(sandbox, "status", "999999999")
    assert unknown.returncode == 1
    assert "Erreur 149" in unknown.stderr


class _LoseFirstUploadAnswer:
    """A TCP relay in front of the server that lets the first big request through to the server but drops the
    server's answer (closing the client's connection): an answer lost after the deposit was stored."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.dropped = 0
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        server = socket.create_connection(self.target)
        sent = {"bytes": 0}

        def upstream() -> None:
            try:
                while data := client.recv(65536):
                    sent["bytes"] += len(data)
                    server.sendall(data)
            except OSError:
                pass
        threading.Thread(target=upstream, daemon=True).start()
        try:
            while data := server.recv(65536):
                if sent["bytes"] > 1_000_000 and self.dropped == 0:
                    self.dropped += 1
                    break
                client.sendall(data)
        except OSError:
            pass
        for s in (client, server):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self._stop = True
        self.listener.close()


def test_a_lost_upload_answer_is_not_deposited_twice(sandbox: ServedHome, tmp_path: Path) -> None:
    host, port = sandbox.url.removeprefix("https://").split(":")
    relay = _LoseFirstUploadAnswer((host, int(port)))
    doc_file = tmp_path / "perdu.pdf"
    doc_file.write_bytes(pdf_bytes(text="réponse perdue", pad_to=2 * 2**20))
    try:
        with _client(sandbox, f"https://127.0.0.1:{relay.port}", backoff=0.1) as client:
            doc = client.upload(SIREN, "bureautique", doc_file, label="lot-réponse-perdue")
    finally:
        relay.close()
    assert relay.dropped == 1  # the first answer was lost…
    with sandbox.ctx.db.read() as session:  # … and the retry found the stored document instead of posting again
        ids = list(session.scalars(select(Document.id).where(Document.name == "perdu.pdf")))
    assert ids == [doc]


def test_client_errors_are_french(sandbox: ServedHome, tmp_path: Path) -> None:
    with _client(sandbox) as client:
        with pytest.raises(ParafeClientError) as err:
            client.upload(SIREN, "inconnu", tmp_path / "absent.pdf")
        assert err.value.code == 268
        assert "absent.pdf est illisible" in err.value.message
        with pytest.raises(ParafeClientError) as err:
            client.wait_until(1, "Signéé")
        assert err.value.code == 270
    with _client(sandbox, "https://127.0.0.1:9", retries=0) as client:
        with pytest.raises(ParafeClientError) as err:
            client.circuits(SIREN)
        assert err.value.code == 267
        assert "injoignable" in err.value.message
