"""OTP links: the current OTP step index, identity comparison (D15: e-mail and/or phone) and token storage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from parafe.db.models import Circuit, CircuitStep, OtpLink
from parafe.domain.errors import E, ParafeError
from parafe.services.access.auth import principal_for_email
from parafe.services.documents.metadata import upload_otp_information
from parafe.services.otp.links import current_otp_index, otp_url
from tests.unit.services._helpers import AGENT, deposit_pdf


def test_current_otp_index() -> None:
    circuit = Circuit(steps=[CircuitStep(position=0, kind="visa"), CircuitStep(position=1, kind="otp_signature"),
                             CircuitStep(position=2, kind="otp_signature"), CircuitStep(position=3, kind="filing")])
    assert [current_otp_index(circuit, step) for step in (None, 0, 1, 2, 3)] == [0, 0, 0, 1, None]
    assert current_otp_index(Circuit(steps=[]), None) is None


def _otp(email: str | None, phone: str | None) -> bytes:
    items = ""
    if email:
        items += f'<meta-data name="OTP_email_0" value="{email}"/>'
    if phone:
        items += f'<meta-data name="OTP_phonenumber_0" value="{phone}"/>'
    return f"<meta-data-list>{items}</meta-data-list>".encode()


def test_identity_normalised(ctx: Any, tmp_path: Path) -> None:
    principal = principal_for_email(ctx, AGENT)
    a, b, c = (deposit_pdf(ctx, tmp_path, circuit="otp") for _ in range(3))
    upload_otp_information(ctx, principal, a, _otp("John.Doe@mail.fr", "06 06 06 06 06"))
    upload_otp_information(ctx, principal, b, _otp("john.doe@mail.fr", "+33606060606"))
    upload_otp_information(ctx, principal, c, _otp("john.doe@mail.fr", None))
    url = otp_url(ctx, principal, [a, f"{b}"], base_url="https://p.example/")
    assert url.startswith("https://p.example/boucle-sms/documentView?id=")
    with pytest.raises(ParafeError) as info:  # same e-mail but no phone on one of them
        otp_url(ctx, principal, [a, c], base_url="https://p.example")
    assert info.value.error is E.OTP_IDENTITY_MISMATCH
    # comma-separated ids are accepted, duplicates ignored
    otp_url(ctx, principal, [f"{a},{b}", a], base_url="https://p.example")
    with ctx.db.read() as s:
        links = s.scalars(select(OtpLink).order_by(OtpLink.id)).all()
        assert [link.document_ids for link in links] == [[a, b], [a, b]]
        assert len({link.token for link in links}) == 2
    with pytest.raises(ParafeError) as info:
        otp_url(ctx, principal, [], base_url="https://p.example")
    assert info.value.error is E.BAD_REQUEST
