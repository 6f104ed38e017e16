"""« Absence et récapitulatif » (issue 20): the caller's absence delegations and daily digest preference.

``GET /absence`` shows the delegations the caller gave and received (current and future), the form naming a
colleague for a period (:func:`parafe.services.delegations.create`) and the daily digest choice
(:mod:`parafe.services.digest`). ``POST /absence`` creates a delegation, ``POST /absence/{id}/terminer`` ends
one, ``POST /absence/recapitulatif`` saves the digest choice. Plain forms, errors tied to their fields.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from parafe.domain.errors import E, ParafeError
from parafe.domain.paris_time import FORMAT_DAY, paris_format
from parafe.portal import forms
from parafe.portal.web import call, ctx_of, page, read_form, redirect, render
from parafe.services import delegations, digest

NOTICES = {"absence": "Absence enregistrée : votre collègue voit et traite vos documents pendant cette période.",
           "fin": "Délégation terminée.", "recapitulatif": "Préférence enregistrée."}


async def _page(request: Request, principal: Any, *, error: str | None = None, error_field: str | None = None,
                values: dict[str, str] | None = None, status: int = 200) -> Response:
    ctx = ctx_of(request)
    given, received = await call(delegations.listing, ctx, principal)
    context = {
        "given": given, "received": received, "values": values or {}, "error": error, "error_field": error_field,
        "colleagues": await call(delegations.colleagues, ctx, principal),
        "may_delegate": await call(delegations.may_delegate, ctx, principal),
        "digest_on": await call(digest.preference, ctx, principal.user_ids),
        "today": paris_format(delegations.utcnow(), FORMAT_DAY),
    }
    notice = NOTICES.get(request.query_params.get("fait", ""))
    if notice:
        context["notice"] = notice
    return render(request, "absence.html", context, status=status, principal=principal)


@page
async def absence_page(request: Request, principal: Any) -> Response:
    return await _page(request, principal)


def _date(value: str, field: str) -> date:
    """``JJ/MM/AAAA`` (or ``AAAA-MM-JJ``)."""
    text = value.strip()
    for fmt in ("%d/%m/%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ParafeError(E.DELEGATION_PERIOD_INVALID, reason=f"« {text} » n'est pas une date au format JJ/MM/AAAA",
                      detail=field)


@page
async def absence_submit(request: Request, principal: Any) -> Response:
    form = await read_form(request, principal)
    values = {k: str(form.get(k) or "") for k in ("delegue", "debut", "fin")}
    field: str | None = None
    try:
        if not values["delegue"]:
            field = "a-delegue"
            raise ParafeError(E.DELEGATE_UNKNOWN, email="—")
        field = "a-debut"
        start = _date(values["debut"], field)
        field = "a-fin"
        end = _date(values["fin"], field)
        field = None
        await call(delegations.create, ctx_of(request), principal, values["delegue"], start, end)
    except ParafeError as error:
        if error.http_status == 401:
            raise
        return await _page(request, principal, error=error.message, values=values, status=error.http_status,
                           error_field=field or forms.field_of("absence", error))
    return redirect("/absence?fait=absence")


@page
async def absence_end(request: Request, principal: Any) -> Response:
    await read_form(request, principal)
    await call(delegations.end, ctx_of(request), principal, int(request.path_params["delegation_id"]))
    return redirect("/absence?fait=fin")


@page
async def digest_submit(request: Request, principal: Any) -> Response:
    form = await read_form(request, principal)
    await call(digest.set_preference, ctx_of(request), principal.user_ids, form.get("recapitulatif") == "oui")
    return redirect("/absence?fait=recapitulatif")


routes = [
    Route("/absence", absence_page, methods=["GET"]),
    Route("/absence", absence_submit, methods=["POST"]),
    Route("/absence/{delegation_id:int}/terminer", absence_end, methods=["POST"]),
    Route("/absence/recapitulatif", digest_submit, methods=["POST"]),
]
