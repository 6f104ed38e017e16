"""Exceptions of the signing engine.

Every error raised on purpose by :mod:`parafe.signing` derives from :class:`SigningError`. Messages are in
French (they reach operators through the CLI and users through the portal); the class tells callers what
happened without parsing text. The workflow maps them to catalogue errors (``parafe.domain.errors``).
"""

from __future__ import annotations


class SigningError(Exception):
    """Base class of every signing-engine error."""


class KeyLoadError(SigningError):
    """A key or certificate could not be loaded (PKCS#12, PKCS#11, PEM)."""


class TimestampError(SigningError):
    """The time-stamp authority could not deliver a token (never downgraded to a weaker level)."""


class PdfSigningError(SigningError):
    """A PDF could not be signed."""


class PdfProtectedError(PdfSigningError):
    """The PDF forbids modification (password, permissions or a certification signature)."""


class XmlSigningError(SigningError):
    """An XML document (PES, detached XAdES) could not be signed."""


class PesAlreadySignedError(XmlSigningError):
    """The PES already carries a signature; an element takes at most one signature."""


class PesStructureError(XmlSigningError):
    """The PES does not have the structure the requested signature needs."""


class PesInfoDematerialiseeError(XmlSigningError):
    """``InfoDematerialisee`` is incompatible with a signed flow and the caller asked to check, not fix."""


class RemoteSigningError(SigningError):
    """A remote-signing session is invalid, or the returned signature value does not match it."""


class VerificationInputError(SigningError):
    """The file given for verification cannot be read at all (not a PDF, not XML, ...)."""
