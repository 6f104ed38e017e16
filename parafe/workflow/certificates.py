"""Whose is a signing certificate: the rule shared by the engine's signature check
(:mod:`parafe.workflow.verification`) and the portal's remote signing (:mod:`parafe.services.signers.remote_signing`).

A certificate belongs to an account when it is bound to it (a :class:`~parafe.db.models.UserCertificate` row
with its SHA-256 fingerprint, what the demo set and ``parafe-admin user cert add`` create) or when it is issued
to the account's e-mail address (rfc822Name SAN or subject ``emailAddress``); the chain of trust is checked
separately, so an address only counts in a certificate from a trusted CA.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from sqlalchemy.orm import Session

from parafe.db.models import UserCertificate
from parafe.security.pki import fingerprint_sha256


def certificate_emails(cert: x509.Certificate) -> set[str]:
    """E-mail addresses of a certificate (rfc822Name SANs and the subject's emailAddress), lower-case."""
    emails = {str(attr.value).lower() for attr in cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)}
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        emails |= {e.lower() for e in san.get_values_for_type(x509.RFC822Name)}
    except x509.ExtensionNotFound:
        pass
    return emails


def owned_by(session: Session, user_id: int, email: str, cert: x509.Certificate) -> bool:
    """Whether ``cert`` belongs to the account ``user_id`` (e-mail ``email``); see the module docstring."""
    if email.lower() in certificate_emails(cert):
        return True
    fingerprint = fingerprint_sha256(cert)
    return session.scalar(select(UserCertificate.id).where(
        UserCertificate.user_id == user_id, UserCertificate.fingerprint == fingerprint)) is not None
