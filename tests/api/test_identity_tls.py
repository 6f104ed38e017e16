"""The real server process over TLS: who gets in, who is refused and with which message, and isolation.

Uses the demo certificates of the dev PKI (`$PARAFE_HOME/demo/…`) and the bad ones the spec lists (§4.4):
expired, revoked (listed in the CRL the server honours), issued by an unknown CA.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest

from parafe.domain.errors import E
from tests.conftest import Home, LiveServer, start_server, stop_server
from tests.fixtures.files import pdf_bytes

UPLOAD = "/parapheur-ws/rest/v1/documents/v2/123456789/bureautique/upload"


def _upload(client: httpx.Client, name: str = "a.pdf", path: str = UPLOAD) -> httpx.Response:
    return client.post(path, files={"content": (name, pdf_bytes(), "application/pdf")})


def _error(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["errorCode"] == code, body
    assert isinstance(body["generation"], int)
    return body


def test_healthz_without_certificate(live_server: LiveServer) -> None:
    with live_server.client() as c:
        assert c.get("/healthz").json() == {"status": "ok"}


def test_refusals_with_explicit_messages(live_server: LiveServer) -> None:
    home = live_server.home
    with live_server.client() as c:
        body = _error(_upload(c), 401, E.CERT_MISSING.code)
        assert body["userFriendlyMessage"] == E.CERT_MISSING.message
    cases = {"expired": E.CERT_EXPIRED, "revoked": E.CERT_REVOKED, "unknown-ca": E.CERT_UNKNOWN_CA}
    for which, err in cases.items():
        with live_server.client(cert=home.bad(which)) as c:
            body = _error(_upload(c), 401, err.code)
            assert body["userFriendlyMessage"] == err.message
            assert "authentification" in body["userFriendlyMessage"]


def test_agent_deposits_and_isolation(live_server: LiveServer) -> None:
    with live_server.client("agent@demo.parafe.test") as agent:
        r = _upload(agent)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/plain")
        doc_id = int(r.text)
        assert doc_id >= 100_000_000
        h = agent.get(f"/parapheur-ws/rest/v1/documents/v2/{doc_id}/history")
        assert h.status_code == 200
        # the history starts with the deposit; the server's job process may already have started the circuit
        # (« Envoyé pour visa »): it is woken by the deposit's commit (seen once in CI on PostgreSQL)
        assert [e["stateName"] for e in h.json()][:1] == ["Préparé"]
        # repeated slashes, as Pastell sends them
        assert agent.get(f"/parapheur-ws/rest/v1//documents/v2/{doc_id}/history").status_code == 200
    with live_server.client("agent@autre.parafe.test") as other:
        foreign = other.get(f"/parapheur-ws/rest/v1/documents/v2/{doc_id}/history")
        unknown = other.get("/parapheur-ws/rest/v1/documents/v2/100999999/history")
        a = _error(foreign, 404, E.DOCUMENT_NOT_FOUND.code)
        b = _error(unknown, 404, E.DOCUMENT_NOT_FOUND.code)
        a.pop("generation"), b.pop("generation")
        assert a == b  # no existence oracle
        # and it cannot deposit into the other subscriber
        _error(_upload(other), 403, E.SUBSCRIBER_UNKNOWN_OR_FORBIDDEN.code)


def test_valid_certificate_without_account(live_server: LiveServer, tmp_path: Any) -> None:
    from parafe.security import pki

    ca = pki.load_ca(live_server.home.path / "pki")
    stranger = pki.issue_user_cert(ca, "inconnu@ailleurs.test", "Personne Inconnue")
    cert, key = tmp_path / "s.pem", tmp_path / "s.key"
    pki.write_pem(stranger, cert, key)
    with live_server.client(cert=(str(cert), str(key))) as c:
        _error(_upload(c), 401, E.AUTH_UNKNOWN_USER.code)


def test_proxy_header_ignored_from_untrusted_peer(live_server: LiveServer) -> None:
    pem = (live_server.home.path / "demo" / "agent@demo.parafe.test.pem").read_text()
    with live_server.client(headers={"X-SSL-Client-Cert": quote(pem)}) as c:
        _error(_upload(c), 401, E.CERT_MISSING.code)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_trusted_proxy_header(home: Home) -> None:
    server = start_server(home, {"PARAFE_TRUSTED_PROXIES": "127.0.0.1"}, tls=False)
    try:
        pem = (home.path / "demo" / "agent@demo.parafe.test.pem").read_text()
        with httpx.Client(base_url=server.url, headers={"X-SSL-Client-Cert": quote(pem)}) as c:
            r = _upload(c)
            assert r.status_code == 200, r.text
        expired = (home.path / "demo" / "bad" / "expired.pem").read_text()
        with httpx.Client(base_url=server.url, headers={"X-SSL-Client-Cert": quote(expired)}) as c:
            _error(_upload(c), 401, E.CERT_EXPIRED.code)
    finally:
        stop_server(server)


def test_basic_auth_for_admin_accounts(live_server: LiveServer) -> None:
    password = (live_server.home.path / "demo" / "admin-password.txt").read_text().strip()
    with live_server.client(auth=("admin@demo.parafe.test", password)) as admin:
        r = _upload(admin, "par-admin.pdf")
        assert r.status_code == 200, r.text
    with live_server.client(auth=("admin@demo.parafe.test", "mauvais")) as wrong:
        body = _error(_upload(wrong, "x.pdf"), 401, E.BAD_CREDENTIALS.code)
        assert body["userFriendlyMessage"] == E.BAD_CREDENTIALS.message
    # Basic is only for BASIC accounts: a certificate user's e-mail with any password is refused
    with live_server.client(auth=("agent@demo.parafe.test", password)) as agent:
        _error(_upload(agent, "y.pdf"), 401, E.BAD_CREDENTIALS.code)
    # the password is stored as an argon2 hash, never in clear
    import sqlalchemy as sa

    engine = sa.create_engine(live_server.home.database_url)
    with engine.connect() as conn:
        stored = conn.execute(sa.text(
            "SELECT password_hash FROM users WHERE email = 'admin@demo.parafe.test'")).scalar()
    engine.dispose()
    assert stored
    assert stored.startswith("$argon2id$")
    assert password not in stored
