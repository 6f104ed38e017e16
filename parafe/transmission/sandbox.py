"""Helios in sandbox mode (issue 21): always the simulator, with a share of negative acknowledgements.

For a document of a sandbox subscriber (or any document with ``PARAFE_SANDBOX``) the Helios transport is the
simulator whatever ``PARAFE_HELIOS_TRANSPORT`` says (nothing leaves for the treasury), and a share
``PARAFE_SANDBOX_HELIOS_NACK_SHARE`` of the files get a NACK (EtatAck 0) — chosen from the file's name and
content, so that a repeated send is answered the same way.
"""

from __future__ import annotations

import hashlib

from parafe.context import AppContext
from parafe.db.models import Subscriber
from parafe.transmission.helios_simulator import HeliosSimulator


class SandboxHelios(HeliosSimulator):
    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx.settings.resolved_home / "simulators" / "helios")
        self.nack_share = ctx.settings.sandbox_helios_nack_share

    def _outcome(self, name: str, data: bytes) -> str:
        outcome = super()._outcome(name, data)
        if outcome == "ack_ok" and self.nack_share > 0:
            digest = hashlib.sha256(name.encode() + b"|" + hashlib.sha256(data).digest()).digest()
            if int.from_bytes(digest[:4], "big") / 2**32 < self.nack_share:
                return "ack_ko"
        return outcome


def sandbox_transport(ctx: AppContext, subscriber_id: int | None) -> SandboxHelios | None:
    """The sandbox's Helios transport for this subscriber's documents, None outside the sandbox."""
    if not ctx.settings.sandbox:
        if subscriber_id is None:
            return None
        with ctx.db.read() as session:
            subscriber = session.get(Subscriber, subscriber_id)
            if subscriber is None or not subscriber.sandbox:
                return None
    return SandboxHelios(ctx)
