"""PES V2 (DGFiP Helios) files: schemas, deposit inspection of ``PES_Aller`` and validation of acknowledgements.

The XSD v5.17 schemas ship in ``formats/xsd/pes/v5.17`` and are compiled once per process, lazily.

:func:`inspect_pes` reads a deposited file in ONE streaming pass (``iterparse`` with libxml2's streaming XSD
validation plugged into the parser, finished elements freed as they end), so a 100 MiB PES holding millions
of elements stays within a few tens of MiB; a single huge attachment costs about three times its size (libxml2
text node, streaming validator buffer, Python string). Measured figures: ``tests/unit/formats/test_pes_large.py``.

Streaming validation reports no line number; when it fails on a file whose tree is cheap, the file is parsed
again as a tree to report the first error with its line.
"""

from __future__ import annotations

import binascii
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lxml import etree

from parafe.domain.errors import E, ParafeError
from parafe.formats.safexml import Source, check_prolog, iterparse_untrusted, parse_untrusted

XSD_ROOT = Path(__file__).resolve().parent / "xsd" / "pes" / "v5.17"
PES_ALLER_XSD = "PES_V2/Rev0/PES_Aller.xsd"
PES_ACQUIT_XSD = "PES_V2/Rev0/PES_V2_Acquit_Autonome_V2.xsd"
PES_RETOUR_XSD = "PES_V2/RETOUR/Rev0/PES_Retour.xsd"

NS_ALLER = "http://www.minefi.gouv.fr/cp/helios/pes_v2/Rev0/aller"
NS_DS = "http://www.w3.org/2000/09/xmldsig#"
PES_ALLER_TAG = f"{{{NS_ALLER}}}PES_Aller"
_SIGNATURE_TAG = f"{{{NS_DS}}}Signature"

# The accounting blocks whose <Bordereau> children count as bordereaux (spec: PES_DepenseAller/PES_RecetteAller).
BORDEREAU_PARENTS = frozenset({"PES_DepenseAller", "PES_RecetteAller"})

# Upper bound of what the attachments of one file may inflate to when their gzip stream is verified (CPU bound).
MAX_PJ_EXPANDED_BYTES = 1024 * 1024 * 1024
# A schema-invalid file is re-parsed as a tree (to get the error line) only if the tree is estimated below this.
LINE_LOOKUP_BUDGET = 192 * 1024 * 1024
_TREE_BYTES_PER_ELEMENT = 320  # measured: 4.9 M elements -> 1.45 GiB of libxml2 tree

Signature = Literal["none", "global", "per_bordereau", "partial"]


# --------------------------------------------------------------------------------------------------- schemas

_schemas: dict[str, etree.XMLSchema] = {}
_compile_lock = threading.Lock()
# XMLSchema.validate() writes the schema object's shared error_log: one validation at a time per schema.
_validate_locks: dict[str, threading.Lock] = {}


def _schema(relative: str) -> etree.XMLSchema:
    schema = _schemas.get(relative)
    if schema is None:
        with _compile_lock:
            schema = _schemas.get(relative)
            if schema is None:
                parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
                schema = etree.XMLSchema(etree.parse(str(XSD_ROOT / relative), parser))
                _validate_locks[relative] = threading.Lock()
                _schemas[relative] = schema
    return schema


def pes_aller_schema() -> etree.XMLSchema:
    """``PES_Aller`` (files sent to Helios)."""
    return _schema(PES_ALLER_XSD)


def _schema_errors(relative: str, tree: etree._ElementTree) -> list[str]:
    schema = _schema(relative)
    with _validate_locks[relative]:
        if schema.validate(tree):
            return []
        return [f"line {e.line}: {e.message}" for e in schema.error_log
                if e.level >= etree.ErrorLevels.ERROR]


def _validate(relative: str, data: Source) -> list[str]:
    return _schema_errors(relative, parse_untrusted(data))


def validate_pes_aller(data: Source) -> list[str]:
    """Schema errors (``"line N: message"``) of a small ``PES_Aller``; empty when valid.
    ``XML_UNSAFE`` / ``XML_MALFORMED`` propagate. For deposits use :func:`inspect_pes`."""
    return _validate(PES_ALLER_XSD, data)


def validate_acquit(data: Source) -> list[str]:
    """Schema errors of a ``PES_ACQUIT``; empty when valid. ``XML_UNSAFE`` / ``XML_MALFORMED`` propagate."""
    return _validate(PES_ACQUIT_XSD, data)


def validate_pes_retour(data: Source) -> list[str]:
    """Schema errors of a ``PES_Retour``; empty when valid. ``XML_UNSAFE`` / ``XML_MALFORMED`` propagate."""
    return _validate(PES_RETOUR_XSD, data)


# --------------------------------------------------------------------------------------------------- inspect


@dataclass
class PesInfo:
    """What the deposit needs to know about a valid ``PES_Aller``."""

    nom_fic: str | None
    typ_fic: str | None
    bordereau_count: int
    pj_count: int
    signature: Signature
    root_id: str | None
    encoding: str


class _GzipVerifier:
    """Incremental check that bytes form one or more complete gzip members (output discarded, counted)."""

    _OUT = 1024 * 1024

    def __init__(self, budget: list[int]) -> None:
        self._budget = budget  # shared and mutable: expanded bytes left for the whole file
        self._inflater = zlib.decompressobj(wbits=31)  # gzip container only
        self._maybe_pending = False
        self._zeros = False  # only NUL padding may follow (tolerated, as by the gzip module)
        self._pending = b""
        self.produced = 0

    def feed(self, data: bytes) -> str | None:
        data = self._pending + data
        self._pending = b""
        while True:
            if self._zeros:
                return "data after the gzip stream" if data.strip(b"\0") else None
            if self._inflater.eof:
                if not data:
                    return None
                if data[:2] == b"\x1f\x8b":
                    self._inflater = zlib.decompressobj(wbits=31)
                elif data == b"\x1f":
                    self._pending = data
                    return None
                elif not data.strip(b"\0"):
                    self._zeros = True
                    return None
                else:
                    return "data after the gzip stream"
            if not data and not self._maybe_pending:
                return None
            try:
                out = self._inflater.decompress(data, self._OUT)
            except zlib.error:
                return "content is not gzip-compressed"
            self._maybe_pending = len(out) == self._OUT
            self.produced += len(out)
            self._budget[0] -= len(out)
            if self._budget[0] < 0:
                return f"attachments expand beyond {MAX_PJ_EXPANDED_BYTES} bytes"
            data = self._inflater.unused_data if self._inflater.eof else self._inflater.unconsumed_tail

    def finish(self) -> str | None:
        problem = self.feed(b"") if self._maybe_pending else None
        if problem:
            return problem
        if self._pending:
            return "data after the gzip stream"
        if not self._inflater.eof:
            return "content is not a complete gzip stream"
        if self.produced == 0:
            return "attachment is empty once decompressed"
        return None


_B64_SLICE = 4 * 1024 * 1024  # characters of base64 decoded at a time


def pj_content_problem(text: str | None, budget: list[int] | None = None) -> str | None:
    """Why a PJ's ``Fichier`` text is not "a file compressed with gzip then converted to base64"
    (Class_PJ.xsd), or None when it is. Works in slices: memory stays bounded whatever the size."""
    if text is None or not text.strip():
        return "empty content"
    verifier = _GzipVerifier(budget if budget is not None else [MAX_PJ_EXPANDED_BYTES])
    carry = b""
    padded = False
    for start in range(0, len(text), _B64_SLICE):
        try:
            raw = text[start:start + _B64_SLICE].encode("ascii")
        except UnicodeEncodeError:
            return "content is not base64"
        raw = carry + raw.translate(None, b" \t\r\n")
        usable = len(raw) - len(raw) % 4
        carry = raw[usable:]
        if not usable:
            continue
        if padded:
            return "content is not base64 (data after padding)"
        try:
            decoded = binascii.a2b_base64(raw[:usable], strict_mode=True)
        except binascii.Error:
            return "content is not base64"
        padded = raw[usable - 1:usable] == b"="
        problem = verifier.feed(decoded)
        if problem:
            return problem
    if carry:
        return "content is not base64 (truncated)"
    return verifier.finish()


@dataclass
class _Scan:
    nom_fic: str | None = None
    typ_fic: str | None = None
    bordereaux: int = 0
    signed_bordereaux: int = 0
    root_signature: bool = False
    pes_pj: bool = False
    pj_count: int = 0
    pj_problem: str | None = None
    pj_has_content: bool = False
    pj_name: str | None = None
    elements: int = 0


def _local(tag: str) -> str:
    return tag.rpartition("}")[2] if tag[:1] == "{" else tag


_SIG, _BORD, _PARAM, _FICHIER, _NOMPJ, _PJ, _PESPJ = range(7)
_INTEREST = {_SIGNATURE_TAG: _SIG, "Bordereau": _BORD, "NomFic": _PARAM, "TypFic": _PARAM, "Fichier": _FICHIER,
             "NomPJ": _NOMPJ, "PJ": _PJ, "PES_PJ": _PESPJ}


def _scan(path: Path, schema: etree.XMLSchema, scan: _Scan) -> None:
    """One streaming pass: validation (in libxml2), facts of interest, and every finished element freed."""
    budget = [MAX_PJ_EXPANDED_BYTES]
    elements = 0
    try:
        for _event, el in iterparse_untrusted(path, ("end",), schema=schema, allow_huge_text=True):
            elements += 1
            parent = el.getparent()
            if parent is None:  # the root ends; keep iterating so that validation errors still surface
                continue
            kind = _INTEREST.get(el.tag)
            if kind is not None:
                _handle(kind, el, parent, scan, budget)
            # free this element and its earlier siblings (safexml.release, inlined: this loop is hot)
            el.clear(keep_tail=False)
            while el.getprevious() is not None:
                del parent[0]
    finally:
        scan.elements = elements


def _handle(kind: int, el: etree._Element, parent: etree._Element, scan: _Scan, budget: list[int]) -> None:
    if kind == _SIG:
        if parent.getparent() is None:
            scan.root_signature = True
        elif _local(parent.tag) == "Bordereau":
            scan.signed_bordereaux += 1
    elif kind == _BORD:
        if _local(parent.tag) in BORDEREAU_PARENTS:
            scan.bordereaux += 1
    elif kind == _PARAM:
        attr = "nom_fic" if el.tag == "NomFic" else "typ_fic"
        grand = parent.getparent()
        if parent.tag == "Parametres" and grand is not None and grand.tag == "Enveloppe" \
                and getattr(scan, attr) is None:
            setattr(scan, attr, el.get("V"))
    elif kind == _FICHIER:
        grand = parent.getparent()
        if parent.tag == "Contenu" and grand is not None and grand.tag == "PJ" and _in_pes_pj(grand):
            scan.pj_has_content = True
            problem = pj_content_problem(el.text, budget)
            if problem and scan.pj_problem is None:
                scan.pj_problem = f"PJ #{scan.pj_count + 1}: {problem}"
    elif kind == _NOMPJ:
        if parent.tag == "PJ":
            scan.pj_name = el.get("V")
    elif kind == _PJ:
        if parent.tag == "PES_PJ":
            scan.pj_count += 1
            if scan.pj_problem is None:
                if not scan.pj_has_content:
                    scan.pj_problem = f"PJ #{scan.pj_count}: no content"
                elif not (scan.pj_name or "").strip():
                    scan.pj_problem = f"PJ #{scan.pj_count}: no name (NomPJ)"
        scan.pj_has_content = False
        scan.pj_name = None
    elif kind == _PESPJ and parent.getparent() is None:
        scan.pes_pj = True


def _in_pes_pj(pj: etree._Element) -> bool:
    block = pj.getparent()
    return block is not None and block.tag == "PES_PJ" and block.getparent() is not None \
        and block.getparent().getparent() is None


def _first_error_with_line(path: Path, scan: _Scan, streaming_message: str) -> str:
    estimate = path.stat().st_size + scan.elements * _TREE_BYTES_PER_ELEMENT
    if estimate <= LINE_LOOKUP_BUDGET:
        try:
            tree = parse_untrusted(path, allow_huge_text=True)
        except ParafeError as exc:  # not well-formed: the parser's message has the line
            return exc.detail or streaming_message
        errors = _schema_errors(PES_ALLER_XSD, tree)
        if errors:
            return errors[0]
    return f"{streaming_message} (streaming validation: no line number)"


def _signature_kind(scan: _Scan) -> Signature:
    if scan.root_signature and scan.signed_bordereaux == 0:
        return "global"
    if not scan.root_signature and scan.signed_bordereaux == 0:
        return "none"
    if not scan.root_signature and scan.signed_bordereaux == scan.bordereaux:
        return "per_bordereau"
    return "partial"


def inspect_pes(path: Path, *, pj_circuit: bool = False) -> PesInfo:
    """Check a deposited ``PES_Aller`` file and describe it.

    Raises, in this order of detection:
    ``EMPTY_FILE``; ``XML_UNSAFE`` (DOCTYPE / entities); ``NOT_PES`` (not XML, or the root is not
    ``PES_Aller``); ``PES_PJ_INVALID`` (a ``PES_PJ/PJ`` whose ``Fichier`` is empty, not base64, not a complete
    non-empty gzip stream, or whose ``NomPJ`` is blank; in a PES-PJ circuit also no ``PES_PJ`` or no ``PJ``);
    ``PES_PROCESSING`` (not well-formed after the root, or not valid against the v5.17 schema; ``detail`` holds
    the first error, with its line when the file is small enough to re-parse as a tree);
    ``PES_NO_BORDEREAU`` (no ``Bordereau`` under ``PES_DepenseAller`` / ``PES_RecetteAller``, unless
    ``pj_circuit``). NomFic uniqueness is a database rule, not checked here.
    """
    if path.stat().st_size == 0:
        raise ParafeError(E.EMPTY_FILE, detail="PES file is empty")
    try:
        prolog = check_prolog(path)
    except ParafeError as exc:
        if exc.error is E.XML_MALFORMED:
            raise ParafeError(E.NOT_PES, detail=f"not XML: {exc.detail}") from None
        raise
    if prolog.root_local_name != "PES_Aller":
        raise ParafeError(E.NOT_PES, detail=f"root element is {prolog.root_tag!r}, expected PES_Aller")
    if prolog.root_tag != PES_ALLER_TAG:
        raise ParafeError(E.PES_PROCESSING, detail=f"PES_Aller in namespace {prolog.root_namespace!r}, "
                                                   f"expected {NS_ALLER!r}")
    scan = _Scan()
    try:
        _scan(path, pes_aller_schema(), scan)
    except etree.XMLSyntaxError as exc:
        if scan.pj_problem:
            raise ParafeError(E.PES_PJ_INVALID, detail=scan.pj_problem) from None
        message = getattr(exc, "msg", None) or str(exc)
        raise ParafeError(E.PES_PROCESSING, detail=_first_error_with_line(path, scan, message)) from None
    if scan.pj_problem:
        raise ParafeError(E.PES_PJ_INVALID, detail=scan.pj_problem)
    if pj_circuit and not scan.pes_pj:
        raise ParafeError(E.PES_PJ_INVALID, detail="no PES_PJ block")
    if pj_circuit and scan.pj_count == 0:
        raise ParafeError(E.PES_PJ_INVALID, detail="PES_PJ block holds no PJ")
    if scan.bordereaux == 0 and not pj_circuit:
        raise ParafeError(E.PES_NO_BORDEREAU, detail="no Bordereau under PES_DepenseAller / PES_RecetteAller")
    return PesInfo(
        nom_fic=scan.nom_fic,
        typ_fic=scan.typ_fic,
        bordereau_count=scan.bordereaux,
        pj_count=scan.pj_count,
        signature=_signature_kind(scan),
        root_id=prolog.root_attrib.get("Id"),
        encoding=prolog.encoding,
    )
