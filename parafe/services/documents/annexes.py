"""Annexes added to a document after its deposit (SOAP ``uploadPJ``; the portal's "ajouter une annexe").

Same rules as annexes given at deposit: file name rules, the extension allow-list of spec §2.7, no empty file.
Allowed to the document's depositor, agents of its circuit and the subscriber's admins, while the document is
not finished (``states.FINISHED``: filed, archived, replaced, and since issue 19 also refused, rejected or
failed in transmission, as nobody acts on it any more). The blob is written before the transaction that
references it.
"""

from __future__ import annotations

from sqlalchemy import func, select

from parafe.context import AppContext
from parafe.db.models import Annex
from parafe.domain import deposit as rules
from parafe.domain.errors import E, ParafeError
from parafe.domain.states import FINISHED_VALUES
from parafe.services.access.auth import Principal
from parafe.services.access.rights import AGENT, roles_on, visible_document
from parafe.services.documents.deposit import Upload


def add_annex(ctx: AppContext, principal: Principal, document_id: int | str, upload: Upload) -> int:
    """Attach ``upload`` to a visible document; returns the annex position (0-based)."""
    name = rules.normalise_name(upload.filename, ctx.settings.name_limit_ws)
    if upload.size == 0:
        raise ParafeError(E.EMPTY_FILE)
    if not rules.is_annex_extension_allowed(name):
        raise ParafeError(E.EXTENSION_NOT_ALLOWED, detail=f"annex {name}")
    with ctx.db.read() as session:
        document, account = visible_document(session, principal, document_id)
        allowed = (account.is_admin or document.uploader_id == account.user_id
                   or AGENT in roles_on(session, account, document.circuit_id))
        if not allowed or document.state in FINISHED_VALUES:
            raise ParafeError(E.NO_PERMISSION)
        doc_id = document.id
    ref = ctx.store.put_file(upload.path, sha256=upload.sha256, move=True)
    with ctx.db.write() as session:
        position = session.scalar(
            select(func.coalesce(func.max(Annex.position) + 1, 0)).where(Annex.document_id == doc_id)) or 0
        session.add(Annex(document_id=doc_id, position=position, name=name, blob_sha256=ref.sha256, size=ref.size))
    return int(position)
