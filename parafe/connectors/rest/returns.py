"""REST returns (spec §2.6.10–§2.6.15, D11): Helios acknowledgements, PES Retour and Chorus flows, their
downloads and their "remaining" lists."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from parafe.services.access.auth import Principal
from parafe.services.documents import signed_fetches
from parafe.services.helios import returns

from .deps import call, error_responses, get_principal
from .downloads import content_disposition

router = APIRouter(tags=["Retours"])
PrincipalDep = Annotated[Principal, Depends(get_principal)]
DocId = Annotated[str, Path(description="Document_ID (obligatoire) - Entier, 9 carac. : l'identifiant obtenu "
                                        "par la liste des retours restants.")]
Siren = Annotated[str, Path(description="(obligatoire) Entier, 9 carac.")]

XML_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"description": "Le fichier XML.", "content": {"application/xml": {}}}}
LIST_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"description": "Liste d'identifiants.",
          "content": {"application/json": {"example": [320073963, 320073961]}}}}

async def _download(request: Request, principal: Principal, document_id: str,
                    kind: returns.ReturnKind) -> Response:
    content = await call(returns.download, request.app.state.ctx, principal, document_id, kind)
    return Response(content.data, media_type=content.media_type,
                    headers={"Content-Disposition": content_disposition(content.name)})


async def _remaining(request: Request, principal: Principal, siren: str, kind: returns.ReturnKind) -> list[int]:
    return await call(returns.remaining, request.app.state.ctx, principal, siren, kind)


@router.get("/documents/v2/{document_id}/ack/download", summary="Téléchargement de l'acquittement Hélios",
            description="Retourne l'acquittement HÉLIOS du document au format XML (§2.6.10). L'identifiant "
            "quitte la liste des acquittements restants une fois téléchargé.",
            responses={**XML_RESPONSE, **error_responses(404)})
async def download_ack(request: Request, principal: PrincipalDep, document_id: DocId) -> Response:
    return await _download(request, principal, document_id, "ack")


@router.get("/documents/v2/{document_id}/pes-retour/download", summary="Téléchargement d'un PES Retour",
            description="Retourne le PES Retour au format XML (§2.6.11).",
            responses={**XML_RESPONSE, **error_responses(404)})
async def download_pes_retour(request: Request, principal: PrincipalDep, document_id: DocId) -> Response:
    return await _download(request, principal, document_id, "pes_retour")


@router.get("/documents/v2/{document_id}/chorus/download", summary="Téléchargement d'un fichier Chorus",
            description="Retourne le fichier Chorus au format XML (§2.6.12).",
            responses={**XML_RESPONSE, **error_responses(404)})
async def download_chorus(request: Request, principal: PrincipalDep, document_id: DocId) -> Response:
    return await _download(request, principal, document_id, "chorus")


@router.get("/documents/v2/{siren}/ack/remaining", summary="Acquittements Hélios restants",
            description="Liste des documents dont l'acquittement HÉLIOS n'a pas encore été récupéré via WS "
            "(§2.6.13). Ne pas appeler plus d'une fois toutes les 30 minutes.",
            responses={**LIST_RESPONSE, **error_responses(403)})
async def remaining_ack(request: Request, principal: PrincipalDep, siren: Siren) -> list[int]:
    return await _remaining(request, principal, siren, "ack")


@router.get("/documents/v2/{siren}/chorus/remaining", summary="Fichiers Chorus restants",
            description="Liste des documents CHORUS non encore récupérés (§2.6.14).",
            responses={**LIST_RESPONSE, **error_responses(403)})
async def remaining_chorus(request: Request, principal: PrincipalDep, siren: Siren) -> list[int]:
    return await _remaining(request, principal, siren, "chorus")


@router.get("/documents/v2/{siren}/pes-retour/remaining", summary="PES Retour restants",
            description="Liste des PES RETOUR non encore récupérés (§2.6.15).",
            responses={**LIST_RESPONSE, **error_responses(403)})
async def remaining_pes_retour(request: Request, principal: PrincipalDep, siren: Siren) -> list[int]:
    return await _remaining(request, principal, siren, "pes_retour")


@router.get("/documents/v2/{siren}/signed/remaining", summary="Documents signés restant à récupérer",
            description="Équivalent REST de l'opération SOAP `listRemainingSignedDocs` (extension Parafe) : les "
            "documents signés de l'abonné (du circuit `circuitId` s'il est donné), quel que soit leur état "
            "actuel (Signé, Classé, Archivé…), qu'aucun client de l'abonné n'a encore téléchargés (REST "
            "`download`, SOAP `download` ou WebDAV `out/`). Un document téléchargé quitte la liste.",
            responses={**LIST_RESPONSE, **error_responses(403, 404)})
async def remaining_signed(
    request: Request, principal: PrincipalDep, siren: Siren,
    circuit_id: Annotated[str | None, Query(alias="circuitId", description="Identifiant du circuit (facultatif).")]
    = None,
) -> list[int]:
    return await call(signed_fetches.remaining, request.app.state.ctx, principal, siren, circuit_id)
