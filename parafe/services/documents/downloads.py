"""What a client downloads about a document, shared by every connector (spec §2.5.1/§2.6.1 ``download``,
§2.5.6/§2.6.7 ``getFdc``, §2.5.7/§2.6.8 ``getmetas``; DECISIONS D1, G-19).

- :func:`download` gives the signed version when there is one, else the original; with ``acquit`` and/or
  ``fdc`` it gives a ZIP instead (layout: the document under its own name, ``ACQUIT_<name>`` the latest Helios
  acknowledgement when there is one, ``FDC_<name>.pdf`` the fiche de circulation).
- :func:`fdc_pdf` renders the fiche de circulation. It is the hook the workflow reports replace
  (``parafe/reports/fdc.py``); this version is a minimal but real PDF: document, circuit, history.
- :func:`metas_xml` renders the document's metadata as the ``meta-data-list`` of spec §6.1.

Results are :class:`Content` objects: a blob of the store (streamed), a temporary file (ZIP; the caller calls
:meth:`Content.cleanup`) or small bytes (FdC, metadata).
"""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from parafe.context import AppContext
from parafe.db.models import Document, MetadataValue
from parafe.domain.errors import E, ParafeError
from parafe.formats.metadata import render_meta_data_list
from parafe.services.access.auth import Principal
from parafe.services.access.rights import visible_document
from parafe.services.documents import signed_fetches
from parafe.services.helios.returns import latest_ack
from parafe.storage.base import BlobNotFound

CHUNK = 256 * 1024

MEDIA_TYPES = {"pdf": "application/pdf", "xml": "application/xml", "zip": "application/zip"}


def media_type_for(name: str) -> str:
    ext = name.rpartition(".")[2].lower() if "." in name else ""
    return MEDIA_TYPES.get(ext, "application/octet-stream")


@dataclass
class Content:
    """Downloaded content: exactly one of ``blob_sha256``, ``path`` (a temporary file) or ``data``."""

    filename: str
    media_type: str
    size: int
    blob_sha256: str | None = None
    path: Path | None = None
    data: bytes | None = None

    def chunks(self, ctx: AppContext) -> Iterator[bytes]:
        """The content in chunks (bounded memory for blobs and files)."""
        if self.data is not None:
            yield self.data
            return
        if self.path is not None:
            with open(self.path, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    yield chunk
            return
        assert self.blob_sha256 is not None
        with ctx.store.open(self.blob_sha256) as fh:
            while chunk := fh.read(CHUNK):
                yield chunk

    def read_bytes(self, ctx: AppContext) -> bytes:
        """The whole content (SOAP inlines it as base64)."""
        return b"".join(self.chunks(ctx))

    def local_file(self, ctx: AppContext) -> Path | None:
        """A file holding the content when there is one already (zero-copy responses)."""
        if self.path is not None:
            return self.path
        if self.blob_sha256 is not None:
            return ctx.store.local_path(self.blob_sha256)
        return None

    def cleanup(self) -> None:
        """Remove the temporary file, if any."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def fdc_pdf(ctx: AppContext, document: Document | int) -> bytes:
    """The fiche de circulation of ``document`` (a row or an id) as PDF bytes (``parafe.reports.fdc``).

    No rights check: callers check visibility first."""
    from parafe.reports.fdc import fdc_pdf as render

    return render(ctx, document if isinstance(document, int) else document.id)


def _main_blob(ctx: AppContext, document: Document) -> str:
    sha = document.signed_blob_sha256 or document.blob_sha256
    if not ctx.store.exists(sha):
        raise ParafeError(E.CONTENT_RETRIEVAL, detail=f"blob of document {document.id} is missing")
    return sha


def download(
    ctx: AppContext, principal: Principal, document_id: int | str, *, acquit: bool = False, fdc: bool = False,
    client: str | None = None,
) -> Content:
    """The document (signed version if any, else the original), or a ZIP when ``acquit`` or ``fdc`` is true.

    ``client`` names the connector of a business-software client (``soap``, ``rest``): its download of a signed
    document takes it out of ``listRemainingSignedDocs`` (:mod:`parafe.services.documents.signed_fetches`).

    Raises ``NODE_NOT_FOUND`` (S02) for an unknown or foreign id and ``CONTENT_RETRIEVAL`` (S01) when the
    stored bytes cannot be read.
    """
    with ctx.db.read() as session:
        document, _ = visible_document(session, principal, document_id, E.NODE_NOT_FOUND)
        sha = _main_blob(ctx, document)
        name = document.name
        doc_id = document.id
        fetched = client is not None and signed_fetches.awaiting_fetch(session, doc_id)
    if fetched:
        assert client is not None
        signed_fetches.mark(ctx, principal, doc_id, client)
    if not acquit and not fdc:
        return Content(filename=name, media_type=media_type_for(name), size=ctx.store.size(sha), blob_sha256=sha)
    fiche = fdc_pdf(ctx, doc_id) if fdc else None
    ack = latest_ack(ctx, doc_id) if acquit else None
    # closed by the ``with`` below; the file outlives it (delete=False): the caller streams then removes it
    handle = tempfile.NamedTemporaryFile(dir=ctx.tmp_dir, prefix="download-", suffix=".zip", delete=False)  # noqa: SIM115
    path = Path(handle.name)
    try:
        with handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as zf:
            with ctx.store.open(sha) as src, zf.open(name, "w", force_zip64=True) as dst:
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
            if ack is not None:
                zf.writestr(f"ACQUIT_{name}", ack[1])
            if fiche is not None:
                zf.writestr(f"FDC_{name}.pdf", fiche)
    except BlobNotFound:
        path.unlink(missing_ok=True)
        raise ParafeError(E.CONTENT_RETRIEVAL, detail=f"blob of document {doc_id} is missing") from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Content(filename=f"{name}.zip", media_type="application/zip", size=path.stat().st_size, path=path)


def signed_filename(name: str) -> str:
    """The name a person's download of a signed version gets in the portal: ``deliberation-signe.pdf`` (the
    connectors keep the document's own name, as FAST does)."""
    stem, dot, ext = name.rpartition(".")
    return f"{stem}-signe.{ext}" if dot and stem else f"{name}-signe"


def fdc_filename(name: str) -> str:
    """The portal's name of a fiche de circulation: ``fiche-de-circulation-deliberation.pdf`` (the connectors'
    ``FDC_<nom>.pdf`` is part of the documented ZIP layout)."""
    stem, dot, _ext = name.rpartition(".")
    return f"fiche-de-circulation-{stem if dot and stem else name}.pdf"


def get_fdc(ctx: AppContext, principal: Principal, document_id: int | str) -> Content:
    """The fiche de circulation as PDF (R7, SOAP ``getFdc``). Raises ``DOCUMENT_NOT_FOUND``."""
    with ctx.db.read() as session:
        document, _ = visible_document(session, principal, document_id)
        doc_id, name = document.id, document.name
    data = fdc_pdf(ctx, doc_id)
    return Content(filename=f"FDC_{name}.pdf", media_type="application/pdf", size=len(data), data=data)


@dataclass(frozen=True)
class MetaItem:
    """One metadata value of a document (SOAP ``metaDataVO``: metaDataId, metaDataName, metaDataValue)."""

    id: int
    name: str
    value: str
    kind: str


def metadata_items(ctx: AppContext, principal: Principal, document_id: int | str) -> list[MetaItem]:
    """The document's metadata, business metadata first then OTP information, in the order given."""
    with ctx.db.read() as session:
        document, _ = visible_document(session, principal, document_id)
        rows = session.scalars(select(MetadataValue).where(MetadataValue.document_id == document.id)).all()
        rows = sorted(rows, key=lambda r: (r.kind != "meta", r.position, r.id))
        return [MetaItem(r.id, r.name, r.value, r.kind) for r in rows]


def metas_xml(ctx: AppContext, principal: Principal, document_id: int | str) -> bytes:
    """The metadata as a ``meta-data-list`` XML document (R8, spec §6.1). Raises ``DOCUMENT_NOT_FOUND``."""
    return render_meta_data_list((m.name, m.value) for m in metadata_items(ctx, principal, document_id))
