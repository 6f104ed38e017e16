"""Helpers of the OSS API tests: the server fixture's body, requests, error assertions, and the independent
checks of signed PDFs (``pdfsig`` of poppler, pyHanko's validator, the signature widget's rectangle)."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pikepdf
import pytest
from sqlalchemy import select

from parafe.config import Settings
from parafe.context import AppContext
from parafe.db.models import DevMessage
from parafe.domain.errors import ErrorDef
from parafe.services import demo as demo_set
from parafe.services.oss import model as oss_model
from parafe.services.oss import workflows as oss_workflows
from tests.conftest import (
    IN_CI,
    Home,
    ServedHome,
    create_postgres_database,
    drop_postgres_database,
    init_home,
    start_server,
    stop_server,
)
from tests.fixtures.files import pdf_bytes

AGENT = "agent@demo.parafe.test"
VISA = "visa@demo.parafe.test"
SIGNER = "signataire@demo.parafe.test"
ADMIN = "admin@demo.parafe.test"
OTHER = "agent@autre.parafe.test"
WF = "oss-demo"
DOCINFO_FIELDS = {"id", "filename", "creationDate", "signatureDate", "purgeDate", "archiveDate", "downloadDate",
                  "dateToPurge", "metadate", "redirectionURL", "logs", "filesize", "smsexpirationDate",
                  "SMSRemainingTriesNb", "Smsdate"}


class Oss(ServedHome):
    """The OSS suite's module-scoped server."""

    def public(self, cert: tuple[str, str] | None = None) -> httpx.Client:
        """A browser-like client without (or with a given) certificate, not following redirects."""
        return self.server.client(cert=cert, follow_redirects=False)


def setup_workflows(ctx: AppContext) -> None:
    assert demo_set.ensure_oss_demo(ctx) is not None
    assert demo_set.ensure_oss_demo(ctx) is not None  # idempotent
    demo = demo_set.OSS_DEMO_P12
    password = (ctx.settings.resolved_home / "pki" / "oss-demo-signing.password").read_text().strip()
    for key, siren, agents, modes in (("oss-demo-2", "123456789", [VISA], oss_model.MODES),
                                      ("oss-serveur", "123456789", [AGENT], ("server",)),
                                      ("oss-autre", "987654321", [OTHER], oss_model.MODES)):
        oss_workflows.configure_workflow(ctx, oss_workflows.WorkflowSpec(
            key=key, name=key, siren=siren, agents=agents, modes=modes, certificate_p12=demo,
            certificate_password=password))


@contextmanager
def oss_server(tmp_path_factory: pytest.TempPathFactory, pki_template: Path, backend: str) -> Iterator[Oss]:
    path = tmp_path_factory.mktemp(f"oss-{backend}") / "home"
    shutil.copytree(pki_template, path)
    dbname = None
    if backend == "sqlite":
        url = f"sqlite:///{path / 'parafe.db'}"
    else:
        url, dbname = create_postgres_database()
    try:
        init_home(path, url)
        ctx = AppContext.from_settings(Settings(home=path, database_url=url))
        try:
            setup_workflows(ctx)
            server = start_server(Home(path=path, backend=backend, database_url=url))
            try:
                yield Oss(server=server, ctx=ctx)
            finally:
                stop_server(server)
        finally:
            ctx.close()
    finally:
        if dbname:
            drop_postgres_database(dbname)


# --- requests -----------------------------------------------------------------------------------------------------
def unique(suffix: str = ".pdf") -> str:
    return f"oss-{uuid.uuid4().hex[:10]}{suffix}"


def post_doc(client: httpx.Client, method: str, *, workflow: str | None = WF, data: bytes | None = None,
             name: str | None = None, meta: bytes | None = None, files: list[tuple[str, Any]] | None = None,
             **fields: str) -> httpx.Response:
    parts: list[tuple[str, Any]] = list(files) if files is not None else [
        ("dataFile", (name or unique(), data if data is not None else pdf_bytes(), "application/pdf"))]
    if meta is not None:
        parts.append(("metaFile", ("METAS.xml", meta, "application/xml")))
    form = dict(fields)
    if workflow is not None:
        form["workflowId"] = workflow
    return client.post(f"/oss/{method}", files=parts, data=form)


def error(response: httpx.Response, status: int, entry: ErrorDef) -> dict[str, Any]:
    """Assert the D2 error shape, status and catalogue code; returns the body."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"generation", "developerMessage", "userFriendlyMessage", "errorCode"}, body
    assert body["errorCode"] == entry.code, body
    assert body["userFriendlyMessage"] == entry.message or "{" in entry.message, body
    return body


def meta_xml(**items: str) -> bytes:
    body = "".join(f'<meta-data name="{k}" value="{v}"/>' for k, v in items.items())
    return f'<?xml version="1.0" encoding="UTF-8"?><meta-data-list>{body}</meta-data-list>'.encode()


def last_message(ctx: AppContext, channel: str, recipient: str) -> DevMessage:
    with ctx.db.read() as session:
        message = session.scalars(select(DevMessage).where(DevMessage.channel == channel,
                                                           DevMessage.recipient == recipient)
                                  .order_by(DevMessage.id.desc())).first()
        assert message is not None, f"no {channel} to {recipient}"
        session.expunge(message)
        return message


def code_in(text: str) -> str:
    match = re.search(r"\b(\d{6})\b", text)
    assert match, text
    return match.group(1)


def token_of(url: str) -> str:
    match = re.search(r"/oss/signature/([A-Za-z0-9_-]+)$", url)
    assert match, url
    assert len(match.group(1)) >= 43  # 256 bits in base64url
    return match.group(1)


# --- independent checks of signed PDFs ------------------------------------------------------------------------------
def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is missing (scripts/apt-test-packages.txt)")
        pytest.skip(f"{name} is not installed")
    return path


def nss_db(tmp_path: Path, ca_pem: Path) -> Path:
    """An NSS database trusting ``ca_pem`` (for ``pdfsig -nssdir``)."""
    certutil = _tool("certutil")
    db = tmp_path / f"nss-{uuid.uuid4().hex[:6]}"
    db.mkdir()
    subprocess.run([certutil, "-N", "-d", f"sql:{db}", "--empty-password"], check=True, capture_output=True)
    subprocess.run([certutil, "-A", "-d", f"sql:{db}", "-n", "parafe-ca", "-t", "CT,C,C", "-i", str(ca_pem)],
                   check=True, capture_output=True)
    return db


def pdfsig(pdf: bytes, tmp_path: Path, ca_pem: Path | None = None) -> str:
    """``pdfsig`` on the document: asserts one valid signature (and a trusted chain when ``ca_pem`` is given)."""
    tool = _tool("pdfsig")
    path = tmp_path / f"signed-{uuid.uuid4().hex[:6]}.pdf"
    path.write_bytes(pdf)
    args = [tool]
    if ca_pem is not None:
        args += ["-nssdir", f"sql:{nss_db(tmp_path, ca_pem)}"]
    report = subprocess.run([*args, str(path)], capture_output=True, text=True).stdout
    assert "Signature is Valid" in report, report
    if ca_pem is not None:
        assert "Certificate is Trusted" in report, report
    return report


def pdftext(pdf: bytes, tmp_path: Path) -> str:
    tool = _tool("pdftotext")
    path = tmp_path / f"text-{uuid.uuid4().hex[:6]}.pdf"
    path.write_bytes(pdf)
    return subprocess.run([tool, str(path), "-"], capture_output=True, text=True).stdout


def pyhanko_report(pdf: bytes, roots: list[Path]) -> Any:
    """The Signature engine's verifier (pyHanko): asserts the document is valid against ``roots``."""
    from parafe.signing.verify import verify_pdf

    report = verify_pdf(pdf, roots)
    assert report.valid, report.to_text()
    return report


def validate(pdf: bytes, tmp_path: Path, home: Path) -> Any:
    """Both independent checks: ``pdfsig`` (valid, chain trusted through the home's CA) and pyHanko."""
    ca = home / "pki" / "ca.pem"
    pdfsig(pdf, tmp_path, ca)
    return pyhanko_report(pdf, [ca])


def signature_widgets(pdf: bytes) -> list[tuple[int, tuple[float, float, float, float]]]:
    """(page index, /Rect) of every signature widget of the document."""
    import io

    out: list[tuple[int, tuple[float, float, float, float]]] = []
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        for index, page in enumerate(doc.pages):
            for annot in page.get("/Annots", []):
                if annot.get("/Subtype") == "/Widget" and (annot.get("/FT") == "/Sig" or (
                        "/Parent" in annot and annot.Parent.get("/FT") == "/Sig")):
                    rect = [float(v) for v in annot.Rect]
                    out.append((index, (rect[0], rect[1], rect[2], rect[3])))
    return out


def assert_rect(actual: tuple[float, float, float, float], expected: tuple[float, float, float, float]) -> None:
    assert all(abs(a - e) < 0.01 for a, e in zip(actual, expected, strict=True)), (actual, expected)
