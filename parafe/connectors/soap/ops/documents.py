"""Document operations: upload, download, getFdc, history, delete, rawdelete, getRefusalMessage, uploadPJ,
getProperties, getPropertiesByName."""

from __future__ import annotations

from typing import Any

from parafe.connectors.soap.codec import BinaryOut
from parafe.connectors.soap.envelope import bad_request
from parafe.connectors.soap.ops import Call, operation
from parafe.context import AppContext
from parafe.services.documents import annexes, downloads, history, lifecycle, properties
from parafe.services.documents import deposit as documents


def content_value(call: Call, content: downloads.Content) -> bytes | BinaryOut:
    """A downloaded :class:`~parafe.services.documents.downloads.Content` as a base64 value, streamed when large."""
    ctx: AppContext = call.ctx
    if content.data is not None:
        return content.data
    if content.path is not None:
        path = content.path
        call.cleanup.append(content.cleanup)
        return BinaryOut(content.size, lambda: open(path, "rb"))
    sha = content.blob_sha256
    assert sha is not None
    return BinaryOut(content.size, lambda: ctx.store.open(sha))


def document_content(call: Call, document_id: str, content: downloads.Content) -> dict[str, Any]:
    return {"return": {"documentId": document_id, "content": content_value(call, content)}}


@operation("upload")
def upload(call: Call) -> dict[str, Any]:
    data_file = call.file("dataFileVO")
    if data_file is None:
        raise bad_request("le document « dataFileVO » est obligatoire")
    request = documents.DepositRequest(
        siren=(call.text("subscriberId") or "").strip(), circuit=call.text("circuitId") or "", upload=data_file,
        label=call.text("label"), comment=call.text("comment"),
        email_destinataire=call.text("email_destinataire"), source="ws",
        pictograms=call.small_binary("pictogrammes"))
    deposited = documents.deposit(call.ctx, call.principal, request)
    return {"return": str(deposited.document_id)}


@operation("download")
def download(call: Call) -> dict[str, Any]:
    document_id = call.document_id()
    content = downloads.download(call.ctx, call.principal, document_id, acquit=call.flag("acquit"),
                                 fdc=call.flag("fdc"), client="soap")
    return document_content(call, document_id, content)


@operation("getFdc")
def get_fdc(call: Call) -> dict[str, Any]:
    document_id = call.document_id()
    return document_content(call, document_id, downloads.get_fdc(call.ctx, call.principal, document_id))


@operation("history")
def history_(call: Call) -> dict[str, Any]:
    return {"return": history.history(call.ctx, call.principal, call.document_id())}


@operation("delete")
def delete(call: Call) -> dict[str, Any]:
    lifecycle.delete(call.ctx, call.principal, call.document_id())
    return {}


@operation("rawdelete")
def rawdelete(call: Call) -> dict[str, Any]:
    """Undocumented variant of ``delete`` on the live service; Parafe applies the same rules (D14)."""
    lifecycle.delete(call.ctx, call.principal, call.document_id())
    return {}


@operation("getRefusalMessage")
def get_refusal_message(call: Call) -> dict[str, Any]:
    # ``documentId`` (Pastell, v3.4 §2.5.15) was renamed to the WSDL's ``nodeRefId`` before validation.
    message = lifecycle.require_refusal_message(call.ctx, call.principal, call.document_id("nodeRefId"))
    return {"return": message}


@operation("uploadPJ")
def upload_pj(call: Call) -> dict[str, Any]:
    """Add an attachment to a document (undocumented on the live service; faults are ``IOException``)."""
    document_id = call.document_id()
    attachment = call.file("file")
    if attachment is None:
        properties.document_properties(call.ctx, call.principal, document_id)  # unknown/foreign: not found
        raise bad_request("le fichier « file » est obligatoire")
    result = annexes.add_annex(call.ctx, call.principal, document_id, attachment)
    return {"return": str(result)}


@operation("getProperties")
def get_properties(call: Call) -> dict[str, Any]:
    items = properties.document_properties(call.ctx, call.principal, call.document_id())
    return {"return": [{"name": p.name, "propertyRank": p.rank, "value": p.value} for p in items]}


@operation("getPropertiesByName")
def get_properties_by_name(call: Call) -> dict[str, Any]:
    values = properties.properties_named(call.ctx, call.principal, call.document_id(), call.text("name") or "")
    return {"return": values}
