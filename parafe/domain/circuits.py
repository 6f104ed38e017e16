"""Circuit types, step kinds and the rules that depend on them (spec §1.3, §5.3; DECISIONS G-11, G-29).

Pure data: which main-document formats a circuit type accepts, which steps exist, and how the step names of
on-demand circuits (``visa``, ``Signature``, ``serverSignature``, ``ServerSignature``, ``OTPSignature`` …) map to
our step kinds (case-insensitive, per G-11).
"""

from __future__ import annotations

from enum import StrEnum


class CircuitType(StrEnum):
    BUREAUTIQUE_PDF = "BUREAUTIQUE_PDF"  # Signature PADES
    BUREAUTIQUE_XML = "BUREAUTIQUE_XML"  # Signature XADES détaché
    HELIOS_AVEC_TELETRANSMISSION = "HELIOS_AVEC_TELETRANSMISSION"
    HELIOS_SANS_TELETRANSMISSION = "HELIOS_SANS_TELETRANSMISSION"


class StepKind(StrEnum):
    VISA = "visa"
    SIGNATURE = "signature"
    SERVER_SIGNATURE = "server_signature"
    OTP_SIGNATURE = "otp_signature"
    SIGNATURE_VERIFICATION = "signature_verification"
    METADATA = "metadata"
    DIGIPOSTE = "digiposte"
    MAILEVA = "maileva"
    HELIOS = "helios"
    ARCHIVE = "archive"
    FILING = "filing"


HELIOS_TYPES = frozenset({CircuitType.HELIOS_AVEC_TELETRANSMISSION, CircuitType.HELIOS_SANS_TELETRANSMISSION})

# The circuit key under which clients search on-demand documents (Maarch: ``"circuit": "circuit-a-la-volee"``).
ON_DEMAND_SEARCH_KEY = "circuit-a-la-volee"

# Step names accepted in on-demand circuits (spec §5.3), compared case-insensitively.
ON_DEMAND_STEPS: dict[str, StepKind] = {
    "visa": StepKind.VISA,
    "signature": StepKind.SIGNATURE,
    "serversignature": StepKind.SERVER_SIGNATURE,
    "otpsignature": StepKind.OTP_SIGNATURE,
}


def parse_circuit_type(value: str) -> CircuitType | None:
    """The circuit type named by ``value`` (surrounding spaces ignored, G-12), or None."""
    try:
        return CircuitType(value.strip().upper())
    except ValueError:
        return None


def parse_on_demand_step(value: str) -> StepKind | None:
    return ON_DEMAND_STEPS.get(value.strip().lower())


def document_kind(circuit_type: str, extension: str) -> str | None:
    """Kind of main document accepted by a circuit type for a file extension, or None if refused.

    PDF circuits take PDF; Helios circuits take PES XML; XML (detached XAdES) circuits take office documents
    and any extension of the annex allow-list except archives and executables.
    """
    ext = extension.lower()
    if circuit_type == CircuitType.BUREAUTIQUE_PDF:
        return "pdf" if ext == "pdf" else None
    if circuit_type in HELIOS_TYPES:
        return "pes" if ext == "xml" else None
    if circuit_type == CircuitType.BUREAUTIQUE_XML:
        if ext in _XML_CIRCUIT_REFUSED:
            return None
        return "office"
    return None


_XML_CIRCUIT_REFUSED = frozenset({"zip", "exe", "bat", "js", "sh1", "bin", "tmp", "temp"})
