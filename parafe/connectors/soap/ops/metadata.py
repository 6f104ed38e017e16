"""Metadata operations: uploadMeta, uploadOTPInformation, getMetas."""

from __future__ import annotations

from typing import Any

from parafe.connectors.soap.envelope import Binary
from parafe.connectors.soap.ops import Call, operation
from parafe.domain.errors import E, ParafeError
from parafe.services.documents import downloads, metadata


def binary_bytes(call: Call, name: str) -> bytes:
    """The decoded content of a base64 parameter (metadata files are small; absent means empty)."""
    value = call.values.get(name)
    if not isinstance(value, Binary):
        return b""
    if value.size > call.ctx.settings.max_upload_bytes:
        raise ParafeError(E.FILE_TOO_LARGE)
    return value.path.read_bytes()


@operation("uploadMeta")
def upload_meta(call: Call) -> dict[str, Any]:
    document_id = call.document_id()
    metadata.upload_meta(call.ctx, call.principal, document_id, binary_bytes(call, "arg1"))
    return {"return": document_id}


@operation("uploadOTPInformation")
def upload_otp_information(call: Call) -> dict[str, Any]:
    document_id = call.document_id()
    metadata.upload_otp_information(call.ctx, call.principal, document_id, binary_bytes(call, "arg1"))
    return {"return": document_id}


@operation("getMetas")
def get_metas(call: Call) -> dict[str, Any]:
    items = downloads.metadata_items(call.ctx, call.principal, call.document_id())
    return {"return": [{"metaDataId": str(m.id), "metaDataName": m.name, "metaDataValue": m.value}
                       for m in items]}
