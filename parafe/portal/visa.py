"""Bulk visa (issue 20): the valideur visas several documents at once, as the signataire signs them.

``GET /visa?ids=…`` lists the selected documents waiting for the caller's visa (from the dashboard's selection;
the others are counted as ignored) with one optional comment; ``POST /visa`` (``ids``, ``commentaire``) calls
:func:`parafe.services.steps.approve_visas` — each document in its own transaction — and shows the outcome
of each. Plain forms: it works without JavaScript.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from parafe.domain.errors import ParafeError
from parafe.portal.signing import _ids
from parafe.portal.web import call, ctx_of, page, read_form, render
from parafe.services import steps as workflow
from parafe.services.portal import lists


async def _rows(request: Request, principal: Any, wanted: list[int]) -> list[lists.DocumentRow]:
    pending = await call(lists.pending, ctx_of(request), principal)
    by_id = {r.id: r for r in pending if r.action == "visa"}
    return [by_id[i] for i in wanted if i in by_id]


@page
async def visa_page(request: Request, principal: Any) -> Response:
    wanted = _ids(",".join(request.query_params.getlist("ids")))
    rows = await _rows(request, principal, wanted)
    return render(request, "visa.html", {"rows": rows, "ignored": len(wanted) - len(rows), "results": None},
                  principal=principal)


@page
async def visa_submit(request: Request, principal: Any) -> Response:
    form = await read_form(request, principal)
    wanted = _ids(",".join(str(v) for v in form.getlist("ids")))
    comment = str(form.get("commentaire") or "")
    try:
        results = await call(workflow.approve_visas, ctx_of(request), principal, wanted, comment or None)
    except ParafeError as error:
        if error.http_status in (401, 404):
            raise
        rows = await _rows(request, principal, wanted)
        return render(request, "visa.html", {"rows": rows, "ignored": len(wanted) - len(rows), "results": None,
                                             "error": error.message, "comment": comment},
                      status=error.http_status, principal=principal)
    done = sum(1 for r in results if r.ok)
    return render(request, "visa.html", {"rows": [], "ignored": len(wanted) - len(results), "results": results,
                                         "done": done}, principal=principal)


routes = [
    Route("/visa", visa_page, methods=["GET"]),
    Route("/visa", visa_submit, methods=["POST"]),
]
