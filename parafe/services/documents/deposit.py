"""The deposit service, shared by every connector (SOAP, REST, WebDAV, portal).

``deposit()`` runs every check of spec §1.2.7 and the upload errors of §2.5.2 (DECISIONS D3, D5, D8, D21):
subscriber and circuit rights, name rules, label rules and the 10,000-labels guard, extension allow-list, empty
file, zip bundles (main document + annexes + ``METAS_<name>.xml``), write-protected PDF, PES schema, "no
bordereau", PES-PJ validity, the (circuit, label, name) triplet and NomFic uniqueness across all subscribers.

Blobs are written before the transaction that references them commits; the document, its label, annexes,
metadata, its first history entry (``Préparé``) and the outbox row that hands it to the workflow are written in
one transaction. A refused deposit stores nothing but an outbox row for the depositor's error mail.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, CursorResult, bindparam, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from parafe.context import AppContext
from parafe.db.models import (
    Annex,
    Circuit,
    Document,
    HistoryEntry,
    Label,
    MetadataValue,
    OutboxItem,
    PesNomFic,
    utcnow,
)
from parafe.domain import deposit as rules
from parafe.domain.circuits import HELIOS_TYPES, document_kind
from parafe.domain.emails import is_email
from parafe.domain.errors import E, ParafeError
from parafe.domain.states import State
from parafe.formats import bundle as bundles
from parafe.formats import metadata as metaformat
from parafe.formats import pdf as pdfformat
from parafe.formats import pes as pesformat
from parafe.formats.pictograms import check_pictograms
from parafe.jobs.runtime import kick
from parafe.services.access.auth import Account, Principal
from parafe.services.access.rights import LIVE_TRIPLET_TAKEN, DepositCircuit, deposit_target

log = logging.getLogger(__name__)



@dataclass
class Upload:
    """A file received by a connector, already spooled to disk (hashed and size-checked while streaming)."""

    path: Path
    sha256: str
    size: int
    filename: str | bytes


@dataclass
class DepositRequest:
    siren: str
    circuit: str
    upload: Upload
    label: str | None = None
    comment: str | None = None
    email_destinataire: str | None = None
    email_cc: str | None = None
    source: str = "ws"  # ws | webdav | portal
    annexes: list[Upload] = field(default_factory=list)
    pictograms: bytes | None = None  # pictograms XML (positions of visa/signature pictograms), kept as given


@dataclass(frozen=True)
class Deposited:
    document_id: int
    name: str
    label: str


@dataclass
class _Prepared:
    """Everything checked and stored as blobs, ready for the one transaction."""

    name: str
    label: str | None
    kind: str
    sha256: str
    size: int
    path: Path
    nom_fic: str | None = None
    extra: dict[str, object] = field(default_factory=dict)
    annex_files: list[tuple[str, Path]] = field(default_factory=list)
    annexes: list[tuple[str, str, int]] = field(default_factory=list)  # (name, sha256, size), once stored
    from_bundle: bool = False
    metadata: list[tuple[str, str]] = field(default_factory=list)


def _no_control_characters(value: str, what: str) -> None:
    if any(ord(ch) < 32 and ch not in "\t\r\n" for ch in value) or "\x00" in value:
        raise ParafeError(E.BAD_CHARACTERS, detail=f"control character in {what}")


def parse_email_list(value: str | None) -> str | None:
    """Normalise a `,` or `;` separated e-mail list (spec §2.6.2); refuses malformed addresses."""
    if value is None or not value.strip():
        return None
    _no_control_characters(value, "e-mail list")
    if len(value) > 1024:
        raise ParafeError(E.BAD_REQUEST, reason="liste d'adresses électroniques trop longue")
    emails = [part.strip() for part in re.split(r"[;,]", value) if part.strip()]
    for email in emails:
        if not is_email(email):
            raise ParafeError(E.BAD_REQUEST, reason=f"adresse électronique invalide : {email}")
    return ",".join(emails) or None


def check_comment(comment: str | None) -> str | None:
    """A deposit comment: at most 255 characters, no control characters (None when empty)."""
    if comment is None or not comment.strip():
        return None
    _no_control_characters(comment, "comment")
    if len(comment) > 255:
        raise ParafeError(E.BAD_REQUEST, reason="le commentaire ne doit pas excéder 255 caractères")
    return comment.strip()


def _name_limit(ctx: AppContext, source: str) -> int:
    return ctx.settings.name_limit_webdav if source == "webdav" else ctx.settings.name_limit_ws


def _check_main_file(ctx: AppContext, circuit: DepositCircuit, name: str, path: Path, size: int) -> tuple[str, dict]:
    """Format checks of the main document; returns its kind and facts to keep (NomFic, signature…)."""
    if size == 0:
        raise ParafeError(E.EMPTY_FILE)
    ext = rules.extension_of(name)
    if ext not in rules.ANNEX_EXTENSIONS:
        raise ParafeError(E.EXTENSION_NOT_ALLOWED, detail=f"extension '{ext}'")
    kind = document_kind(circuit.type, ext)
    if kind is None:
        if circuit.type in HELIOS_TYPES:
            raise ParafeError(E.NOT_PES, detail=f"a {circuit.type} circuit takes PES XML files")
        raise ParafeError(E.EXTENSION_NOT_ALLOWED, detail=f"a {circuit.type} circuit does not take .{ext} files")
    facts: dict[str, object] = {}
    if kind == "pdf":
        info = pdfformat.ensure_signable(path, pdfformat.PdfLimits.from_settings(ctx.settings))
        facts["pages"] = info.pages
        facts["pdf_signatures"] = info.signature_count
    elif kind == "pes":
        pes = pesformat.inspect_pes(path, pj_circuit=circuit.pes_pj)
        if pes.signature != "none":  # spec §4.4 case 3: a broken signature is refused (only signed PES pay)
            from parafe.signing.pes_verify import integrity_errors

            broken = integrity_errors(path.read_bytes())
            if broken:
                raise ParafeError(E.PES_SIGNATURE_INVALID, detail="; ".join(broken)[:2000])
        facts["nom_fic"] = pes.nom_fic
        facts["pes_signature"] = pes.signature
        facts["bordereaux"] = pes.bordereau_count
        facts["typ_fic"] = pes.typ_fic
    return kind, facts


def _prepare(ctx: AppContext, circuit: DepositCircuit, req: DepositRequest, workdir: Callable[[], Path]) -> _Prepared:
    limit = _name_limit(ctx, req.source)
    name = rules.normalise_name(req.upload.filename, limit)
    label = rules.check_label(req.label)
    main_path, main_sha, main_size = req.upload.path, req.upload.sha256, req.upload.size
    annex_files: list[tuple[str, Path]] = []
    metas_path: Path | None = None
    if main_size == 0:
        raise ParafeError(E.EMPTY_FILE)
    if bundles.is_bundle_name(name):
        bundle = bundles.open_bundle(
            main_path, name, workdir(), max_total_bytes=ctx.settings.bundle_max_total_bytes,
            max_ratio=ctx.settings.bundle_max_ratio, max_entries=ctx.settings.bundle_max_entries)
        name = rules.normalise_name(bundle.main_name, limit)
        main_path = bundle.main
        main_size = main_path.stat().st_size
        main_sha = ""
        annex_files = list(bundle.annexes)
        metas_path = bundle.metas
    for extra in req.annexes:
        annex_name = rules.normalise_name(extra.filename, limit)
        if extra.size == 0:
            raise ParafeError(E.EMPTY_FILE, detail=f"annex {annex_name}")
        if rules.extension_of(annex_name) not in rules.ANNEX_EXTENSIONS:
            raise ParafeError(E.EXTENSION_NOT_ALLOWED, detail=f"annex {annex_name}")
        annex_files.append((annex_name, extra.path))
    kind, facts = _check_main_file(ctx, circuit, name, main_path, main_size)
    metadata: list[tuple[str, str]] = []
    if metas_path is not None:
        metadata = metaformat.parse_meta_data_list(metas_path.read_bytes())
        model = _metadata_model(circuit)
        if model is not None:  # without a model the bundle's metadata are kept as given
            metaformat.validate_metadata(metadata, model)
    nom_fic = facts.pop("nom_fic", None)
    pages = facts.get("pages")
    pictograms = check_pictograms(req.pictograms, pages=pages if isinstance(pages, int) else None)
    if pictograms is not None:
        facts["pictograms_xml"] = pictograms
    return _Prepared(
        name=name, label=label, kind=kind, sha256=main_sha, size=main_size, path=main_path,
        nom_fic=str(nom_fic) if nom_fic else None, extra=facts, annex_files=annex_files, metadata=metadata,
        from_bundle=metas_path is not None or main_path != req.upload.path)


def _store_blobs(ctx: AppContext, prep: _Prepared) -> None:
    """Write the blobs (before the transaction that references them: an orphan blob is harmless)."""
    # The upload's spool file (or the bundle's extracted file) is ours: move it into the store, no copy.
    ref = ctx.store.put_file(prep.path, sha256=prep.sha256 or None, move=True)
    prep.sha256, prep.size = ref.sha256, ref.size
    for annex_name, annex_path in prep.annex_files:
        annex_ref = ctx.store.put_file(annex_path)
        prep.annexes.append((annex_name, annex_ref.sha256, annex_ref.size))


def _metadata_model(circuit: DepositCircuit) -> list[metaformat.MetadataField] | None:
    if not circuit.metadata_model:
        return None
    return [metaformat.MetadataField(**f) for f in circuit.metadata_model]


# The deposit's statements, built once (SQLAlchemy caches their compiled form): Core, not the ORM, on this hot
# path — measured, the ORM's unit of work cost more than the rest of a 100 KB PDF deposit's database work.
_labels = Label.__table__
_LABEL_ID = select(_labels.c.id).where(_labels.c.circuit_id == bindparam("circuit_id"),
                                       _labels.c.name == bindparam("name"))
_LABEL_COUNT = select(func.count()).select_from(_labels).where(_labels.c.circuit_id == bindparam("circuit_id"))
_NOMFIC_TAKEN = select(PesNomFic.__table__.c.nom_fic).where(PesNomFic.__table__.c.nom_fic == bindparam("nom_fic"))
_INSERT_LABEL = insert(Label)
_INSERT_DOCUMENT = insert(Document)
_INSERT_NOMFIC = insert(PesNomFic)
_INSERT_ANNEX = insert(Annex)
_INSERT_METADATA = insert(MetadataValue)
_INSERT_HISTORY = insert(HistoryEntry)
_INSERT_OUTBOX = insert(OutboxItem)


def _new_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _label_for(conn: Connection, circuit_id: int, wanted: str | None, guard: int) -> tuple[int, str, str | None]:
    """The label (created if needed): its id, its name, and a history note when the guard replaced the wanted
    label."""
    today = rules.default_label()
    name = wanted or today
    label_id = conn.execute(_LABEL_ID, {"circuit_id": circuit_id, "name": name}).scalar()
    note = None
    if label_id is None and wanted is not None:
        count = conn.execute(_LABEL_COUNT, {"circuit_id": circuit_id}).scalar() or 0
        if count >= guard:
            note = f"Libellé « {wanted} » remplacé par « {today} » : plus de {guard} libellés dans ce circuit."
            name = today
            label_id = conn.execute(_LABEL_ID, {"circuit_id": circuit_id, "name": name}).scalar()
    if label_id is None:
        try:
            with conn.begin_nested():  # a concurrent deposit may create the same new label
                label_id = _new_id(conn.execute(_INSERT_LABEL, {"circuit_id": circuit_id, "name": name,
                                                                 "created_at": utcnow()}))
        except IntegrityError:
            label_id = conn.execute(_LABEL_ID, {"circuit_id": circuit_id, "name": name}).scalar_one()
    return int(label_id), name, note


def _nom_fic_taken(conn: Connection, nom_fic: str) -> bool:
    return conn.execute(_NOMFIC_TAKEN, {"nom_fic": nom_fic}).first() is not None


def _duplicate(conn: Connection, circuit_id: int, label_name: str, name: str, nom_fic: str | None) -> None:
    """Raise the catalogue error if the triplet is taken by a live document or the NomFic was ever used."""
    if conn.execute(LIVE_TRIPLET_TAKEN, {"circuit_id": circuit_id, "label": label_name, "name": name}).scalar():
        raise ParafeError(E.DUPLICATE_FILE)
    if nom_fic and _nom_fic_taken(conn, nom_fic):
        raise ParafeError(E.PES_DUPLICATE_NOMFIC)


CircuitMaker = Callable[[Session], Circuit]
InsertHook = Callable[[Connection, int], None]  # (the deposit's connection, the new document's id)


def _insert(
    ctx: AppContext, account: Account, circuit: DepositCircuit, req: DepositRequest, prep: _Prepared,
    comment: str | None, dest: str | None, cc: str | None, make_circuit: CircuitMaker | None = None,
    on_insert: InsertHook | None = None,
) -> Deposited:
    """The one transaction of a deposit; uniqueness is guaranteed by the database's unique indexes.

    ``make_circuit`` creates the circuit in this same transaction (on-demand circuits, with the ORM): if the
    deposit fails, no circuit is left behind. Otherwise the transaction runs on a bare connection."""
    if make_circuit is None:
        with ctx.db.write_connection() as conn:
            return _insert_rows(conn, ctx, account, circuit, req, prep, comment, dest, cc, on_insert)
    with ctx.db.write() as session:
        made = DepositCircuit.of(make_circuit(session))
        return _insert_rows(session.connection(), ctx, account, made, req, prep, comment, dest, cc, on_insert)


def _insert_rows(
    conn: Connection, ctx: AppContext, account: Account, circuit: DepositCircuit, req: DepositRequest,
    prep: _Prepared, comment: str | None, dest: str | None, cc: str | None, on_insert: InsertHook | None,
) -> Deposited:
    assert circuit.id is not None
    assert circuit.subscriber_id is not None
    label_id, label_name, note = _label_for(conn, circuit.id, prep.label, ctx.settings.label_guard)
    now = utcnow()
    document_id = _new_id(conn.execute(_INSERT_DOCUMENT, {
        "subscriber_id": circuit.subscriber_id, "circuit_id": circuit.id, "label_id": label_id,
        "name": prep.name, "kind": prep.kind, "state": State.PREPARED.value, "blob_sha256": prep.sha256,
        "size": prep.size, "nom_fic": prep.nom_fic, "uploader_id": account.user_id, "comment": comment,
        "email_destinataire": dest, "email_cc": cc, "source": req.source, "extra": dict(prep.extra),
        "created_at": now, "updated_at": now}))
    if prep.nom_fic:
        conn.execute(_INSERT_NOMFIC, {"nom_fic": prep.nom_fic, "document_id": document_id})
    if prep.annexes:
        conn.execute(_INSERT_ANNEX, [
            {"document_id": document_id, "position": position, "name": annex_name, "blob_sha256": sha,
             "size": size} for position, (annex_name, sha, size) in enumerate(prep.annexes)])
    if prep.metadata:
        conn.execute(_INSERT_METADATA, [
            {"document_id": document_id, "position": position, "name": meta_name, "value": value}
            for position, (meta_name, value) in enumerate(prep.metadata)])
    conn.execute(_INSERT_HISTORY, {
        "document_id": document_id, "state": State.PREPARED.value, "user_id": account.user_id,
        "user_fullname": account.full_name, "comment": note or comment, "created_at": now})
    conn.execute(_INSERT_OUTBOX, {"kind": "workflow.start", "document_id": document_id, "payload": {},
                                  "created_at": now, "available_at": now})
    if on_insert is not None:
        on_insert(conn, document_id)  # connector rows (WebDAV receipts) in the same transaction
    return Deposited(document_id=document_id, name=prep.name, label=label_name)


def _record_refusal(ctx: AppContext, account: Account, req: DepositRequest, error: ParafeError) -> None:
    """Queue the depositor's error mail (spec §1.2.7: "un email est envoyé à l'acteur à l'origine du dépôt")."""
    filename = req.upload.filename
    if isinstance(filename, bytes):
        filename = filename.decode("utf-8", "replace")
    try:
        with ctx.db.write() as session:
            session.add(OutboxItem(kind="mail.deposit_error", payload={
                "to": account.email, "user_id": account.user_id, "siren": req.siren, "circuit": req.circuit,
                "filename": filename[:300], "code": error.code, "message": error.message}))
    except Exception:  # the refusal itself must still reach the client
        log.exception("could not queue the deposit error mail")


def deposit(ctx: AppContext, principal: Principal, req: DepositRequest, *,
            on_insert: InsertHook | None = None) -> Deposited:
    """Check and store one deposit; returns the new document id. Raises :class:`ParafeError` on refusal.

    ``on_insert(connection, document_id)`` runs inside the deposit's transaction (for a connector's own rows)."""
    account = None
    if not bundles.is_bundle_name(str(req.upload.filename)):  # a zip is unpacked, not stored
        ctx.store.start_flush(req.upload.path, req.upload.sha256)  # written while the checks below run
    try:
        triplet: tuple[str, str] | None = None
        name_error: ParafeError | None = None
        if not bundles.is_bundle_name(str(req.upload.filename)):
            # a plain file: refuse a taken triplet before reading the content (in the rights query)
            try:
                triplet = (rules.check_label(req.label) or rules.default_label(),
                           rules.normalise_name(req.upload.filename, _name_limit(ctx, req.source)))
            except ParafeError as exc:
                name_error = exc  # told after the rights errors, as before
        with ctx.db.read_connection() as conn:
            account, circuit, taken = deposit_target(conn, principal, req.siren, req.circuit, triplet)
        if name_error is not None:
            raise name_error
        if taken:
            raise ParafeError(E.DUPLICATE_FILE)
    except ParafeError as error:
        if account is not None:
            _record_refusal(ctx, account, req, error)
        raise
    return deposit_into(ctx, account, circuit, req, on_insert=on_insert, _triplet_checked=True)


def deposit_into(
    ctx: AppContext, account: Account, circuit: DepositCircuit | Circuit, req: DepositRequest, *,
    make_circuit: CircuitMaker | None = None, extra: dict[str, object] | None = None,
    on_insert: InsertHook | None = None, _triplet_checked: bool = False,
) -> Deposited:
    """Deposit into a circuit the caller's rights were already checked on (every check of the content runs).

    ``circuit`` gives the type and rules; with ``make_circuit`` (on-demand circuits) the real circuit is created
    inside the deposit's transaction. ``extra`` is merged into the document's ``extra``."""
    if isinstance(circuit, Circuit):
        circuit = DepositCircuit.of(circuit)
    try:
        comment = check_comment(req.comment)
        dest = parse_email_list(req.email_destinataire)
        cc = parse_email_list(req.email_cc)
        workdirs: list[Path] = []

        def workdir() -> Path:
            if not workdirs:
                workdirs.append(Path(tempfile.mkdtemp(prefix="deposit-", dir=ctx.tmp_dir)))
            return workdirs[0]

        try:
            prep = _prepare(ctx, circuit, req, workdir)
            prep.extra.update(extra or {})
            label_name = prep.label or rules.default_label()
            if make_circuit is None and (prep.from_bundle or not _triplet_checked):
                with ctx.db.read_connection() as conn:
                    _duplicate(conn, circuit.id or 0, label_name, prep.name, prep.nom_fic)
            elif prep.nom_fic:
                with ctx.db.read_connection() as conn:
                    if _nom_fic_taken(conn, prep.nom_fic):
                        raise ParafeError(E.PES_DUPLICATE_NOMFIC)
            _store_blobs(ctx, prep)
            try:
                deposited = _insert(ctx, account, circuit, req, prep, comment, dest, cc, make_circuit, on_insert)
                kick(ctx, [deposited.document_id])  # its workflow.start row is committed: wake the workers now
                return deposited
            except IntegrityError:
                with ctx.db.read_connection() as conn:  # a concurrent deposit won the race: say which rule
                    if make_circuit is None:
                        _duplicate(conn, circuit.id or 0, label_name, prep.name, prep.nom_fic)
                    elif prep.nom_fic and _nom_fic_taken(conn, prep.nom_fic):
                        raise ParafeError(E.PES_DUPLICATE_NOMFIC) from None
                raise
        finally:
            for path in workdirs:
                shutil.rmtree(path, ignore_errors=True)
    except ParafeError as error:
        _record_refusal(ctx, account, req, error)
        raise
