"""Chorus Pro "flux pivot" returns (spec §1.2.5, §2.5.11–12): invoices received for a subscriber.

The real Chorus Pro poller is out of reach (DECISIONS D13); flows are injected by ``parafe dev inject chorus``
(or by a future poller) with :func:`inject`, which checks the file against the Chorus pivot schemas it claims
and stores it as a ``chorus`` return (listed by ``listRemainingChorus`` until downloaded, D11).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from lxml import etree

from parafe.context import AppContext
from parafe.formats.safexml import parse_untrusted
from parafe.transmission.returns import add_return

XSD_DIR = Path(__file__).resolve().parent.parent / "formats" / "xsd" / "chorus"
SCHEMAS = ("CPPFacturePivot_V2_02.xsd", "CPPFacturePivot_V1_22.xsd", "CPPFacturePivot_V1_21.xsd",
           "CPPFacturePivot_V1_20.xsd", "CPPStatutPivot_V1_19.xsd")


@cache
def _schema(name: str) -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(XSD_DIR / name), parser))


def matching_schema(data: bytes) -> str | None:
    """The first Chorus pivot schema the flow is valid against, or None."""
    tree = parse_untrusted(data, allow_huge_text=True)
    for name in SCHEMAS:
        if _schema(name).validate(tree):
            return name
    return None


def inject(ctx: AppContext, siren: str, data: bytes, name: str) -> int:
    """Store a Chorus flow for ``siren``; returns its public id. Refuses a file no pivot schema accepts."""
    if matching_schema(data) is None:
        raise ValueError("flux Chorus refusé : aucun schéma pivot (CPPFacturePivot / CPPStatutPivot) ne le valide")
    return add_return(ctx, kind="chorus", data=data, name=name, siren=siren)


def inject_pes_retour(ctx: AppContext, siren: str, data: bytes, name: str) -> int:
    """Store a PES_Retour flow for ``siren`` (schema-checked); returns its public id."""
    from parafe.formats.pes import validate_pes_retour

    errors = validate_pes_retour(data)
    if errors:
        raise ValueError(f"PES_Retour refusé : {errors[0]}")
    return add_return(ctx, kind="pes_retour", data=data, name=name, siren=siren)
