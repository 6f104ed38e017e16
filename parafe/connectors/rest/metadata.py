"""REST metadata definition: ``documents/v2/{id}/metadata/define`` (uploadMeta, spec §2.6.4) and
``documents/v2/otp/{id}/metadata/define`` (uploadOTPInformation, §2.6.5). Both answer ``200`` with an empty
body (G-49; Maarch checks for exactly 200)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from parafe.services.access.auth import Principal
from parafe.services.documents import metadata

from .deps import call, error_responses, get_principal, multipart_body, read_form, small_part

router = APIRouter(tags=["Métadonnées"])
PrincipalDep = Annotated[Principal, Depends(get_principal)]
DocId = Annotated[str, Path(description="Document_ID (obligatoire) - Entier, 9 carac.")]


@router.put(
    "/documents/v2/{document_id}/metadata/define", summary="Définition des métadonnées (uploadMeta)",
    description="Définit les métadonnées du document (§2.6.4) à partir d'un fichier XML `meta-data-list` "
    "(§6.1, §6.2). Le circuit doit contenir une étape « Définition des métadonnées », « Digiposte » ou "
    "« Maileva » et le document être à l'état 'Prêt à définir les métadonnées'.",
    responses={200: {"description": "Métadonnées définies (corps vide)."}, **error_responses(403, 404, 409, 422)},
    openapi_extra=multipart_body({"meta": ("file", True, "(obligatoire) Fichier : les métadonnées au format "
                                                         "XML.")}))
async def define_metadata(request: Request, principal: PrincipalDep, document_id: DocId) -> Response:
    form = await read_form(request)
    try:
        data, _name = small_part(form, "meta") or (b"", None)
        await call(metadata.upload_meta, request.app.state.ctx, principal, document_id, data)
    finally:
        form.discard()
    return Response(status_code=200)


@router.put(
    "/documents/v2/otp/{document_id}/metadata/define",
    summary="Définition des informations OTP (uploadOTPInformation)",
    description="Définit les informations des signataires OTP du document (§2.6.5) : fichier XML "
    "`meta-data-list` avec `OTP_firstname_i`, `OTP_lastname_i`, `OTP_phonenumber_i`, `OTP_email_i` pour chaque "
    "étape OTP i (0 pour la première). Tout nom de fichier est accepté (DECISIONS D18).",
    responses={200: {"description": "Informations OTP définies (corps vide)."},
               **error_responses(403, 404, 409, 422)},
    openapi_extra=multipart_body({"otpinformation": ("file", True, "(obligatoire) Fichier : les informations "
                                                                   "OTP au format XML (« METAS_XXX.xml »).")}))
async def define_otp_information(request: Request, principal: PrincipalDep, document_id: DocId) -> Response:
    form = await read_form(request)
    try:
        part = small_part(form, "otpinformation", required=False) or small_part(form, "meta")
        assert part is not None
        data, name = part
        await call(metadata.upload_otp_information, request.app.state.ctx, principal, document_id, data,
                   filename=name, name_rule="any")
    finally:
        form.discard()
    return Response(status_code=200)
