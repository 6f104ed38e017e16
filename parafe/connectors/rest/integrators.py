"""REST routes for integrators (issue 21, Parafe extensions): the caller's own compliance report and its
circuits (REST twin of the SOAP ``getCircuits``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from parafe.domain.errors import E, ParafeError
from parafe.services import circuits as circuit_service
from parafe.services.access.auth import Principal
from parafe.services.compliance import report as compliance_report

from .deps import call, error_responses, get_principal

router = APIRouter(tags=["Intégrateurs"])
PrincipalDep = Annotated[Principal, Depends(get_principal)]
Siren = Annotated[str, Path(description="SIREN de l'abonné (9 chiffres).")]


@router.get(
    "/compliance", summary="Rapport de conformité du certificat client (extension Parafe)",
    description="Rapport de conformité de l'appelant, identifié par son certificat client : comment son logiciel "
    "utilise les interfaces (interrogations, récupération et suppression des retours, dépôts refusés, fautes, "
    "certificat), règle par règle, avec le verdict (`conforme`, `à surveiller`, `non conforme`, `sans objet`), "
    "la référence dans le document d'interfaçage v3.4 et les derniers exemples (docs/integrators.md).",
    responses={200: {"description": "Le rapport (JSON)."}, **error_responses(403, 404)})
async def compliance(request: Request, principal: PrincipalDep) -> dict[str, Any]:
    if principal.method != "certificate" or not principal.fingerprint:
        raise ParafeError(E.COMPLIANCE_CERTIFICATE_REQUIRED, detail=f"authenticated by {principal.method}")
    found = await call(compliance_report.client_report, request.app.state.ctx, principal.fingerprint)
    if found is None:
        raise ParafeError(E.COMPLIANCE_CLIENT_UNKNOWN)
    return found.to_dict()


@router.get(
    "/documents/v2/{siren}/circuits", summary="Circuits de l'abonné (getCircuits, extension Parafe)",
    description="Les circuits de l'abonné sur lesquels l'appelant a un rôle (tous pour un administrateur), "
    "comme l'opération SOAP `getCircuits` : `[{id, name, type, signers, validators}]`.",
    responses={200: {"description": "Les circuits."}, **error_responses(403)})
async def circuits(request: Request, principal: PrincipalDep, siren: Siren) -> list[dict[str, Any]]:
    rows = await call(circuit_service.list_circuits, request.app.state.ctx, principal, siren)
    return [{"id": c.key, "name": c.name, "type": c.type,
             "signers": [{"username": p.username, "fullName": p.full_name} for p in c.signers],
             "validators": [{"username": p.username, "fullName": p.full_name} for p in c.validators]}
            for c in rows]
