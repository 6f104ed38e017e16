"""Signing with the signer's own key, kept on the signer's machine (the portal and its helper ``parafe-signer``).

The Signature engine's remote protocol (:mod:`parafe.signing.remote`) in two calls, for one or several
documents at once (bulk signature, one confirmation on the helper):

- :func:`prepare` — the caller must be able to sign every document now (a signature step they are a member of,
  as :func:`parafe.services.steps.sign` requires) and the signing certificate must be theirs (bound to their
  account, or issued to their e-mail address). Each document is prepared (PAdES with a visible pictogram naming
  the signer and their quality; PES XAdES-EPES per bordereau or global as the circuit says; detached XAdES for
  office documents) and the server-side state is written to the blob store (shared by every Parafe process: no
  in-memory session). The session id is that blob's SHA-256: unguessable, and checked against the caller.
- :func:`finish` — the helper's raw signature values are checked and embedded by the Signature engine, then the
  signed document is handed to :func:`parafe.services.steps.sign`, which verifies it again and moves the
  document on (``Signé``). Each document succeeds or fails on its own.

Sessions expire after 15 minutes (the engine's own limit).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509

from parafe.context import AppContext
from parafe.db.models import Circuit, User
from parafe.domain.circuits import StepKind
from parafe.domain.errors import E, ParafeError
from parafe.domain.ids import parse_id
from parafe.domain.states import State
from parafe.security.pki import fingerprint_sha256
from parafe.services import steps as workflow
from parafe.services.access.auth import Account, Principal
from parafe.services.access.rights import visible_document
from parafe.signing import remote
from parafe.signing.errors import SigningError
from parafe.storage.base import BlobError, is_sha256
from parafe.workflow import engine, signatures
from parafe.workflow.certificates import owned_by
from parafe.workflow.members import may_act

SESSION_TTL = timedelta(minutes=15)
MAX_DOCUMENTS = 50


@dataclass(frozen=True)
class PreparedDocument:
    id: int
    name: str
    kind: str  # pdf | pes | office
    requests: list[remote.SignRequest]
    prepared: bytes | None  # PDF: the prepared file, so that the helper can check what it signs


@dataclass(frozen=True)
class Prepared:
    session_id: str
    documents: list[PreparedDocument]
    signer: str


@dataclass(frozen=True)
class Outcome:
    id: int
    name: str
    ok: bool
    message: str | None = None


def _owned(ctx: AppContext, account: Account, cert: x509.Certificate) -> bool:
    with ctx.db.read() as session:
        return owned_by(session, account.user_id, account.email, cert)


def _fail(reason: str, exc: Exception | None = None) -> ParafeError:
    return ParafeError(E.SIGNING_HELPER_REFUSED, reason=reason.rstrip(". "), detail=repr(exc) if exc else None)


def _parse_ids(document_ids: Sequence[int | str]) -> list[int]:
    ids: list[int] = []
    for raw in document_ids:
        value = parse_id(raw)
        if value not in ids:
            ids.append(value)
    if not ids:
        raise ParafeError(E.BAD_REQUEST, reason="aucun document à signer")
    if len(ids) > MAX_DOCUMENTS:
        raise ParafeError(E.BAD_REQUEST, reason=f"au plus {MAX_DOCUMENTS} documents par signature groupée")
    return ids


def prepare(ctx: AppContext, principal: Principal, document_ids: Sequence[int | str],
            certificates: list[bytes | str]) -> Prepared:
    """Prepare the signature of ``document_ids`` by the holder of ``certificates`` (signer first, then its
    chain; PEM, DER or base64 DER). Raises catalogue errors (``DOCUMENT_NOT_FOUND``, ``STEP_NOT_ACTIONABLE``,
    ``SIGNER_CERTIFICATE_NOT_OWNED``, ``SIGNING_HELPER_REFUSED``)."""
    ids = _parse_ids(document_ids)
    targets: list[dict[str, Any]] = []
    for doc_id in ids:  # every document first: unknown and foreign ids answer before anything else
        with ctx.db.read() as session:
            document, account = visible_document(session, principal, doc_id)
            step = engine.current_step(session, document)
            if step is None or step.kind != StepKind.SIGNATURE.value or document.state != State.SENT_FOR_SIGN.value \
                    or not may_act(session, account.user_id, step):
                raise ParafeError(E.STEP_NOT_ACTIONABLE, detail=f"document {document.id}")
            user = session.get(User, account.user_id)
            circuit = session.get(Circuit, document.circuit_id)
            targets.append({
                "id": document.id, "account": account, "quality": user.quality if user else None,
                "signer": user.full_name if user else account.full_name,
                "mode": str(((circuit.settings or {}) if circuit else {}).get("pes_signature") or "per_bordereau"),
                "version": document.signed_blob_sha256 or document.blob_sha256, "kind": document.kind,
                "name": document.name, "position": document.current_step,
                "at": signatures.deposit_pictogram(document.extra, document.current_step)})
    try:
        chain = remote.load_certificate_chain(certificates)
    except SigningError as exc:
        raise _fail(str(exc), exc) from None
    cert, extra = chain[0], chain[1:]
    items: list[dict[str, Any]] = []
    prepared: list[PreparedDocument] = []
    for target in targets:
        if not _owned(ctx, target["account"], cert):
            raise ParafeError(E.SIGNER_CERTIFICATE_NOT_OWNED)
    for target in targets:
        kind, name = target["kind"], target["name"]
        data = ctx.store.read_bytes(target["version"])
        state: Any
        try:
            if kind == "pdf":
                state, requests = remote.prepare_pdf(
                    data, cert, extra, level="B-B",
                    stamp=signatures.server_stamp(target["signer"], target["quality"], at=target["at"]),
                    reason="Signature")
                shown: bytes | None = state.prepared_pdf
            elif kind == "pes":
                state, requests = remote.prepare_pes(data, cert, extra, per_bordereau=target["mode"] != "global",
                                                     role=target["quality"] or "Ordonnateur")
                shown = None
            else:
                state, requests = remote.prepare_xades(data, name, cert, extra)
                shown = None
        except SigningError as exc:
            raise _fail(f"{name} : {exc}", exc) from None
        items.append({"id": target["id"], "kind": kind, "name": name, "version": target["version"],
                      "position": target["position"], "session": state.to_json()})
        prepared.append(PreparedDocument(target["id"], name, kind, requests, shown))
    signer_name = str(targets[0]["signer"])
    blob = json.dumps({"v": 1, "user_ids": sorted(principal.user_ids), "created_at": datetime.now(UTC).isoformat(),
                       "certificate": fingerprint_sha256(cert), "documents": items}).encode()
    ref = ctx.store.put_bytes(blob)
    return Prepared(ref.sha256, prepared, signer_name)


def _load(ctx: AppContext, principal: Principal, session_id: str) -> dict[str, Any]:
    if not is_sha256(session_id or ""):
        raise ParafeError(E.SIGNING_SESSION_INVALID, detail="malformed session id")
    try:
        data = json.loads(ctx.store.read_bytes(session_id))
    except (BlobError, ValueError):
        raise ParafeError(E.SIGNING_SESSION_INVALID, detail="unknown session") from None
    if not isinstance(data, dict) or data.get("v") != 1 or not set(data.get("user_ids") or []) & principal.user_ids:
        raise ParafeError(E.SIGNING_SESSION_INVALID, detail="not a session of this user")
    if datetime.now(UTC) - datetime.fromisoformat(str(data["created_at"])) > SESSION_TTL:
        raise ParafeError(E.SIGNING_SESSION_INVALID, detail="expired")
    return data


def data_to_sign(ctx: AppContext, principal: Principal, session_id: str) -> list[tuple[int, list[bytes]]]:
    """What each document of a session needs signed, in request order (``[(document id, [bytes, ...])]``) —
    read back from the server-side state, never from the client (passkey-confirmed signature, issue 20)."""
    data = _load(ctx, principal, session_id)
    out: list[tuple[int, list[bytes]]] = []
    for item in data["documents"]:
        if item["kind"] == "pdf":
            values = [remote.PdfRemoteSession.from_json(item["session"]).signed_attrs]
        elif item["kind"] == "pes":
            values = list(remote.PesRemoteSession.from_json(item["session"]).to_sign)
        else:
            values = [remote.XadesRemoteSession.from_json(item["session"]).to_sign]
        out.append((int(item["id"]), values))
    return out


def _decode(values: Sequence[str | bytes]) -> list[bytes]:
    out = []
    for value in values:
        if isinstance(value, bytes):
            out.append(value)
            continue
        try:
            out.append(base64.b64decode(value, validate=True))
        except ValueError:
            raise _fail("valeur de signature illisible (base64 attendu)") from None
    return out


def _finish_one(ctx: AppContext, principal: Principal, item: dict[str, Any], values: list[bytes]) -> None:
    with ctx.db.read() as session:
        document, _ = visible_document(session, principal, item["id"])
        if (document.signed_blob_sha256 or document.blob_sha256) != item["version"] \
                or document.current_step != item["position"]:
            raise ParafeError(E.STEP_NOT_ACTIONABLE, detail="the document changed since the preparation")
    try:
        if item["kind"] == "pdf":
            signed = remote.finish_pdf(remote.PdfRemoteSession.from_json(item["session"]), values)
        elif item["kind"] == "pes":
            signed = remote.finish_pes(remote.PesRemoteSession.from_json(item["session"]), values)
        else:
            signed, _zip = remote.finish_xades(remote.XadesRemoteSession.from_json(item["session"]), values)
    except SigningError as exc:
        raise _fail(str(exc), exc) from None
    workflow.sign(ctx, principal, item["id"], signed)


def finish(ctx: AppContext, principal: Principal, session_id: str,
           values: Mapping[int, Sequence[str | bytes]]) -> list[Outcome]:
    """Finish the documents of a session with the helper's signature values (``{document id: [values]}``, raw
    bytes or base64, in request order). Raises ``SIGNING_SESSION_INVALID`` for an unknown, foreign or expired
    session; per-document failures are reported in the outcomes."""
    data = _load(ctx, principal, session_id)
    outcomes: list[Outcome] = []
    for item in data["documents"]:
        doc_id, name = int(item["id"]), str(item["name"])
        given = values.get(doc_id)
        if not given:
            outcomes.append(Outcome(doc_id, name, False, "Signature non reçue : document non signé."))
            continue
        try:
            _finish_one(ctx, principal, item, _decode(list(given)))
        except ParafeError as exc:
            outcomes.append(Outcome(doc_id, name, False, exc.message))
            continue
        outcomes.append(Outcome(doc_id, name, True))
    return outcomes
