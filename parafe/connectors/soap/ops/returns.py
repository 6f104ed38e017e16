"""Return operations (spec §2.3, D11): listRemainingAcknowledgements / Chorus / PesRetour, the matching
downloads, and listRemainingSignedDocs."""

from __future__ import annotations

from typing import Any

from parafe.connectors.soap.ops import Call, operation
from parafe.services.helios import returns
from parafe.services.helios.returns import ReturnKind


def _list(call: Call, kind: ReturnKind) -> dict[str, Any]:
    ids = returns.remaining(call.ctx, call.principal, (call.text("siren") or "").strip(), kind)
    return {"return": [str(i) for i in ids]}


def _download(call: Call, kind: ReturnKind) -> dict[str, Any]:
    document_id = call.document_id()
    content = returns.download(call.ctx, call.principal, document_id, kind)
    return {"return": {"documentId": str(content.public_id), "content": content.data}}


@operation("listRemainingAcknowledgements")
def list_remaining_acknowledgements(call: Call) -> dict[str, Any]:
    return _list(call, "ack")


@operation("listRemainingChorus")
def list_remaining_chorus(call: Call) -> dict[str, Any]:
    return _list(call, "chorus")


@operation("listRemainingPesRetour")
def list_remaining_pes_retour(call: Call) -> dict[str, Any]:
    return _list(call, "pes_retour")


@operation("downloadAcknowledgement")
def download_acknowledgement(call: Call) -> dict[str, Any]:
    return _download(call, "ack")


@operation("downloadChorus")
def download_chorus(call: Call) -> dict[str, Any]:
    return _download(call, "chorus")


@operation("downloadPesRetour")
def download_pes_retour(call: Call) -> dict[str, Any]:
    return _download(call, "pes_retour")
