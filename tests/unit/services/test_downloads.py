"""Downloads through the service layer: content objects, ZIP layout, the FdC hook, metadata XML."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pikepdf

from parafe.db.models import Document, MetadataValue
from parafe.services.access.auth import principal_for_email
from parafe.services.documents import downloads
from parafe.services.helios import returns
from tests.unit.services._helpers import AGENT, deposit_pdf


def test_content_and_zip(ctx: Any, tmp_path: Path) -> None:
    principal = principal_for_email(ctx, AGENT)
    doc = deposit_pdf(ctx, tmp_path)
    plain = downloads.download(ctx, principal, doc)
    assert plain.blob_sha256
    assert plain.media_type == "application/pdf"
    data = plain.read_bytes(ctx)
    assert data.startswith(b"%PDF")
    assert len(data) == plain.size
    returns.add_return(ctx, kind="ack", data=b"<ack/>", name="ACQUIT.xml", document_id=doc)
    zipped = downloads.download(ctx, principal, doc, acquit=True, fdc=True)
    assert zipped.path is not None
    assert zipped.filename.endswith(".zip")
    with zipfile.ZipFile(io.BytesIO(zipped.read_bytes(ctx))) as zf:
        names = zf.namelist()
        assert names[1:] == [f"ACQUIT_{names[0]}", f"FDC_{names[0]}.pdf"]
        assert zf.read(names[0]) == data
    zipped.cleanup()
    assert not zipped.path.exists()


def test_fdc_hook_and_metas(ctx: Any, tmp_path: Path) -> None:
    principal = principal_for_email(ctx, AGENT)
    doc = deposit_pdf(ctx, tmp_path, comment="Un commentaire " * 15)
    pdf = downloads.fdc_pdf(ctx, doc)
    with pikepdf.open(io.BytesIO(pdf)) as parsed:
        assert len(parsed.pages) == 1
    fetched = downloads.get_fdc(ctx, principal, doc).data
    assert fetched is not None
    assert fetched.startswith(b"%PDF")  # the same report, through the rights check
    with ctx.db.write() as s:
        s.add(MetadataValue(document_id=doc, position=0, name="OTP_email_0", value="a@x.fr", kind="otp"))
        s.add(MetadataValue(document_id=doc, position=0, name="NOM", value='Dupont & "fils" <sa>', kind="meta"))
        row = s.get(Document, doc)
        assert row is not None
    xml = downloads.metas_xml(ctx, principal, doc)
    assert xml.index(b'name="NOM"') < xml.index(b'name="OTP_email_0"')
    assert b'value="Dupont &amp; &quot;fils&quot; &lt;sa&gt;"' in xml
