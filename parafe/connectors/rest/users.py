"""REST user administration: ``exportUsersData`` (spec §2.6.19) and ``synchronization/{siren}/users``
(§2.6.21); DECISIONS D17."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from parafe.domain.errors import E, ParafeError
from parafe.services.access.auth import Principal
from parafe.services.admin import users

from .deps import call, error_responses, get_principal

router = APIRouter(tags=["Administration des utilisateurs"])
PrincipalDep = Annotated[Principal, Depends(get_principal)]
BODY_LIMIT = 16 * 1024 * 1024

EXPORT_EXAMPLE = {"users": [{
    "email": "agent@demo.parafe.test", "nom": "Agent", "prenom": "Alice", "authenticationType": "CERTIFICAT",
    "admin": False,
    "circuits": [{"circuitId": "bureautique", "circuitName": "Bureautique", "role": "agent",
                  "habilitations": [{"profil": "CERTIFICAT", "role": "agent"}]}],
    "groups": ["Direction générale"]}]}

SYNC_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "authenticationType": {"type": "string", "enum": ["CERTIFICAT", "BASIC"]},
            "email": {"type": "string", "format": "email"},
            "firstName": {"type": "string"},
            "lastName": {"type": "string"},
            "groups": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["authenticationType", "email", "firstName", "lastName", "groups"],
    },
}


@router.get(
    "/exportUsersData", summary="Export des utilisateurs (exportUsersData)",
    description="Liste les utilisateurs de l'abonné, leurs affectations aux circuits, leur rôle dans chaque "
    "circuit et leurs groupes (§2.6.19, §2.5.21). Réservé aux administrateurs de l'abonné (en-tête "
    "`Authorization: Basic …` ou certificat) et à ses agents (DECISIONS D17).",
    responses={200: {"description": "Les utilisateurs.",
                     "content": {"application/json": {"example": EXPORT_EXAMPLE}}},
               **error_responses(403)})
async def export_users_data(
    request: Request, principal: PrincipalDep,
    siren: Annotated[str, Query(description="(obligatoire) Entier, 9 carac.")],
) -> dict[str, Any]:
    return await call(users.export_users, request.app.state.ctx, principal, siren)


@router.put(
    "/synchronization/{siren}/users", summary="Synchronisation des utilisateurs (synchronizeUsers)",
    description="Synchronise les utilisateurs de l'abonné (§2.6.21) : un utilisateur présent dans le JSON et "
    "dans le parapheur est mis à jour, un utilisateur présent uniquement dans le JSON est créé, un utilisateur "
    "présent uniquement dans le parapheur est supprimé (désactivé). Tous les champs sont obligatoires. "
    "Réservé aux administrateurs de l'abonné (Basic ou certificat d'un administrateur). Réponse : rien si "
    "tout s'est bien passé, sinon la liste des utilisateurs problématiques et leurs erreurs "
    "(`{\"email\": \"raison\"}`).",
    responses={200: {"description": "Corps vide si tout s'est bien passé, sinon les erreurs par utilisateur.",
                     "content": {"application/json": {"example": {"x@y": "adresse électronique invalide"}}}},
               **error_responses(403)},
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": SYNC_SCHEMA}}}})
async def synchronize_users(
    request: Request, principal: PrincipalDep,
    siren: Annotated[str, Path(description="(obligatoire) Entier, 9 carac.")],
) -> Response:
    raw = await request.body()
    if len(raw) > BODY_LIMIT:
        raise ParafeError(E.FILE_TOO_LARGE)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ParafeError(E.BAD_REQUEST, reason="le corps doit être un document JSON") from None
    errors = await call(users.synchronize_users, request.app.state.ctx, principal, siren, body)
    if not errors:
        return Response(status_code=200)
    return JSONResponse(errors)
