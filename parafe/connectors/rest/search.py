"""REST search: ``documents/search`` (spec §2.6.20, DECISIONS D9, G-03). The criteria come as a JSON body
(GET, as the document shows, or POST) and/or as query parameters (the body wins)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from parafe.domain.errors import E, ParafeError
from parafe.services.access.auth import Principal
from parafe.services.documents import search as search_service

from .deps import call, error_responses, get_principal

router = APIRouter(tags=["Recherche"])
PrincipalDep = Annotated[Principal, Depends(get_principal)]
BODY_LIMIT = 1024 * 1024

_CRITERIA = {
    "siren": "(obligatoire) Entier, 9 carac.",
    "circuit": "255 carac. max : l'identifiant du circuit (`circuit-a-la-volee` : tous les circuits à la volée).",
    "label": "255 carac. max : le dossier dans lequel le document a été déposé.",
    "filename": "255 carac. max : le nom du fichier.",
    "state": "255 carac. max : code d'état (Prepared, SentForSign, Signed, Refused, SendForVisa, Approved, "
             "Disapproved, SentToHELIOS, Acknowledged, OTPvalidated, Filed, Archived), sans distinction de "
             "casse ; ne retourne que les documents ayant cet état.",
    "uploadBy": "255 carac. max : email du déposant.",
    "uploadAfter": "Date JJ/MM/AAAA (incluse).",
    "uploadBefore": "Date JJ/MM/AAAA (incluse).",
    "validateBy": "255 carac. max : email du valideur.",
    "validateAfter": "Date JJ/MM/AAAA (incluse).",
    "validateBefore": "Date JJ/MM/AAAA (incluse).",
    "signBy": "255 carac. max : email du signataire.",
    "signAfter": "Date JJ/MM/AAAA (incluse).",
    "signBefore": "Date JJ/MM/AAAA (incluse).",
}

BODY_SCHEMA = {
    "type": "object",
    "properties": {**{k: {"type": "string", "description": v} for k, v in _CRITERIA.items()},
                   "meta": {"type": "object", "additionalProperties": {"type": "string"},
                            "description": "json : métadonnées clé/valeur, toutes égales."}},
    "required": ["siren"],
}
EXAMPLE = {"siren": "123456789", "circuit": "bureautique", "state": "Signed", "uploadAfter": "31/12/2021",
           "uploadBefore": "31/12/2022", "meta": {"montant": "451200"}}

DESCRIPTION = ("Recherche de documents (§2.6.20), comme sur le portail. L'utilisateur doit avoir les droits sur "
               "le circuit en question ; un administrateur de l'abonné voit tous ses documents. Les critères "
               "sont passés dans un corps JSON (GET ou POST) ou en paramètres de requête. Réponse : la liste "
               "des identifiants des documents correspondant à la recherche.")
RESPONSES = {200: {"description": "Identifiants des documents.",
                   "content": {"application/json": {"example": [320073963, 320073961]}}},
             **error_responses(403, 404)}


async def _criteria(request: Request) -> search_service.SearchCriteria:
    values: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        if key.startswith("meta.") or key.startswith("meta["):
            values.setdefault("meta", {})[key[5:].strip("[]")] = value
        else:
            values[key] = value
    raw = await request.body()
    if len(raw) > BODY_LIMIT:
        raise ParafeError(E.FILE_TOO_LARGE)
    if raw.strip():
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise ParafeError(E.BAD_REQUEST, reason="le corps doit être un objet JSON") from None
        if not isinstance(body, dict):
            raise ParafeError(E.BAD_REQUEST, reason="le corps doit être un objet JSON")
        values.update(body)
    return search_service.SearchCriteria.from_wire(values)


@router.get("/documents/search", summary="Recherche de documents", description=DESCRIPTION,
            responses=RESPONSES,
            openapi_extra={"parameters": [
                {"name": name, "in": "query", "required": name == "siren", "schema": {"type": "string"},
                 "description": text} for name, text in _CRITERIA.items()]})
async def search_get(request: Request, principal: PrincipalDep) -> list[int]:
    criteria = await _criteria(request)
    return await call(search_service.search, request.app.state.ctx, principal, criteria)


@router.post("/documents/search", summary="Recherche de documents (corps JSON)", description=DESCRIPTION,
             responses=RESPONSES,
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": BODY_SCHEMA, "example": EXAMPLE}}}})
async def search_post(request: Request, principal: PrincipalDep) -> list[int]:
    criteria = await _criteria(request)
    return await call(search_service.search, request.app.state.ctx, principal, criteria)
