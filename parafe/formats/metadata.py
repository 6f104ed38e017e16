"""Metadata formats: the ``meta-data-list`` XML (API-REFERENCE §6.1), OTP information (§6.3), validation
against a circuit's metadata model (S22-S24) and the ``METAS_XXX.xml`` naming rule (§6.5, DECISIONS D18)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Literal

from lxml import etree

from parafe.domain.errors import E, ParafeError
from parafe.formats.safexml import parse_untrusted

METAS_PREFIX = "METAS_"
# A value longer than this is refused before any regular expression runs on it (bounded matching time).
MAX_VALUE_LENGTH = 4000


def parse_meta_data_list(data: bytes) -> list[tuple[str, str]]:
    """The ``(name, value)`` pairs of a ``meta-data-list`` document, in document order.

    Liberal reading: the root and item names are matched on their local name (any namespace), a missing
    ``value`` attribute reads as the element's text or ``""``. Raises ``XML_UNSAFE`` / ``XML_MALFORMED`` from
    the parser and ``READ_FAILED`` when the document is not a ``meta-data-list`` or an item has no name.
    """
    root = parse_untrusted(data).getroot()
    if etree.QName(root).localname != "meta-data-list":
        raise ParafeError(E.READ_FAILED, detail=f"root element is {etree.QName(root).localname!r}, "
                                                "expected 'meta-data-list'")
    items: list[tuple[str, str]] = []
    for element in root:
        if not isinstance(element.tag, str):  # comments, processing instructions
            continue
        if etree.QName(element).localname != "meta-data":
            raise ParafeError(E.READ_FAILED, detail=f"unexpected element {etree.QName(element).localname!r} "
                                                    f"at line {element.sourceline}")
        name = (element.get("name") or "").strip()
        if not name:
            raise ParafeError(E.READ_FAILED, detail=f"meta-data without a name at line {element.sourceline}")
        value = element.get("value")
        if value is None:
            value = element.text or ""
        items.append((name, value))
    return items


_ATTR_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\t": "&#9;", "\n": "&#10;",
                 "\r": "&#13;"}


def _xml_char_ok(ch: str) -> bool:
    code = ord(ch)
    return (code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD
            or 0x10000 <= code <= 0x10FFFF)


def _attr(text: str) -> str:
    for ch in text:
        if not _xml_char_ok(ch):
            raise ParafeError(E.BAD_CHARACTERS, detail=f"character U+{ord(ch):04X} cannot be written in XML")
    return "".join(_ATTR_ESCAPES.get(ch, ch) for ch in text)


def render_meta_data_list(items: Iterable[tuple[str, str]]) -> bytes:
    """A ``meta-data-list`` document in the layout of the spec example (§6.1), UTF-8."""
    lines = ['<?xml version="1.0" encoding="UTF-8" standalone="yes"?>', "<meta-data-list>"]
    for name, value in items:
        lines.append(f'    <meta-data name="{_attr(name)}" value="{_attr(value)}"/>')
    lines.append("</meta-data-list>")
    return ("\n".join(lines) + "\n").encode("utf-8")


@dataclass
class OtpSigner:
    """The identity of the OTP signer of one OTP step (index 0 = first OTP step); blank values are None."""

    index: int
    firstname: str | None = None
    lastname: str | None = None
    phone: str | None = None
    email: str | None = None


_OTP_NAME = re.compile(r"OTP_(firstname|lastname|phonenumber|email)_(\d{1,4})")
_OTP_FIELD = {"firstname": "firstname", "lastname": "lastname", "phonenumber": "phone", "email": "email"}


def parse_otp_info(data: bytes) -> list[OtpSigner]:
    """The OTP signers of an OTP information file (§6.3), sorted by step index.

    Names that do not start with ``OTP_`` are ignored (clients may mix in other metadata); an ``OTP_`` name
    outside the four documented keys raises ``METADATA_UNKNOWN``, a key given twice ``METADATA_BAD_FORMAT``.
    Which keys are mandatory is the service's decision (G-23, D15).
    """
    signers: dict[int, OtpSigner] = {}
    seen: set[str] = set()
    for name, value in parse_meta_data_list(data):
        if not name.startswith("OTP_"):
            continue
        match = _OTP_NAME.fullmatch(name)
        if match is None:
            raise ParafeError(E.METADATA_UNKNOWN, detail="unknown OTP information key", name=name)
        if name in seen:
            raise ParafeError(E.METADATA_BAD_FORMAT, detail="OTP information key given twice", name=name)
        seen.add(name)
        index = int(match.group(2))
        signer = signers.setdefault(index, OtpSigner(index=index))
        setattr(signer, _OTP_FIELD[match.group(1)], value.strip() or None)
    return [signers[i] for i in sorted(signers)]


@dataclass
class MetadataField:
    """One field of a circuit's metadata model."""

    name: str
    kind: Literal["text", "numeric", "date", "regex"]
    pattern: str | None = None  # for kind == "regex": the whole value must match
    required: bool = False


_NUMERIC = re.compile(r"[+-]?\d+(?:[.,]\d+)?")
_DATE_FR = re.compile(r"(\d{2})/(\d{2})/(\d{4})")
_DATE_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


def _is_date(value: str) -> bool:
    match = _DATE_FR.fullmatch(value)
    if match:
        day, month, year = (int(g) for g in match.groups())
    else:
        match = _DATE_ISO.fullmatch(value)
        if not match:
            return False
        year, month, day = (int(g) for g in match.groups())
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def value_matches(field: MetadataField, value: str) -> bool:
    """Whether ``value`` has the format of ``field`` (an empty value is judged by :func:`validate_metadata`)."""
    if len(value) > MAX_VALUE_LENGTH:
        return False
    if field.kind == "text":
        return True
    if field.kind == "numeric":
        return _NUMERIC.fullmatch(value) is not None
    if field.kind == "date":
        return _is_date(value)
    if field.kind == "regex":
        if not field.pattern:
            return True
        try:
            return re.fullmatch(field.pattern, value) is not None
        except re.error:
            return False
    return False


def validate_metadata(items: Iterable[tuple[str, str]], model: list[MetadataField] | None) -> None:
    """Check metadata against a circuit's model (§6.1, S22-S24).

    Raises ``NO_METADATA_MODEL`` when ``model`` is None; ``METADATA_UNKNOWN`` for a name not in the model;
    ``METADATA_BAD_FORMAT`` for a value not in its field's format (numeric: ``[+-]digits[.,digits]``; date:
    ``DD/MM/YYYY`` or ``YYYY-MM-DD``, a real calendar date; regex: full match), for a name given twice, and
    for a required field missing or blank, and for any value over ``MAX_VALUE_LENGTH`` characters. A blank
    optional value is accepted.
    """
    if model is None:
        raise ParafeError(E.NO_METADATA_MODEL, detail="the circuit has no metadata model")
    fields = {f.name: f for f in model}
    given: set[str] = set()
    for name, value in items:
        field = fields.get(name)
        if field is None:
            raise ParafeError(E.METADATA_UNKNOWN, detail="not in the circuit's metadata model", name=name)
        if name in given:
            raise ParafeError(E.METADATA_BAD_FORMAT, detail="metadata given twice", name=name)
        given.add(name)
        text = value.strip()
        if not text:
            if field.required:
                raise ParafeError(E.METADATA_BAD_FORMAT, detail="required metadata is blank", name=name)
            continue
        if not value_matches(field, text):
            raise ParafeError(E.METADATA_BAD_FORMAT, detail=f"value {value!r} is not a valid {field.kind}",
                              name=name)
    for field in model:
        if field.required and field.name not in given:
            raise ParafeError(E.METADATA_BAD_FORMAT, detail="required metadata is missing", name=field.name)


def metas_target(name: str) -> str | None:
    """For ``METAS_XXX.xml`` the ``XXX`` part (the main document's name, §6.5), else None.

    The prefix and the ``.xml`` suffix are matched case-insensitively; ``XXX`` must not be empty.
    """
    if len(name) <= len(METAS_PREFIX) + len(".xml"):
        return None
    if name[:len(METAS_PREFIX)].upper() != METAS_PREFIX or name[-4:].lower() != ".xml":
        return None
    return name[len(METAS_PREFIX):-4]


def is_metas_file_name(name: str) -> bool:
    """Whether ``name`` follows the ``METAS_XXX.xml`` rule (§6.5)."""
    return metas_target(name) is not None


def check_metas_file_name(name: str) -> None:
    """Raise ``METADATA_FILE_NAME`` unless ``name`` follows the ``METAS_XXX.xml`` rule."""
    if not is_metas_file_name(name):
        raise ParafeError(E.METADATA_FILE_NAME, detail=f"{name!r} is not named METAS_XXX.xml")
