"""A readable summary of a PES file for the portal: its bordereaux and their pieces with amounts.

The file is streamed (:func:`parafe.formats.safexml.iterparse_untrusted`: no DTD, no entity, no network, memory
bounded to the current bordereau), so a 100 MiB PES is summarised without loading it. Values are read from the
``V`` attributes of the PES elements (``IdBord``, ``Exer``, ``TypBord``, ``MtBordHT``, ``IdPce``, ``Obj``,
``MtHT`` of the piece lines, the third party's ``Nom``). At most :data:`MAX_PIECES` pieces are listed per
bordereau; counts and totals always cover all of them.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from lxml import etree

from parafe.context import AppContext
from parafe.formats.safexml import iterparse_untrusted, release
from parafe.services.access.auth import Principal
from parafe.services.access.rights import visible_document

MAX_PIECES = 200
DOMAINS = {"PES_DepenseAller": "Dépense", "PES_RecetteAller": "Recette", "PES_PJ": "Pièces justificatives"}


@dataclass
class Piece:
    id: str
    type: str
    object: str
    third_party: str
    amount: Decimal


@dataclass
class Bordereau:
    domain: str
    id: str
    year: str
    type: str
    date: str
    declared_amount: Decimal | None
    piece_count: int = 0
    total: Decimal = Decimal(0)
    pieces: list[Piece] = field(default_factory=list)


@dataclass
class PesSummary:
    nom_fic: str = ""
    typ_fic: str = ""
    collectivity: str = ""
    budget: str = ""
    bordereaux: list[Bordereau] = field(default_factory=list)
    error: str | None = None

    @property
    def total(self) -> Decimal:
        return sum((b.total for b in self.bordereaux), Decimal(0))


def _local(tag: object) -> str:
    text = str(tag)
    return text.rsplit("}", 1)[-1]


def _v(element: etree._Element | None, name: str) -> str:
    if element is None:
        return ""
    for child in element.iter():
        if _local(child.tag) == name:
            return str(child.get("V") or "").strip()
    return ""


def _amount(text: str) -> Decimal | None:
    try:
        return Decimal(text.replace(",", ".")) if text else None
    except InvalidOperation:
        return None


def _piece(element: etree._Element) -> Piece:
    info = next((c for c in element.iter() if _local(c.tag) == "InfoPce"), None)
    total = Decimal(0)
    for line in element.iter():
        if _local(line.tag) == "InfoLignePce":
            total += _amount(_v(line, "MtHT")) or Decimal(0)
    tiers = next((c for c in element.iter() if _local(c.tag) == "InfoTiers"), None)
    name = " ".join(p for p in (_v(tiers, "Nom"), _v(tiers, "ComplNom")) if p)
    return Piece(_v(info, "IdPce"), _v(info, "TypPce"), _v(info, "Obj"), name, total)


def summarise(path: Path) -> PesSummary:
    """Summary of the PES at ``path``; parse problems end the summary with ``error`` set."""
    summary = PesSummary()
    current: Bordereau | None = None
    try:
        for _event, element in iterparse_untrusted(path, ("end",), allow_huge_text=True):
            tag = _local(element.tag)
            if tag == "Parametres":
                summary.nom_fic, summary.typ_fic = _v(element, "NomFic"), _v(element, "TypFic")
            elif tag == "EnTetePES":
                summary.collectivity, summary.budget = _v(element, "IdColl"), _v(element, "CodBud")
                release(element)
            elif tag == "BlocBordereau":
                parent = element.getparent()
                domain_el = parent.getparent() if parent is not None else None
                domain = DOMAINS.get(_local(domain_el.tag), "") if domain_el is not None else ""
                current = Bordereau(domain, _v(element, "IdBord"), _v(element, "Exer"), _v(element, "TypBord"),
                                    _v(element, "DteBordEm"), _amount(_v(element, "MtBordHT")))
                summary.bordereaux.append(current)
            elif tag == "Piece" and current is not None:
                piece = _piece(element)
                current.piece_count += 1
                current.total += piece.amount
                if len(current.pieces) < MAX_PIECES:
                    current.pieces.append(piece)
                release(element)
            elif tag == "Bordereau":
                current = None
                release(element)
            elif tag == "PJ":
                release(element)
    except (etree.XMLSyntaxError, OSError) as exc:
        summary.error = f"Lecture du PES interrompue : {exc}"
    except Exception as exc:  # a catalogue error of the safe parser (DTD, malformed prolog)
        summary.error = f"Lecture du PES impossible : {exc}"
    return summary


def pes_summary(ctx: AppContext, principal: Principal, document_id: int | str) -> PesSummary:
    """The summary of a visible PES document (its current version)."""
    with ctx.db.read() as session:
        document, _ = visible_document(session, principal, document_id)
        sha = document.signed_blob_sha256 or document.blob_sha256
    local = ctx.store.local_path(sha)
    if local is not None:
        return summarise(local)
    with tempfile.TemporaryDirectory(dir=ctx.tmp_dir) as tmp:
        return summarise(ctx.store.copy_to(sha, Path(tmp) / "pes.xml"))
