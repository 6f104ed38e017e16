"""The ``pictograms`` XML some clients send with a deposit: where the visa and signature pictograms go.

Sent as SOAP ``upload`` ``pictogrammes``, ``otpUpload`` / ``uploadBSMS`` / ``uploadOnDemand`` ``pictograms`` and
the REST on-demand ``pictograms`` part. The interface document names these parameters without describing their
content; the format is the one Maarch Courrier writes (research note §4, ``FastParapheurController``)::

    <pictogrammes>
      <pictogramme-signature>
        <pictogramme index="2" border="true" opacite="true" font-size="6">
          <position x="27" y="70" width="50" height="20" page="1"/>
          <center>…</center><bottom><metadata name="CHAMP_LIBRE" value="…"/></bottom>
        </pictogramme>
      </pictogramme-signature>
      <pictogramme-visa>…</pictogramme-visa>
    </pictogrammes>

Rules (DECISIONS-style, see ``docs/signing.md`` « Pictograms given at deposit »):

- ``position``: millimetres, bottom-left corner of the pictogram from the bottom-left corner of the page as
  displayed; ``width``/``height`` default to 50 × 20 mm (Maarch's size); ``page`` is 1-based, ``$`` (or a
  negative number, ``-1``) counts from the end, default ``$`` (last page).
- ``index`` is the 1-based number of the step in the circuit (Maarch's ``sequence + 1``): the signature made at
  that step uses that pictogram. A pictogram without ``index`` serves every signature step that has none of its
  own. A signature step with no pictogram at all keeps the workflow's default (bottom-right of the last page).
- ``border``, ``opacite``, ``font-size`` and the ``top``/``center``/``bottom``/``left``/``right`` boxes are
  accepted and kept as given; Parafe draws its own pictogram text inside the given rectangle.

:func:`check_pictograms` validates the whole file at deposit (catalogue error 240, nothing stored);
:func:`signature_position` answers, for one step, the position the signature must use.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from lxml import etree

from parafe.domain.errors import E, ParafeError
from parafe.formats.safexml import parse_untrusted

log = logging.getLogger(__name__)

PICTOGRAMS_LIMIT = 256 * 1024
MM = 72.0 / 25.4  # points per millimetre
DEFAULT_WIDTH_MM = 50.0
DEFAULT_HEIGHT_MM = 20.0
MAX_MM = 5000.0  # far beyond any page (A0 is 1189 mm): a sanity bound on coordinates and sizes

GROUPS = {"pictogramme-signature": "signature", "pictogramme-visa": "visa"}
_BOXES = {"top", "center", "bottom", "left", "right"}


@dataclass(frozen=True)
class PictogramPosition:
    """One pictogram: what it is for, for which step, where (millimetres) and on which page (1-based, <0: from
    the end)."""

    kind: str  # "signature" | "visa"
    index: int | None
    x_mm: float
    y_mm: float
    width_mm: float
    height_mm: float
    page: int

    def points(self) -> dict[str, float | int]:
        """The placement in PDF points (``x``, ``y``, ``width``, ``height``, ``page``), as a StampSpec takes it."""
        return {"x": self.x_mm * MM, "y": self.y_mm * MM, "width": self.width_mm * MM,
                "height": self.height_mm * MM, "page": self.page}


def _invalid(reason: str) -> ParafeError:
    return ParafeError(E.PICTOGRAMS_INVALID, reason=reason)


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _number(value: str | None, what: str, *, default: float | None = None, positive: bool = False) -> float:
    if value is None or not value.strip():
        if default is None:
            raise _invalid(f"l'attribut « {what} » de <position> est obligatoire")
        return default
    try:
        number = float(value.strip().replace(",", "."))
    except ValueError:
        raise _invalid(f"« {what} » doit être un nombre (millimètres), pas « {value.strip()[:40]} »") from None
    if not math.isfinite(number) or number < 0 or (positive and number == 0) or number > MAX_MM:
        bound = "strictement positif" if positive else "positif ou nul"
        raise _invalid(f"« {what} » = {value.strip()[:40]} : nombre {bound} attendu, au plus {MAX_MM:.0f} mm")
    return number


def _page(value: str | None) -> int:
    if value is None or not value.strip() or value.strip() == "$":
        return -1
    try:
        page = int(value.strip())
    except ValueError:
        raise _invalid(f"page « {value.strip()[:40]} » : numéro de page ou « $ » attendu") from None
    if page == 0:
        raise _invalid("page 0 : les pages sont numérotées à partir de 1 (« $ » = dernière page)")
    return page


def _index(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        index = int(value.strip())
    except ValueError:
        raise _invalid(f"index « {value.strip()[:40]} » : numéro d'étape attendu") from None
    if index < 1:
        raise _invalid(f"index {index} : les étapes sont numérotées à partir de 1")
    return index


def parse_pictograms(data: bytes | str) -> list[PictogramPosition]:
    """Every pictogram of the file, in document order; catalogue errors for unsafe, malformed or invalid XML."""
    return _parse(data)[1]


def _parse(data: bytes | str) -> tuple[etree._Element, list[PictogramPosition]]:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    root = parse_untrusted(raw).getroot()
    if _local(root) != "pictogrammes":
        raise _invalid(f"élément racine <pictogrammes> attendu, pas <{_local(root)}>")
    out: list[PictogramPosition] = []
    seen: set[tuple[str, int | None]] = set()
    for group in root:
        if not isinstance(group.tag, str):
            continue  # comments, processing instructions
        kind = GROUPS.get(_local(group))
        if kind is None:
            raise _invalid(f"élément <{_local(group)}> inattendu (attendu : <pictogramme-signature> ou "
                           "<pictogramme-visa>)")
        for picto in group:
            if not isinstance(picto.tag, str):
                continue
            if _local(picto) != "pictogramme":
                raise _invalid(f"élément <{_local(picto)}> inattendu dans <{_local(group)}>")
            positions = [c for c in picto if isinstance(c.tag, str) and _local(c) == "position"]
            others = [_local(c) for c in picto if isinstance(c.tag, str) and _local(c) not in _BOXES | {"position"}]
            if others:
                raise _invalid(f"élément <{others[0]}> inattendu dans <pictogramme>")
            if len(positions) != 1:
                raise _invalid("chaque <pictogramme> doit avoir un et un seul élément <position>")
            pos = positions[0]
            index = _index(picto.get("index"))
            if (kind, index) in seen:
                which = f"l'index {index}" if index is not None else "aucun index"
                raise _invalid(f"deux pictogrammes de {kind} avec {which}")
            seen.add((kind, index))
            out.append(PictogramPosition(
                kind=kind, index=index, x_mm=_number(pos.get("x"), "x"), y_mm=_number(pos.get("y"), "y"),
                width_mm=_number(pos.get("width"), "width", default=DEFAULT_WIDTH_MM, positive=True),
                height_mm=_number(pos.get("height"), "height", default=DEFAULT_HEIGHT_MM, positive=True),
                page=_page(pos.get("page"))))
    return root, out


def check_pictograms(data: bytes | None, *, pages: int | None = None) -> str | None:
    """The pictograms XML to keep with the document (the parsed file re-serialised as text, whatever its
    declared encoding), or None when absent; refuses oversized, unsafe or invalid XML and, when the document's
    page count is known, a page it does not have."""
    if not data or not data.strip():
        return None
    if len(data) > PICTOGRAMS_LIMIT:
        raise _invalid(f"fichier trop volumineux (au plus {PICTOGRAMS_LIMIT // 1024} Kio)")
    root, pictograms = _parse(data)
    for picto in pictograms:
        if pages is not None and abs(picto.page) > pages:
            raise _invalid(f"la page {picto.page} n'existe pas (le document compte {pages} page(s))")
    return str(etree.tostring(root, encoding="unicode"))


def signature_position(xml: str | None, step_position: int) -> PictogramPosition | None:
    """The pictogram of the signature made at circuit step ``step_position`` (0-based): the signature pictogram
    whose ``index`` is ``step_position + 1``, else the signature pictogram without index, else None."""
    if not xml:
        return None
    try:
        pictograms = parse_pictograms(xml)
    except ParafeError as exc:  # kept by a deposit made before the file was checked: the default position
        log.warning("pictograms of the deposit ignored: %s", exc.message)
        return None
    fallback: PictogramPosition | None = None
    for picto in pictograms:
        if picto.kind != "signature":
            continue
        if picto.index == step_position + 1:
            return picto
        if picto.index is None:
            fallback = picto
    return fallback
