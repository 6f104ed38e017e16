"""Who signs with a one-time code: the one signer identity type of the OTP signature of circuits (the document's
``OTP_*_i`` information or the step's member, :mod:`parafe.services.otp.codes`), of OTP links
(:mod:`parafe.services.otp.links`) and of the OSS signing pages (:mod:`parafe.services.oss`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from parafe.notify.sms import normalise_phone


@dataclass(frozen=True)
class SignerIdentity:
    """The person who signs on a page (SMS / e-mail code, on-the-fly certificate)."""

    firstname: str | None = None
    lastname: str | None = None
    email: str | None = None
    phone: str | None = None

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.firstname, self.lastname) if p) or self.email or self.phone or ""

    def key(self) -> tuple[str | None, str | None]:
        """What must be identical on every document signed with one code (D15): e-mail and phone."""
        return (self.email.lower() if self.email else None, normalise_phone(self.phone) if self.phone else None)

    def as_dict(self) -> dict[str, str | None]:
        return {"firstname": self.firstname, "lastname": self.lastname, "email": self.email, "phone": self.phone}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> SignerIdentity:
        data = data or {}
        return cls(*(str(data[k]).strip() or None if data.get(k) else None
                     for k in ("firstname", "lastname", "email", "phone")))

    def merged(self, other: SignerIdentity) -> SignerIdentity:
        """Fields of ``self``, completed by ``other``."""
        return SignerIdentity(self.firstname or other.firstname, self.lastname or other.lastname,
                              self.email or other.email, self.phone or other.phone)
