"""Filing a return received from an outside system (spec §2.3, §10; DECISIONS D11): a Helios acknowledgement, a
PES_Retour flow from the treasury or a Chorus-Pivot flow, stored as a :class:`parafe.db.models.ReturnItem`.

An acknowledgement's public id **is** its document's id; PES_Retour and Chorus flows get ids allocated from
:data:`RETURN_ID_START` + the row id (9 digits, never reused). The lists and downloads clients use are the
service :mod:`parafe.services.helios.returns`; this module is only the filing, below both the transports that
receive returns (:mod:`parafe.transmission.chorus`, ``parafe dev inject``) and that service.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from sqlalchemy import select

from parafe.context import AppContext
from parafe.db.models import Document, ReturnItem, Subscriber

ReturnKind = Literal["ack", "pes_retour", "chorus"]
KINDS: tuple[ReturnKind, ...] = ("ack", "pes_retour", "chorus")
RETURN_ID_START = 200_000_000


def add_return(
    ctx: AppContext, *, kind: ReturnKind, data: bytes | Path, name: str, document_id: int | None = None,
    siren: str | None = None,
) -> int:
    """Store a return and put it in its remaining list; returns its public id.

    An ``ack`` needs ``document_id`` (its public id is the document id); ``pes_retour`` and ``chorus`` need
    ``siren`` (or a ``document_id`` whose subscriber is used). The blob is written before the row commits.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown return kind {kind!r}")
    if kind == "ack" and document_id is None:
        raise ValueError("an acknowledgement belongs to a document")
    ref = ctx.store.put_file(data) if isinstance(data, Path) else ctx.store.put_bytes(data)
    with ctx.db.write() as session:
        if document_id is not None:
            document = session.get(Document, document_id)
            if document is None:
                raise ValueError(f"no document {document_id}")
            subscriber_id = document.subscriber_id
        elif siren is not None:
            found = session.scalar(select(Subscriber.id).where(Subscriber.siren == siren))
            if found is None:
                raise ValueError(f"no subscriber {siren}")
            subscriber_id = found
        else:
            raise ValueError("siren or document_id is required")
        item = ReturnItem(subscriber_id=subscriber_id, document_id=document_id, public_id=0, kind=kind,
                          name=name[:255], blob_sha256=ref.sha256)
        session.add(item)
        session.flush()
        item.public_id = document_id if kind == "ack" and document_id is not None else RETURN_ID_START + item.id
        return item.public_id
