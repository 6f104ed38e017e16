"""The eight OSS web-service methods (spec §3.5, API-REFERENCE §8.3, DECISIONS D7), thin adapters to
:mod:`parafe.services.oss.operations`.

POST methods take ``multipart/form-data`` with the document's field names (matched case-insensitively);
``generateSAUrl`` / ``generateSMSUrl`` also accept ``application/x-www-form-urlencoded``, a JSON body or the
query string. The caller is an OSS agent authenticated by its client certificate.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse

from parafe.connectors.rest.deps import (
    SMALL_PART_LIMIT,
    base_url,
    call,
    error_responses,
    get_principal,
    multipart_body,
    parse_bool,
    read_form,
)
from parafe.connectors.rest.downloads import content_disposition
from parafe.context import AppContext
from parafe.domain.errors import E, ParafeError
from parafe.services.access.auth import Principal
from parafe.services.oss import access as oss_access
from parafe.services.oss import model as oss_model
from parafe.services.oss import operations as oss
from parafe.services.oss import statistics as oss_statistics
from parafe.services.otp.identity import SignerIdentity
from parafe.storage.spool import CHUNK_SIZE
from parafe.web.multipart import FormData

router = APIRouter(tags=["OSS"])
PrincipalDep = Annotated[Principal, Depends(get_principal)]
DocId = Annotated[str, Path(description="L'identifiant unique du document (retourné au dépôt).")]
DOC_HEADER = "X-FAST-document-id"
PAGE_PATH = "/signature/"


def _ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


def page_url(request: Request, token: str) -> str:
    """The public signing page: ``<public URL or request base>/oss/signature/<token>``."""
    ctx = _ctx(request)
    base = (ctx.settings.public_url or base_url(request)).rstrip("/")
    return f"{base}{request.scope.get('root_path', '') or '/oss'}{PAGE_PATH}{token}"


def _text(form: FormData, name: str) -> str | None:
    """A text field (exact name, else any case), or a small file part read as UTF-8."""
    wanted = name.lower()
    names = [name] + [n for n in form.fields if n != name and n.lower() == wanted]
    for key in names:
        for value in form.fields.get(key, []):
            if value.strip():
                return value.strip()
    for key in [name] + [n for n in form.files if n != name and n.lower() == wanted]:
        for upload in form.files.get(key, []):
            if 0 < upload.size <= SMALL_PART_LIMIT:
                return upload.path.read_bytes().decode("utf-8", "replace").strip()
    return None


def _files(form: FormData, name: str) -> list[Any]:
    wanted = name.lower()
    return [u for key, uploads in form.files.items() if key.lower() == wanted for u in uploads]


def _meta(form: FormData) -> bytes | None:
    for upload in _files(form, "metaFile"):
        if upload.size > SMALL_PART_LIMIT:
            raise ParafeError(E.FILE_TOO_LARGE, detail="metaFile larger than 4 MiB")
        return upload.path.read_bytes()
    value = next((v for k, vs in form.fields.items() if k.lower() == "metafile" for v in vs if v.strip()), None)
    return value.encode("utf-8") if value is not None else None


def _upload_request(form: FormData, mode: str) -> oss_model.UploadRequest:
    uploads = _files(form, "dataFile")
    filename = _text(form, "filename")
    files = [oss_model.OssFile(u, filename if len(uploads) == 1 else None) for u in uploads]
    return oss_model.UploadRequest(
        workflow=_text(form, "workflowId") or "", mode=mode, files=files, meta=_meta(form),
        redirection_url=_text(form, "redirectionUrl"), pictogramme=_text(form, "pictogramme"),
        json_pictogram=_text(form, "jsonPictogram"),
        signer=SignerIdentity(_text(form, "firstname"), _text(form, "lastname"), _text(form, "email"),
                              _text(form, "phoneNumber")),
        asynchronous=parse_bool(_text(form, "asynchrone") or _text(form, "async")))


async def _with_form(request: Request, mode: str, fn: Any, principal: Principal) -> oss_model.Uploaded:
    form = await read_form(request)
    try:
        result: oss_model.Uploaded = await call(fn, _ctx(request), principal, _upload_request(form, mode))
        return result
    finally:
        form.discard()


_UPLOAD_FIELDS: dict[str, tuple[str, bool, str]] = {
    "workflowId": ("text", True, "L'identifiant unique du workflow."),
    "dataFile": ("file", True, "Le document à signer (PDF)."),
    "filename": ("text", False, "Le nom du document (défaut : le nom du fichier envoyé)."),
    "metaFile": ("file", False, "Le fichier de métadonnées (XML `meta-data-list` ou JSON)."),
}
_PAGE_RESPONSE: dict[int | str, dict[str, Any]] = {200: {
    "description": "`url` : la page de signature où envoyer le signataire ; `docId` : l'identifiant du document.",
    "content": {"application/json": {"example": {"url": "https://parafe.example.fr/oss/signature/…",
                                                 "docId": 500000001}}}}}


@router.post(
    "/signServerDoc", summary="signServerDoc — signature serveur d'un document (§3.5.1)",
    description="Signe le document avec le certificat serveur du workflow et retourne le PDF signé, avec "
    "l'en-tête `X-FAST-document-id`. `pictogramme` : `x,y[,page]` en centimètres depuis le coin inférieur "
    "gauche (page négative : depuis la fin). `asynchrone=true` : réponse immédiate sans corps (l'en-tête "
    "seul) ; le document signé s'obtient ensuite par `downloadDoc` (`signatureDate` de `docInformation`).",
    openapi_extra=multipart_body({**_UPLOAD_FIELDS,
                                  "pictogramme": ("text", False, "Position du pictogramme : x,y[,page] (cm)."),
                                  "asynchrone": ("text", False, "true : signature asynchrone.")}),
    responses={200: {"description": "Le PDF signé (vide si asynchrone).", "content": {"application/pdf": {}}},
               **error_responses(403, 404, 409, 413, 415, 422)})
async def sign_server_doc(request: Request, principal: PrincipalDep) -> Response:
    result = await _with_form(request, "server", oss.sign_server_doc, principal)
    headers = {DOC_HEADER: str(result.ids[0])}
    if result.signed is None:
        return Response(status_code=200, headers=headers)
    headers["Content-Disposition"] = content_disposition(result.filename or "document.pdf")
    return Response(result.signed, media_type="application/pdf", headers=headers)


def _page_response(request: Request, result: oss_model.Uploaded) -> JSONResponse:
    assert result.token is not None
    body: dict[str, Any] = {"url": page_url(request, result.token), "docId": result.ids[0]}
    if len(result.ids) > 1:
        body["docIds"] = result.ids
    return JSONResponse(body, headers={DOC_HEADER: str(result.ids[0])})


@router.post(
    "/uploadSA", summary="uploadSA — dépôt pour une signature après authentification par certificat (§3.5.2)",
    openapi_extra=multipart_body({**_UPLOAD_FIELDS, "redirectionUrl": (
        "text", False, "L'URL où rediriger le signataire après la signature ou le refus.")}),
    responses={**_PAGE_RESPONSE, **error_responses(403, 404, 409, 413, 415, 422)})
async def upload_sa(request: Request, principal: PrincipalDep) -> JSONResponse:
    return _page_response(request, await _with_form(request, "sa", oss.upload_for_page, principal))


@router.post(
    "/uploadSMS", summary="uploadSMS — dépôt pour une signature après code SMS ou courriel (§3.5.3)",
    description="Le signataire est décrit dans `metaFile` (`firstname`, `lastname`, `email`, `phoneNumber`, ou "
    "`OTP_firstname_0`… comme au §6.3) ou par les champs du même nom. Le code part par SMS si un numéro est "
    "connu, sinon par courriel.",
    openapi_extra=multipart_body({**_UPLOAD_FIELDS, "redirectionUrl": (
        "text", False, "L'URL où rediriger le signataire après la signature ou le refus.")}),
    responses={**_PAGE_RESPONSE, **error_responses(403, 404, 409, 413, 415, 422)})
async def upload_sms(request: Request, principal: PrincipalDep) -> JSONResponse:
    return _page_response(request, await _with_form(request, "sms", oss.upload_for_page, principal))


@router.post(
    "/uploadSGC", summary="uploadSGC — dépôt pour une signature avec certificat généré à la volée (§3.5.4)",
    description="`dataFile` peut être répété (signature par lot : une page, un code, un certificat). "
    "`jsonPictogram` : `{\"x\", \"y\", \"width\", \"height\", \"page\"}` en points PDF depuis le coin inférieur "
    "gauche.",
    openapi_extra=multipart_body({
        "workflowId": ("text", True, "L'identifiant unique du workflow."),
        "dataFile": ("files", True, "Le ou les documents à signer (PDF)."),
        "firstname": ("text", True, "Le prénom du signataire."), "lastname": ("text", True, "Son nom."),
        "email": ("text", True, "Son courriel."), "phoneNumber": ("text", False, "Son téléphone (code par SMS)."),
        "redirectionUrl": ("text", False, "L'URL de retour."),
        "jsonPictogram": ("json", False, "Position et taille du pictogramme (points)."),
    }),
    responses={**_PAGE_RESPONSE, **error_responses(403, 404, 409, 413, 415, 422)})
async def upload_sgc(request: Request, principal: PrincipalDep) -> JSONResponse:
    return _page_response(request, await _with_form(request, "sgc", oss.upload_for_page, principal))


@router.get(
    "/downloadDoc/{document_id}", summary="downloadDoc — téléchargement du document, signé ou non (§3.5.5)",
    responses={200: {"description": "Le document.", "content": {"application/pdf": {}}},
               **error_responses(404, 410)})
async def download_doc(request: Request, principal: PrincipalDep, document_id: DocId) -> Response:
    ctx = _ctx(request)
    content = await call(oss.download_doc, ctx, principal, document_id)
    headers = {"Content-Disposition": content_disposition(content.filename), DOC_HEADER: str(oss_access.parse_id(
        document_id))}
    local = ctx.store.local_path(content.sha256)
    if local is not None:
        return FileResponse(local, media_type="application/pdf", headers=headers)

    def chunks() -> Any:
        with ctx.store.open(content.sha256) as fh:
            while block := fh.read(CHUNK_SIZE):
                yield block

    return StreamingResponse(chunks(), media_type="application/pdf",
                             headers={**headers, "Content-Length": str(content.size)})


@router.get(
    "/docInformation/{document_id}", summary="docInformation — informations sur un document (§3.5.6)",
    description="Champs (noms du document) : `id`, `filename`, `creationDate`, `signatureDate`, `purgeDate`, "
    "`archiveDate`, `downloadDate`, `dateToPurge`, `metadate` (le fichier de métadonnées en base64), "
    "`redirectionURL`, `logs` (journal d'authentification par certificat), `filesize`, `smsexpirationDate`, "
    "`SMSRemainingTriesNb`, `Smsdate`. Dates ISO 8601 UTC.",
    responses={200: {"description": "Les informations.", "content": {"application/json": {}}},
               **error_responses(404)})
async def doc_information(request: Request, principal: PrincipalDep, document_id: DocId) -> JSONResponse:
    return JSONResponse(await call(oss.doc_information, _ctx(request), principal, document_id))


async def _params(request: Request) -> dict[str, list[str]]:
    """Parameters of the batch-URL methods, whatever the body's encoding (plus the query string)."""
    params: dict[str, list[str]] = {}
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        form = await read_form(request)
        try:
            for name, values in form.fields.items():
                params.setdefault(name.lower(), []).extend(values)
        finally:
            form.discard()
    elif ctype in ("application/x-www-form-urlencoded", "application/json", "text/plain", ""):
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > 64 * 1024:
                raise ParafeError(E.BAD_REQUEST, reason="corps trop long")
        text = body.decode("utf-8", "replace").strip()
        if ctype == "application/json" or text.startswith("{"):
            try:
                obj = json.loads(text) if text else {}
            except ValueError:
                raise ParafeError(E.BAD_REQUEST, reason="JSON invalide") from None
            if not isinstance(obj, dict):
                raise ParafeError(E.BAD_REQUEST, reason="objet JSON attendu")
            for name, value in obj.items():
                values = value if isinstance(value, list) else [value]
                params.setdefault(str(name).lower(), []).extend(str(v) for v in values if v is not None)
        else:
            for name, value in parse_qsl(text, keep_blank_values=True):
                params.setdefault(name.lower(), []).append(value)
    else:
        raise ParafeError(E.BAD_REQUEST, reason="corps multipart/form-data attendu")
    for name, value in request.query_params.multi_items():
        params.setdefault(name.lower(), []).append(value)
    return params


async def _generate(request: Request, principal: Principal, kind: str) -> JSONResponse:
    params = await _params(request)
    ids = oss.parse_ids(params.get("ids"))
    url = next((v for v in params.get("url", []) if v.strip()), None)
    found, token = await call(oss.generate_url, _ctx(request), principal, kind, ids, url)
    return JSONResponse({"Ids": found, "url": page_url(request, token)})


_GENERATE_BODY = multipart_body({
    "ids": ("text", True, "Identifiants séparés par des virgules, par ex. `500000001, 500000002`."),
    "url": ("text", False, "L'URL où rediriger le signataire après la signature."),
})
_GENERATE_RESPONSE: dict[int | str, dict[str, Any]] = {200: {
    "description": "`Ids` : la liste des identifiants ; `url` : la page de signature.",
    "content": {"application/json": {"example": {"Ids": [500000001, 500000002], "url": "https://…"}}}}}


@router.post("/generateSAUrl", summary="generateSAUrl — signature par lot, authentification par certificat "
             "(§3.5.7)", openapi_extra=_GENERATE_BODY,
             responses={**_GENERATE_RESPONSE, **error_responses(404, 409, 410)})
async def generate_sa_url(request: Request, principal: PrincipalDep) -> JSONResponse:
    return await _generate(request, principal, "sa")


@router.post("/generateSMSUrl", summary="generateSMSUrl — signature par lot, code SMS ou courriel (§3.5.8)",
             openapi_extra=_GENERATE_BODY, responses={**_GENERATE_RESPONSE, **error_responses(404, 409, 410)})
async def generate_sms_url(request: Request, principal: PrincipalDep) -> JSONResponse:
    return await _generate(request, principal, "sms")


@router.get(
    "/admin/workflows/{workflow_id}", summary="Supervision d'un workflow OSS (profil administrateur, §3.2)",
    description="Nombre de documents par type de signature et par état, et documents purgés. Réservé aux "
    "administrateurs du workflow et de l'abonné.",
    responses={200: {"description": "Les statistiques.", "content": {"application/json": {}}},
               **error_responses(403, 404)})
async def workflow_statistics(request: Request, principal: PrincipalDep,
                              workflow_id: Annotated[str, Path(description="L'identifiant du workflow.")],
                              ) -> JSONResponse:
    return JSONResponse(await call(oss_statistics.workflow_statistics, _ctx(request), principal, workflow_id))
