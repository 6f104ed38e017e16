"""REST deposits: ``documents/v2/{siren}/{circuit_id}/upload`` (spec §2.6.2) and
``documents/ondemand/{siren}/upload`` (§2.6.3). Both answer the bare numeric id as ``text/plain`` (D1)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import PlainTextResponse

from parafe.domain.errors import E, ParafeError
from parafe.services.access.auth import Principal
from parafe.services.documents.deposit import DepositRequest, deposit
from parafe.services.ondemand import OnDemandRequest, deposit_on_demand

from .deps import (
    call,
    decode_label,
    error_responses,
    file_field,
    files_field,
    get_principal,
    multipart_body,
    read_form,
    small_part,
    text_field,
)

router = APIRouter(tags=["Dépôt"])
PrincipalDep = Annotated[Principal, Depends(get_principal)]
Siren = Annotated[str, Path(description="SIREN de l'abonné (obligatoire) - Entier, 9 carac.")]
ID_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"description": "L'identifiant unique du document (nombre, en texte brut).",
          "content": {"text/plain": {"schema": {"type": "string", "pattern": "^[0-9]+$"}}}}}


@router.post(
    "/documents/v2/{siren}/{circuit_id}/upload", response_class=PlainTextResponse,
    summary="Dépôt d'un document (upload)",
    description="Dépose un document dans le circuit `circuit_id` de l'abonné `siren` (§2.6.2). Le triplet "
    "circuit_id / label / nom_du_fichier doit être unique : pour déposer deux documents de même nom dans un "
    "circuit, utiliser des libellés différents. Un fichier `<nom>.zip` contenant `<nom>` et des annexes (et "
    "`METAS_<nom>.xml`) est déposé comme document principal et annexes (§2.7). Réponse : l'identifiant unique "
    "du document, en texte brut.",
    responses={**ID_RESPONSE, **error_responses(403, 404, 409, 413, 415, 422)},
    openapi_extra=multipart_body({
        "content": ("file", True, "(obligatoire) Fichier : le document à déposer."),
        "label": ("text", False, "255 carac. max : le « dossier » du document, utilisé pour trier et filtrer "
                                 "sur le portail (date du jour AAAA-MM-JJ s'il est absent)."),
        "comment": ("text", False, "255 carac. max : commentaire visible par tous les utilisateurs du "
                                   "circuit."),
        "emailDestinataire": ("text", False, "255 Max : un ou des emails séparés par une virgule ou un "
                                             "point-virgule ; une fois le document signé, un email avec un "
                                             "lien de téléchargement leur est envoyé."),
    }))
async def upload(request: Request, principal: PrincipalDep, siren: Siren,
                 circuit_id: Annotated[str, Path(description="(obligatoire) 255 carac. max")]) -> PlainTextResponse:
    form = await read_form(request)
    try:
        content = file_field(form, "content")
        if content is None:
            raise ParafeError(E.BAD_REQUEST, reason="le fichier « content » est obligatoire")
        req = DepositRequest(
            siren=siren, circuit=circuit_id, upload=content, label=decode_label(text_field(form, "label")),
            comment=text_field(form, "comment"),
            email_destinataire=text_field(form, "emailDestinataire", "email_destinataire"),
            email_cc=text_field(form, "email_CC", "email_cc", "emailCC"))
        result = await call(deposit, request.app.state.ctx, principal, req)
    finally:
        form.discard()
    return PlainTextResponse(str(result.document_id))


@router.post(
    "/documents/ondemand/{siren}/upload", response_class=PlainTextResponse,
    summary="Dépôt avec circuit à la volée (ondemand)",
    description="Dépose un document avec la définition de son circuit (§2.6.3, §5.2). `circuit` : JSON "
    "`{\"type\": \"BUREAUTIQUE_PDF\", \"steps\": [{\"step\": \"visa\", \"members\": [\"AAA@domain.fr\"]}, …]}` ; "
    "types BUREAUTIQUE_PDF, BUREAUTIQUE_XML, HELIOS_AVEC_TELETRANSMISSION, HELIOS_SANS_TELETRANSMISSION ; "
    "étapes Signature, Visa, serverSignature, OTPSignature. L'utilisateur qui dépose le document ne peut pas "
    "être signataire ou valideur sur le circuit. Erreurs : 100, 102, 111, 117 à 122 (§4.4). Réponse : "
    "l'identifiant unique du document, en texte brut.",
    responses={**ID_RESPONSE, **error_responses(403, 404, 409, 413, 415, 422)},
    openapi_extra=multipart_body({
        "doc": ("file", True, "(obligatoire) Fichier : le document."),
        "circuit": ("json", True, "(obligatoire) JSON : la définition du circuit."),
        "annexes": ("files", False, "Fichiers : les annexes, consultables par tous les acteurs renseignés "
                                    "dans la configuration du circuit."),
        "agents": ("text", False, "255 carac. max : emails séparés par une virgule, qui reçoivent le rôle "
                                  "AGENT sur le document."),
        "comment": ("text", False, "255 carac. max : commentaire."),
        "email_destinataire": ("text", False, "255 carac. max : emails séparés par une virgule ou un "
                                              "point-virgule ; un lien de téléchargement leur est envoyé "
                                              "après signature."),
        "email_CC": ("text", False, "255 Max : idem que email_destinataire mais en copie carbone."),
        "pictograms": ("file", False, "Fichier XML `<pictogrammes>` : position des pictogrammes de visa et "
                                      "de signature."),
    }))
async def upload_on_demand(request: Request, principal: PrincipalDep, siren: Siren) -> PlainTextResponse:
    form = await read_form(request)
    try:
        doc = file_field(form, "doc", "content", "document")
        if doc is None:
            raise ParafeError(E.BAD_REQUEST, reason="le fichier « doc » est obligatoire")
        circuit = text_field(form, "circuit")
        if circuit is None:
            raise ParafeError(E.CIRCUIT_DEF_ERROR, detail="the 'circuit' field is required")
        pictograms = small_part(form, "pictograms", required=False)
        req = OnDemandRequest(
            siren=siren, circuit=circuit, upload=doc,
            annexes=files_field(form, "annexes", "annexes[]", "annexe"),
            agents=text_field(form, "agents"), comment=text_field(form, "comment"),
            email_destinataire=text_field(form, "email_destinataire", "emailDestinataire", "destinataire"),
            email_cc=text_field(form, "email_CC", "email_cc", "emailCC"),
            pictograms=pictograms[0] if pictograms else None,
            label=decode_label(text_field(form, "label")))
        result = await call(deposit_on_demand, request.app.state.ctx, principal, req)
    finally:
        form.discard()
    return PlainTextResponse(str(result.document_id))
