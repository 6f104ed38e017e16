"""The document page, its contents (viewer, downloads, FdC, annexes), its reports and the actions on it.

``GET /documents/{id}`` shows the document (pdf.js viewer for PDF; for a PES the readable summary of its
bordereaux and pieces, loaded by htmx from ``/documents/{id}/resume``), annexes, metadata, circuit, history,
signature validation report (``/documents/{id}/verification``). Actions are plain POST forms (they work without
JavaScript) that call :mod:`parafe.services.steps` / :mod:`parafe.services.documents.lifecycle`: visa, rejection,
refusal, deletion. Unknown and foreign ids answer the same 404 page (DECISIONS D1).
"""

from __future__ import annotations

from dataclasses import replace

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Route

from parafe.context import AppContext
from parafe.domain.errors import ParafeError
from parafe.portal import forms
from parafe.portal.web import call, ctx_of, page, read_form, redirect, render
from parafe.services import steps as workflow
from parafe.services.access.auth import Principal
from parafe.services.documents import downloads, lifecycle
from parafe.services.documents.downloads import Content
from parafe.services.portal import document_page, pes_summary


def content_response(ctx: AppContext, content: Content, *, inline: bool) -> Response:
    """A Content as an HTTP response (zero-copy file when possible), ``inline`` or as an attachment."""
    disposition = "inline" if inline else "attachment"
    cleanup = BackgroundTask(content.cleanup) if content.path is not None else None
    headers = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}
    local = content.local_file(ctx)
    if local is not None:
        return FileResponse(local, media_type=content.media_type, filename=content.filename,
                            content_disposition_type=disposition, headers=headers, background=cleanup)
    from urllib.parse import quote

    headers["Content-Disposition"] = f"{disposition}; filename*=utf-8''{quote(content.filename)}"
    headers["Content-Length"] = str(content.size)
    return StreamingResponse(content.chunks(ctx), media_type=content.media_type, headers=headers,
                             background=cleanup)


async def _show(request: Request, principal: Principal, *, error: str | None = None, status: int = 200,
                open_form: str | None = None, error_field: str | None = None) -> Response:
    view = await call(document_page.document_view, ctx_of(request), principal, request.path_params["doc_id"])
    return render(request, "document.html", {"doc": view, "error": error, "open_form": open_form,
                                             "error_field": error_field}, status=status, principal=principal)


@page
async def show(request: Request, principal: Principal) -> Response:
    return await _show(request, principal)


@page
async def view_content(request: Request, principal: Principal) -> Response:
    """The current version (signed when signed), inline, for the viewer."""
    ctx = ctx_of(request)
    content = await call(downloads.download, ctx, principal, request.path_params["doc_id"])
    return content_response(ctx, content, inline=True)


@page
async def download(request: Request, principal: Principal) -> Response:
    ctx = ctx_of(request)
    fdc = request.query_params.get("fdc") == "1"
    content = await call(downloads.download, ctx, principal, request.path_params["doc_id"], fdc=fdc)
    if not fdc:  # a signed version is saved as « <nom>-signe.pdf », next to the original
        original = await call(document_page.original_content, ctx, principal, request.path_params["doc_id"])
        if content.blob_sha256 != original.blob_sha256:
            content = replace(content, filename=downloads.signed_filename(content.filename))
    return content_response(ctx, content, inline=False)


@page
async def original(request: Request, principal: Principal) -> Response:
    ctx = ctx_of(request)
    content = await call(document_page.original_content, ctx, principal, request.path_params["doc_id"])
    return content_response(ctx, content, inline=False)


@page
async def fdc(request: Request, principal: Principal) -> Response:
    ctx = ctx_of(request)
    content = await call(downloads.get_fdc, ctx, principal, request.path_params["doc_id"])
    name = content.filename.removeprefix("FDC_").removesuffix(".pdf")
    return content_response(ctx, replace(content, filename=downloads.fdc_filename(name)), inline=False)


@page
async def annex(request: Request, principal: Principal) -> Response:
    ctx = ctx_of(request)
    content = await call(document_page.annex_content, ctx, principal, request.path_params["doc_id"],
                         int(request.path_params["position"]))
    return content_response(ctx, content, inline=False)


@page
async def detached_signature(request: Request, principal: Principal) -> Response:
    ctx = ctx_of(request)
    content = await call(document_page.signature_content, ctx, principal, request.path_params["doc_id"])
    return content_response(ctx, content, inline=False)


@page
async def verification(request: Request, principal: Principal) -> Response:
    report = await call(document_page.verification, ctx_of(request), principal, request.path_params["doc_id"])
    return render(request, "_verification.html", {"report": report}, principal=principal)


@page
async def summary(request: Request, principal: Principal) -> Response:
    result = await call(pes_summary.pes_summary, ctx_of(request), principal, request.path_params["doc_id"])
    return render(request, "_pes_summary.html", {"pes": result}, principal=principal)


def _action(kind: str) -> object:
    """A POST action on the document: the form's CSRF token is checked, then the service is called; a
    catalogue error re-renders the page with the message (and the form left open)."""

    @page
    async def handler(request: Request, principal: Principal) -> Response:
        ctx = ctx_of(request)
        doc_id = request.path_params["doc_id"]
        form = await read_form(request, principal)
        text = str(form.get("motif") or form.get("commentaire") or "")
        try:
            if kind == "viser":
                await call(workflow.approve_visa, ctx, principal, doc_id, text or None)
                done = "vise"
            elif kind == "rejeter":
                await call(workflow.reject_visa, ctx, principal, doc_id, text)
                done = "rejete"
            elif kind == "refuser":
                await call(workflow.refuse, ctx, principal, doc_id, text)
                done = "refuse"
            elif kind == "relancer":
                await call(lifecycle.retry_failed_step, ctx, principal, doc_id)
                done = "relance"
            else:
                await call(lifecycle.delete, ctx, principal, doc_id)
                return redirect("/tableau-de-bord?ok=supprime")
        except ParafeError as error:
            if error.http_status in (401, 404):
                raise
            return await _show(request, principal, error=error.message, status=error.http_status, open_form=kind,
                               error_field=forms.field_of(kind, error))
        return redirect(f"/documents/{doc_id}?ok={done}")

    handler.__name__ = f"action_{kind}"
    return handler


routes = [
    Route("/documents/{doc_id:int}", show, methods=["GET"]),
    Route("/documents/{doc_id:int}/contenu", view_content, methods=["GET"]),
    Route("/documents/{doc_id:int}/telecharger", download, methods=["GET"]),
    Route("/documents/{doc_id:int}/original", original, methods=["GET"]),
    Route("/documents/{doc_id:int}/fdc", fdc, methods=["GET"]),
    Route("/documents/{doc_id:int}/signature-detachee", detached_signature, methods=["GET"]),
    Route("/documents/{doc_id:int}/annexes/{position:int}", annex, methods=["GET"]),
    Route("/documents/{doc_id:int}/verification", verification, methods=["GET"]),
    Route("/documents/{doc_id:int}/resume", summary, methods=["GET"]),
    *[Route(f"/documents/{{doc_id:int}}/{kind}", _action(kind), methods=["POST"])  # type: ignore[arg-type]
      for kind in ("viser", "rejeter", "refuser", "supprimer", "relancer")],
]
