"""OSS — the server-signature service's operations (spec §3, API-REFERENCE §8, DECISIONS D7), independent of
the parapheur circuits but in the same process and database.

Profiles (§3.2): an OSS **agent** (a user bound to a client certificate, member ``agent`` of a workflow) calls
the web services of that workflow; an OSS **admin** (member ``admin`` of a workflow, or the subscriber's
administrator) configures workflows (:mod:`parafe.services.oss.workflows`), reads their documents and their
statistics (:mod:`parafe.services.oss.statistics`); a **signataire** is not a user: they reach a signing page
through a URL with a random token (:mod:`parafe.services.oss.pages`).

A workflow (:class:`~parafe.db.models.OssWorkflow`) defines the PAdES level, the server certificate (PKCS#12),
the signature modes it allows (``server``, ``sa``, ``sms``, ``sgc``), its metadata model (fields that may appear
in the pictogram), its default pictogram and the retention of its documents (``dateToPurge``,
:mod:`parafe.services.oss.purge`).

Methods (O1-O8): :func:`sign_server_doc` (synchronous, or asynchronous through the outbox),
:func:`upload_for_page` (uploadSA, uploadSMS, uploadSGC), :func:`download_doc`, :func:`doc_information`,
:func:`generate_url` (generateSAUrl, generateSMSUrl).

Every signature (asynchronous signServerDoc, and the signing pages) runs as one outbox job ``oss.sign``
(:func:`run_sign_job`) over one or several documents: idempotent, retried after a crash. Document ids come
from their own range (500000000 and up) and a document that exists but is not visible to the caller answers
exactly like an unknown one (D1, :mod:`parafe.services.oss.access`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from parafe.context import AppContext
from parafe.db.models import OssCode, OssDocument, OssLink, OssLinkDocument, OssWorkflow, OutboxItem, utcnow
from parafe.domain import deposit as rules
from parafe.domain.emails import is_email
from parafe.domain.errors import E, ParafeError
from parafe.domain.ids import parse_ids as parse_ids  # O7, O8 ``ids``; re-exported for the OSS connector
from parafe.formats import metadata as metaformat
from parafe.formats import pdf as pdfformat
from parafe.jobs import outbox
from parafe.notify.mail import aware
from parafe.notify.sms import normalise_phone
from parafe.services.access.auth import Principal
from parafe.services.documents.deposit import Upload
from parafe.services.documents.history import iso_ms
from parafe.services.oss import signing
from parafe.services.oss.access import visible_document, workflow_for_deposit
from parafe.services.oss.model import (
    AGENT,
    FAILED,
    SIGNED,
    SIGNING,
    WAITING,
    OssFile,
    Uploaded,
    UploadRequest,
    metadata_model,
)
from parafe.services.otp.identity import SignerIdentity

JOB_KIND = "oss.sign"
TOKEN_BYTES = 32  # 256 bits (D15: at least 128)
MAX_BATCH_FILES = 50
REDIRECT_LIMIT = 2048
SIGNING_WAIT_SECONDS = 120.0

_IDENTITY_ALIASES: dict[str, tuple[str, ...]] = {
    "firstname": ("firstname", "prenom", "prénom", "otp_firstname", "otp_firstname_0"),
    "lastname": ("lastname", "nom", "otp_lastname", "otp_lastname_0"),
    "email": ("email", "mail", "courriel", "otp_email", "otp_email_0"),
    "phone": ("phonenumber", "phone", "telephone", "téléphone", "otp_phonenumber", "otp_phonenumber_0"),
}
_IDENTITY_KEYS = {alias: target for target, aliases in _IDENTITY_ALIASES.items() for alias in aliases}


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
    if not is_email(email):
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


def parse_meta(data: bytes | None) -> tuple[list[tuple[str, str]], SignerIdentity]:
    """The ``metaFile``: a ``meta-data-list`` XML (§6.1) or a JSON object / list of ``{name, value}``.

    Returns the metadata (without the signer's identity keys) and the identity keys found (``firstname``,
    ``lastname``, ``email``, ``phoneNumber``, also as ``OTP_*_0`` as in §6.3).
    """
    if data is None or not data.strip():
        return [], SignerIdentity()
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
    return kept, SignerIdentity(identity.get("firstname"), identity.get("lastname"), identity.get("email"),
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


def _signer_for_mode(mode: str, req_signer: SignerIdentity, meta_signer: SignerIdentity) -> SignerIdentity | None:
    signer = req_signer.merged(meta_signer)
    signer = SignerIdentity(signer.firstname, signer.lastname, check_email(signer.email), check_phone(signer.phone))
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
              redirection_url: str | None, signer: SignerIdentity | None, created_by: int | None,
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
_INSERT_DOCUMENT = insert(OssDocument)  # built once (its compiled form is cached)


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
    for item in req.files:
        # the disk writes them while the checks and the signature run
        ctx.store.start_flush(item.upload.path, item.upload.sha256)
    with ctx.db.read_connection() as conn:
        workflow, account = workflow_for_deposit(conn, principal, req.workflow, AGENT)
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
        with ctx.store.spool() as spool:  # the original and the signed file made durable together
            spool.write(signed)
            signed_path, signed_sha, _size = spool.finish(fsync=False)
            original, signed_ref = ctx.store.put_files([(req.files[0].upload.path, req.files[0].upload.sha256),
                                                        (signed_path, signed_sha)])
        signed_at = utcnow()  # signed, and the signed version archived (kept until dateToPurge)
        with ctx.db.write_connection() as conn:  # Core, not the ORM: one row, on the hot path
            key = conn.execute(_INSERT_DOCUMENT, {
                "workflow_id": workflow.id, "subscriber_id": workflow.subscriber_id, "mode": "server",
                "status": SIGNED, "filename": names[0], "blob_sha256": original.sha256, "size": original.size,
                "signed_blob_sha256": signed_ref.sha256, "signed_size": signed_ref.size,
                "meta_blob_sha256": meta_sha, "metadata_values": [list(i) for i in items], "pictogram": placement,
                "uploader_id": account.user_id, "created_at": now, "updated_at": now,
                "signature_date": signed_at, "archive_date": signed_at, "date_to_purge": purge_at,
            }).inserted_primary_key
            assert key is not None
            doc_id = int(key[0])
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
        signer: SignerIdentity | None = None
        if kind == "sms":
            signers = [SignerIdentity.from_dict(d.signer) for d in documents]
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
        signer = SignerIdentity.from_dict(document.signer)
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
        signer_info = SignerIdentity.from_dict(documents[0].signer)
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
