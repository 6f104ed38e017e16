"""The one state table of Parafe (DECISIONS D4).

Internal states of a document, their history labels in both label sets (the labels real clients expect, the
default, and the v3.4 document's literal labels, `PARAFE_HISTORY_LABELS=v3.4`), and the 12 search codes of
spec §2.5.22 / §2.6.20 with the states each one matches.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    """Where a document is. The value is stored in the database; never rename one."""

    PREPARED = "prepared"
    METADATA_DEFINED = "metadata_defined"
    READY_FOR_METADATA = "ready_for_metadata"
    SENT_FOR_SIGN = "sent_for_sign"
    SIGNED = "signed"
    REFUSED = "refused"
    SIGNATURE_VALIDATED = "signature_validated"
    SIGNATURE_REJECTED = "signature_rejected"
    SENT_FOR_VISA = "sent_for_visa"
    APPROVED = "approved"
    DISAPPROVED = "disapproved"
    SENDING = "sending"
    SENT_TO_FAST = "sent_to_fast"
    SENT_TO_HELIOS = "sent_to_helios"
    ACKNOWLEDGED = "acknowledged"
    SEND_TO_FAST_FAILED = "send_to_fast_failed"
    FAST_PROCESSING_FAILED = "fast_processing_failed"
    SEND_TO_HELIOS_FAILED = "send_to_helios_failed"
    OTP_INFO_DEFINED = "otp_info_defined"
    OTP_VALIDATED = "otp_validated"
    OTP_SIGNED = "otp_signed"
    FILED = "filed"
    ARCHIVED = "archived"
    REPLACED = "replaced"
    STEP_FAILED = "step_failed"  # Parafe's own (issue 18): a job of the current step failed for good


# Labels of the v3.4 document (API-REFERENCE §2.1, H1..H22, plus the state named by S21), verbatim.
LABELS_V34: dict[State, str] = {
    State.PREPARED: "Préparé",
    State.METADATA_DEFINED: "Métadonnées définies",
    State.READY_FOR_METADATA: "Prêt à définir les métadonnées",
    State.SENT_FOR_SIGN: "Envoyé pour signature",
    State.SIGNED: "Signé",
    State.REFUSED: "Refusé",
    State.SIGNATURE_VALIDATED: "Signature validée",
    State.SIGNATURE_REJECTED: "signature rejetée",
    State.SENT_FOR_VISA: "Envoyé pour visa",
    State.APPROVED: "Validé",
    State.DISAPPROVED: "Rejeté",
    State.SENDING: "En cours d'envoi",
    State.SENT_TO_FAST: "Envoyé à FAST",
    State.SENT_TO_HELIOS: "Transmis à Hélios",
    State.ACKNOWLEDGED: "Acquittement Hélios",
    State.SEND_TO_FAST_FAILED: "Échec de l'envoi à FAST",
    State.FAST_PROCESSING_FAILED: "Échec du traitement FAST",
    State.SEND_TO_HELIOS_FAILED: "Échec de l'envoi à Hélios",
    State.OTP_INFO_DEFINED: "Informations OTP définies",
    State.OTP_VALIDATED: "OTP validé",
    State.OTP_SIGNED: "Signé",
    State.FILED: "Classé",
    State.ARCHIVED: "Archivé",
    State.REPLACED: "Document remplacé",
    # Not in the v3.4 document (issue 18): a step whose job failed for good (retries exhausted); the history
    # entry's comment holds the error; an administrator retries it (`parafe admin document retry`, portal).
    State.STEP_FAILED: "Échec du traitement",
}

# Labels real clients match on (research note §2, §5, §6; DECISIONS D4): the default set.
LABELS_CLIENTS: dict[State, str] = {
    **LABELS_V34,
    State.APPROVED: "Visa approuvé",
    State.DISAPPROVED: "Visa désapprouvé",
    State.OTP_SIGNED: "OTP signé",
}

# States of Parafe's own, not in the v3.4 document (their labels are in both label sets).
PARAFE_OWN: frozenset[State] = frozenset({State.STEP_FAILED})

LABEL_SETS: dict[str, dict[State, str]] = {"clients": LABELS_CLIENTS, "v3.4": LABELS_V34}

# Search codes (API-REFERENCE §2.2), verbatim, with the current states each matches.
SEARCH_CODES: dict[str, frozenset[State]] = {
    "Prepared": frozenset({State.PREPARED}),
    "SentForSign": frozenset({State.SENT_FOR_SIGN}),
    "Signed": frozenset({State.SIGNED, State.SIGNATURE_VALIDATED}),
    "Refused": frozenset({State.REFUSED}),
    "SendForVisa": frozenset({State.SENT_FOR_VISA}),
    "Approved": frozenset({State.APPROVED}),
    "Disapproved": frozenset({State.DISAPPROVED}),
    "SentToHELIOS": frozenset({State.SENT_TO_HELIOS}),
    "Acknowledged": frozenset({State.ACKNOWLEDGED}),
    "OTPvalidated": frozenset({State.OTP_VALIDATED, State.OTP_SIGNED}),
    "Filed": frozenset({State.FILED}),
    "Archived": frozenset({State.ARCHIVED}),
}

_SEARCH_CODES_CI = {code.lower(): states for code, states in SEARCH_CODES.items()}

# States in which delete is allowed (DECISIONS D14), plus « Informations OTP définies »: nothing has been signed or
# validated yet (it is « Préparé » with its OTP signers named), and real clients (SymfonyDocapostBundle) delete
# documents in that state.
DELETABLE: frozenset[State] = frozenset({State.PREPARED, State.OTP_INFO_DEFINED, State.REFUSED, State.DISAPPROVED})

# Finished: the states after which a document changes no more by itself. Its circuit is over (« Classé »,
# « Archivé »), was ended early by engine.stop (« Refusé », « Rejeté » / « Visa désapprouvé », « signature
# rejetée », the three transmission failures), or the document was replaced (« Document remplacé »).
# Issue 19: four copies differed. Decision: « Échec du traitement » (STEP_FAILED, Parafe's own) is NOT finished,
# an administrator retries the step and the circuit goes on (so the purge must keep it, the client keeps
# waiting, the chaos check reports it); the client's copy counted it. « Document remplacé » IS finished (the
# chaos check's copy forgot it). The compliance report's copy was another rule (documents with a WebDAV out/
# entry): CIRCUIT_DONE | REFUSAL below.
FINISHED: frozenset[State] = frozenset({
    State.FILED, State.ARCHIVED, State.REFUSED, State.DISAPPROVED, State.SIGNATURE_REJECTED,
    State.SEND_TO_FAST_FAILED, State.FAST_PROCESSING_FAILED, State.SEND_TO_HELIOS_FAILED, State.REPLACED,
})
FINISHED_VALUES: frozenset[str] = frozenset(s.value for s in FINISHED)  # as stored in ``documents.state``

# The circuit went to its end: the signed document is returned (WebDAV out/, D6) from « Classé » on.
CIRCUIT_DONE: frozenset[State] = frozenset({State.FILED, State.ARCHIVED})
# Refused by a signer or a visa (« Refusé », « Rejeté »): the refusal envelope of WebDAV out/ (D6) and the
# refusal comment (D20).
REFUSAL: frozenset[State] = frozenset({State.REFUSED, State.DISAPPROVED})

# Automatic actors (D4).
ACTOR_AUTOMATIC = "parapheur parapheur"
ACTOR_OTP = "boucle sms"


def label(state: State, label_set: str = "clients") -> str:
    """History label of a state in the chosen label set."""
    return LABEL_SETS[label_set][state]


def states_for_search_code(code: str) -> frozenset[State] | None:
    """States matched by a search code (case-insensitive); None for an unknown code."""
    return _SEARCH_CODES_CI.get(code.strip().lower())
