"""The SOAP contract, read from the two static WSDL files of ``wsdl/`` (never retyped by hand).

``CONTRACT`` holds, for each of the 31 operations, its request and response wrapper elements and fault
name, and for every complex type of the schema its ordered children (name, type, occurrences). The request
parser, the validator and the response writer all work from this model, so element names, order and
(un)qualification are exactly those of the WSDL. The embedded XML Schema validates requests.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from lxml import etree

WSDL_DIR = Path(__file__).resolve().parent / "wsdl"
OUTER_WSDL = "Documents.wsdl"
INNER_WSDL = "DocumentService.wsdl"

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
XS = "http://www.w3.org/2001/XMLSchema"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
XOP = "http://www.w3.org/2004/08/xop/include"


@dataclass(frozen=True)
class Particle:
    """One child element of a complex type's sequence."""

    name: str
    type: str  # "xs:string", "xs:base64Binary", … for built-ins; a complex type name otherwise
    min_occurs: int = 1
    max_occurs: int | None = 1  # None = unbounded
    nillable: bool = False
    qualified: bool = False  # a reference to a global element (``ref="tns:circuit"``) is namespace-qualified

    @property
    def repeated(self) -> bool:
        return self.max_occurs is None or self.max_occurs > 1

    @property
    def is_binary(self) -> bool:
        return self.type == "xs:base64Binary"


@dataclass(frozen=True)
class ComplexType:
    name: str
    children: tuple[Particle, ...]

    def child(self, name: str, namespace: str | None = None) -> Particle | None:
        """The particle matching a child element (unqualified, or qualified for element references)."""
        for particle in self.children:
            if particle.name == name and (namespace is not None) == particle.qualified:
                return particle
        return None


@dataclass(frozen=True)
class Operation:
    name: str
    input_element: str
    output_element: str
    fault: str | None  # BusinessException | IOException | None (getProperties, getPropertiesByName)


@dataclass
class Contract:
    namespace: str
    operations: dict[str, Operation]
    elements: dict[str, str]  # global element name -> type name
    types: dict[str, ComplexType]
    schema_element: etree._Element = field(repr=False)

    @cached_property
    def schema(self) -> etree.XMLSchema:
        return etree.XMLSchema(copy.deepcopy(self.schema_element))

    @cached_property
    def by_input_element(self) -> dict[str, Operation]:
        return {op.input_element: op for op in self.operations.values()}

    def element_type(self, element: str) -> ComplexType:
        return self.types[self.elements[element]]

    def type_of(self, type_name: str) -> ComplexType | None:
        return self.types.get(type_name)


def _qname_local(value: str) -> tuple[str, str]:
    prefix, _, local = value.rpartition(":")
    return prefix, local


def _type_name(node: etree._Element, value: str) -> str:
    prefix, local = _qname_local(value)
    namespace = node.nsmap.get(prefix or None)
    return f"xs:{local}" if namespace == XS else local


def _occurs(value: str | None, default: int) -> int | None:
    if value is None:
        return default
    return None if value == "unbounded" else int(value)


def _particles(contract_types: dict[str, ComplexType], owner: str, sequence: etree._Element,
               elements: dict[str, str]) -> tuple[Particle, ...]:
    result: list[Particle] = []
    for child in sequence.iterchildren(f"{{{XS}}}element"):
        min_occurs = _occurs(child.get("minOccurs"), 1) or 0
        max_occurs = _occurs(child.get("maxOccurs"), 1)
        nillable = child.get("nillable") == "true"
        ref = child.get("ref")
        if ref is not None:
            name = _qname_local(ref)[1]
            type_name = elements[name]
            nillable = True
        else:
            name = child.get("name") or ""
            if child.get("type") is not None:
                type_name = _type_name(child, child.get("type") or "")
            else:  # anonymous complex type (mapWrapper/parameters/entry)
                type_name = f"{owner}.{name}"
                inner = child.find(f"{{{XS}}}complexType/{{{XS}}}sequence")
                contract_types[type_name] = ComplexType(
                    type_name, _particles(contract_types, type_name, inner, elements) if inner is not None else ())
        result.append(Particle(name, type_name, min_occurs, max_occurs, nillable, qualified=ref is not None))
    return tuple(result)


def load_contract(wsdl_dir: Path = WSDL_DIR) -> Contract:
    outer = etree.parse(str(wsdl_dir / OUTER_WSDL))
    inner = etree.parse(str(wsdl_dir / INNER_WSDL))
    schema_el = inner.find(f".//{{{XS}}}schema")
    assert schema_el is not None
    namespace = schema_el.get("targetNamespace") or ""
    elements: dict[str, str] = {}
    for el in schema_el.iterchildren(f"{{{XS}}}element"):
        elements[el.get("name") or ""] = _type_name(el, el.get("type") or "xs:anyType")
    types: dict[str, ComplexType] = {}
    for ct in schema_el.iterchildren(f"{{{XS}}}complexType"):
        name = ct.get("name") or ""
        sequence = ct.find(f"{{{XS}}}sequence")
        types[name] = ComplexType(name, _particles(types, name, sequence, elements) if sequence is not None else ())
    messages: dict[str, str] = {}
    for message in inner.getroot().iterchildren(f"{{{WSDL}}}message"):
        part = message.find(f"{{{WSDL}}}part")
        assert part is not None
        messages[message.get("name") or ""] = _qname_local(part.get("element") or "")[1]
    port_ops: dict[str, Operation] = {}
    port_type = inner.find(f"{{{WSDL}}}portType")
    assert port_type is not None
    for op in port_type.iterchildren(f"{{{WSDL}}}operation"):
        name = op.get("name") or ""
        input_el = op.find(f"{{{WSDL}}}input")
        output_el = op.find(f"{{{WSDL}}}output")
        fault_el = op.find(f"{{{WSDL}}}fault")
        assert input_el is not None
        assert output_el is not None
        port_ops[name] = Operation(
            name=name,
            input_element=messages[_qname_local(input_el.get("message") or "")[1]],
            output_element=messages[_qname_local(output_el.get("message") or "")[1]],
            fault=fault_el.get("name") if fault_el is not None else None)
    binding = outer.find(f"{{{WSDL}}}binding")
    assert binding is not None
    bound = [op.get("name") or "" for op in binding.iterchildren(f"{{{WSDL}}}operation")]
    operations = {name: port_ops[name] for name in sorted(bound)}
    return Contract(namespace=namespace, operations=operations, elements=elements, types=types,
                    schema_element=schema_el)


CONTRACT = load_contract()
NS = CONTRACT.namespace
