"""REST connector (spec §2.6) under ``/parapheur-ws/rest/v1``, with its OpenAPI document under ``/parapheur-ws/``."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from parafe.domain.errors import ParafeError
from parafe.services.context import AppContext

from . import documents, errors

DESCRIPTION = (
    "API REST de Parafe, compatible avec FAST-Parapheur (document « Interfaçage logiciel avec FAST-Parapheur "
    "v3.4 », §2.6). Authentification par certificat client (TLS) ; Basic pour les méthodes d'administration.")


def create_rest_app(ctx: AppContext) -> FastAPI:
    app = FastAPI(title="Parafe — API REST", version="v1", description=DESCRIPTION, docs_url="/docs",
                  openapi_url="/openapi.json", redoc_url=None)
    app.state.ctx = ctx
    app.include_router(documents.router, prefix="/rest/v1")
    app.add_exception_handler(ParafeError, errors.parafe_error_handler)
    app.add_exception_handler(RequestValidationError, errors.validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, errors.http_error_handler)
    app.add_exception_handler(Exception, errors.unexpected_error_handler)
    return app
