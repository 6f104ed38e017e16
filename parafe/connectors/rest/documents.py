"""REST routes on documents (spec §2.6): thin adapters from HTTP to :mod:`parafe.services`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from parafe.connectors.multipart import parse_form
from parafe.domain.errors import E, ParafeError
from parafe.services import history as history_service
from parafe.services.auth import Principal
from parafe.services.documents import DepositRequest, deposit

from .deps import get_ctx, get_principal

router = APIRouter()
PrincipalDep = Annotated[Principal, Depends(get_principal)]


@router.post(
    "/documents/v2/{siren}/{circuit_id}/upload", response_class=PlainTextResponse,
    summary="Dépôt d'un document (upload)",
    description="Dépose un document dans le circuit `circuit_id` de l'abonné `siren` (spec §2.6.2). Champs "
    "multipart : `content` (obligatoire, le fichier), `label` (le dossier), `comment`, `emailDestinataire` "
    "(un ou des emails séparés par une virgule ou un point-virgule). Réponse : l'identifiant unique du "
    "document, en texte brut.")
async def upload(request: Request, principal: PrincipalDep,
                 siren: Annotated[str, Path(max_length=9)],
                 circuit_id: Annotated[str, Path(max_length=255)]) -> PlainTextResponse:
    ctx = get_ctx(request)
    form = await parse_form(request.headers.get("content-type"), request.stream(), ctx.tmp_dir,
                            ctx.settings.max_upload_bytes)
    try:
        content = form.file("content")
        if content is None:
            raise ParafeError(E.BAD_REQUEST, reason="le fichier « content » est obligatoire")
        req = DepositRequest(
            siren=siren, circuit=circuit_id, upload=content, label=form.text("label"),
            comment=form.text("comment"),
            email_destinataire=form.text("emailDestinataire") or form.text("email_destinataire"))
        result = await run_in_threadpool(deposit, ctx, principal, req)
    finally:
        form.discard()
    return PlainTextResponse(str(result.document_id))


@router.get("/documents/v2/{document_id}/history", summary="Historique d'un document",
            description="Retourne l'historique et l'état courant du document (spec §2.6.6) : liste de "
            "`{userFullname, date, stateName}`.")
async def history(request: Request, principal: PrincipalDep, document_id: str) -> list[dict[str, Any]]:
    return await run_in_threadpool(history_service.history, get_ctx(request), principal, document_id)
