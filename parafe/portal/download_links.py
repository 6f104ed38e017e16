"""The recipients' download link (spec §2.6.3, :mod:`parafe.services.documents.download_links`): ``GET
/telechargement/<token>`` gives the signed document as an attachment, to anyone holding the link — no account,
no certificate (the TLS layer asks for one but does not require it, as for the OTP pages).

An unknown, expired or revoked link gets a French page saying why and what to do (HTTP 404 or 410). Responses
carry ``Referrer-Policy: no-referrer`` (the token must not leak) and are never cached.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from parafe.domain.errors import E, ParafeError
from parafe.portal.documents import content_response
from parafe.portal.web import call, ctx_of, render
from parafe.services.documents import download_links

HEADERS = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store", "X-Robots-Tag": "noindex"}

_TITLES = {
    E.DOWNLOAD_LINK_EXPIRED.key: "Ce lien de téléchargement a expiré",
    E.DOWNLOAD_LINK_REVOKED.key: "Ce document n'est plus disponible",
}


async def download(request: Request) -> Response:
    ctx = ctx_of(request)
    try:
        content = await call(download_links.open_link, ctx, request.path_params["token"])
    except ParafeError as error:
        title = _TITLES.get(error.error.key, "Lien de téléchargement invalide")
        return render(request, "download_link_error.html", {"title": title, "message": error.message,
                                                            "code": error.code},
                      status=error.http_status, headers=HEADERS)
    response = content_response(ctx, content, inline=False)
    response.headers.update(HEADERS)
    return response


routes = [Route(download_links.PATH.replace("{token}", "{token:str}"), download, methods=["GET"])]
