"""Transmission of PES files to Helios (DGFiP) through FAST: the transport the engine uses (DECISIONS D13).

:func:`transport` answers a :class:`~parafe.transmission.helios_types.HeliosTransport` (the interface, its status
and errors: :mod:`parafe.transmission.helios_types`); the errors the engine tells apart and :func:`etat_ack`
are re-exported here, so that the engine needs this module only.
``PARAFE_HELIOS_TRANSPORT`` chooses it: ``s2low`` sends through the tiers de télétransmission S²LOW
(:mod:`parafe.transmission.s2low`, docs/helios.md); ``simulator``, the default, is the
:class:`~parafe.transmission.helios_simulator.HeliosSimulator`, which behaves like a real one. A sandbox
subscriber's documents always go to the sandbox's simulator (:mod:`parafe.transmission.sandbox`, issue 21).
"""

from __future__ import annotations

from parafe.config import workflow_settings
from parafe.context import AppContext
from parafe.transmission.helios_simulator import HeliosSimulator as HeliosSimulator
from parafe.transmission.helios_simulator import etat_ack as etat_ack
from parafe.transmission.helios_types import HeliosAnswerLost as HeliosAnswerLost
from parafe.transmission.helios_types import HeliosRefused as HeliosRefused
from parafe.transmission.helios_types import HeliosTransport


def transport(ctx: AppContext, subscriber_id: int | None = None) -> HeliosTransport:
    """The configured Helios transport (``PARAFE_HELIOS_TRANSPORT``: ``simulator`` or ``s2low``) for the
    documents of a subscriber (S²LOW accounts are per subscriber)."""
    from parafe.transmission.sandbox import sandbox_transport  # issue 21: the sandbox never transmits

    sandboxed = sandbox_transport(ctx, subscriber_id)
    if sandboxed is not None:
        return sandboxed
    name = workflow_settings().helios_transport
    if name == "simulator":
        return HeliosSimulator.for_context(ctx)
    if name == "s2low":
        from parafe.transmission.s2low import S2lowHelios

        return S2lowHelios(ctx, subscriber_id)
    raise RuntimeError(f"transport Helios inconnu : {name!r} (« simulator » ou « s2low »)")
