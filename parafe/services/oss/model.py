"""OSS — the model shared by its modules: modes, roles, document statuses, the signer's identity, the requests
and answers of the deposit methods, and a workflow's metadata model (spec §3, API-REFERENCE §8)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from parafe.db.models import OssWorkflow
from parafe.formats import metadata as metaformat
from parafe.notify.sms import normalise_phone
from parafe.services.documents.deposit import Upload

MODES = ("server", "sa", "sms", "sgc")
AGENT = "agent"
ADMIN = "admin"
WAITING, SIGNING, SIGNED, REFUSED, FAILED = "waiting", "signing", "signed", "refused", "failed"

_KINDS = ("text", "numeric", "date", "regex")


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
