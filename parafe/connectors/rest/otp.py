"""REST OTP routes: ``documents/v2/otp/url`` (getSmsUrl multi-ids, spec §2.6.17) and
``documents/v2/otp/{siren}/{circuit_id}/upload`` (uploadOTP, §2.6.18). Included before the generic
``documents/v2/{id}/…`` routes (§4.1 routing note)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from parafe.domain.errors import E, ParafeError
from parafe.services.access.auth import Principal
from parafe.services.documents.deposit import DepositRequest
from parafe.services.otp import links as otp_links

from .deps import (
    base_url,
    call,
    decode_label,
    error_responses,
    file_field,
    get_principal,
    multipart_body,
    read_form,
    small_part,
    text_field,
)

router = APIRouter(tags=["OTP"])
PrincipalDep = Annotated[Principal, Depends(get_principal)]

URL_EXAMPLE = {"url": "https://parapheur.example.fr/boucle-sms/documentView?id=VlwFd9b6SJIRtFJnFDhObpYr8dBSFGEw"}


@router.get(
    "/documents/v2/otp/url", summary="URL de signature OTP (getSmsUrl, plusieurs documents)",
    description="Retourne une URL de signature OTP pour un ou plusieurs documents (§2.6.17) : plusieurs "
    "fichiers peuvent être signés avec une seule URL et un seul code SMS, à condition que tous les fichiers "
    "concernés possèdent exactement les mêmes métadonnées (email et/ou numéro de téléphone).",
    responses={200: {"description": "L'URL.", "content": {"application/json": {"example": URL_EXAMPLE}}},
               **error_responses(403, 404, 409)})
async def otp_url(
    request: Request, principal: PrincipalDep,
    id: Annotated[list[str], Query(description="Document_IDs (obligatoire) - Entier, 9 carac. ; "
                                               "paramètre répété pour plusieurs documents.")],
) -> dict[str, Any]:
    url = await call(otp_links.otp_url, request.app.state.ctx, principal, id, base_url=base_url(request))
    return {"url": url}


@router.post(
    "/documents/v2/otp/{siren}/{circuit_id}/upload", summary="Dépôt pour signature OTP (uploadOTP)",
    description="Dépose un document dans un circuit qui commence par une signature OTP, avec les "
    "informations OTP (§2.6.18, §6.3) ; le fichier de métadonnées doit être nommé « METAS_XXX.xml », sans quoi "
    "le dépôt est rejeté. Réponse : `{\"id\": …, \"url\": …}`.",
    responses={200: {"description": "L'identifiant et l'URL de signature.",
                     "content": {"application/json": {"example": {"id": 320074168, **URL_EXAMPLE}}}},
               **error_responses(403, 404, 409, 413, 415, 422)},
    openapi_extra=multipart_body({
        "document": ("file", True, "(obligatoire) Fichier : le document."),
        "meta": ("file", True, "(obligatoire) Fichier : les informations OTP (« METAS_XXX.xml »)."),
        "label": ("text", False, "255 carac. max : le dossier."),
        "comment": ("text", False, "255 carac. max : commentaire."),
        "referer": ("text", False, "255 carac. max : l'URL vers laquelle votre signataire sera redirigé "
                                   "après signature OTP."),
    }))
async def otp_upload(request: Request, principal: PrincipalDep,
                     siren: Annotated[str, Path(description="(obligatoire) Entier, 9 carac.")],
                     circuit_id: Annotated[str, Path(description="(obligatoire) 255 carac. max")]) -> dict[str, Any]:
    form = await read_form(request)
    try:
        document = file_field(form, "document", "content", "doc")
        if document is None:
            raise ParafeError(E.BAD_REQUEST, reason="le fichier « document » est obligatoire")
        meta = small_part(form, "meta")
        assert meta is not None
        req = DepositRequest(siren=siren, circuit=circuit_id, upload=document,
                             label=decode_label(text_field(form, "label")), comment=text_field(form, "comment"))
        result = await call(otp_links.otp_upload, request.app.state.ctx, principal, req, meta[0],
                            otp_filename=meta[1], name_rule="metas",
                            referer=text_field(form, "referer", "referrer", "redirectionURL"),
                            base_url=base_url(request))
    finally:
        form.discard()
    return {"id": result.document_id, "url": result.url}


SMS_EXAMPLE = [{
    "id": 12, "circuitId": "otp", "receiver": "+33612345678", "provider": "ovh", "status": "delivered",
    "otpStatus": "done", "creationDatetime": "2026-12-07T09:41:10.000Z", "sentAt": "2026-12-07T09:41:11.000Z",
    "deliveredAt": "2026-12-07T09:41:15.000Z", "messageLength": 70, "numberOfSms": 1, "encoding": "GSM-7",
    "error": None}]


@router.get(
    "/documents/v2/{siren}/sms/history", summary="Historique des SMS (getSMSHistory)",
    description="Extension Parafe (le §2.6 n'a pas d'équivalent REST de getSMSHistory, G-36) : les SMS de code "
    "OTP envoyés pour les circuits de l'abonné, sans leur texte, avec le fournisseur, l'état de l'envoi "
    "(`queued`, `sent`, `delivered`, `failed`), les dates d'envoi et de remise, la longueur du message et le "
    "nombre de SMS facturés. Paramètres comme en SOAP (§2.5.20) : `circuitId`, `date` (AAAA-MM, 00 = toute "
    "l'année), `status` (`pending`, `waiting`, `done`, `not_…` : état du code OTP) et `limit` (0 = tout).",
    responses={200: {"description": "Les SMS, du plus ancien au plus récent.",
                     "content": {"application/json": {"example": SMS_EXAMPLE}}},
               **error_responses(400, 403, 404)})
async def sms_history(
    request: Request, principal: PrincipalDep,
    siren: Annotated[str, Path(description="SIREN de l'abonné (obligatoire) - 9 carac.")],
    circuitId: Annotated[str | None, Query(description="Circuit (facultatif).")] = None,
    date: Annotated[str | None, Query(description="Mois AAAA-MM (00 = toute l'année).")] = None,
    status: Annotated[str | None, Query(description="pending, waiting, done, not_pending…")] = None,
    limit: Annotated[str | None, Query(description="Nombre maximal d'entrées, 0 = tout.")] = None,
) -> list[dict[str, Any]]:
    from parafe.services import circuits
    from parafe.services.documents.history import iso_ms

    entries = await call(circuits.sms_history, request.app.state.ctx, principal, siren, circuitId, date,
                         status=status, limit=limit)
    return [{
        "id": e.id, "circuitId": e.circuit, "receiver": e.receiver, "provider": e.provider, "status": e.delivery,
        "otpStatus": e.status, "creationDatetime": iso_ms(e.created_at),
        "sentAt": iso_ms(e.sent_at) if e.sent_at else None,
        "deliveredAt": iso_ms(e.delivered_at) if e.delivered_at else None,
        "messageLength": e.message_length, "numberOfSms": e.segments, "encoding": e.encoding, "error": e.error}
        for e in entries]
