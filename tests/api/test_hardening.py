"""Smaller hardening of the real server (issue 18 point 4): HSTS on HTTPS answers only, TLS 1.2 limited to
ECDHE + AEAD suites, a certificate claiming the trusted CA as issuer but signed by another key answered with the
French 401 (164) instead of a dropped connection, a Basic header that is not base64 answered 165,
``$PARAFE_HOME`` owner-only after ``parafe init`` and a first deposit, and the spool files of a killed process
removed at start (but not those a live process holds)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from parafe.domain.errors import E
from tests.conftest import Home, LiveServer, start_server, stop_server
from tests.fixtures.files import pdf_bytes

UPLOAD = "/parapheur-ws/rest/v1/documents/v2/123456789/bureautique/upload"
OPENSSL = shutil.which("openssl")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, pki_template: Path) -> Iterator[LiveServer]:
    """One ``parafe serve`` over TLS on a fresh SQLite home (initialised by its first start) for the module."""
    path = tmp_path_factory.mktemp("hardening") / "home"
    shutil.copytree(pki_template, path)
    server = start_server(Home(path=path, backend="sqlite", database_url=f"sqlite:///{path / 'parafe.db'}"))
    try:
        yield server
    finally:
        stop_server(server)


def _upload(client: httpx.Client, name: str = "a.pdf") -> httpx.Response:
    return client.post(UPLOAD, files={"content": (name, pdf_bytes(), "application/pdf")})


def _error(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["errorCode"] == code, body
    return body


def test_certificate_naming_the_trusted_ca_but_signed_by_another_key(served: LiveServer,
                                                                      tmp_path: Path) -> None:
    from parafe.security import pki

    real = pki.load_ca(served.home.path / "pki")
    impostor = pki.CertAndKey(real.cert, rsa.generate_private_key(public_exponent=65537, key_size=2048))
    forged = pki.issue_user_cert(impostor, "agent@demo.parafe.test", "Agent Usurpé")
    assert forged.cert.issuer == real.cert.subject  # same issuer name (and AKI), wrong signature
    cert, key = tmp_path / "forged.pem", tmp_path / "forged.key"
    pki.write_pem(forged, cert, key)
    with served.client(cert=(str(cert), str(key))) as c:
        body = _error(_upload(c), 401, E.CERT_UNKNOWN_CA.code)
    assert body["userFriendlyMessage"] == "Erreur lors de l'authentification, certificat émis par une AC non référencée"


# --- Strict-Transport-Security -----------------------------------------------------------------------------

HSTS = "max-age=31536000"


def test_hsts_on_every_https_answer(served: LiveServer) -> None:
    with served.client() as anonymous:
        answers = [anonymous.get("/healthz"), _upload(anonymous),  # 200, then a 401 (no certificate)
                   anonymous.get("/parapheur-soap/soap/v1/Documents?wsdl"),
                   anonymous.request("PROPFIND", "/partage/webdav/clients/", headers={"Depth": "0"})]
    with served.client("agent@demo.parafe.test") as agent:
        answers += [agent.get("/parapheur-ws/rest/v1/documents/v2/100999999/history"),  # 404
                    agent.get("/"), agent.get("/partage/webdav/clients/123456789/in/%01x")]
    assert {r.status_code for r in answers} >= {200, 401, 404}
    for response in answers:
        assert response.headers.get("strict-transport-security") == HSTS, (response.request.url, response.headers)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_no_hsts_over_plain_http(home: Home) -> None:
    server = start_server(home, tls=False)
    try:
        with httpx.Client(base_url=server.url) as c:
            for response in (c.get("/healthz"), _upload(c)):
                assert response.status_code in (200, 401)
                assert "strict-transport-security" not in response.headers
    finally:
        stop_server(server)


# --- TLS 1.2 suites ------------------------------------------------------------------------------------------

def _handshake(server: LiveServer, *args: str) -> tuple[bool, str]:
    """Whether ``openssl s_client`` completes a handshake with these options, and the negotiated suite."""
    assert OPENSSL, "openssl is required"
    parts = urlsplit(server.url)
    done = subprocess.run(
        [OPENSSL, "s_client", "-connect", f"{parts.hostname}:{parts.port}", "-CAfile", server.home.ca, *args],
        input=b"", capture_output=True, timeout=30)
    out = done.stdout.decode(errors="replace")
    cipher = next((line.rsplit("Cipher is", 1)[1].strip() for line in out.splitlines()
                   if "Cipher is" in line), "")  # "New, TLSv1.2, Cipher is ECDHE-RSA-AES128-GCM-SHA256"
    return done.returncode == 0 and cipher not in ("", "0000", "(NONE)"), cipher


@pytest.mark.parametrize("suite", ["ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA384", "ECDHE-RSA-AES128-SHA256",
                                   "AES128-GCM-SHA256", "DHE-RSA-AES128-GCM-SHA256"])
def test_tls12_refuses_cbc_and_non_ecdhe_suites(served: LiveServer, suite: str) -> None:
    # @SECLEVEL=0 on the client: the refusal must come from the server, not from the client's own policy
    ok, cipher = _handshake(served, "-tls1_2", "-cipher", f"{suite}:@SECLEVEL=0")
    assert not ok, f"the server accepted {cipher}"


@pytest.mark.parametrize("suite", ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
                                   "ECDHE-RSA-CHACHA20-POLY1305"])
def test_tls12_accepts_ecdhe_aead_suites(served: LiveServer, suite: str) -> None:
    assert _handshake(served, "-tls1_2", "-cipher", suite) == (True, suite)


def test_tls13_unchanged(served: LiveServer) -> None:
    for suite in ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"):
        assert _handshake(served, "-tls1_3", "-ciphersuites", suite) == (True, suite)


# --- Basic header that is not base64 ---------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["Basic !!!pas-du-base64!!!", "Basic", "BASIC YWRtaW4=", "basic //79/A=="])
def test_undecodable_basic_header_is_bad_credentials(served: LiveServer, value: str) -> None:
    # not base64; no credentials at all; base64 of "admin" (no ":"); base64 of bytes that are not UTF-8
    with served.client(headers={"Authorization": value}) as c:
        body = _error(_upload(c), 401, E.BAD_CREDENTIALS.code)
    assert body["userFriendlyMessage"] == E.BAD_CREDENTIALS.message
    with served.client(headers={"Authorization": "Bearer abc"}) as c:  # another scheme: no credentials
        _error(_upload(c), 401, E.CERT_MISSING.code)


# --- $PARAFE_HOME owner-only ---------------------------------------------------------------------------------

def _readable_by_others(root: Path) -> list[str]:
    """Every file or folder under ``root`` (itself included) with a group or other permission bit."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode & 0o777
        if mode & 0o077:
            found.append(f"{oct(mode)} {path.relative_to(root)}")
    return found


def test_home_is_owner_only_after_init_and_a_first_deposit(tmp_path: Path) -> None:
    path = tmp_path / "home"
    home = Home(path=path, backend="sqlite", database_url=f"sqlite:///{path / 'parafe.db'}")
    done = subprocess.run([sys.executable, "-m", "parafe", "init"], env=home.env(), capture_output=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert (path / "demo" / "README.txt").exists()
    assert (path / "parafe.db").exists()
    assert _readable_by_others(path) == []
    server = start_server(home)
    try:
        with server.client("agent@demo.parafe.test") as agent:
            r = agent.post("/parapheur-ws/rest/v1/documents/v2/123456789/serveur/upload",
                           files={"content": ("premier.pdf", pdf_bytes(), "application/pdf")})
            assert r.status_code == 200, r.text
            doc_id = r.text
            deadline = time.monotonic() + 60
            while "Signé" not in agent.get(f"/parapheur-ws/rest/v1/documents/v2/{doc_id}/history").text:
                assert time.monotonic() < deadline, "the server signature did not happen"
                time.sleep(0.2)
    finally:
        stop_server(server)
    blobs = [p for p in (path / "blobs").rglob("*") if p.is_file() and len(p.name) == 64]
    assert len(blobs) >= 2  # the deposit and its signed version
    assert _readable_by_others(path) == []


# --- spool files of a killed process ---------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_spool_leftovers_cleaned_at_start_except_live_ones(home: Home) -> None:
    old = time.time() - 7200
    tmp, blob_tmp = home.path / "tmp", home.path / "blobs" / "tmp"
    for directory in (tmp, blob_tmp):
        directory.mkdir(parents=True, exist_ok=True)
    dead = [tmp / "spool-tue.part", tmp / "soap-b64-tue.part", blob_tmp / "put-tue.part"]
    for path in dead:
        path.write_bytes(b"x" * 1000)
        os.utime(path, (old, old))
    fresh = tmp / "spool-recent.part"  # unlocked but just written: maybe between mkstemp() and its lock
    fresh.write_bytes(b"y")
    other = tmp / "notes.txt"  # not a spool file
    other.write_text("garder")
    os.utime(other, (old, old))
    held = tmp / "spool-vivant.part"  # an old file a live process (another server of the home) holds
    held.write_bytes(b"z")
    os.utime(held, (old, old))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'rb'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('ok', flush=True); time.sleep(600)", str(held)],
        stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"ok"
        server = start_server(home)
        stop_server(server)
    finally:
        holder.kill()
        holder.wait()
    assert [p.name for p in dead if p.exists()] == []
    assert fresh.exists()
    assert other.exists()
    assert held.exists()
