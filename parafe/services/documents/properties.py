"""Document properties as ``(name, rank, value)`` triples (SOAP ``getProperties`` / ``getPropertiesByName``).

The live service exposes these two operations without documenting them. Parafe answers a fixed, documented
set (``docs/soap.md``); ``rank`` numbers the values of one name from 0 (most names have one value; ``annexe``
and the metadata have one per item, in order). Absent values are left out.

| name | value |
|---|---|
| ``documentId`` | the document id |
| ``filename`` | the document's file name |
| ``label`` | its label (folder) |
| ``circuitId`` / ``circuitName`` / ``circuitType`` | its circuit |
| ``subscriberId`` / ``subscriberName`` | SIREN and name of the subscriber |
| ``state`` | current state, as ``history`` names it (``stateName``) |
| ``stateCode`` | the search code of that state (``Prepared``, ``Signed``…), when it has one |
| ``depositDate`` / ``lastModified`` | ISO 8601 UTC |
| ``depositor`` / ``depositorEmail`` | who deposited it |
| ``size`` / ``sha256`` | size in bytes and SHA-256 (hex) of the deposited file |
| ``signed`` | ``true`` when a signed version exists |
| ``comment`` / ``email_destinataire`` / ``nomFic`` | as deposited (``nomFic``: PES only) |
| ``annexe`` | one per annex: its file name |
| ``meta:<NAME>`` | one per business metadata value |
| ``otp:<NAME>`` | one per OTP information value (``OTP_email_0``…) |
"""

from __future__ import annotations

from dataclasses import dataclass

from parafe.context import AppContext
from parafe.db.models import Subscriber, User
from parafe.domain.states import SEARCH_CODES, State, label
from parafe.services.access.auth import Principal
from parafe.services.access.rights import visible_document
from parafe.services.documents.history import iso_ms


@dataclass(frozen=True)
class Property:
    name: str
    rank: int
    value: str


def _search_code(state: State) -> str | None:
    for code, states in SEARCH_CODES.items():
        if state in states:
            return code
    return None


def document_properties(ctx: AppContext, principal: Principal, document_id: int | str) -> list[Property]:
    """Every property of a visible document. Raises ``DOCUMENT_NOT_FOUND`` for an unknown or foreign id."""
    with ctx.db.read() as session:
        document, _ = visible_document(session, principal, document_id)
        subscriber = session.get(Subscriber, document.subscriber_id)
        depositor = session.get(User, document.uploader_id) if document.uploader_id else None
        state = State(document.state)
        pairs: list[tuple[str, object | None]] = [
            ("documentId", document.id),
            ("filename", document.name),
            ("label", document.label.name),
            ("circuitId", document.circuit.key),
            ("circuitName", document.circuit.name),
            ("circuitType", document.circuit.type),
            ("subscriberId", subscriber.siren if subscriber else None),
            ("subscriberName", subscriber.name if subscriber else None),
            ("state", label(state, ctx.label_set)),
            ("stateCode", _search_code(state)),
            ("depositDate", iso_ms(document.created_at)),
            ("lastModified", iso_ms(document.updated_at)),
            ("depositor", depositor.full_name if depositor else None),
            ("depositorEmail", depositor.email if depositor else None),
            ("size", document.size),
            ("sha256", document.blob_sha256),
            ("signed", "true" if document.signed_blob_sha256 else "false"),
            ("comment", document.comment),
            ("email_destinataire", document.email_destinataire),
            ("nomFic", document.nom_fic),
        ]
        pairs += [("annexe", annex.name) for annex in document.annexes]
        pairs += [(f"{'otp' if m.kind == 'otp' else 'meta'}:{m.name}", m.value)
                  for m in sorted(document.metadata_values, key=lambda m: (m.kind != "meta", m.position, m.id))]
    ranks: dict[str, int] = {}
    result: list[Property] = []
    for name, value in pairs:
        if value is None:
            continue
        rank = ranks.get(name, 0)
        ranks[name] = rank + 1
        result.append(Property(name, rank, str(value)))
    return result


def properties_named(ctx: AppContext, principal: Principal, document_id: int | str, name: str) -> list[str]:
    """The values of one property, by rank (empty when the document has none of that name)."""
    wanted = name.strip()
    return [p.value for p in document_properties(ctx, principal, document_id) if p.name == wanted]
