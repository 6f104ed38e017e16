"""OSS — the server-signature service (spec §3, API-REFERENCE §8, DECISIONS D7), independent of the parapheur
circuits but in the same process and database.

Profiles (§3.2): an OSS **agent** (a user bound to a client certificate, member ``agent`` of a workflow) calls
the web services of that workflow; an OSS **admin** (member ``admin`` of a workflow, or the subscriber's
administrator) configures workflows (:func:`configure_workflow`), reads their documents and their statistics;
a **signataire** is not a user: they reach a signing page through a URL with a random token (``oss_pages``).

A workflow (:class:`~parafe.db.models.OssWorkflow`) defines the PAdES level, the server certificate (PKCS#12),
the signature modes it allows (``server``, ``sa``, ``sms``, ``sgc``), its metadata model (fields that may appear
in the pictogram), its default pictogram and the retention of its documents (``dateToPurge``).

Methods (O1-O8): :func:`sign_server_doc` (synchronous, or asynchronous through the outbox),
:func:`upload_for_page` (uploadSA, uploadSMS, uploadSGC), :func:`download_doc`, :func:`doc_information`,
:func:`generate_url` (generateSAUrl, generateSMSUrl). :func:`purge` removes documents whose retention is over.

Every signature (asynchronous signServerDoc, and the signing pages) runs as one outbox job ``oss.sign``
(:func:`run_sign_job`) over one or several documents: idempotent, retried after a crash. Document ids come
from their own range (500000000 and up) and a document that exists but is not visible to the caller answers
exactly like an unknown one (D1).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from parafe.context import AppContext
from parafe.db.models import (
    OssCode,
    OssDocument,
    OssLink,
    OssLinkDocument,
    OssWorkflow,
    OssWorkflowMember,
    OutboxItem,
    Subscriber,
    User,
    utcnow,
)
from parafe.domain import deposit as rules
from parafe.domain.errors import E, ParafeError
from parafe.formats import metadata as metaformat
from parafe.formats import pdf as pdfformat
from parafe.jobs import outbox
from parafe.notify.mail import aware
from parafe.notify.sms import normalise_phone
from parafe.services.access.auth import Account, Principal
from parafe.services.documents.deposit import Upload
from parafe.services.documents.history import iso_ms
from parafe.services.oss import signing
from parafe.signing.tsa import normalize_level

MODES = ("server", "sa", "sms", "sgc")
AGENT = "agent"
ADMIN = "admin"
WAITING, SIGNING, SIGNED, REFUSED, FAILED = "waiting", "signing", "signed", "refused", "failed"
JOB_KIND = "oss.sign"
TOKEN_BYTES = 32  # 256 bits (D15: at least 128)
MAX_IDS = 100
MAX_BATCH_FILES = 50
REDIRECT_LIMIT = 2048
SIGNING_WAIT_SECONDS = 120.0

_KINDS = ("text", "numeric", "date", "regex")
_EMAIL = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")
_IDENTITY_ALIASES: dict[str, tuple[str, ...]] = {
    "firstname": ("firstname", "prenom", "prénom", "otp_firstname", "otp_firstname_0"),
    "lastname": ("lastname", "nom", "otp_lastname", "otp_lastname_0"),
    "email": ("email", "mail", "courriel", "otp_email", "otp_email_0"),
    "phone": ("phonenumber", "phone", "telephone", "téléphone", "otp_phonenumber", "otp_phonenumber_0"),
}
_IDENTITY_KEYS = {alias: target for target, aliases in _IDENTITY_ALIASES.items() for alias in aliases}


# --- small value types --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Signer:
    """The person who signs on a page (SMS / e-mail code, on-the-fly certificate)."""

    firstname: str | None = None
    lastname: str | None = None
    email: str | None = None
    phone: str | None = None

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.firstname, self.lastname) if p) or self.email or self.phone or ""

    def key(self) -> tuple[str | None, str | None]:
        """What must be identical on every document of one SMS URL (D15): e-mail and phone."""
        return (self.email.lower() if self.email else None, normalise_phone(self.phone) if self.phone else None)

    def as_dict(self) -> dict[str, str | None]:
        return {"firstname": self.firstname, "lastname": self.lastname, "email": self.email, "phone": self.phone}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Signer:
        data = data or {}
        return cls(*(str(data[k]).strip() or None if data.get(k) else None
                     for k in ("firstname", "lastname", "email", "phone")))

    def merged(self, other: Signer) -> Signer:
        """Fields of ``self``, completed by ``other``."""
        return Signer(self.firstname or other.firstname, self.lastname or other.lastname,
                      self.email or other.email, self.phone or other.phone)


@dataclass
class OssFile:
    upload: Upload
    filename: str | None = None  # the ``filename`` field; default: the multipart part's file name


@dataclass
class UploadRequest:
    """What a publisher sends to signServerDoc / uploadSA / uploadSMS / uploadSGC."""

    workflow: str
    mode: str
    files: list[OssFile]
    meta: bytes | None = None
    redirection_url: str | None = None
    pictogramme: str | None = None
    json_pictogram: str | None = None
    signer: Signer = field(default_factory=Signer)
    asynchronous: bool = False


@dataclass
class Uploaded:
    ids: list[int]
    token: str | None = None  # the signing page's token (uploadSA/SMS/SGC)
    signed: bytes | None = None  # the signed PDF (synchronous signServerDoc)
    filename: str | None = None


@dataclass(frozen=True)
class MetaField:
    """One field of a workflow's metadata model (``metadata_model`` JSON)."""

    field: metaformat.MetadataField
    label: str | None
    pictogram: bool


# --- workflows ----------------------------------------------------------------------------------------------------
def metadata_model(workflow: OssWorkflow) -> list[MetaField] | None:
    if workflow.metadata_model is None:
        return None
    out: list[MetaField] = []
    for raw in workflow.metadata_model:
        kind = str(raw.get("kind", "text"))
        out.append(MetaField(
            metaformat.MetadataField(name=str(raw["name"]), kind=cast(Any, kind if kind in _KINDS else "text"),
                                     pattern=raw.get("pattern"), required=bool(raw.get("required"))),
            raw.get("label"), bool(raw.get("pictogram"))))
    return out


def _roles(session: Session, workflow_id: int, user_id: int) -> set[str]:
    return set(session.scalars(select(OssWorkflowMember.role).where(
        OssWorkflowMember.workflow_id == workflow_id, OssWorkflowMember.user_id == user_id)))


def workflow_for(session: Session, principal: Principal, key: str | None, role: str = AGENT,
                 ) -> tuple[OssWorkflow, Account]:
    """The active workflow ``key`` and the caller's account: ``OSS_WORKFLOW_NOT_FOUND`` when unknown or of
    another subscriber, ``NO_PERMISSION`` when the caller has not the role on it."""
    wanted = (key or "").strip()
    if not wanted:
        raise ParafeError(E.BAD_REQUEST, reason="le paramètre « workflowId » est obligatoire")
    workflow = session.scalar(select(OssWorkflow).where(OssWorkflow.key == wanted, OssWorkflow.active.is_(True)))
    account = principal.account_in(workflow.subscriber_id) if workflow is not None else None
    if workflow is None or account is None:
        raise ParafeError(E.OSS_WORKFLOW_NOT_FOUND, detail=f"workflow {wanted!r}")
    roles = _roles(session, workflow.id, account.user_id)
    if role not in roles and not (role == ADMIN and account.is_admin):
        raise ParafeError(E.NO_PERMISSION, detail=f"not {role} of OSS workflow {wanted!r}")
    return workflow, account


def can_read(session: Session, account: Account, document: OssDocument) -> bool:
    """Agents and admins of the document's workflow, and the subscriber's administrators."""
    if document.subscriber_id != account.subscriber_id:
        return False
    if account.is_admin:
        return True
    return bool(session.scalar(select(exists().where(
        OssWorkflowMember.workflow_id == document.workflow_id, OssWorkflowMember.user_id == account.user_id))))


def parse_id(value: int | str) -> int:
    try:
        doc_id = int(str(value).strip())
    except ValueError:
        raise ParafeError(E.DOCUMENT_NOT_FOUND, detail="document id is not a number") from None
    if doc_id <= 0 or doc_id > 2**62:
        raise ParafeError(E.DOCUMENT_NOT_FOUND)
    return doc_id


def visible_document(session: Session, principal: Principal, document_id: int | str, *, lock: bool = False,
                     ) -> tuple[OssDocument, Account]:
    """The document if the caller may read it, else ``DOCUMENT_NOT_FOUND`` (no existence oracle)."""
    stmt = select(OssDocument).where(OssDocument.id == parse_id(document_id))
    if lock:
        stmt = stmt.with_for_update()
    document = session.scalar(stmt)
    account = principal.account_in(document.subscriber_id) if document is not None else None
    if document is None or account is None or not can_read(session, account, document):
        raise ParafeError(E.DOCUMENT_NOT_FOUND)
    return document, account


@dataclass
class WorkflowSpec:
    """An OSS workflow as an administrator configures it (:func:`configure_workflow`)."""

    key: str
    name: str
    siren: str
    agents: Sequence[str] = ()  # e-mails of users of the subscriber
    admins: Sequence[str] = ()
    modes: Sequence[str] = MODES
    signature_level: str = "B-B"
    certificate_p12: str | None = None  # absolute, or relative to $PARAFE_HOME
    certificate_password: str | None = None
    metadata_model: list[dict[str, Any]] | None = None
    pictogram: dict[str, Any] = field(default_factory=dict)  # centimetres: x, y, page, width, height
    retention_days: int = 30
    settings: dict[str, Any] = field(default_factory=dict)  # reason, location, tsa_url, sgc_certificate_days


def configure_workflow(ctx: AppContext, spec: WorkflowSpec, principal: Principal | None = None) -> int:
    """Create or update a workflow (idempotent) and set its members; returns its id.

    With a ``principal`` (the admin profile), the caller must be the subscriber's administrator or an admin of
    the existing workflow; without one (operator tools, demo set) no check is made.
    """
    bad = [m for m in spec.modes if m not in MODES]
    if bad or not spec.modes:
        raise ParafeError(E.BAD_REQUEST, reason=f"modes de signature inconnus : {', '.join(bad) or 'aucun'}")
    if spec.retention_days < 1:
        raise ParafeError(E.BAD_REQUEST, reason="la durée de conservation doit être d'au moins un jour")
    signing.workflow_placement(spec.pictogram)  # validates it
    try:
        level = normalize_level(spec.signature_level)
    except ValueError as exc:
        raise ParafeError(E.BAD_REQUEST, reason=str(exc).rstrip(".")) from None
    if level not in ("B-B", "B-T") or (level == "B-T" and not (spec.settings or {}).get("tsa_url")):
        raise ParafeError(E.BAD_REQUEST, reason="type de signature : B-B, ou B-T avec settings.tsa_url")
    with ctx.db.write() as session:
        subscriber = session.scalar(select(Subscriber).where(Subscriber.siren == spec.siren))
        if subscriber is None:
            raise ParafeError(E.SUBSCRIBER_NOT_FOUND)
        workflow = session.scalar(select(OssWorkflow).where(OssWorkflow.key == spec.key))
        if principal is not None:
            account = principal.account_in(subscriber.id)
            allowed = account is not None and (account.is_admin or (
                workflow is not None and ADMIN in _roles(session, workflow.id, account.user_id)))
            if not allowed:
                raise ParafeError(E.NO_PERMISSION, detail="not an OSS admin of this subscriber")
        if workflow is not None and workflow.subscriber_id != subscriber.id:
            raise ParafeError(E.BAD_REQUEST, reason=f"l'identifiant de workflow « {spec.key} » est déjà utilisé")
        if workflow is None:
            workflow = OssWorkflow(key=spec.key, subscriber_id=subscriber.id, created_at=utcnow())
            session.add(workflow)
        workflow.name = spec.name
        workflow.modes = list(spec.modes)
        workflow.signature_level = level
        workflow.certificate_p12 = spec.certificate_p12
        workflow.certificate_password = spec.certificate_password
        workflow.metadata_model = spec.metadata_model
        workflow.pictogram = dict(spec.pictogram)
        workflow.retention_days = spec.retention_days
        workflow.settings = dict(spec.settings)
        workflow.active = True
        session.flush()
        wanted: set[tuple[int, str]] = set()
        for role, emails in ((AGENT, spec.agents), (ADMIN, spec.admins)):
            for email in emails:
                user = session.scalar(select(User).where(User.subscriber_id == subscriber.id,
                                                         User.email == email.strip().lower()))
                if user is None:
                    raise ParafeError(E.INVALID_STEP_MEMBER, detail=f"no user {email} in {spec.siren}")
                wanted.add((user.id, role))
        current = {(m.user_id, m.role): m for m in session.scalars(select(OssWorkflowMember).where(
            OssWorkflowMember.workflow_id == workflow.id))}
        for pair, member in current.items():
            if pair not in wanted:
                session.delete(member)
        for user_id, role in sorted(wanted - set(current)):
            session.add(OssWorkflowMember(workflow_id=workflow.id, user_id=user_id, role=role))
        return workflow.id


def workflow_statistics(ctx: AppContext, principal: Principal, key: str) -> dict[str, Any]:
    """Supervision figures of a workflow (admin profile): documents per mode and per status."""
    with ctx.db.read() as session:
        workflow, _ = workflow_for(session, principal, key, ADMIN)
        rows = session.execute(select(OssDocument.mode, OssDocument.status, func.count()).where(
            OssDocument.workflow_id == workflow.id).group_by(OssDocument.mode, OssDocument.status)).all()
        purged = session.scalar(select(func.count()).select_from(OssDocument).where(
            OssDocument.workflow_id == workflow.id, OssDocument.purge_date.is_not(None))) or 0
    by_mode: dict[str, dict[str, int]] = {}
    for mode, status, count in rows:
        by_mode.setdefault(str(mode), {})[str(status)] = int(count)
    return {"workflowId": workflow.key, "name": workflow.name, "documents": by_mode,
            "total": sum(sum(v.values()) for v in by_mode.values()), "purged": int(purged)}


# --- input checks -------------------------------------------------------------------------------------------------
def check_redirection_url(value: str | None) -> str | None:
    """An absolute http(s) URL, or None for "no redirection" (an empty string, §7.2)."""
    if value is None or not value.strip():
        return None
    url = value.strip()
    if len(url) > REDIRECT_LIMIT or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
        raise ParafeError(E.BAD_REQUEST, reason="l'URL de redirection est invalide")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ParafeError(E.BAD_REQUEST, reason="l'URL de redirection doit être une adresse http(s) absolue")
    return url


def check_email(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    email = value.strip()
    if len(email) > 254 or not _EMAIL.match(email):
        raise ParafeError(E.OSS_SIGNER_MISSING, reason=f"adresse électronique invalide « {email[:80]} »")
    return email


def check_phone(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    phone = normalise_phone(value)
    digits = phone.lstrip("+")
    if not digits.isdigit() or not 8 <= len(digits) <= 15:
        raise ParafeError(E.OSS_SIGNER_MISSING, reason=f"numéro de téléphone invalide « {value.strip()[:40]} »")
    return phone


def parse_meta(data: bytes | None) -> tuple[list[tuple[str, str]], Signer]:
    """The ``metaFile``: a ``meta-data-list`` XML (§6.1) or a JSON object / list of ``{name, value}``.

    Returns the metadata (without the signer's identity keys) and the identity keys found (``firstname``,
    ``lastname``, ``email``, ``phoneNumber``, also as ``OTP_*_0`` as in §6.3).
    """
    if data is None or not data.strip():
        return [], Signer()
    text = data.lstrip(b"\xef\xbb\xbf").strip()
    items: list[tuple[str, str]]
    if text[:1] in (b"{", b"["):
        try:
            obj = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParafeError(E.READ_FAILED, detail=f"metaFile is not valid JSON: {exc}") from None
        if isinstance(obj, dict):
            items = [(str(k), "" if v is None else str(v)) for k, v in obj.items()]
        elif isinstance(obj, list) and all(isinstance(i, dict) and "name" in i for i in obj):
            items = [(str(i["name"]), "" if i.get("value") is None else str(i.get("value"))) for i in obj]
        else:
            raise ParafeError(E.READ_FAILED, detail="metaFile JSON must be an object or a list of {name, value}")
    else:
        items = metaformat.parse_meta_data_list(text)
    identity: dict[str, str] = {}
    kept: list[tuple[str, str]] = []
    for name, value in items:
        target = _IDENTITY_KEYS.get(name.strip().lower())
        if target is not None:
            if value.strip():
                identity[target] = value.strip()
        else:
            kept.append((name.strip(), value))
    return kept, Signer(identity.get("firstname"), identity.get("lastname"), identity.get("email"),
                        identity.get("phone"))


def _check_metadata(workflow: OssWorkflow, items: list[tuple[str, str]]) -> None:
    model = metadata_model(workflow)
    if model is None:
        if items:
            metaformat.validate_metadata(items, None)  # NO_METADATA_MODEL
        return
    metaformat.validate_metadata(items, [m.field for m in model])


def pictogram_lines(workflow: OssWorkflow, items: Iterable[Sequence[str]]) -> list[str]:
    """The metadata lines the workflow shows in the pictogram (« Libellé : valeur »)."""
    model = metadata_model(workflow) or []
    values = {str(name): str(value) for name, value in items}
    lines = []
    for meta in model:
        value = values.get(meta.field.name, "").strip()
        if meta.pictogram and value:
            lines.append(f"{meta.label or meta.field.name} : {value}")
    return lines


def _placement(workflow: OssWorkflow, req: UploadRequest) -> dict[str, Any]:
    default = signing.workflow_placement(workflow.pictogram)
    if req.json_pictogram and req.json_pictogram.strip():
        return signing.parse_json_pictogram(req.json_pictogram, default)
    if req.pictogramme and req.pictogramme.strip():
        return signing.parse_pictogramme(req.pictogramme, default)
    return default


def _check_pdf(ctx: AppContext, upload: Upload, placement: Mapping[str, Any]) -> None:
    if upload.size == 0:
        raise ParafeError(E.EMPTY_FILE)
    info = pdfformat.ensure_signable(upload.path, pdfformat.PdfLimits.from_settings(ctx.settings))
    page = int(placement["page"])
    if abs(page) > info.pages:
        raise ParafeError(E.OSS_PICTOGRAM_INVALID,
                          reason=f"la page {page} n'existe pas (le document compte {info.pages} page(s))")


def _name(ctx: AppContext, item: OssFile) -> str:
    raw = item.filename if item.filename is not None and item.filename.strip() else item.upload.filename
    return rules.normalise_name(raw, ctx.settings.name_limit_ws)


def _signer_for_mode(mode: str, req_signer: Signer, meta_signer: Signer) -> Signer | None:
    signer = req_signer.merged(meta_signer)
    signer = Signer(signer.firstname, signer.lastname, check_email(signer.email), check_phone(signer.phone))
    if mode == "sms" and not (signer.email or signer.phone):
        raise ParafeError(E.OSS_SIGNER_MISSING,
                          reason="un courriel ou un numéro de téléphone est nécessaire pour envoyer le code")
    if mode == "sgc":
        missing = [n for n, v in (("firstname", signer.firstname), ("lastname", signer.lastname),
                                  ("email", signer.email)) if not v]
        if missing:
            raise ParafeError(E.OSS_SIGNER_MISSING, reason="champ(s) obligatoire(s) absent(s) : " + ", ".join(missing))
    return signer if mode in ("sms", "sgc") else None


def _options(workflow: OssWorkflow) -> signing.SignOptions:
    s = workflow.settings or {}
    return signing.SignOptions(level=workflow.signature_level or "B-B",
                               reason=s.get("reason") or "Signature serveur (OSS)", location=s.get("location"),
                               tsa_url=s.get("tsa_url"))


def _new_token() -> tuple[str, str]:
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, token_hash(token)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def _add_link(session: Session, kind: str, subscriber_id: int, document_ids: Sequence[int],
              redirection_url: str | None, signer: Signer | None, created_by: int | None,
              expires_at: datetime) -> str:
    token, digest = _new_token()
    link = OssLink(token_hash=digest, kind=kind, subscriber_id=subscriber_id, redirection_url=redirection_url,
                   signer=signer.as_dict() if signer is not None else None, created_by=created_by,
                   created_at=utcnow(), expires_at=expires_at)
    session.add(link)
    session.flush()
    for position, doc_id in enumerate(document_ids):
        session.add(OssLinkDocument(link_id=link.id, document_id=doc_id, position=position))
    return token


# --- O1-O4: deposits --------------------------------------------------------------------------------------------
def sign_server_doc(ctx: AppContext, principal: Principal, req: UploadRequest) -> Uploaded:
    """O1 ``signServerDoc``: sign now and return the signed PDF, or (``asynchrone=true``) queue the signature and
    return the id only."""
    req.mode = "server"
    return _deposit(ctx, principal, req)


def upload_for_page(ctx: AppContext, principal: Principal, req: UploadRequest) -> Uploaded:
    """O2-O4 ``uploadSA`` / ``uploadSMS`` / ``uploadSGC``: keep the document(s) and open a signing page."""
    if req.mode not in ("sa", "sms", "sgc"):
        raise ParafeError(E.OSS_MODE_NOT_ALLOWED, detail=f"mode {req.mode!r}")
    return _deposit(ctx, principal, req)


def _deposit(ctx: AppContext, principal: Principal, req: UploadRequest) -> Uploaded:
    with ctx.db.read() as session:
        workflow, account = workflow_for(session, principal, req.workflow, AGENT)
        session.expunge(workflow)
    if req.mode not in (workflow.modes or []):
        raise ParafeError(E.OSS_MODE_NOT_ALLOWED, detail=f"workflow {workflow.key} does not allow {req.mode}")
    if not req.files:
        raise ParafeError(E.BAD_REQUEST, reason="le fichier « dataFile » est obligatoire")
    if len(req.files) > 1 and req.mode != "sgc":
        raise ParafeError(E.BAD_REQUEST, reason="un seul fichier « dataFile » est attendu")
    if len(req.files) > MAX_BATCH_FILES:
        raise ParafeError(E.BAD_REQUEST, reason=f"au plus {MAX_BATCH_FILES} fichiers par lot")
    redirection = check_redirection_url(req.redirection_url) if req.mode != "server" else None
    items, meta_signer = parse_meta(req.meta)
    _check_metadata(workflow, items)
    signer = _signer_for_mode(req.mode, req.signer, meta_signer)
    placement = _placement(workflow, req)
    names = [_name(ctx, f) for f in req.files]
    for item in req.files:
        _check_pdf(ctx, item.upload, placement)
    now = utcnow()
    purge_at = now + timedelta(days=workflow.retention_days)
    meta_sha = ctx.store.put_bytes(req.meta).sha256 if req.meta and req.meta.strip() else None

    if req.mode == "server" and not req.asynchronous:
        data = req.files[0].upload.path.read_bytes()
        signer_key = signing.workflow_signer(ctx, workflow.certificate_p12, workflow.certificate_password)
        stamp = signing.stamp_for(placement, extra_lines=pictogram_lines(workflow, items))
        signed = signing.sign_pdf(signer_key, data, stamp, _options(workflow))
        original = ctx.store.put_file(req.files[0].upload.path, sha256=req.files[0].upload.sha256, move=True)
        signed_ref = ctx.store.put_bytes(signed)
        signed_at = utcnow()  # signed, and the signed version archived (kept until dateToPurge)
        with ctx.db.write() as session:
            document = OssDocument(
                workflow_id=workflow.id, subscriber_id=workflow.subscriber_id, mode="server", status=SIGNED,
                filename=names[0], blob_sha256=original.sha256, size=original.size,
                signed_blob_sha256=signed_ref.sha256, signed_size=signed_ref.size, meta_blob_sha256=meta_sha,
                metadata_values=[list(i) for i in items], pictogram=placement, uploader_id=account.user_id,
                created_at=now, updated_at=now,
                signature_date=signed_at, archive_date=signed_at, date_to_purge=purge_at)
            session.add(document)
            session.flush()
            doc_id = document.id
        return Uploaded(ids=[doc_id], signed=signed, filename=names[0])

    refs = [ctx.store.put_file(f.upload.path, sha256=f.upload.sha256, move=True) for f in req.files]
    from parafe.workflow.engine import workflow_tx

    with workflow_tx(ctx) as session:
        ids: list[int] = []
        for name, ref in zip(names, refs, strict=True):
            document = OssDocument(
                workflow_id=workflow.id, subscriber_id=workflow.subscriber_id, mode=req.mode,
                status=SIGNING if req.mode == "server" else WAITING, filename=name, blob_sha256=ref.sha256,
                size=ref.size, meta_blob_sha256=meta_sha, metadata_values=[list(i) for i in items],
                pictogram=placement, redirection_url=redirection,
                signer=signer.as_dict() if signer is not None else None, uploader_id=account.user_id,
                created_at=now, updated_at=now, date_to_purge=purge_at)
            session.add(document)
            session.flush()
            ids.append(document.id)
        token = None
        if req.mode == "server":
            outbox.add(session, JOB_KIND, None, {"document_ids": ids, "via": "server"})
        else:
            token = _add_link(session, req.mode, workflow.subscriber_id, ids, redirection, signer, account.user_id,
                              purge_at)
    return Uploaded(ids=ids, token=token, filename=names[0])


# --- O5, O6: reading ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DocContent:
    filename: str
    sha256: str
    size: int
    signed: bool


def _purged(document: OssDocument, now: datetime | None = None) -> bool:
    return document.purge_date is not None or aware(document.date_to_purge) <= (now or utcnow()) \
        or document.blob_sha256 is None


def download_doc(ctx: AppContext, principal: Principal, document_id: int | str) -> DocContent:
    """O5 ``downloadDoc``: the signed document if it is signed, else the original; the first download is dated."""
    with ctx.db.read() as session:
        document, _ = visible_document(session, principal, document_id)
        if _purged(document):
            raise ParafeError(E.OSS_DOCUMENT_PURGED)
        signed = document.status == SIGNED and document.signed_blob_sha256 is not None
        content = DocContent(document.filename, (document.signed_blob_sha256 if signed else document.blob_sha256)
                             or "", (document.signed_size if signed else document.size) or 0, signed)
        first = document.download_date is None
    if first:
        with ctx.db.write() as session:
            row = session.get(OssDocument, document.id)
            if row is not None and row.download_date is None:
                row.download_date = utcnow()
    return content


def _date(value: datetime | None) -> str | None:
    return iso_ms(aware(value)) if value is not None else None


def doc_information(ctx: AppContext, principal: Principal, document_id: int | str) -> dict[str, Any]:
    """O6 ``docInformation``: the fields of §3.5.6, with the document's names verbatim (API-REFERENCE §8.4)."""
    from parafe.db.models import OssAuthLog

    with ctx.db.read() as session:
        document, _ = visible_document(session, principal, document_id)
        logs = list(session.scalars(select(OssAuthLog).where(OssAuthLog.document_id == document.id)
                                    .order_by(OssAuthLog.id)))
        code = session.scalar(select(OssCode).join(OssLinkDocument, OssLinkDocument.link_id == OssCode.link_id)
                              .where(OssLinkDocument.document_id == document.id, OssCode.status != "replaced")
                              .order_by(OssCode.id.desc()).limit(1))
        if code is None:
            code = session.scalar(select(OssCode).join(
                OssLinkDocument, OssLinkDocument.link_id == OssCode.link_id).where(
                OssLinkDocument.document_id == document.id).order_by(OssCode.id.desc()).limit(1))
        meta = None
        if document.meta_blob_sha256 and document.purge_date is None:
            meta = base64.b64encode(ctx.store.read_bytes(document.meta_blob_sha256)).decode("ascii")
        signed = document.status == SIGNED and document.signed_size is not None
        remaining = None
        if code is not None:
            remaining = 0 if code.status == "locked" else max(code.max_attempts - code.attempts, 0)
        return {
            "id": document.id,
            "filename": document.filename,
            "creationDate": _date(document.created_at),
            "signatureDate": _date(document.signature_date),
            "purgeDate": _date(document.purge_date),
            "archiveDate": _date(document.archive_date),
            "downloadDate": _date(document.download_date),
            "dateToPurge": _date(document.date_to_purge),
            "metadate": meta,
            "redirectionURL": document.redirection_url,
            "logs": [{
                "date": _date(log.created_at), "event": log.event, "subject": log.subject, "issuer": log.issuer,
                "serialNumber": log.serial, "fingerprint": log.fingerprint, "ip": log.ip,
            } for log in logs],
            "filesize": document.signed_size if signed else document.size,
            "smsexpirationDate": _date(code.expires_at) if code is not None else None,
            "SMSRemainingTriesNb": remaining,
            "Smsdate": _date(code.created_at) if code is not None else None,
        }


# --- O7, O8: batch URLs -------------------------------------------------------------------------------------------
def parse_ids(values: Sequence[str] | str | None) -> list[int]:
    """``ids``: comma-separated (spaces allowed, as in the spec's example), or repeated fields."""
    raw = [values] if isinstance(values, str) else list(values or [])
    out: list[int] = []
    for value in raw:
        for part in re.split(r"[,;\s]+", value.strip().strip("[]")):
            if part:
                out.append(parse_id(part))
    if not out:
        raise ParafeError(E.BAD_REQUEST, reason="le paramètre « ids » est obligatoire")
    if len(out) > MAX_IDS:
        raise ParafeError(E.BAD_REQUEST, reason=f"au plus {MAX_IDS} identifiants")
    return list(dict.fromkeys(out))


def generate_url(ctx: AppContext, principal: Principal, kind: str, ids: list[int], url: str | None,
                 ) -> tuple[list[int], str]:
    """O7 ``generateSAUrl`` (``kind`` ``sa``) / O8 ``generateSMSUrl`` (``sms``): one signing page for several
    documents. Every document must be visible, of that kind, waiting for its signature; for SMS they must carry
    the same signer (D15). Returns the ids and the page's token."""
    redirection = check_redirection_url(url)
    with ctx.db.write() as session:
        documents: list[OssDocument] = []
        agents: set[int] = set()
        for doc_id in ids:
            document, account = visible_document(session, principal, doc_id)
            agents.add(account.user_id)
            if document.mode != kind:
                raise ParafeError(E.OSS_MODE_NOT_ALLOWED, detail=f"document {doc_id} is a {document.mode} document")
            if _purged(document):
                raise ParafeError(E.OSS_DOCUMENT_PURGED, detail=f"document {doc_id}")
            if document.status != WAITING:
                raise ParafeError(E.OSS_ALREADY_SIGNED, detail=f"document {doc_id} is {document.status}")
            documents.append(document)
        if len({d.subscriber_id for d in documents}) != 1:
            raise ParafeError(E.OTP_IDENTITY_MISMATCH, detail="documents of several subscribers")
        signer: Signer | None = None
        if kind == "sms":
            signers = [Signer.from_dict(d.signer) for d in documents]
            if any(s.key() != signers[0].key() for s in signers[1:]):
                raise ParafeError(E.OTP_IDENTITY_MISMATCH)
            signer = signers[0]
            for other in signers[1:]:
                signer = signer.merged(other)
        expires = min(aware(d.date_to_purge) for d in documents)
        token = _add_link(session, kind, documents[0].subscriber_id, [d.id for d in documents], redirection, signer,
                          next(iter(agents)), expires)
    return [d.id for d in documents], token


# --- signing jobs -------------------------------------------------------------------------------------------------
def start_signing(session: Session, link: OssLink, documents: Sequence[OssDocument], payload: dict[str, Any],
                  ) -> int:
    """Mark the documents as being signed and add the ``oss.sign`` job (in the caller's transaction)."""
    for document in documents:
        document.status = SIGNING
        document.updated_at = utcnow()
    item = outbox.add(session, JOB_KIND, None, {**payload, "document_ids": [d.id for d in documents],
                                                "link_id": link.id})
    return item.id


def run_now(ctx: AppContext, job_id: int, document_ids: Sequence[int], timeout: float = SIGNING_WAIT_SECONDS,
            ) -> dict[int, str]:
    """Run the job in this thread (a worker picks it up after a crash) and wait until its documents leave
    ``signing``; returns their statuses."""
    for item_id in outbox.claim(ctx, [job_id]):
        outbox.execute(ctx, item_id)
    deadline = time.monotonic() + timeout
    while True:
        with ctx.db.read() as session:
            statuses = dict(session.execute(select(OssDocument.id, OssDocument.status).where(
                OssDocument.id.in_(list(document_ids)))).tuples().all())
        if SIGNING not in statuses.values() or time.monotonic() > deadline:
            return {int(k): str(v) for k, v in statuses.items()}
        time.sleep(0.1)


def _stamp_text(via: str, document: OssDocument, payload: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """Name and quality lines of the pictogram for a signature made ``via`` a mode."""
    if via == "sa":
        return payload.get("person"), "Authentifié par certificat"
    if via == "sms":
        signer = Signer.from_dict(document.signer)
        channel = payload.get("channel")
        return signer.full_name or None, "Code vérifié par SMS" if channel == "sms" else "Code vérifié par courriel"
    return None, None


def run_sign_job(ctx: AppContext, item: OutboxItem) -> None:
    """The ``oss.sign`` job: sign the documents of the payload that are still ``signing``, store the results and
    close the job in one transaction. A document that cannot be signed (engine error) ends ``failed``; other
    failures make the job retry."""
    payload = dict(item.payload or {})
    ids = [int(i) for i in payload.get("document_ids", [])]
    via = str(payload.get("via", "server"))
    with ctx.db.read() as session:
        documents = list(session.scalars(select(OssDocument).where(OssDocument.id.in_(ids),
                                                                   OssDocument.status == SIGNING)))
        workflows = {w.id: w for w in session.scalars(select(OssWorkflow).where(
            OssWorkflow.id.in_({d.workflow_id for d in documents})))} if documents else {}
        for obj in [*documents, *workflows.values()]:
            session.expunge(obj)
    results: dict[int, tuple[str, Any, str | None]] = {}  # id -> (status, BlobRef | None, error / cert)
    personal = None
    if via == "sgc" and documents:
        signer_info = Signer.from_dict(documents[0].signer)
        wf = workflows[documents[0].workflow_id]
        personal = signing.issue_signer(
            ctx, signer_info.firstname or "", signer_info.lastname or "", signer_info.email or "",
            days=int((wf.settings or {}).get("sgc_certificate_days", 30)))
    for document in documents:
        workflow = workflows[document.workflow_id]
        try:
            if document.blob_sha256 is None:
                raise ParafeError(E.OSS_DOCUMENT_PURGED)
            key = personal or signing.workflow_signer(ctx, workflow.certificate_p12, workflow.certificate_password)
            name, quality = _stamp_text(via, document, payload)
            stamp = signing.stamp_for(document.pictogram or signing.workflow_placement(workflow.pictogram),
                                      signer_name=name, quality=quality,
                                      extra_lines=pictogram_lines(workflow, document.metadata_values or []))
            signed = signing.sign_pdf(key, ctx.store.read_bytes(document.blob_sha256), stamp, _options(workflow),
                                      cache=personal is None)
            results[document.id] = (SIGNED, ctx.store.put_bytes(signed), signing.certificate_pem(key))
        except ParafeError as exc:
            results[document.id] = (FAILED, None, exc.message)
    with ctx.db.write() as session:
        row = outbox.lock_pending(session, item.id)
        if row is None:
            return
        now = utcnow()
        for doc_id, (status, ref, text) in results.items():
            row_doc = session.get(OssDocument, doc_id)
            if row_doc is None or row_doc.status != SIGNING:
                continue
            row_doc.status = status
            row_doc.updated_at = now
            if status == SIGNED:
                row_doc.signed_blob_sha256, row_doc.signed_size = ref.sha256, ref.size
                row_doc.signature_date = now
                row_doc.archive_date = now  # the signed version is archived for the retention period
                row_doc.signer_certificate = text if via == "sgc" else None
            else:
                row_doc.error = text
        link_id = payload.get("link_id")
        if link_id:
            link = session.get(OssLink, int(link_id))
            if link is not None and link.completed_at is None:
                link.completed_at = now
                link.outcome = "signed" if all(r[0] == SIGNED for r in results.values()) else "error"
        outbox.close(row)


def _give_up(ctx: AppContext, item: OutboxItem, error: str) -> None:
    ids = [int(i) for i in (item.payload or {}).get("document_ids", [])]
    with ctx.db.write() as session:
        for document in session.scalars(select(OssDocument).where(OssDocument.id.in_(ids),
                                                                  OssDocument.status == SIGNING)):
            document.status = FAILED
            document.error = f"Signature impossible : {error}"[:4000]
            document.updated_at = utcnow()


outbox.handler(JOB_KIND, give_up=_give_up)(run_sign_job)


# --- purge --------------------------------------------------------------------------------------------------------
def purge(ctx: AppContext, now: datetime | None = None) -> int:
    """Purge the documents whose ``dateToPurge`` has come: the rows no longer reference the blobs, which are
    erased from the store at once unless another row references them
    (:func:`parafe.services.documents.erasure.erase_blobs`);
    ``purgeDate`` is set. Idempotent."""
    from parafe.services.documents.erasure import erase_blobs

    moment = now or utcnow()
    count = 0
    dropped: set[str] = set()
    with ctx.db.write() as session:
        for document in session.scalars(select(OssDocument).where(
                OssDocument.date_to_purge <= moment, OssDocument.purge_date.is_(None)).with_for_update()):
            dropped.update(b for b in (document.blob_sha256, document.signed_blob_sha256, document.meta_blob_sha256)
                           if b)
            document.purge_date = moment
            document.blob_sha256 = None
            document.signed_blob_sha256 = None
            document.meta_blob_sha256 = None
            if document.status in (WAITING, SIGNING):
                document.status = FAILED
                document.error = "Document supprimé avant sa signature (durée de conservation dépassée)."
            document.updated_at = moment
            count += 1
    erase_blobs(ctx, dropped, utcnow(), label="of a purged OSS document")
    return count


def blob_references(session: Session) -> set[str]:
    """Every blob an OSS row still references (for the orphan sweeper)."""
    refs: set[str] = set()
    for row in session.execute(select(OssDocument.blob_sha256, OssDocument.signed_blob_sha256,
                                      OssDocument.meta_blob_sha256)):
        refs.update(v for v in row if v)
    return refs


# --- demo set ------------------------------------------------------------------------------------------------------
DEMO_WORKFLOW = "oss-demo"
DEMO_SIREN = "123456789"
DEMO_AGENT = "agent@demo.parafe.test"
DEMO_ADMIN = "admin@demo.parafe.test"
DEMO_P12 = "pki/oss-demo-signing.p12"


def _demo_key(ctx: AppContext) -> tuple[str, str]:
    """The demo workflow's server certificate (from the dev CA) and its password, created once."""
    from parafe.security import pki

    home = ctx.settings.resolved_home
    p12, secret = home / DEMO_P12, home / "pki" / "oss-demo-signing.password"
    if not (p12.exists() and secret.exists()):
        password = secrets.token_urlsafe(16)
        ca = pki.load_ca(ctx.settings.pki_dir, trusted=True)
        leaf = pki.issue_user_cert(ca, "signature-oss@demo.parafe.test", "Commune de Démo - signature serveur",
                                   organization="Commune de Démo")
        secret.write_text(password + "\n")
        secret.chmod(0o600)
        pki.write_p12(leaf, p12, password.encode(), ca, overwrite=True)
    return DEMO_P12, secret.read_text().strip()


def ensure_oss_demo(ctx: AppContext) -> int | None:
    """The demo OSS workflow ``oss-demo`` of subscriber 123456789 (idempotent): agent ``agent@demo.parafe.test``,
    admin ``admin@demo.parafe.test``, every mode, a server certificate from the dev PKI, a metadata model whose
    ``REFERENCE`` field is shown in the pictogram. Returns its id (None when the demo subscriber is missing)."""
    with ctx.db.read() as session:
        subscriber = session.scalar(select(Subscriber).where(Subscriber.siren == DEMO_SIREN))
        existing = session.scalar(select(OssWorkflow.id).where(OssWorkflow.key == DEMO_WORKFLOW))
        if subscriber is None:
            return None
    if existing is not None and (ctx.settings.resolved_home / DEMO_P12).exists():
        return int(existing)
    path, password = _demo_key(ctx)
    return configure_workflow(ctx, WorkflowSpec(
        key=DEMO_WORKFLOW, name="Démo OSS (signature serveur)", siren=DEMO_SIREN, agents=[DEMO_AGENT],
        admins=[DEMO_ADMIN], certificate_p12=path, certificate_password=password,
        metadata_model=[{"name": "REFERENCE", "label": "Réf.", "kind": "text", "pictogram": True},
                        {"name": "SERVICE", "kind": "text"}],
        retention_days=30, settings={"reason": "Signature serveur (OSS)", "location": "Commune de Démo"}))

