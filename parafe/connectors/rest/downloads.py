"""REST downloads of a document: ``download`` (spec §2.6.1, with ``acquit`` / ``fdc`` → ZIP), ``getFdc``
(§2.6.7) and ``metas`` (§2.6.8, also under ``/v2``, D10)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from parafe.context import AppContext
from parafe.services.access.auth import Principal
from parafe.services.documents import downloads

from .deps import call, error_responses, get_principal, parse_bool, query_value

router = APIRouter(tags=["Téléchargement"])
PrincipalDep = Annotated[Principal, Depends(get_principal)]
DocId = Annotated[str, Path(description="(obligatoire) Entier, 9 carac. : l'identifiant retourné lors du "
                                        "dépôt.")]


def content_disposition(filename: str) -> str:
    ascii_name = filename.encode("ascii", "replace").decode("ascii").replace('"', "_").replace("?", "_")
    return f'attachment; filename="{ascii_name}"; filename*=UTF-8\'\'{quote(filename, safe="")}'


def content_response(ctx: AppContext, content: downloads.Content) -> Response:
    """A streamed (or zero-copy file) response; temporary files are removed once sent."""
    headers = {"Content-Disposition": content_disposition(content.filename)}
    local = content.local_file(ctx)
    if local is not None:
        task = BackgroundTask(content.cleanup) if content.path is not None else None
        return FileResponse(local, media_type=content.media_type, headers=headers, background=task,
                            stat_result=None)
    if content.data is not None:
        return Response(content.data, media_type=content.media_type, headers=headers)
    return StreamingResponse(content.chunks(ctx), media_type=content.media_type,
                             headers={**headers, "Content-Length": str(content.size)})


@router.get(
    "/documents/v2/{document_id}/download", summary="Téléchargement d'un document",
    description="Retourne le document (sa version signée s'il l'est, sinon l'original) (§2.6.1). `acquit` "
    "(Booléen) : pour un PES, ajoute l'acquittement de la DGFiP s'il existe. `fdc` (Booléen) : ajoute la fiche "
    "de circulation. Si aucun paramètre optionnel n'est vrai, le fichier est retourné ; sinon un contenu de "
    "type ZIP (le document sous son nom, `ACQUIT_<nom>`, `FDC_<nom>.pdf`).",
    responses={200: {"description": "Le fichier, ou un ZIP.",
                     "content": {"application/octet-stream": {}, "application/pdf": {}, "application/zip": {}}},
               **error_responses(404)})
async def download(
    request: Request, principal: PrincipalDep, document_id: DocId,
    acquit: Annotated[str | None, Query(description="Booléen (true/false) : ajoute l'acquittement Hélios.")]
    = None,
    fdc: Annotated[str | None, Query(description="Booléen (true/false) : ajoute la fiche de circulation "
                                                 "(`FdC` accepté).")] = None,
) -> Response:
    ctx: AppContext = request.app.state.ctx
    content = await call(downloads.download, ctx, principal, document_id,
                         acquit=parse_bool(query_value(request, "acquit")),
                         fdc=parse_bool(query_value(request, "fdc")), client="rest")
    return content_response(ctx, content)


@router.get(
    "/documents/v2/{document_id}/getFdc", summary="Fiche de circulation",
    description="Retourne la fiche de circulation du document au format PDF (§2.6.7).",
    responses={200: {"description": "La fiche de circulation.", "content": {"application/pdf": {}}},
               **error_responses(404)})
async def get_fdc(request: Request, principal: PrincipalDep, document_id: DocId) -> Response:
    ctx: AppContext = request.app.state.ctx
    return content_response(ctx, await call(downloads.get_fdc, ctx, principal, document_id))


METAS_DESCRIPTION = ("Retourne les métadonnées du document au format XML `meta-data-list` (§2.6.8, §6.1) : "
                     "métadonnées métier puis informations OTP.")


@router.get(
    "/documents/{document_id}/metas", summary="Métadonnées d'un document (getmetas)",
    description=METAS_DESCRIPTION,
    responses={200: {"description": "Les métadonnées.", "content": {"application/xml": {}}},
               **error_responses(404)})
async def get_metas(request: Request, principal: PrincipalDep, document_id: DocId) -> Response:
    data = await call(downloads.metas_xml, request.app.state.ctx, principal, document_id)
    return Response(data, media_type="application/xml")


@router.get(
    "/documents/v2/{document_id}/metas", summary="Métadonnées d'un document (getmetas, chemin /v2)",
    description=METAS_DESCRIPTION + " Même méthode que `/documents/{document_id}/metas` (DECISIONS D10).",
    responses={200: {"description": "Les métadonnées.", "content": {"application/xml": {}}},
               **error_responses(404)})
async def get_metas_v2(request: Request, principal: PrincipalDep, document_id: DocId) -> Response:
    return await get_metas(request, principal, document_id)
