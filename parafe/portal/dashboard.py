"""Dashboard (spec §1.2.6: subscriber → circuit → label, with counts) and manual deposit.

``GET /tableau-de-bord`` lists the caller's documents by view (« À traiter », « En cours », « Mes dépôts »,
« Classés ») with filters (circuit, label, state code, text); with htmx (``HX-Request``) only the list is sent
back. ``GET/POST /deposer`` deposits a document with label, comment, annexes (and, for a circuit with an OTP
step, the OTP signer, through :func:`parafe.services.otp.links.otp_upload`).
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import quoteattr

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from parafe.domain.errors import E, ParafeError
from parafe.domain.states import SEARCH_CODES
from parafe.portal import forms
from parafe.portal.web import (
    call,
    check_post,
    csrf_subject,
    ctx_of,
    error_page,
    int_param,
    page,
    principal_of,
    query,
    redirect,
    render,
)
from parafe.services.access.auth import Principal
from parafe.services.documents.deposit import DepositRequest, deposit
from parafe.services.otp import links as otp_links
from parafe.services.portal import lists
from parafe.web.multipart import FormData, parse_form

STATE_CHOICES = [
    ("Prepared", "Préparé"), ("SendForVisa", "Envoyé pour visa"), ("Approved", "Visa approuvé"),
    ("Disapproved", "Visa désapprouvé"), ("SentForSign", "Envoyé pour signature"), ("Signed", "Signé"),
    ("Refused", "Refusé"), ("SentToHELIOS", "Transmis à Hélios"), ("Acknowledged", "Acquittement Hélios"),
    ("OTPvalidated", "Signé par OTP"), ("Filed", "Classé"), ("Archived", "Archivé"),
]
assert {code for code, _ in STATE_CHOICES} == set(SEARCH_CODES)

VIEW_LABELS = {"a-traiter": "À traiter", "en-cours": "En cours", "deposes": "Mes dépôts", "classes": "Classés",
               "tous": "Tous"}


async def home(request: Request) -> Response:
    return redirect("/tableau-de-bord")


def _filters(request: Request, default_view: str) -> lists.Filters:
    params = request.query_params
    view = params.get("vue") or default_view
    if view not in lists.VIEWS:
        view = default_view
    state = params.get("etat") or None
    if state is not None and state not in SEARCH_CODES:
        state = None
    return lists.Filters(view=view, siren=params.get("siren") or None, circuit=params.get("circuit") or None,
                             label=params.get("libelle") or None, state=state, text=params.get("q") or None,
                             page=int_param(params.get("page")))


@page
async def board(request: Request, principal: Principal) -> Response:
    ctx = ctx_of(request)
    counts = await call(lists.counts, ctx, principal)
    default_view = "a-traiter" if counts.to_visa + counts.to_sign else "en-cours"
    filters = _filters(request, default_view)
    listing = await call(lists.documents, ctx, principal, filters)
    context: dict[str, Any] = {
        "filters": filters, "listing": listing, "counts": counts, "views": VIEW_LABELS,
        "page_title": _title(filters, listing), "count_text": _count_text(listing),
        "states": STATE_CHOICES, "signable": [r.id for r in listing.rows if r.action == "signature"],
        "visable": [r.id for r in listing.rows if r.action == "visa"],
        "page_url": lambda number: _page_url(filters, number),
    }
    if request.headers.get("hx-request") and request.headers.get("hx-target", "").endswith("liste"):
        return render(request, "_document_list.html", context, principal=principal)
    context["categories"] = await call(lists.categories, ctx, principal)
    return render(request, "dashboard.html", context, principal=principal)


def _title(filters: lists.Filters, listing: lists.Page) -> str:
    """A distinct page title per view, search and page (WCAG 2.4.2), e.g. « En cours, recherche « voirie »,
    page 2 — Tableau de bord »."""
    parts = [VIEW_LABELS.get(filters.view, filters.view)]
    if filters.text:
        parts.append(f"recherche « {filters.text} »")
    if filters.circuit:
        parts.append(f"circuit {filters.circuit}" + (f", libellé {filters.label}" if filters.label else ""))
    if listing.pages > 1:
        parts.append(f"page {listing.page} sur {listing.pages}")
    return ", ".join(parts) + " — Tableau de bord"


def _count_text(listing: lists.Page) -> str:
    text = f"{listing.total} document{'s' if listing.total != 1 else ''}"
    if listing.pages > 1:
        text += f" — page {listing.page} sur {listing.pages}"
    return text


def _page_url(filters: lists.Filters, number: int) -> str:
    return query("/tableau-de-bord", vue=filters.view, circuit=filters.circuit, libelle=filters.label,
                 etat=filters.state, q=filters.text, page=number if number > 1 else None)


async def _deposit_form(request: Request, principal: Principal, *, error: str | None = None,
                        values: dict[str, str] | None = None, status: int = 200,
                        error_field: str | None = None) -> Response:
    targets = await call(lists.deposit_targets, ctx_of(request), principal)
    chosen = (values or {}).get("circuit") or request.query_params.get("circuit") or ""
    return render(request, "deposit.html", {"targets": targets, "error": error, "values": values or {},
                                            "chosen": chosen, "error_field": error_field},
                  status=status, principal=principal)


@page
async def deposit_form(request: Request, principal: Principal) -> Response:
    return await _deposit_form(request, principal)


def _otp_xml(form: FormData) -> bytes | None:
    fields = {k: (form.text(f"otp_{k}") or "").strip() for k in ("firstname", "lastname", "phonenumber", "email")}
    if not any(fields.values()):
        return None
    lines = ['<?xml version="1.0" encoding="UTF-8" standalone="yes"?>', "<meta-data-list>"]
    for key, value in fields.items():
        if value:
            lines.append(f"    <meta-data name=\"OTP_{key}_0\" value={quoteattr(value)}/>")
    lines.append("</meta-data-list>")
    return "\n".join(lines).encode("utf-8")


async def deposit_submit(request: Request) -> Response:
    principal: Principal | None = None
    form: FormData | None = None
    values: dict[str, str] = {}
    field: str | None = None  # the field a BAD_REQUEST below is about
    try:
        principal = await principal_of(request)
        ctx = ctx_of(request)
        form = await parse_form(request.headers.get("content-type"), request.stream(), ctx.tmp_dir,
                                ctx.settings.max_upload_bytes)
        await check_post(request, csrf_subject(principal), {"csrf": form.text("csrf")})
        values = {k: (form.text(k) or "") for k in ("circuit", "libelle", "commentaire", "destinataires",
                                                    "otp_firstname", "otp_lastname", "otp_phonenumber",
                                                    "otp_email")}
        siren, _, circuit = values["circuit"].partition("/")
        upload = form.file("fichier")
        if not circuit or upload is None or not upload.filename:
            field = "d-fichier" if circuit else "d-circuit"
            raise ParafeError(E.BAD_REQUEST, reason="choisissez un circuit et un fichier")
        annexes = [u for u in form.files.get("annexes", []) if u.filename and u.size]
        req = DepositRequest(siren=siren, circuit=circuit, upload=upload, label=values["libelle"].strip() or None,
                             comment=values["commentaire"].strip() or None,
                             email_destinataire=values["destinataires"].strip() or None, source="portal",
                             annexes=annexes)
        otp_xml = _otp_xml(form)
        if otp_xml is not None:
            if annexes:
                field = "d-annexes"
                raise ParafeError(E.BAD_REQUEST, reason="un dépôt pour signature OTP ne prend pas d'annexes")
            base = f"{request.url.scheme}://{request.url.netloc}"
            result = await call(otp_links.otp_upload, ctx, principal, req, otp_xml, name_rule="any",
                                base_url=base)
            return render(request, "otp_deposited.html", {"doc_id": result.document_id, "url": result.url,
                                                          "notice": "Document déposé."}, principal=principal)
        else:
            doc_id = (await call(deposit, ctx, principal, req)).document_id
            return redirect(f"/documents/{doc_id}?ok=depose")
    except ParafeError as error:
        if principal is None:
            return error_page(request, error)
        return await _deposit_form(request, principal, error=error.message, values=values,
                                   status=error.http_status, error_field=field or forms.field_of("deposit", error))
    finally:
        if form is not None:
            form.discard()


routes = [
    Route("/", home, methods=["GET"]),
    Route("/tableau-de-bord", board, methods=["GET"]),
    Route("/deposer", deposit_form, methods=["GET"]),
    Route("/deposer", deposit_submit, methods=["POST"]),
]
