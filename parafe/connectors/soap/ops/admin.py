"""Subscriber operations: getCircuits, ExportUsersData, synchronizeUsers, uploadOnDemand."""

from __future__ import annotations

import json
from typing import Any

from lxml import etree

from parafe.connectors.soap.envelope import bad_request
from parafe.connectors.soap.ops import Call, data_file_upload, operation
from parafe.domain.errors import E, ParafeError
from parafe.services import circuits, ondemand
from parafe.services.admin import users


@operation("getCircuits")
def get_circuits(call: Call) -> dict[str, Any]:
    found = circuits.list_circuits(call.ctx, call.principal, (call.text("siren") or "").strip())
    return {"return": [
        {"circuitId": c.key, "circuitName": c.name, "circuitType": c.type,
         "signers": [{"username": p.username, "userFullname": p.full_name} for p in c.signers],
         "validators": [{"username": p.username, "userFullname": p.full_name} for p in c.validators]}
        for c in found]}


@operation("ExportUsersData")
def export_users_data(call: Call) -> dict[str, Any]:
    data = users.export_users(call.ctx, call.principal, (call.text("siren") or "").strip())
    return {"return": json.dumps(data, ensure_ascii=False)}


@operation("synchronizeUsers")
def synchronize_users(call: Call) -> dict[str, Any]:
    raw = call.text("users") or ""
    try:
        listed = json.loads(raw)
    except ValueError:
        raise bad_request("le paramètre « users » doit être une liste JSON d'utilisateurs") from None
    errors = users.synchronize_users(call.ctx, call.principal, (call.text("siren") or "").strip(), listed)
    return {"return": json.dumps(errors, ensure_ascii=False)}


@operation("uploadOnDemand")
def upload_on_demand(call: Call) -> dict[str, Any]:
    circuit = call.values.get("circuit")
    if not isinstance(circuit, etree._Element):
        raise ParafeError(E.CIRCUIT_DEF_ERROR, detail="circuit missing")
    doc = call.values.get("doc")
    if doc is None:
        raise bad_request("le document « doc » est obligatoire")
    pictograms = call.values.get("pictograms")
    pictogram_file = data_file_upload(pictograms) if pictograms is not None else None
    request = ondemand.OnDemandRequest(
        siren=(call.text("siren") or "").strip(),
        circuit=ondemand.parse_circuit_xml(etree.tostring(circuit)),
        upload=data_file_upload(doc),
        annexes=[data_file_upload(vo) for vo in call.values.get("annexe") or [] if vo is not None],
        agents=call.text("agents"), email_destinataire=call.text("email_destinataire"),
        pictograms=pictogram_file.path.read_bytes() if pictogram_file is not None and pictogram_file.size else None)
    deposited = ondemand.deposit_on_demand(call.ctx, call.principal, request)
    return {"return": str(deposited.document_id)}
