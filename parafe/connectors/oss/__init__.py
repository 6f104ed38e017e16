"""OSS connector (spec §3, DECISIONS D7) under ``/oss``: the eight web-service methods of the server-signature
service (:mod:`.api`, JSON errors of DECISIONS D2) and the public signing pages of the signers (:mod:`.pages`,
server-rendered French HTML, no JavaScript). The logic lives in :mod:`parafe.services.oss.operations` and
:mod:`parafe.services.oss.pages`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from parafe.connectors.rest import errors
from parafe.context import AppContext
from parafe.domain.errors import ParafeError

from . import api, pages

MOUNT = "/oss"

DESCRIPTION = (
    "Outil de Signature Serveur (OSS) de Parafe, compatible avec FAST-Parapheur (document « Interfaçage logiciel "
    "avec FAST-Parapheur v3.4 », §3). Toutes les adresses sont relatives à `/oss`. L'agent OSS s'authentifie par "
    "certificat client (TLS). Les méthodes POST prennent `multipart/form-data` avec les noms de champs du "
    "document. Les erreurs ont la forme `{generation, developerMessage, userFriendlyMessage, errorCode}` "
    "(catalogue : docs/errors.md). Les pages de signature (`/oss/signature/{jeton}`) sont publiques.")


def create_oss_app(ctx: AppContext) -> Any:
    app = FastAPI(title="Parafe — OSS (signature serveur)", version="v1", description=DESCRIPTION,
                  docs_url="/docs", openapi_url="/openapi.json", redoc_url=None,
                  openapi_tags=[{"name": "OSS", "description": "Web services de l'OSS (§3.5)."}])
    app.state.ctx = ctx
    app.include_router(api.router)
    app.include_router(pages.router)
    app.add_exception_handler(ParafeError, errors.parafe_error_handler)
    app.add_exception_handler(RequestValidationError, errors.validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, errors.http_error_handler)
    app.add_exception_handler(Exception, errors.unexpected_error_handler)
    return app
