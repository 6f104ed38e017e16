"""FastAPI dependencies and small wire helpers of the REST connector: the application context, the
authenticated principal, multipart reading, booleans, the request's base URL, OpenAPI fragments.

Nothing here decides a business rule: it only turns HTTP into the arguments of :mod:`parafe.services`.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from parafe.context import AppContext
from parafe.domain.errors import E, ParafeError
from parafe.security.identity import RequestIdentity
from parafe.services.access.auth import Principal, authenticate_async
from parafe.services.documents.deposit import Upload
from parafe.web.multipart import FormData, parse_form

T = TypeVar("T")

# Small XML/JSON parts (metadata, OTP information, circuit, pictograms) are read into memory up to this size.
SMALL_PART_LIMIT = 4 * 1024 * 1024
TRUE_VALUES = frozenset({"true", "1", "yes", "oui", "on"})
_B64 = re.compile(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")


def get_ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


async def get_principal(request: Request) -> Principal:
    """The caller, or a ParafeError rendered as a 401 JSON error."""
    identity: RequestIdentity = request.scope.get("state", {}).get("identity") or RequestIdentity()
    return await authenticate_async(get_ctx(request), identity)


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a (blocking) service function in the thread pool."""
    return await run_in_threadpool(fn, *args, **kwargs)


def base_url(request: Request) -> str:
    """``scheme://host[:port]`` of the request, for links when ``PARAFE_PUBLIC_URL`` is not set."""
    return f"{request.url.scheme}://{request.url.netloc}"


def parse_bool(value: str | None) -> bool:
    """A query boolean as Java's ``Boolean.parseBoolean`` reads it (``true`` any case), plus ``1``/``yes``."""
    return value is not None and value.strip().lower() in TRUE_VALUES


def query_value(request: Request, name: str) -> str | None:
    """A query parameter matched case-insensitively (the spec writes ``FdC`` and ``fdc``, G-19)."""
    wanted = name.lower()
    for key, value in request.query_params.multi_items():
        if key.lower() == wanted:
            return value
    return None


def _check_text(name: str, value: str) -> str:
    for ch in value:
        if unicodedata.category(ch) == "Cc" and ch not in "\t\r\n":
            raise ParafeError(E.BAD_CHARACTERS, detail=f"field {name!r} contains U+{ord(ch):04X}")
    return value


async def read_form(request: Request) -> FormData:
    """The multipart body, streamed to disk (file parts) with the deposit size limit; text fields holding
    control characters are refused (``BAD_CHARACTERS``)."""
    ctx = get_ctx(request)
    form = await parse_form(request.headers.get("content-type"), request.stream(), ctx.tmp_dir,
                            ctx.settings.max_upload_bytes)
    try:
        for name, values in form.fields.items():
            for value in values:
                _check_text(name, value)
    except ParafeError:
        form.discard()
        raise
    return form


def text_field(form: FormData, *names: str) -> str | None:
    """The first non-empty text of the given field names (aliases), or a small file part read as UTF-8."""
    for name in names:
        value = form.text(name)
        if value is not None and value.strip():
            return value
    for name in names:
        upload = form.file(name)
        if upload is not None and 0 < upload.size <= SMALL_PART_LIMIT:
            return _check_text(name, upload.path.read_bytes().decode("utf-8", "replace"))
    return None


def file_field(form: FormData, *names: str) -> Upload | None:
    for name in names:
        upload = form.file(name)
        if upload is not None:
            return upload
    return None


def files_field(form: FormData, *names: str) -> list[Upload]:
    return [u for name in names for u in form.files.get(name, [])]


def small_part(form: FormData, name: str, required: bool = True) -> tuple[bytes, str | None] | None:
    """A small part (XML or JSON) as bytes with its file name; a text field is accepted too (clients that
    send it without ``filename``). Raises ``BAD_REQUEST`` when required and absent, ``FILE_TOO_LARGE``."""
    upload = form.file(name)
    if upload is not None:
        if upload.size > SMALL_PART_LIMIT:
            raise ParafeError(E.FILE_TOO_LARGE, detail=f"part {name!r} larger than {SMALL_PART_LIMIT} bytes")
        filename = upload.filename if isinstance(upload.filename, str) else upload.filename.decode("utf-8",
                                                                                                   "replace")
        return upload.path.read_bytes(), filename
    text = form.text(name)
    if text is not None and text.strip():
        return text.encode("utf-8"), None
    if required:
        raise ParafeError(E.BAD_REQUEST, reason=f"le fichier « {name} » est obligatoire")
    return None


def decode_label(value: str | None) -> str | None:
    """A deposit label, base64-decoded when a client sent it that way.

    SymfonyDocapostBundle (``DocapostFast::uploadDocument``) sends ``base64_encode($label)``. A value is taken
    as base64 only when it is canonical base64 (padding included, at least 8 characters or padded) and decodes
    to printable UTF-8 text; plain labels practically never pass both tests (``2024-05-01``, ``Arrêtés``,
    ``Conventions`` do not).
    """
    if value is None:
        return None
    raw = value.strip()
    if len(raw) < 4 or not _B64.match(raw) or (len(raw) < 8 and "=" not in raw):
        return value
    try:
        decoded = base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return value
    if not decoded.strip() or any(unicodedata.category(ch)[0] == "C" for ch in decoded):
        return value
    if base64.b64encode(decoded.encode("utf-8")).decode("ascii") != raw:
        return value
    return decoded


# --- OpenAPI fragments -------------------------------------------------------------------------------------

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "generation": {"type": "integer", "description": "Horodatage de l'erreur (epoch en millisecondes)."},
        "developerMessage": {"type": "string", "description": "Message technique (anglais)."},
        "userFriendlyMessage": {"type": "string", "description": "Message pour l'utilisateur (français)."},
        "errorCode": {"type": "integer", "description": "Code du catalogue d'erreurs (docs/errors.md)."},
    },
    "required": ["generation", "developerMessage", "userFriendlyMessage", "errorCode"],
}

_ERROR_TEXT = {
    400: "Requête invalide.",
    401: "Certificat client absent, invalide, périmé, révoqué ou inconnu ; identifiants Basic incorrects.",
    403: "Opération non autorisée pour cet utilisateur.",
    404: "Document, abonné ou circuit inconnu (ou non visible par l'appelant).",
    409: "État du document incompatible, ou doublon.",
    413: "Fichier trop volumineux.",
    415: "Format ou extension non autorisé.",
    422: "Contenu du fichier invalide.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the D2 error shape."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in (400, 401, *statuses):
        out[status] = {"description": _ERROR_TEXT.get(status, "Erreur."),
                       "content": {"application/json": {"schema": ERROR_SCHEMA}}}
    return out


def multipart_body(fields: dict[str, tuple[str, bool, str]]) -> dict[str, Any]:
    """``openapi_extra`` declaring a ``multipart/form-data`` body: name → (``file`` | ``files`` | ``text``
    (255 characters at most) | ``json``, required, French description). The connector parses the body itself
    (streaming), FastAPI does not."""
    properties: dict[str, Any] = {}
    required = []
    for name, (kind, is_required, description) in fields.items():
        if kind == "file":
            properties[name] = {"type": "string", "format": "binary", "description": description}
        elif kind == "files":
            properties[name] = {"type": "array", "items": {"type": "string", "format": "binary"},
                                "description": description}
        elif kind == "json":
            properties[name] = {"type": "string", "description": description}
        else:
            properties[name] = {"type": "string", "maxLength": 255, "description": description}
        if is_required:
            required.append(name)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}
