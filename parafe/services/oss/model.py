"""OSS — the model shared by its modules: modes, roles, document statuses, the requests and answers of the
deposit methods, and a workflow's metadata model (spec §3, API-REFERENCE §8). The signer's identity is
:class:`parafe.services.otp.identity.SignerIdentity`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from parafe.db.models import OssWorkflow
from parafe.formats import metadata as metaformat
from parafe.services.documents.deposit import Upload
from parafe.services.otp.identity import SignerIdentity

MODES = ("server", "sa", "sms", "sgc")
AGENT = "agent"
ADMIN = "admin"
WAITING, SIGNING, SIGNED, REFUSED, FAILED = "waiting", "signing", "signed", "refused", "failed"

_KINDS = ("text", "numeric", "date", "regex")


# --- small value types --------------------------------------------------------------------------------------------
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
    signer: SignerIdentity = field(default_factory=SignerIdentity)
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
