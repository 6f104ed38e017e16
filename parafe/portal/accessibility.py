"""The accessibility statement (« Déclaration d'accessibilité », RGAA 4.1 model): ``GET /accessibilite``.

Public like the OTP pages (no certificate needed; the navigation shows when the visitor is signed in). Its data
come from the operating body's settings (``PARAFE_ACCESSIBILITY_*``: organisation, contact, audit date and
rate, compliance status); every portal page links to it from its footer with « Accessibilité : <status> ».
Without an audit the status is « non conforme », as the RGAA requires. See ``docs/accessibility.md``.
"""

from __future__ import annotations

from datetime import date

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from parafe.domain.errors import ParafeError
from parafe.portal.web import accessibility_status, ctx_of, principal_of, render

# date of the editor's own checks described in the statement when no audit date is configured
EDITOR_CHECK_DATE = "07/12/2026"

# what the automated and manual checks of the portal cover (docs/accessibility.md)
TESTED_PAGES = [
    "Tableau de bord (vues « À traiter », « En cours », « Mes dépôts », « Classés », recherche)",
    "Dépôt d'un document (formulaire, erreurs)",
    "Page d'un document (aperçu PDF, actions de visa, de signature, de refus, historique)",
    "Signature avec son certificat",
    "Page de signature par code à usage unique (signataire extérieur)",
    "Administration : circuits, utilisateurs, groupes, métadonnées, historique des SMS",
    "Pages d'erreur et d'authentification, présente déclaration",
]


def _french_date(value: str) -> str:
    try:
        return date.fromisoformat(value).strftime("%d/%m/%Y")
    except ValueError:
        return value


async def statement(request: Request) -> Response:
    settings = ctx_of(request).settings
    try:
        principal = await principal_of(request)
    except ParafeError:
        principal = None
    context = {
        "organisation": settings.accessibility_organisation.strip(),
        "contact_email": settings.accessibility_contact_email.strip(),
        "contact_url": settings.accessibility_contact_url.strip(),
        "audit_date": _french_date(settings.accessibility_audit_date.strip()),
        "audit_rate": settings.accessibility_audit_rate.strip(),
        "status_key": settings.accessibility_status,
        "status": accessibility_status(settings.accessibility_status),
        "tested_pages": TESTED_PAGES,
        "editor_check_date": EDITOR_CHECK_DATE,
    }
    return render(request, "accessibility.html", context, principal=principal)


routes = [Route("/accessibilite", statement, methods=["GET"])]
