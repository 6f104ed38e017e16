"""Recipients' download links, as the workflow issues them (spec §2.6.3 ``email_destinataire`` / ``email_CC``: « une
fois le document signé, un email sera envoyé à ces adresses avec un lien permettant de télécharger le document
signé »).

A link is a capability URL ``<public URL>/telechargement/<token>``: the token carries 256 random bits
(``secrets``), only its SHA-256 is stored (:func:`token_hash`), so a copy of the database gives no usable link.
The workflow's mail to the recipients creates one (:func:`create`); opening, expiry and revocation are
:mod:`parafe.services.documents.download_links`'.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from parafe.context import AppContext
from parafe.db.models import Document, DownloadLink, utcnow

PATH = "/telechargement/{token}"
TOKEN_BYTES = 32  # 256 bits


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def link_url(base_url: str, token: str) -> str:
    return base_url.rstrip("/") + PATH.format(token=token)


def create(session: Session, ctx: AppContext, document: Document, recipients: list[str],
           now: datetime | None = None) -> tuple[str, datetime]:
    """A new link for ``document`` in the current transaction: (token, expiry). The token is returned once,
    to be mailed; it is not stored."""
    moment = now or utcnow()
    token = secrets.token_urlsafe(TOKEN_BYTES)
    expires = moment + timedelta(days=ctx.settings.download_link_days)
    session.add(DownloadLink(token_hash=token_hash(token), document_id=document.id,
                             subscriber_id=document.subscriber_id, recipients=", ".join(recipients)[:1024],
                             created_at=moment, expires_at=expires, uses=0))
    return token, expires
