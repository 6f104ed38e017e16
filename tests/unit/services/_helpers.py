"""Shared helpers of the service unit tests: deposits through the real deposit service."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

from parafe.services.access.auth import principal_for_email
from parafe.services.documents.deposit import DepositRequest, Upload, deposit
from tests.fixtures.files import pdf_bytes

AGENT = "agent@demo.parafe.test"


def upload(tmp_path: Path, name: str | None = None, data: bytes | None = None) -> Upload:
    data = pdf_bytes() if data is None else data
    name = name or f"doc-{uuid.uuid4().hex[:8]}.pdf"
    path = tmp_path / f"up-{uuid.uuid4().hex}"
    path.write_bytes(data)
    return Upload(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data), filename=name)


def deposit_pdf(ctx: Any, tmp_path: Path, circuit: str = "bureautique", user: str = AGENT, **kw: Any) -> int:
    req = DepositRequest(siren="123456789", circuit=circuit, upload=upload(tmp_path), **kw)
    return deposit(ctx, principal_for_email(ctx, user), req).document_id
