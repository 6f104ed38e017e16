"""Recipients can download (spec §2.6.3, issue 15): the mail sent to ``email_destinataire`` / ``email_CC`` once the
document is signed holds a capability link that plain ``curl`` — no client certificate, no account — follows to
the signed PDF on a real ``parafe serve``; each use is in the document's history; an expired link and the link of
a deleted document get a French page (410), an unknown one too (404)."""

from __future__ import annotations

import hashlib
import html
import re
import shutil
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select, update

from parafe.db.models import DevMessage, Document, HistoryEntry, utcnow
from parafe.domain.errors import E
from parafe.domain.states import State
from parafe.services.demo import AGENT
from tests.conftest import LiveServer
from tests.fixtures.files import pdf_bytes

REST = "/parapheur-ws/rest/v1"
DEST, CC = "prefecture@exemple.fr", "archives@exemple.fr"
LINK = re.compile(r"https://\S+/telechargement/\S+")


def _curl(server: LiveServer, url: str, out: Path) -> tuple[int, str]:
    """GET ``url`` (as mailed) with plain curl and no client certificate; the mailed host:port is routed to the
    test server. Returns (HTTP status, content type)."""
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is required (Debian package curl)")
    mailed = urlsplit(url)
    served = urlsplit(server.url)
    result = subprocess.run(
        [curl, "--silent", "--show-error", "--cacert", server.home.ca, "--connect-to",
         f"{mailed.hostname}:{mailed.port or 443}:{served.hostname}:{served.port}", "--output", str(out),
         "--write-out", "%{http_code} %{content_type}", url],
        capture_output=True, text=True, timeout=60, check=True)
    status, _, content_type = result.stdout.partition(" ")
    return int(status), content_type


def _wait_link(ctx: Any, address: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        with ctx.db.read() as session:
            for body in session.scalars(select(DevMessage.body).where(DevMessage.recipient.contains(address))):
                found = LINK.search(body)
                if found:
                    return found.group(0)
        assert time.monotonic() < deadline, f"no download link mailed to {address}"
        time.sleep(0.3)


def _deposit(server: LiveServer, name: str) -> int:
    with server.client(AGENT) as client:
        response = client.post(f"{REST}/documents/v2/123456789/serveur/upload",
                               files={"content": (name, pdf_bytes(text=name), "application/pdf")},
                               data={"emailDestinataire": DEST, "email_CC": CC})
        assert response.status_code == 200, response.text
        return int(response.text.strip())


def test_recipients_link_downloads_the_signed_pdf_without_certificate(
        live_server: LiveServer, ctx: Any, tmp_path: Path) -> None:
    doc_id = _deposit(live_server, "arrêté signé.pdf")
    url = _wait_link(ctx, DEST)  # one mail to both recipients
    from parafe.db.models import DownloadLink  # (issue 15's table)
    from parafe.workflow.recipient_links import token_hash
    assert url.startswith("https://127.0.0.1:8443/telechargement/")  # PARAFE_PUBLIC_URL unset: the default
    token = url.rsplit("/", 1)[1]
    with ctx.db.read() as session:
        document = session.get(Document, doc_id)
        assert document is not None
        assert document.state == State.FILED.value
        assert document.signed_blob_sha256
        signed_sha = document.signed_blob_sha256
        link = session.scalar(select(DownloadLink).where(DownloadLink.document_id == doc_id))
        assert link is not None
        assert link.token_hash == token_hash(token)
        assert token not in link.token_hash
        assert len(token) >= 22  # ≥ 128 bits (base64url)
        assert link.recipients == f"{DEST}, {CC}"
        assert link.expires_at - link.created_at == timedelta(days=30)  # PARAFE_DOWNLOAD_LINK_DAYS default
        cc_mails = session.scalars(select(DevMessage.body).where(DevMessage.recipient.contains(CC))).all()
        assert any(url in body for body in cc_mails)

    status, content_type = _curl(live_server, url, tmp_path / "signé.pdf")
    data = (tmp_path / "signé.pdf").read_bytes()
    assert status == 200
    assert content_type.startswith("application/pdf")
    assert hashlib.sha256(data).hexdigest() == signed_sha  # the signed version, byte for byte
    report = subprocess.run(["pdfsig", str(tmp_path / "signé.pdf")], capture_output=True, text=True).stdout
    assert "Signature is Valid" in report, report
    assert _curl(live_server, url, tmp_path / "encore.pdf")[0] == 200  # usable again until it expires

    with ctx.db.read() as session:
        uses = session.scalars(select(HistoryEntry).where(
            HistoryEntry.document_id == doc_id, HistoryEntry.comment.contains("lien envoyé aux destinataires"))).all()
        assert len(uses) == 2
        assert all(u.user_fullname == f"{DEST}, {CC}" and u.state is None for u in uses)
    with live_server.client(AGENT) as client:  # the uses are in the history every connector shows
        history = client.get(f"{REST}/documents/v2/{doc_id}/history").json()
        assert [h["userFullname"] for h in history].count(f"{DEST}, {CC}") == 2

    # expired: the validity is over
    with ctx.db.write() as session:
        session.execute(update(DownloadLink).where(DownloadLink.document_id == doc_id)
                        .values(expires_at=utcnow() - timedelta(seconds=1)))
    status, content_type = _curl(live_server, url, tmp_path / "expire.html")
    page = html.unescape((tmp_path / "expire.html").read_text())
    assert status == 410
    assert content_type.startswith("text/html")
    assert "Ce lien de téléchargement a expiré" in page
    assert E.DOWNLOAD_LINK_EXPIRED.message.split(" :")[0] in page
    assert "%PDF" not in page

    # unknown: a token never issued
    status, _ = _curl(live_server, url[:-4] + "AAAA", tmp_path / "inconnu.html")
    page = html.unescape((tmp_path / "inconnu.html").read_text())
    assert status == 404
    assert "Ce lien de téléchargement n'existe pas" in page


def test_link_of_a_deleted_document_is_revoked(live_server: LiveServer, ctx: Any, tmp_path: Path) -> None:
    doc_id = _deposit(live_server, "à supprimer.pdf")
    url = _wait_link(ctx, DEST)
    from parafe.db.models import DownloadLink
    from parafe.services.documents.erasure import bury
    from parafe.workflow.recipient_links import token_hash

    assert _curl(live_server, url, tmp_path / "avant.pdf")[0] == 200
    # a signed, filed document leaves the parapheur through the definitive delete's own function (the REST and
    # SOAP delete refuse a filed document; the daily purge buries WebDAV deposits, which carry no recipients)
    with ctx.db.write() as session:
        document = session.get(Document, doc_id)
        assert document is not None
        bury(session, document, reason="delete", by_user_id=None, by_name="Administrateur")
    status, content_type = _curl(live_server, url, tmp_path / "revoque.html")
    page = html.unescape((tmp_path / "revoque.html").read_text())
    assert status == 410
    assert content_type.startswith("text/html")
    assert "Ce document n'est plus disponible" in page
    assert "le document a été supprimé du parapheur" in page
    with ctx.db.read() as session:
        link = session.scalar(select(DownloadLink).where(DownloadLink.token_hash == token_hash(url.rsplit("/", 1)[1])))
        assert link is not None
        assert link.revoked_at is not None
        assert link.revoked_reason == "delete"
        assert link.document_id is None
