"""The Helios transport interface (DECISIONS D13), shared by every transport and by the module choosing among them
(:mod:`parafe.transmission.helios`).

:class:`HeliosTransport` is what the engine uses: ``send`` hands a file over (idempotent on its key) and answers a
remote id; ``status`` tells where it is: ``received`` (FAST has it), ``transmitted`` (sent to Helios),
``acknowledged`` (with the ``PES_ACQUIT``), ``fast_failed`` or ``helios_failed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

Stage = Literal["received", "transmitted", "acknowledged", "fast_failed", "helios_failed"]


class HeliosSendError(Exception):
    """The file could not be handed to FAST (transport error: retried, then "Échec de l'envoi à FAST")."""


class HeliosRefused(Exception):
    """The transport refuses the file for good (not retried: "Échec de l'envoi à FAST" at once)."""


class HeliosAnswerLost(Exception):
    """The transport holds the file (an earlier send reached it) but its transmission id was lost with the
    answer: the document waits for the operator to name the transmission (docs/helios.md)."""


@dataclass(frozen=True)
class HeliosStatus:
    stage: Stage
    ack: bytes | None = None
    detail: str | None = None


class HeliosTransport(Protocol):
    def send(self, key: str, name: str, data: bytes, *, document_id: int | None = None) -> str: ...

    def status(self, remote_id: str) -> HeliosStatus: ...

    def poll_delay(self, rounds: int) -> float: ...
