"""On-demand circuit parsing (JSON §5.2 and XML §5.1) and the on-demand deposit service, on both backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from parafe.db.models import Circuit, Document
from parafe.domain.circuits import CircuitType, StepKind
from parafe.domain.errors import E, ParafeError
from parafe.services.access.auth import principal_for_email
from parafe.services.ondemand import (
    OnDemandRequest,
    circuit_from_mapping,
    deposit_on_demand,
    parse_circuit_json,
    parse_circuit_xml,
)
from tests.unit.services._helpers import AGENT, upload


def test_json_circuit_of_the_spec() -> None:
    circuit = parse_circuit_json(
        '{"type" : "BUREAUTIQUE_PDF", "steps": [{"step" : "visa", "members" : ["AAA@domain.fr", "BBB@domain.fr"]},'
        '{"step" : "visa", "members": ["CCC@domain.fr"]}, {"step" : "signature", "members": ["DDD@domain.fr"]},'
        '{"step" : "signature", "members": ["AAA@domain.fr"]}]}')
    assert circuit.type is CircuitType.BUREAUTIQUE_PDF
    assert [s.kind for s in circuit.steps] == [StepKind.VISA, StepKind.VISA, StepKind.SIGNATURE, StepKind.SIGNATURE]
    assert circuit.steps[0].members == ("aaa@domain.fr", "bbb@domain.fr")


def test_xml_circuit_of_the_spec() -> None:
    circuit = parse_circuit_xml(
        "<circuit><type> BUREAUTIQUE_PDF</type><steps><step><type>visa</type><members>monsieurA@cg00.fr</members>"
        "</step><step><type>signature</type><members>madameB@cg00.fr</members><members>c@x.fr, d@y.fr</members>"
        "</step><step><type>ServerSignature</type></step></steps></circuit>")
    assert circuit.type is CircuitType.BUREAUTIQUE_PDF
    assert [(s.kind, s.members) for s in circuit.steps] == [
        (StepKind.VISA, ("monsieura@cg00.fr",)),
        (StepKind.SIGNATURE, ("madameb@cg00.fr", "c@x.fr", "d@y.fr")),
        (StepKind.SERVER_SIGNATURE, ())]


@pytest.mark.parametrize(("value", "expected"), [
    ("{", E.CIRCUIT_DEF_ERROR),
    ("[" * 100_000 + "]" * 100_000, E.CIRCUIT_DEF_ERROR),  # nesting deeper than the parser's recursion limit
    ("[]", E.CIRCUIT_DEF_ERROR),
    ('{"type": "BUREAUTIQUE_PDF", "steps": {}}', E.CIRCUIT_DEF_ERROR),
    ('{"type": "BUREAUTIQUE_PDF", "steps": [1]}', E.CIRCUIT_DEF_ERROR),
    ('{"type": "BUREAUTIQUE_PDF", "steps": [{"members": []}]}', E.CIRCUIT_DEF_ERROR),
    ('{"type": "BUREAUTIQUE_PDF", "steps": [{"step": "visa", "members": 3}]}', E.CIRCUIT_DEF_ERROR),
    ('{"type": "BUREAUTIQUE_PDF", "steps": [{"step": "visa", "members": [3]}]}', E.INVALID_STEP_MEMBER),
    ('{"type": 5, "steps": [{"step": "visa"}]}', E.CIRCUIT_DEF_ERROR),
    ('{"type": "PAPIER", "steps": [{"step": "visa"}]}', E.INVALID_CIRCUIT_TYPE),
    ('{"type": "BUREAUTIQUE_XML", "steps": [{"step": "cachet"}]}', E.INVALID_STEP_TYPE),
])
def test_json_circuit_errors(value: str, expected: Any) -> None:
    with pytest.raises(ParafeError) as info:
        parse_circuit_json(value)
    assert info.value.error is expected


def test_xml_circuit_errors() -> None:
    for data, expected in ((b"<circuit>", E.CIRCUIT_DEF_ERROR),
                           (b'<!DOCTYPE c [<!ENTITY x "y">]><circuit/>', E.CIRCUIT_DEF_ERROR),
                           (b"<circuit><type>X</type><steps><step><type>visa</type></step></steps></circuit>",
                            E.INVALID_CIRCUIT_TYPE)):
        with pytest.raises(ParafeError) as info:
            parse_circuit_xml(data)
        assert info.value.error is expected
    assert circuit_from_mapping({"type": "bureautique_pdf", "steps": [{"type": "otpSIGNATURE"}]}).steps[0].kind \
        is StepKind.OTP_SIGNATURE


def test_deposit_on_demand_xml_circuit(ctx: Any, tmp_path: Path) -> None:
    """The SOAP connector passes an already parsed circuit: same service."""
    circuit = parse_circuit_xml(
        "<circuit><type>HELIOS_AVEC_TELETRANSMISSION</type><steps><step><type>signature</type>"
        "<members>signataire@demo.parafe.test</members></step></steps></circuit>")
    pes = upload(tmp_path, "x.pdf")
    principal = principal_for_email(ctx, AGENT)
    with pytest.raises(ParafeError) as info:  # a Helios circuit takes PES files
        deposit_on_demand(ctx, principal, OnDemandRequest(siren="123456789", circuit=circuit, upload=pes))
    assert info.value.error is E.NOT_PES
    pdf_circuit = parse_circuit_json(
        '{"type": "BUREAUTIQUE_PDF", "steps": [{"step": "signature", "members": ["signataire@demo.parafe.test"]}]}')
    done = deposit_on_demand(ctx, principal, OnDemandRequest(
        siren="123456789", circuit=pdf_circuit, upload=upload(tmp_path), label="Conventions"))
    with ctx.db.read() as s:
        doc = s.get(Document, done.document_id)
        assert doc is not None
        assert doc.label.name == "Conventions"
        circuit_row = s.get(Circuit, doc.circuit_id)
        assert circuit_row is not None
        assert circuit_row.on_demand
        assert circuit_row.key.startswith("ondemand-")
        assert len(s.scalars(select(Circuit).where(Circuit.on_demand.is_(True))).all()) == 1
