"""Search operations: search, searchDetails, listRemainingSignedDocs."""

from __future__ import annotations

from typing import Any

from parafe.connectors.soap.ops import Call, operation
from parafe.services.documents import search as search_service
from parafe.services.documents import signed_fetches

CRITERIA = ("siren", "circuitId", "label", "filename", "state", "uploadBy", "uploadAfter", "uploadBefore",
            "validateBy", "validateAfter", "validateBefore", "signBy", "signAfter", "signBefore")


def _criteria(call: Call) -> search_service.SearchCriteria:
    wire: dict[str, Any] = {name: call.values.get(name) for name in CRITERIA if call.values.get(name) is not None}
    meta = call.values.get("meta")
    if meta:
        entries = (meta.get("parameters") or {}).get("entry") or []
        wire["meta"] = [{"key": e.get("key") or "", "value": e.get("value")} for e in entries if e]
    return search_service.SearchCriteria.from_wire(wire)


@operation("search")
def search(call: Call) -> dict[str, Any]:
    return {"return": [str(i) for i in search_service.search(call.ctx, call.principal, _criteria(call))]}


@operation("searchDetails")
def search_details(call: Call) -> dict[str, Any]:
    hits = search_service.search_details(call.ctx, call.principal, _criteria(call))
    return {"return": [
        {"docId": h.doc_id, "docName": h.doc_name, "docSize": h.doc_size, "docLabel": h.doc_label,
         "circuitName": h.circuit_name, "subscriberName": h.subscriber_name, "depositDate": h.deposit_date}
        for h in hits]}


@operation("listRemainingSignedDocs")
def list_remaining_signed_docs(call: Call) -> dict[str, Any]:
    """Undocumented on the live service: the signed documents of the subscriber (of ``circuitId`` when given)
    that no client has downloaded yet, whatever their state now (:mod:`parafe.services.documents.signed_fetches`)."""
    ids = signed_fetches.remaining(call.ctx, call.principal, call.text("siren"), call.text("circuitId") or None)
    return {"return": [str(i) for i in ids]}
