"""REST routes on one document: ``history`` (spec §2.6.6), ``DELETE`` (§2.6.9, D14) and ``comments/refusal``
(§2.6.16, D20)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from parafe.services.access.auth import Principal
from parafe.services.documents import history as history_service
from parafe.services.documents import lifecycle

from .deps import call, error_responses, get_principal

router = APIRouter(tags=["Suivi des documents"])
PrincipalDep = Annotated[Principal, Depends(get_principal)]
DocId = Annotated[str, Path(description="Document_ID (obligatoire) - Entier, 9 carac. : l'identifiant "
                                        "retourné lors du dépôt.")]

HISTORY_EXAMPLE = [
    {"userFullname": "Marc Antiome", "date": "2019-12-11T09:41:10.000Z", "stateName": "Préparé"},
    {"userFullname": "boucle sms", "date": "2019-12-11T09:41:31.000Z", "stateName": "Informations OTP définies"},
]


@router.get(
    "/documents/v2/{document_id}/history", summary="Historique d'un document",
    description="Retourne l'historique et l'état courant du document (§2.6.6) : liste de `{userFullname, date, "
    "stateName}` (date ISO 8601 UTC avec millisecondes). Quand `userFullname` vaut « boucle sms » ou "
    "« parapheur parapheur », l'opération a été réalisée automatiquement.",
    responses={200: {"description": "Historique, du plus ancien au plus récent.",
                     "content": {"application/json": {"example": HISTORY_EXAMPLE}}},
               **error_responses(404)})
async def history(request: Request, principal: PrincipalDep, document_id: DocId) -> list[dict[str, Any]]:
    return await call(history_service.history, request.app.state.ctx, principal, document_id)


@router.delete(
    "/documents/v2/{document_id}", summary="Suppression d'un document",
    description="Supprime le document (§2.6.9). Autorisé uniquement dans les états Préparé, Refusé ou Rejeté "
    "(Visa désapprouvé). Attention, cette suppression est définitive. Réponse : 200 sans contenu.",
    responses={200: {"description": "Document supprimé (corps vide)."}, **error_responses(403, 404, 409)})
async def delete_document(request: Request, principal: PrincipalDep, document_id: DocId) -> Response:
    await call(lifecycle.delete, request.app.state.ctx, principal, document_id)
    return Response(status_code=200)


@router.get(
    "/documents/v2/{document_id}/comments/refusal", summary="Message de refus",
    description="Retourne le message de refus renseigné par un signataire lors d'un refus de signature, ou le "
    "message de rejet d'un valideur (§2.6.16) : `{\"comment\": \"…\"}`. Pour un document ni refusé ni rejeté : "
    "`{\"comment\": null}`.",
    responses={200: {"description": "Le message de refus, ou null.",
                     "content": {"application/json": {"example": {"comment": "Montant erroné"}}}},
               **error_responses(404)})
async def refusal_comment(request: Request, principal: PrincipalDep, document_id: DocId) -> dict[str, Any]:
    comment = await call(lifecycle.refusal_message, request.app.state.ctx, principal, document_id)
    return {"comment": comment}
