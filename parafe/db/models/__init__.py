"""Database schema (SQLAlchemy 2 declarative models) of Parafe, one module per area.

One schema for SQLite (default) and PostgreSQL. Document ids come from an identity starting at 100000000
(DECISIONS D1). Blobs are referenced by sha256 (see :mod:`parafe.storage`). Every table is imported here, so
that ``Base.metadata`` (Alembic, ``create_all``) sees all of them and ``from parafe.db.models import X`` works
for every model.
"""

from __future__ import annotations

from parafe.db.models.accounts import Delegation, Group, GroupMember, LoginThrottle, Subscriber, User, UserCertificate
from parafe.db.models.base import DOCUMENT_ID_START, NAMING, Base, UTCDateTime, utcnow
from parafe.db.models.circuits import Circuit, CircuitRole, CircuitStep, Label, StepMember
from parafe.db.models.compliance import ComplianceClient, ComplianceCounter, ComplianceExample, CompliancePending
from parafe.db.models.documents import (
    Annex,
    Document,
    DocumentBlobVersion,
    DocumentTombstone,
    DownloadLink,
    HistoryEntry,
    MetadataValue,
    PesNomFic,
    ReturnItem,
    SignedFetch,
)
from parafe.db.models.jobs import DevMessage, OutboxItem
from parafe.db.models.oss import (
    OSS_DOCUMENT_ID_START,
    OssAuthLog,
    OssCode,
    OssDocument,
    OssLink,
    OssLinkDocument,
    OssWorkflow,
    OssWorkflowMember,
)
from parafe.db.models.otp import OtpChallenge, OtpLink, OtpUsage, SmsDelivery
from parafe.db.models.passkeys import Passkey, PasskeyChallenge, ServerKey
from parafe.db.models.transmission import S2lowAccount, S2lowRetour, S2lowTransaction
from parafe.db.models.webdav import WebdavDeposit

__all__ = [
    "Annex", "Base", "Circuit", "CircuitRole", "CircuitStep", "ComplianceClient", "ComplianceCounter",
    "ComplianceExample", "CompliancePending", "DOCUMENT_ID_START", "Delegation", "DevMessage", "Document",
    "DocumentBlobVersion", "DocumentTombstone", "DownloadLink", "Group", "GroupMember", "HistoryEntry", "Label",
    "LoginThrottle", "MetadataValue", "NAMING", "OSS_DOCUMENT_ID_START", "OssAuthLog", "OssCode", "OssDocument",
    "OssLink", "OssLinkDocument", "OssWorkflow", "OssWorkflowMember", "OtpChallenge", "OtpLink", "OtpUsage",
    "OutboxItem", "Passkey", "PasskeyChallenge", "PesNomFic", "ReturnItem", "S2lowAccount", "S2lowRetour",
    "S2lowTransaction", "ServerKey", "SignedFetch", "SmsDelivery", "StepMember", "Subscriber", "UTCDateTime",
    "User", "UserCertificate", "WebdavDeposit", "utcnow",
]
