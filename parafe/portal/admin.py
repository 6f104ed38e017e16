"""Admin pages of a subscriber administrator: circuits and steps, users (certificates, roles), groups, metadata
models, SMS history. Every page calls :mod:`parafe.services.portal.admin`, which checks that the caller
administers that subscriber before delegating to :mod:`parafe.services.admin.platform`.

Administrators sign in with their certificate or with Basic credentials: ``/connexion`` answers the Basic
challenge (``WWW-Authenticate``) so that the browser asks for the login and password once.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from parafe.domain.circuits import CircuitType, StepKind
from parafe.domain.errors import E, ParafeError
from parafe.portal import forms
from parafe.portal.web import (
    call,
    check_post,
    csrf_subject,
    ctx_of,
    error_page,
    identity_of,
    page,
    principal_of,
    read_form,
    redirect,
    render,
)
from parafe.services.access.auth import Principal, authenticate_async
from parafe.services.admin import platform as admin
from parafe.services.portal import admin as portal_admin
from parafe.services.portal.lists import STEP_LABELS
from parafe.services.signers import passkeys
from parafe.web.multipart import parse_form

CIRCUIT_TYPES = [
    (CircuitType.BUREAUTIQUE_PDF.value, "Bureautique (PDF)"),
    (CircuitType.BUREAUTIQUE_XML.value, "Bureautique (signature dans un fichier séparé)"),
    (CircuitType.HELIOS_AVEC_TELETRANSMISSION.value, "PES Hélios avec télétransmission"),
    (CircuitType.HELIOS_SANS_TELETRANSMISSION.value, "PES Hélios sans télétransmission"),
]
TYPE_LABELS = dict(CIRCUIT_TYPES)
# the circuit types whose documents are PES flows: the PES options apply to them only
PES_TYPES = (CircuitType.HELIOS_AVEC_TELETRANSMISSION.value, CircuitType.HELIOS_SANS_TELETRANSMISSION.value)
STEP_CHOICES = [(kind.value, STEP_LABELS[kind.value]) for kind in StepKind]
META_KINDS = [("text", "Texte"), ("numeric", "Nombre"), ("date", "Date"), ("regex", "Expression régulière")]
CERT_LIMIT = 64 * 1024
_SPLIT = re.compile(r"[\s,;]+")


def _emails(text: str) -> list[str]:
    return [part for part in _SPLIT.split(text or "") if part]


async def login(request: Request) -> Response:
    """Basic sign-in for administrators: the browser's login dialog, then the admin pages."""
    identity = identity_of(request)
    if identity.basic is not None:
        try:
            principal = await authenticate_async(ctx_of(request), identity)
        except ParafeError:
            principal = None
        if principal is not None:
            return redirect("/admin")
    response = error_page(request, ParafeError(E.BAD_CREDENTIALS))
    response.headers["WWW-Authenticate"] = 'Basic realm="Parafe administration", charset="UTF-8"'
    return response


@page
async def admin_home(request: Request, principal: Principal) -> Response:
    accounts = portal_admin.admin_accounts(principal)
    if not accounts:
        raise ParafeError(E.AUTH_ACCESS_DENIED, detail="not an administrator")
    return redirect(f"/admin/{accounts[0].siren}/circuits")


async def _base(request: Request, principal: Principal) -> dict[str, Any]:
    siren = request.path_params["siren"]
    name = await call(portal_admin.subscriber_name, ctx_of(request), principal, siren)
    return {"siren": siren, "subscriber": name, "sirens": [a.siren for a in portal_admin.admin_accounts(principal)]}


# --- circuits --------------------------------------------------------------------------------------------------

@page
async def circuits(request: Request, principal: Principal) -> Response:
    base = await _base(request, principal)
    rows = await call(portal_admin.circuit_list, ctx_of(request), principal, base["siren"])
    return render(request, "admin/circuits.html", {**base, "circuits": rows, "tab": "circuits",
                                                   "step_labels": STEP_LABELS, "type_labels": TYPE_LABELS},
                  principal=principal)


def _spec_from_form(form: Any) -> dict[str, Any]:
    kinds = form.getlist("step_kind")
    members = form.getlist("step_members")
    steps = [{"kind": kind, "members": _emails(members[i] if i < len(members) else "")}
             for i, kind in enumerate(kinds) if kind]
    settings: dict[str, Any] = {}
    pes = str(form.get("type") or "") in PES_TYPES  # the PES options of an office circuit are not kept
    if pes and form.get("pes_signature"):
        settings["pes_signature"] = str(form.get("pes_signature"))
    if pes and form.get("skip_signature_if_signed"):
        settings["skip_signature_if_signed"] = True
    return {"key": str(form.get("key") or "").strip(), "name": str(form.get("name") or "").strip(),
            "type": str(form.get("type") or ""), "pes_pj": pes and bool(form.get("pes_pj")), "settings": settings,
            "steps": steps, "agents": _emails(str(form.get("agents") or ""))}


async def _circuit_form(request: Request, principal: Principal, spec: dict[str, Any], *, new: bool,
                        error: str | None = None, status: int = 200, error_field: str | None = None) -> Response:
    base = await _base(request, principal)
    steps = list(spec.get("steps") or [])
    if not steps:
        steps = [{"kind": "visa", "members": []}, {"kind": "signature", "members": []},
                 {"kind": "filing", "members": []}]
    return render(request, "admin/circuit_form.html", {
        **base, "tab": "circuits", "spec": spec, "steps": steps, "new": new, "error": error,
        "types": CIRCUIT_TYPES, "pes_types": PES_TYPES, "step_choices": STEP_CHOICES, "error_field": error_field},
        status=status,
        principal=principal)


@page
async def circuit_new(request: Request, principal: Principal) -> Response:
    return await _circuit_form(request, principal, {"type": CircuitType.BUREAUTIQUE_PDF.value}, new=True)


@page
async def circuit_edit(request: Request, principal: Principal) -> Response:
    spec = await call(portal_admin.circuit_spec, ctx_of(request), principal, request.path_params["siren"],
                      request.path_params["key"])
    return await _circuit_form(request, principal, spec, new=False)


@page
async def circuit_save(request: Request, principal: Principal) -> Response:
    siren = request.path_params["siren"]
    form = await read_form(request, principal)
    spec = _spec_from_form(form)
    new = "key" not in request.path_params
    if not new:
        spec["key"] = request.path_params["key"]
        current = await call(portal_admin.circuit_spec, ctx_of(request), principal, siren, spec["key"])
        spec["metadata"] = current.get("metadata")
    try:
        key = await call(portal_admin.define_circuit, ctx_of(request), principal, siren, spec)
    except ParafeError as error:
        if error.http_status == 401:
            raise
        field = "c-key" if not spec["key"] else None
        if error.error in (E.ADMIN_EMAIL_INVALID, E.ADMIN_USER_UNKNOWN) and error.params.get("email") in spec["agents"]:
            field = "c-agents"
        return await _circuit_form(request, principal, spec, new=new, error=error.message,
                                   status=error.http_status, error_field=field)
    return redirect(f"/admin/{siren}/circuits/{key}?ok=enregistre")


@page
async def circuit_delete(request: Request, principal: Principal) -> Response:
    siren, key = request.path_params["siren"], request.path_params["key"]
    await read_form(request, principal)
    try:
        await call(portal_admin.delete_circuit, ctx_of(request), principal, siren, key)
    except ParafeError as error:
        if error.http_status == 401:
            raise
        spec = await call(portal_admin.circuit_spec, ctx_of(request), principal, siren, key)
        return await _circuit_form(request, principal, spec, new=False, error=error.message,
                                   status=error.http_status)
    return redirect(f"/admin/{siren}/circuits?ok=retire")


@page
async def step_row(request: Request, principal: Principal) -> Response:
    """One more step row for the circuit form (htmx ``hx-get``, swapped at the end of the list)."""
    return render(request, "admin/_step_row.html", {"step": {"kind": "", "members": []},
                                                    "step_choices": STEP_CHOICES}, principal=principal)


@page
async def metadata_form(request: Request, principal: Principal) -> Response:
    return await _metadata(request, principal)


async def _metadata(request: Request, principal: Principal, *, error: str | None = None,
                    fields: list[dict[str, Any]] | None = None, status: int = 200) -> Response:
    base = await _base(request, principal)
    spec = await call(portal_admin.circuit_spec, ctx_of(request), principal, base["siren"],
                      request.path_params["key"])
    rows = fields if fields is not None else list(spec.get("metadata") or [])
    rows = rows + [{"name": "", "kind": "text", "pattern": "", "required": False}] * 2
    return render(request, "admin/metadata.html", {**base, "tab": "circuits", "spec": spec, "fields": rows,
                                                   "kinds": META_KINDS, "error": error},
                  status=status, principal=principal)


@page
async def metadata_save(request: Request, principal: Principal) -> Response:
    siren, key = request.path_params["siren"], request.path_params["key"]
    form = await read_form(request, principal)
    names, kinds = form.getlist("meta_name"), form.getlist("meta_kind")
    patterns, required = form.getlist("meta_pattern"), form.getlist("meta_required")
    fields = []
    for i, name in enumerate(names):
        if not str(name).strip():
            continue
        fields.append({"name": str(name).strip(), "kind": str(kinds[i]) if i < len(kinds) else "text",
                       "pattern": (str(patterns[i]).strip() or None) if i < len(patterns) else None,
                       "required": i < len(required) and required[i] == "oui"})
    try:
        await call(portal_admin.set_metadata_model, ctx_of(request), principal, siren, key, fields or None)
    except ParafeError as error:
        if error.http_status == 401:
            raise
        return await _metadata(request, principal, error=error.message, fields=fields, status=error.http_status)
    return redirect(f"/admin/{siren}/circuits/{key}/metadonnees?ok=enregistre")


# --- users and certificates ------------------------------------------------------------------------------------

async def _users(request: Request, principal: Principal, *, error: str | None = None,
                 values: dict[str, str] | None = None, status: int = 200, error_field: str | None = None) -> Response:
    base = await _base(request, principal)
    rows = await call(portal_admin.users, ctx_of(request), principal, base["siren"])
    return render(request, "admin/users.html", {**base, "tab": "utilisateurs", "users": rows, "error": error,
                                                "values": values or {}, "error_field": error_field},
                  status=status, principal=principal)


@page
async def users(request: Request, principal: Principal) -> Response:
    return await _users(request, principal)


def _user_spec(form: Any, email: str | None = None) -> admin.UserSpec:
    password = str(form.get("password") or "")
    return admin.UserSpec(
        email=email or str(form.get("email") or ""), firstname=str(form.get("firstname") or "").strip(),
        lastname=str(form.get("lastname") or "").strip(), admin=bool(form.get("admin")),
        authentication_type=str(form.get("authentication_type") or "CERTIFICAT"), password=password or None,
        phone=str(form.get("phone") or "").strip() or None, quality=str(form.get("quality") or "").strip() or None,
        groups=[g.strip() for g in str(form.get("groups") or "").split(",") if g.strip()])


@page
async def user_create(request: Request, principal: Principal) -> Response:
    siren = request.path_params["siren"]
    form = await read_form(request, principal)
    spec = _user_spec(form)
    try:
        await call(portal_admin.create_user, ctx_of(request), principal, siren, spec)
    except ParafeError as error:
        if error.http_status == 401:
            raise
        values = {k: str(v) for k, v in form.items() if k not in ("csrf", "password")}
        return await _users(request, principal, error=error.message, values=values, status=error.http_status,
                            error_field=forms.field_of("user-create", error))
    return redirect(f"/admin/{siren}/utilisateurs/{admin.check_email(spec.email)}?ok=cree")


async def _user_page(request: Request, principal: Principal, *, error: str | None = None,
                     status: int = 200, error_field: str | None = None) -> Response:
    base = await _base(request, principal)
    line = await call(portal_admin.user, ctx_of(request), principal, base["siren"], request.path_params["email"])
    keys = await call(passkeys.passkeys_of_user, ctx_of(request), principal, base["siren"], line.email)
    server_key = await call(passkeys.server_key_of_user, ctx_of(request), principal, base["siren"], line.email)
    return render(request, "admin/user.html", {**base, "tab": "utilisateurs", "u": line, "error": error,
                                               "passkeys": keys, "server_key": server_key,
                                               "error_field": error_field}, status=status, principal=principal)


@page
async def user_page(request: Request, principal: Principal) -> Response:
    return await _user_page(request, principal)


@page
async def user_update(request: Request, principal: Principal) -> Response:
    siren, email = request.path_params["siren"], request.path_params["email"]
    form = await read_form(request, principal)
    action = str(form.get("action") or "enregistrer")
    try:
        if action == "supprimer":
            await call(portal_admin.delete_user, ctx_of(request), principal, siren, email)
            return redirect(f"/admin/{siren}/utilisateurs?ok=retire")
        if action == "retirer-certificat":
            await call(portal_admin.remove_certificate, ctx_of(request), principal, siren, email,
                       str(form.get("fingerprint") or ""))
            return redirect(f"/admin/{siren}/utilisateurs/{email}?ok=retire")
        await call(portal_admin.update_user, ctx_of(request), principal, siren, _user_spec(form, email))
    except ParafeError as error:
        if error.http_status == 401:
            raise
        return await _user_page(request, principal, error=error.message, status=error.http_status,
                                error_field=forms.field_of("user-update", error))
    return redirect(f"/admin/{siren}/utilisateurs/{email}?ok=enregistre")


async def certificate_upload(request: Request) -> Response:
    principal: Principal | None = None
    form = None
    try:
        principal = await principal_of(request)
        form = await parse_form(request.headers.get("content-type"), request.stream(), ctx_of(request).tmp_dir,
                                CERT_LIMIT)
        await check_post(request, csrf_subject(principal), {"csrf": form.text("csrf")})
        upload = form.file("certificat")
        if upload is None or not upload.size:
            raise ParafeError(E.ADMIN_CERTIFICATE_INVALID)
        siren, email = request.path_params["siren"], request.path_params["email"]
        await call(portal_admin.add_certificate, ctx_of(request), principal, siren, email,
                   upload.path.read_bytes())
        return redirect(f"/admin/{siren}/utilisateurs/{email}?ok=certificat")
    except ParafeError as error:
        if principal is None or error.http_status == 401:
            return error_page(request, error, principal)
        try:
            return await _user_page(request, principal, error=error.message, status=error.http_status,
                                    error_field=forms.field_of("user-update", error))
        except ParafeError as again:
            return error_page(request, again, principal)
    finally:
        if form is not None:
            form.discard()


# --- groups and SMS history ------------------------------------------------------------------------------------

async def _groups(request: Request, principal: Principal, *, error: str | None = None, status: int = 200,
                  error_field: str | None = None) -> Response:
    base = await _base(request, principal)
    rows = await call(portal_admin.groups, ctx_of(request), principal, base["siren"])
    return render(request, "admin/groups.html", {**base, "tab": "groupes", "groups": rows, "error": error,
                                                 "error_field": error_field}, status=status, principal=principal)


@page
async def groups(request: Request, principal: Principal) -> Response:
    return await _groups(request, principal)


@page
async def group_create(request: Request, principal: Principal) -> Response:
    siren = request.path_params["siren"]
    form = await read_form(request, principal)
    try:
        await call(portal_admin.create_group, ctx_of(request), principal, siren, str(form.get("name") or ""),
                   _emails(str(form.get("members") or "")))
    except ParafeError as error:
        if error.http_status == 401:
            raise
        return await _groups(request, principal, error=error.message, status=error.http_status,
                             error_field=forms.field_of("group", error))
    return redirect(f"/admin/{siren}/groupes?ok=enregistre")


@page
async def sms(request: Request, principal: Principal) -> Response:
    base = await _base(request, principal)
    circuit = request.query_params.get("circuit") or None
    month = request.query_params.get("mois") or None
    error: str | None = None
    field: str | None = None
    try:
        rows = await call(portal_admin.sms_history, ctx_of(request), principal, base["siren"], circuit, month)
    except ParafeError as exc:
        if exc.http_status == 401:
            raise
        rows, error, field = [], exc.message, forms.field_of("sms", exc)
    circuit_rows = await call(portal_admin.circuit_list, ctx_of(request), principal, base["siren"])
    return render(request, "admin/sms.html", {**base, "tab": "sms", "rows": rows, "circuit": circuit or "",
                                              "month": month or "", "circuits": circuit_rows, "error": error,
                                              "error_field": field},
                  principal=principal)


# --- compliance of the subscriber's clients (issue 21) ---------------------------------------------------------

@page
async def clients(request: Request, principal: Principal) -> Response:
    from parafe.services.compliance import views

    base = await _base(request, principal)
    rows = await call(views.clients_for_admin, ctx_of(request), principal, base["siren"])
    return render(request, "admin/clients.html", {**base, "tab": "clients", "clients": rows,
                                                  "days": ctx_of(request).settings.compliance_days},
                  principal=principal)


@page
async def client(request: Request, principal: Principal) -> Response:
    from parafe.services.compliance import views

    base = await _base(request, principal)
    found = await call(views.client_for_admin, ctx_of(request), principal, base["siren"],
                       request.path_params["fingerprint"])
    return render(request, "admin/client.html", {**base, "tab": "clients", "report": found.to_dict()},
                  principal=principal)


routes = [
    Route("/connexion", login, methods=["GET"]),
    Route("/admin", admin_home, methods=["GET"]),
    Route("/admin/fragments/etape", step_row, methods=["GET"]),
    Route("/admin/{siren}/circuits", circuits, methods=["GET"]),
    Route("/admin/{siren}/circuits/nouveau", circuit_new, methods=["GET"]),
    Route("/admin/{siren}/circuits/nouveau", circuit_save, methods=["POST"]),
    Route("/admin/{siren}/circuits/{key}", circuit_edit, methods=["GET"]),
    Route("/admin/{siren}/circuits/{key}", circuit_save, methods=["POST"]),
    Route("/admin/{siren}/circuits/{key}/supprimer", circuit_delete, methods=["POST"]),
    Route("/admin/{siren}/circuits/{key}/metadonnees", metadata_form, methods=["GET"]),
    Route("/admin/{siren}/circuits/{key}/metadonnees", metadata_save, methods=["POST"]),
    Route("/admin/{siren}/utilisateurs", users, methods=["GET"]),
    Route("/admin/{siren}/utilisateurs", user_create, methods=["POST"]),
    Route("/admin/{siren}/utilisateurs/{email}", user_page, methods=["GET"]),
    Route("/admin/{siren}/utilisateurs/{email}", user_update, methods=["POST"]),
    Route("/admin/{siren}/utilisateurs/{email}/certificats", certificate_upload, methods=["POST"]),
    Route("/admin/{siren}/groupes", groups, methods=["GET"]),
    Route("/admin/{siren}/groupes", group_create, methods=["POST"]),
    Route("/admin/{siren}/sms", sms, methods=["GET"]),
    Route("/admin/{siren}/clients", clients, methods=["GET"]),
    Route("/admin/{siren}/clients/{fingerprint}", client, methods=["GET"]),
]
